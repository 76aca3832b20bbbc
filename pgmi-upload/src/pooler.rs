//! Refusing transaction-mode connection poolers before anything is loaded.
//!
//! A pgmi session lives in one server backend: the session tables are temporary tables, the
//! deploy lock is a session advisory lock, and deploy.sql's units run one after another on
//! it. A pooler in transaction mode (PgBouncer `pool_mode = transaction`, RDS Proxy in its
//! default mode) may hand each transaction to a different backend, so the tables vanish
//! between units and the lock stays behind on a backend nobody owns.
//!
//! The check is one statement, right after the deploy lock was taken: does the backend
//! answering now hold that lock? On a direct connection (or through a session-mode pool) it
//! always does. Through a transaction-mode pool it does not whenever the pool handed this
//! statement to another backend than the lock statement; a pool that happens to reuse the
//! same backend for both (an otherwise idle pool) can go unnoticed here, which the README
//! says plainly. The statement also returns the backend's pid, which the lock watcher
//! needs anyway, and the schema of the pgmi extension if it is installed, which the choice
//! of session needs next, so a direct connection pays one round trip for all three.
//!
//! When it fires, the lock it took sits on another backend, idle in the pool. One more
//! statement releases it at once instead of when the pool recycles that connection: it
//! unlocks it if the pool ran the statement on that backend, and otherwise ends that
//! backend, which belongs to this role and runs nothing (best effort).

use postgres::Client;

use crate::exit::{Exit, Failure};
use crate::session::deploy_lock_key;

/// `pg_backend_pid()`, whether this backend holds the deploy lock (the key of
/// `session::check_version_and_lock`: `hashtextextended('pgmi.deploy.' || current_database(), 0)`,
/// which `pg_locks` shows as `classid` = high and `objid` = low 32 bits, `objsubid` 1), and
/// the extension's schema (NULL when it is not installed).
const PROBE: &str = concat!(
    "SELECT pg_catalog.pg_backend_pid(),
       EXISTS (SELECT 1 FROM pg_catalog.pg_locks l
                WHERE l.locktype OPERATOR(pg_catalog.=) 'advisory'
                  AND l.objsubid OPERATOR(pg_catalog.=) 1
                  AND l.granted
                  AND l.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()
                  AND (CAST(l.classid AS int8) OPERATOR(pg_catalog.<<) 32 OPERATOR(pg_catalog.|) CAST(l.objid AS int8))
                      OPERATOR(pg_catalog.=) ",
    deploy_lock_key!(),
    "),
       (SELECT n.nspname FROM ",
    pgmi_core::extension_schema_from!(),
    ")"
);

/// What the check found on a backend that holds the deploy lock.
pub struct Probe {
    /// The backend's pid, for the lock watcher.
    pub pid: i32,
    /// The schema the pgmi extension is installed in, unquoted; `None` when it is not.
    pub extension_schema: Option<String>,
    /// The `then` statements of [`check`] ran: a transaction block is open.
    pub begun: bool,
}

/// Release the deploy lock wherever this client's statements left it: unlocked when the
/// backend running this statement holds it (the pool may hand this statement to the very
/// backend that took it), ended when an idle backend of this role holds it.
const RELEASE_STRANDED: &str = concat!(
    "WITH k AS (SELECT ",
    deploy_lock_key!(),
    " AS key),
     holders AS (
       SELECT l.pid
         FROM pg_catalog.pg_locks l, k
        WHERE l.locktype OPERATOR(pg_catalog.=) 'advisory'
          AND l.objsubid OPERATOR(pg_catalog.=) 1
          AND l.granted
          AND (CAST(l.classid AS int8) OPERATOR(pg_catalog.<<) 32 OPERATOR(pg_catalog.|) CAST(l.objid AS int8))
              OPERATOR(pg_catalog.=) k.key)
SELECT (SELECT pg_catalog.pg_advisory_unlock(k.key) FROM k
         WHERE EXISTS (SELECT 1 FROM holders h WHERE h.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid())),
       (SELECT pg_catalog.count(pg_catalog.pg_terminate_backend(a.pid))
          FROM pg_catalog.pg_stat_activity a
          JOIN holders h ON h.pid OPERATOR(pg_catalog.=) a.pid
         WHERE a.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()
           AND a.usename OPERATOR(pg_catalog.=) CURRENT_USER
           AND a.state OPERATOR(pg_catalog.=) 'idle')"
);

/// Check the session right after the deploy lock; the backend pid and the extension's
/// schema on success, exit 11 when a transaction-mode pooler is in the way.
///
/// `then`: statements that open the load's transaction block, sent in the same message
/// (one round trip fewer for the load that most likely follows; the caller ends the block
/// if it does not). When the message fails, the block is rolled back and the check asked
/// again alone, so that its own answer, or the load's error, comes later in its place;
/// unless the message was cancelled (`--timeout`, Ctrl-C) or the connection is gone.
pub fn check(client: &mut Client, verbose: bool, then: Option<&str>) -> Result<Probe, Failure> {
    let failed = |e: &postgres::Error| {
        Failure::from_pg(Exit::General, "could not check the session's backend", e)
    };
    let rows = match then {
        Some(then) => match client.simple_query(&format!("{PROBE}; {then}")) {
            Ok(rows) => rows,
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK");
                if client.is_closed()
                    || e.code() == Some(&postgres::error::SqlState::QUERY_CANCELED)
                {
                    return Err(failed(&e));
                }
                return check(client, verbose, None);
            }
        },
        None => client.simple_query(PROBE).map_err(|e| failed(&e))?,
    };
    let row = crate::session::first_row(&rows)
        .ok_or_else(|| Failure::new(Exit::General, "the backend check returned no row"))?;
    let pid: i32 = row.get(0).and_then(|p| p.parse().ok()).ok_or_else(|| {
        Failure::new(
            Exit::General,
            "the backend check returned an unreadable pid",
        )
    })?;
    if row.get(1) == Some("t") {
        return Ok(Probe {
            pid,
            extension_schema: row.get(2).map(str::to_string),
            begun: then.is_some(),
        });
    }
    // The block `then` opened is on this backend (an open block keeps it there).
    let release = if then.is_some() {
        format!("ROLLBACK; {RELEASE_STRANDED}")
    } else {
        RELEASE_STRANDED.to_string()
    };
    match client.simple_query(&release) {
        Ok(_) => crate::report::verbose(
            verbose,
            "ended the pooled backend left holding the deploy lock",
        ),
        Err(e) => crate::report::verbose(
            verbose,
            &format!("could not release the deploy lock left on the pooled backend: {e}"),
        ),
    }
    Err(refusal())
}

fn refusal() -> Failure {
    Failure::new(
        Exit::ConnectionFailed,
        "the connection goes through a pooler in transaction mode: consecutive statements of this session ran on different server backends",
    )
    .with_hint(
        "a pgmi deploy needs one server session from start to end (temporary tables, the deploy lock); connect to the server directly, or through a session-mode pool (PgBouncer pool_mode = session)",
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn probe_sql_qualifies_every_function() {
        for sql in [super::PROBE, super::RELEASE_STRANDED] {
            for function in [
                "pg_backend_pid(",
                "hashtextextended(",
                "current_database(",
                "pg_terminate_backend(",
            ] {
                for (at, _) in sql.match_indices(function) {
                    assert!(
                        sql[..at].ends_with("pg_catalog."),
                        "{function} unqualified in {sql}"
                    );
                }
            }
        }
    }

    #[test]
    fn refusal_is_a_connection_failure_with_advice() {
        let f = super::refusal();
        assert_eq!(f.exit, crate::exit::Exit::ConnectionFailed);
        assert!(f.hint.unwrap().contains("pool_mode = session"));
    }
}
