//! `--overwrite`: drop the target database and create it again, keeping what describes it
//! (README, "Overwriting a database").
//!
//! Everything runs on the maintenance database, before the session exists:
//!
//! 1. Offline: never the maintenance database itself, `template0`, `template1` or any
//!    database marked as a template.
//! 2. Read the database as the server describes it, and have the server write the
//!    statements that re-create it (`format('%I', …)`, `%L`: nothing the catalog holds is
//!    quoted by us): encoding, collation and character type (with `TEMPLATE template0` when
//!    they differ from `template1`), the locale provider, owner, connection limit, its own
//!    `ALTER DATABASE … SET` settings (not those tied to a role) and its comment. Grants on
//!    the database and its tablespace are not carried over.
//! 3. Check that this role can drop it and create it again (owner or superuser, CREATEDB,
//!    membership in the owner role) — *before* asking, so that nothing is dropped that
//!    cannot be re-created.
//! 4. Ask ([`crate::approve`]).
//! 5. End the other sessions on it, with a clear message when that is not allowed, then
//!    `DROP DATABASE … WITH (FORCE)` (which also ends sessions that connected meanwhile),
//!    `CREATE DATABASE`, the settings and the comment.
//!
//! A target that does not exist is simply created, without a prompt.

use postgres::Client;

use crate::connect::Connector;
use crate::exit::{Exit, Failure};
use crate::watchdog::Watchdog;

/// Refuse targets that must never be dropped; offline, exit 10.
pub fn refuse_protected(target: &str, maintenance: &str) -> Result<(), Failure> {
    if target.eq_ignore_ascii_case(maintenance) {
        return Err(Failure::config(format!(
            "--overwrite refuses to drop \"{target}\": it is the maintenance database"
        ))
        .with_hint("deploy into another database (-d), or set connection.maintenance_database in pgmi.yaml"));
    }
    if target.eq_ignore_ascii_case("template0") || target.eq_ignore_ascii_case("template1") {
        return Err(Failure::config(format!(
            "--overwrite refuses to drop \"{target}\": it is a template database"
        )));
    }
    Ok(())
}

/// What the server says about the existing target, and how to re-create it.
struct Plan {
    create: String,
    after: Vec<String>,
    is_template: bool,
    can_drop: bool,
    can_create: bool,
    can_own: bool,
    owner: String,
    others: i64,
}

/// One query: the database row and the statements that re-create it. `None`: no such
/// database. `$1` is the target name (bound, never spliced).
const PLAN_SQL: &str = r#"
WITH d AS (
    SELECT d.oid, d.datname, d.encoding, d.datcollate, d.datctype, d.datconnlimit,
           d.datistemplate, d.datdba, pg_catalog.to_jsonb(d) AS j
      FROM pg_catalog.pg_database d
     WHERE d.datname = $1
), t AS (
    SELECT t.encoding, t.datcollate, t.datctype, pg_catalog.to_jsonb(t) AS j
      FROM pg_catalog.pg_database t
     WHERE t.datname = 'template1'
), loc AS (
    SELECT d.j ->> 'datlocprovider' AS provider,
           COALESCE(d.j ->> 'datlocale', d.j ->> 'daticulocale') AS locale,
           d.j ->> 'daticurules' AS icu_rules,
           (d.encoding, d.datcollate, d.datctype) IS DISTINCT FROM (t.encoding, t.datcollate, t.datctype)
           OR (d.j ->> 'datlocprovider') IS DISTINCT FROM (t.j ->> 'datlocprovider')
           OR COALESCE(d.j ->> 'datlocale', d.j ->> 'daticulocale')
              IS DISTINCT FROM COALESCE(t.j ->> 'datlocale', t.j ->> 'daticulocale')
           OR (d.j ->> 'daticurules') IS DISTINCT FROM (t.j ->> 'daticurules') AS needs_template0
      FROM d, t
)
SELECT pg_catalog.format('CREATE DATABASE %I OWNER %I ENCODING %L LC_COLLATE %L LC_CTYPE %L CONNECTION LIMIT %s',
           d.datname, r.rolname, pg_catalog.pg_encoding_to_char(d.encoding), d.datcollate,
           d.datctype, d.datconnlimit)
       || CASE loc.provider
              WHEN 'i' THEN pg_catalog.format(' LOCALE_PROVIDER icu ICU_LOCALE %L', loc.locale)
                            || COALESCE(pg_catalog.format(' ICU_RULES %L', loc.icu_rules), '')
              WHEN 'b' THEN pg_catalog.format(' LOCALE_PROVIDER builtin BUILTIN_LOCALE %L', loc.locale)
              ELSE '' END
       || CASE WHEN loc.needs_template0 THEN ' TEMPLATE template0' ELSE '' END AS create_sql,
       ARRAY(
           SELECT pg_catalog.format('ALTER DATABASE %I SET %s TO %s', d.datname,
                      (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(part), '.')
                         FROM pg_catalog.unnest(pg_catalog.string_to_array(
                                  pg_catalog.split_part(c, '=', 1), '.')) AS part),
                      CASE WHEN pg_catalog.lower(pg_catalog.split_part(c, '=', 1)) IN
                                ('search_path', 'temp_tablespaces', 'local_preload_libraries',
                                 'session_preload_libraries', 'shared_preload_libraries',
                                 'unix_socket_directories')
                           -- list settings are stored already quoted, element by element
                           THEN pg_catalog.substr(c, pg_catalog.strpos(c, '=') + 1)
                           ELSE pg_catalog.quote_literal(pg_catalog.substr(c, pg_catalog.strpos(c, '=') + 1))
                      END)
             FROM pg_catalog.pg_db_role_setting s, pg_catalog.unnest(s.setconfig) AS c
            WHERE s.setdatabase = d.oid AND s.setrole = 0
       ) || ARRAY(
           SELECT pg_catalog.format('COMMENT ON DATABASE %I IS %L', d.datname, x.description)
             FROM pg_catalog.pg_shdescription x
            WHERE x.objoid = d.oid AND x.classoid = 'pg_catalog.pg_database'::pg_catalog.regclass
       ) AS after_sql,
       d.datistemplate,
       (me.rolsuper OR pg_catalog.pg_has_role(d.datdba, 'MEMBER')) AS can_drop,
       (me.rolsuper OR me.rolcreatedb) AS can_create,
       (me.rolsuper OR pg_catalog.pg_has_role(d.datdba, 'MEMBER')) AS can_own,
       r.rolname AS owner,
       (SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity a
         WHERE a.datid = d.oid AND a.pid <> pg_catalog.pg_backend_pid()) AS others
  FROM d, loc, pg_catalog.pg_roles r, pg_catalog.pg_roles me
 WHERE r.oid = d.datdba AND me.rolname = CURRENT_USER
"#;

fn read_plan(admin: &mut Client, target: &str) -> Result<Option<Plan>, Failure> {
    let rows = admin.query(PLAN_SQL, &[&target]).map_err(|e| {
        Failure::from_pg(
            Exit::General,
            &format!("could not read the settings of database \"{target}\""),
            &e,
        )
    })?;
    Ok(rows.first().map(|row| Plan {
        create: row.get("create_sql"),
        after: row.get("after_sql"),
        is_template: row.get("datistemplate"),
        can_drop: row.get("can_drop"),
        can_create: row.get("can_create"),
        can_own: row.get("can_own"),
        owner: row.get("owner"),
        others: row.get("others"),
    }))
}

/// Run the `--overwrite` workflow; afterwards the target exists (fresh). `before_create`
/// is the server check the normal create path runs (version, extension availability).
pub fn run(
    connector: &Connector<'_>,
    force: bool,
    interactive: bool,
    watchdog: &Watchdog,
    before_create: &dyn Fn(&mut Client) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let info = connector.info;
    let target = &info.target_db;
    let mut admin = connector.connect_maintenance()?;
    before_create(&mut admin)?;
    let Some(plan) = read_plan(&mut admin, target)? else {
        crate::report::verbose(
            connector.verbose,
            &format!("--overwrite: database {target:?} does not exist; creating it"),
        );
        return connector.create_database(&mut admin);
    };
    if plan.is_template {
        return Err(Failure::config(format!(
            "--overwrite refuses to drop \"{target}\": it is marked as a template database"
        )));
    }
    let missing: Vec<String> = [
        (!plan.can_drop).then(|| {
            format!(
                "to drop it, be its owner (\"{}\") or a member of that role",
                plan.owner
            )
        }),
        (!plan.can_create).then(|| "to create it again, the CREATEDB attribute".to_string()),
        (!plan.can_own)
            .then(|| format!("to keep its owner, membership in role \"{}\"", plan.owner)),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !missing.is_empty() {
        return Err(Failure::new(
            Exit::General,
            format!(
                "--overwrite: role \"{}\" could not re-create database \"{target}\" as it is; nothing was dropped",
                info.user
            ),
        )
        .with_hint(format!("the role needs {}", missing.join("; "))));
    }

    crate::approve::overwrite(target, force, interactive, watchdog)?;

    if plan.others > 0 {
        terminate_others(&mut admin, target, plan.others)?;
    }
    crate::report::verbose(connector.verbose, &format!("--overwrite: {}", plan.create));
    let quoted = crate::ident::quote_ident(target).map_err(Failure::config)?;
    admin
        .batch_execute(&format!("DROP DATABASE {quoted} WITH (FORCE)"))
        .map_err(|e| {
            Failure::from_pg(
                Exit::General,
                &format!("could not drop database \"{target}\""),
                &e,
            )
        })?;
    if let Err(e) = admin.batch_execute(&plan.create) {
        return Err(Failure::from_pg(
            Exit::General,
            &format!("database \"{target}\" was dropped but could not be created again"),
            &e,
        )
        .with_hint(format!("re-create it by hand: {}", plan.create)));
    }
    for statement in &plan.after {
        admin.batch_execute(statement).map_err(|e| {
            Failure::from_pg(
                Exit::General,
                &format!(
                    "database \"{target}\" was re-created, but a setting could not be restored"
                ),
                &e,
            )
            .with_hint(format!("restore it by hand: {statement}"))
        })?;
    }
    eprintln!("Recreated database \"{target}\"");
    Ok(())
}

/// End every other session on the target. A role may end only its own sessions unless it
/// is a superuser or in `pg_signal_backend`.
fn terminate_others(admin: &mut Client, target: &str, count: i64) -> Result<(), Failure> {
    let result = admin.query(
        "SELECT pg_catalog.pg_terminate_backend(a.pid)
           FROM pg_catalog.pg_stat_activity a
          WHERE a.datname OPERATOR(pg_catalog.=) $1
            AND a.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()",
        &[&target],
    );
    match result {
        Ok(rows) if rows.iter().all(|r| r.get::<_, bool>(0)) => {
            eprintln!("Ended {count} other session(s) on \"{target}\"");
            Ok(())
        }
        Ok(_) => Ok(()), // a session that ended by itself meanwhile
        Err(e) => Err(Failure::from_pg(
            Exit::General,
            &format!(
                "--overwrite: could not end the {count} other session(s) on \"{target}\"; nothing was dropped"
            ),
            &e,
        )
        .with_hint(
            "close them (see pg_stat_activity), or deploy as a role that owns them, a superuser, or a member of pg_signal_backend",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_targets_are_refused_offline() {
        for (target, maintenance) in [
            ("postgres", "postgres"),
            ("Admin", "admin"),
            ("template0", "postgres"),
            ("TEMPLATE1", "postgres"),
        ] {
            let err = refuse_protected(target, maintenance).unwrap_err();
            assert_eq!(err.exit, Exit::InvalidConfig, "{target}");
        }
        assert!(refuse_protected("app", "postgres").is_ok());
    }
}
