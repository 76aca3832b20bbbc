//! The project templates (`templates/basic`, `templates/advanced`) deployed for real, in
//! both session kinds: each is copied with `{{PROJECT_NAME}}` replaced by the test
//! database's name (what `pgmi-upload init` will do), then
//!
//! * a first deploy into a fresh database succeeds and its own tests pass;
//! * a second deploy succeeds and changes nothing (a snapshot of the catalog, the grants,
//!   the roles and every table's rows, ledger included, is the same before and after);
//! * the same project with one failing test, deployed into another new database, exits 13
//!   and leaves none of the template's objects (nor, for advanced, its roles) behind.
//!
//! The advanced template is deployed by a role that is not a superuser and has only LOGIN,
//! CREATEROLE and CREATEDB, over TCP with a password; the roles the template creates are
//! cluster-wide and are dropped at the end.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use pgmi_tests::{both_kinds, connect, pgmi_upload, Client, Kind, Project, Run, TestDb};

/// The placeholder the templates use for the project's name.
const PLACEHOLDER: &str = "{{PROJECT_NAME}}";

/// A template's text with the project name filled in: the substitution `init` makes.
fn substitute(text: &str, project_name: &str) -> String {
    text.replace(PLACEHOLDER, project_name)
}

fn template_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("templates")
        .join(name)
}

/// Every file under `dir`, as paths relative to `root`, sorted.
fn files_under(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read template dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            files_under(root, &path, out);
        } else {
            out.push(path.strip_prefix(root).expect("under root").to_path_buf());
        }
    }
    out.sort();
}

/// A copy of template `name` for a project called `project_name`.
fn instantiate(name: &str, project_name: &str) -> Project {
    let root = template_dir(name);
    let mut files = Vec::new();
    files_under(&root, &root, &mut files);
    assert!(
        files.iter().any(|f| f == Path::new("deploy.sql")),
        "template {name} has no deploy.sql"
    );
    let mut project = Project::new();
    for rel in files {
        let text = std::fs::read_to_string(root.join(&rel)).expect("template files are text");
        project = project.file(
            rel.to_str().expect("utf-8 path"),
            substitute(&text, project_name),
        );
    }
    for rel in ["pgmi.yaml", "README.md", "deploy.sql"] {
        let text = std::fs::read_to_string(project.path().join(rel)).expect(rel);
        assert!(!text.contains("{{"), "{rel} still has a placeholder");
    }
    project
}

/// A test that always fails, added to a copy of a template.
const BROKEN_TEST: &str = "DO $$ BEGIN RAISE EXCEPTION 'broken on purpose'; END $$;\n";

/// `pgmi-upload deploy <project> --session <kind> <extra>`, with the target database taken
/// from the project's pgmi.yaml (no `-d`), as `env` (connection settings) says.
fn deploy(kind: Kind, project: &Project, extra: &[&str], env: &[(&str, &str)]) -> Run {
    let path = project.path().to_str().expect("utf-8 temp path");
    let mut args = vec!["deploy", path, "--session", kind.flag()];
    args.extend_from_slice(extra);
    pgmi_upload(&args, env)
}

fn assert_ok(run: &Run, what: &str) {
    assert_eq!(run.code, 0, "{what} failed:\n{}", run.stderr);
}

fn rows(client: &mut Client, query: &str) -> Vec<String> {
    client
        .query(query, &[])
        .expect(query)
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

/// What a deploy could change, as sorted lines: schemas, relations, columns, indexes (and
/// whether they are valid), routines (with a hash of their bodies), triggers, grants,
/// default privileges, the database's grants, the roles named after the database and their
/// memberships, and a hash of every row of every table. Sequences' positions are left out:
/// `nextval` is not transactional, so the tests (rolled back) may move them.
fn snapshot(db: &str) -> Vec<String> {
    const CATALOG: &str = r#"
        WITH nsp AS (
            SELECT oid, nspname FROM pg_namespace
             WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
               AND nspname !~ '^pg_(toast_)?temp_'
        )
        SELECT 'schema ' || n.nspname || ' owner=' || n2.nspowner::regrole
               || ' acl=' || COALESCE(n2.nspacl::text, '-')
          FROM nsp n JOIN pg_namespace n2 ON n2.oid = n.oid
        UNION ALL
        SELECT 'relation ' || n.nspname || '.' || c.relname || ' kind=' || c.relkind::text
               || ' owner=' || c.relowner::regrole || ' acl=' || COALESCE(c.relacl::text, '-')
               || COALESCE(' valid=' || i.indisvalid || ' ' || pg_get_indexdef(c.oid), '')
          FROM pg_class c JOIN nsp n ON n.oid = c.relnamespace
          LEFT JOIN pg_index i ON i.indexrelid = c.oid
        UNION ALL
        SELECT 'column ' || n.nspname || '.' || c.relname || '.' || a.attname || ' '
               || format_type(a.atttypid, a.atttypmod) || ' notnull=' || a.attnotnull
          FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
          JOIN nsp n ON n.oid = c.relnamespace
         WHERE a.attnum > 0 AND NOT a.attisdropped
        UNION ALL
        SELECT 'routine ' || p.oid::regprocedure || ' owner=' || p.proowner::regrole
               || ' acl=' || COALESCE(p.proacl::text, '-') || ' body=' || md5(p.prosrc)
          FROM pg_proc p JOIN nsp n ON n.oid = p.pronamespace
        UNION ALL
        SELECT 'trigger ' || t.tgrelid::regclass || ' ' || t.tgname
          FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
          JOIN nsp n ON n.oid = c.relnamespace
         WHERE NOT t.tgisinternal
        UNION ALL
        SELECT 'default acl ' || d.defaclrole::regrole || ' '
               || COALESCE(d.defaclnamespace::regnamespace::text, '-') || ' '
               || d.defaclobjtype::text || ' ' || d.defaclacl::text
          FROM pg_default_acl d
        UNION ALL
        SELECT 'database acl=' || COALESCE(datacl::text, '-')
          FROM pg_database WHERE datname = current_database()
        UNION ALL
        SELECT 'role ' || r.rolname || ' login=' || r.rolcanlogin
          FROM pg_roles r WHERE starts_with(r.rolname, current_database() || '_')
        UNION ALL
        SELECT 'member ' || m.member::regrole || ' of ' || m.roleid::regrole
               || ' admin=' || m.admin_option
          FROM pg_auth_members m
         WHERE starts_with(m.roleid::regrole::text, current_database() || '_')
    "#;
    let mut client = connect(db);
    let mut lines = rows(&mut client, CATALOG);
    let tables = rows(
        &mut client,
        "SELECT format('%I.%I', n.nspname, c.relname)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p')
            AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
            AND n.nspname !~ '^pg_(toast_)?temp_'",
    );
    for table in tables {
        let query = format!(
            "SELECT count(*) || ' rows, ' || md5(COALESCE(string_agg(t::text, '|' ORDER BY t::text), ''))
               FROM {table} t"
        );
        let data = rows(&mut client, &query).remove(0);
        lines.push(format!("data {table}: {data}"));
    }
    lines.sort();
    lines
}

/// Fails with the first differing line when a deploy changed anything.
fn assert_unchanged(before: &[String], after: &[String], what: &str) {
    for (b, a) in before.iter().zip(after) {
        assert_eq!(b, a, "{what} changed the database");
    }
    assert_eq!(before.len(), after.len(), "{what} changed the database");
}

fn exists(db: &str, query: &str) -> bool {
    connect(db)
        .query_one(query, &[])
        .expect(query)
        .get::<_, bool>(0)
}

fn count(db: &str, query: &str) -> i64 {
    connect(db).query_one(query, &[]).expect(query).get(0)
}

// ---------------------------------------------------------------------------------------
// basic

fn basic(kind: Kind) {
    let label = format!("tpl_basic_{}", kind.flag());

    // First deploy, into a database the uploader creates; its name comes from pgmi.yaml.
    let db = TestDb::unnamed(&label);
    let project = instantiate("basic", &db.name);
    let first = deploy(kind, &project, &[], &[]);
    assert_ok(&first, "first deploy");
    let err = &first.stderr;
    assert!(err.contains(&format!("Session: {}", kind.flag())), "{err}");
    assert!(
        err.contains(&format!("Deploying {} 0.1.0 (env: development)", db.name)),
        "project.json was not read:\n{err}"
    );
    assert!(err.contains("3 new migration(s) applied"), "{err}");
    assert!(err.contains("Tests: 3 passed, 0 failed (3 run)"), "{err}");
    assert_eq!(
        count(&db.name, "SELECT count(*) FROM deploy.applied_migration"),
        3
    );
    assert_eq!(
        count(&db.name, "SELECT count(*) FROM app.customer"),
        2,
        "demo data"
    );

    // Second deploy: nothing applied, nothing changed.
    let before = snapshot(&db.name);
    let second = deploy(kind, &project, &[], &[]);
    assert_ok(&second, "second deploy");
    assert!(
        second.stderr.contains("0 new migration(s) applied"),
        "{}",
        second.stderr
    );
    assert!(
        second.stderr.contains("Tests: 3 passed, 0 failed (3 run)"),
        "{}",
        second.stderr
    );
    assert_unchanged(&before, &snapshot(&db.name), "the second deploy");

    // An applied migration that was edited stops the deploy, naming the file.
    let edited = instantiate("basic", &db.name).file(
        "migrations/001_customer.sql",
        std::fs::read_to_string(project.path().join("migrations/001_customer.sql")).unwrap()
            + "\nCOMMENT ON TABLE app.customer IS 'edited';\n",
    );
    let run = deploy(kind, &edited, &["--json"], &[]);
    assert_eq!(run.code, 13, "{}", run.stderr);
    let json = run.json();
    assert_eq!(
        json["failedFile"], "./migrations/001_customer.sql",
        "{json}"
    );
    assert!(
        json["error"]
            .as_str()
            .unwrap_or_default()
            .contains("changed after it was applied"),
        "{json}"
    );
    assert_unchanged(&before, &snapshot(&db.name), "the refused deploy");

    // A migration with an error: the deploy stops, naming the file, line and column
    // (pg_temp.pgmi_execute), and nothing of it is left.
    let bad = instantiate("basic", &db.name).file(
        "migrations/004_bad.sql",
        "ALTER TABLE app.customer ADD COLUMN phone text;\nSELEC 1;\n",
    );
    let run = deploy(kind, &bad, &["--json"], &[]);
    assert_ne!(run.code, 0, "{}", run.stderr);
    let json = run.json();
    assert_eq!(json["failedFile"], "./migrations/004_bad.sql", "{json}");
    assert!(
        json["error"]
            .as_str()
            .unwrap_or_default()
            .contains("Failed in ./migrations/004_bad.sql:2:1: syntax error at or near \"SELEC\""),
        "{json}"
    );
    assert_unchanged(&before, &snapshot(&db.name), "the failed migration");

    // env=production: the schema, no demo data.
    let prod = TestDb::unnamed(&label);
    let run = deploy(
        kind,
        &instantiate("basic", &prod.name),
        &["--param", "env=production"],
        &[],
    );
    assert_ok(&run, "production deploy");
    assert!(run.stderr.contains("demo data skipped"), "{}", run.stderr);
    assert_eq!(count(&prod.name, "SELECT count(*) FROM app.customer"), 0);

    // A failing test: exit 13, nothing of the template is left.
    let broken_db = TestDb::unnamed(&label);
    let broken =
        instantiate("basic", &broken_db.name).file("__test__/test_broken.sql", BROKEN_TEST);
    let run = deploy(kind, &broken, &[], &[]);
    assert_eq!(run.code, 13, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("FAILED ./__test__/test_broken.sql: broken on purpose"),
        "{}",
        run.stderr
    );
    assert!(
        exists(
            &broken_db.name,
            "SELECT to_regnamespace('app') IS NULL AND to_regnamespace('deploy') IS NULL
                AND to_regclass('app.customer') IS NULL"
        ),
        "the failed deploy left objects behind"
    );
}

// ---------------------------------------------------------------------------------------
// advanced

const DEPLOYER_PASSWORD: &str = "template-deployer-pw";
static DEPLOYERS: AtomicUsize = AtomicUsize::new(0);

/// A role with only LOGIN, CREATEROLE and CREATEDB, reached over TCP with a password, and
/// the databases it deploys. On drop (also when the test fails): the databases, then every
/// role named after them (the template's), then the deployer itself.
struct Deployer {
    name: String,
    dbs: Vec<TestDb>,
}

impl Deployer {
    fn create() -> Deployer {
        let name = format!(
            "pgmi_tpl_deployer_{}_{}",
            std::process::id(),
            DEPLOYERS.fetch_add(1, Ordering::SeqCst)
        );
        connect("postgres")
            .batch_execute(&format!(
                "CREATE ROLE {name} LOGIN PASSWORD '{DEPLOYER_PASSWORD}'
                     NOSUPERUSER CREATEROLE CREATEDB NOREPLICATION NOBYPASSRLS"
            ))
            .expect("create the deploying role");
        Deployer {
            name,
            dbs: Vec::new(),
        }
    }

    fn env(&self) -> [(&str, &str); 3] {
        [
            ("PGHOST", "127.0.0.1"),
            ("PGUSER", self.name.as_str()),
            ("PGPASSWORD", DEPLOYER_PASSWORD),
        ]
    }

    /// The name of a new database, dropped with this deployer.
    fn database(&mut self, label: &str) -> String {
        let db = TestDb::unnamed(label);
        let name = db.name.clone();
        self.dbs.push(db);
        name
    }

    fn deploy(&self, kind: Kind, project: &Project, extra: &[&str]) -> Run {
        deploy(kind, project, extra, &self.env())
    }
}

impl Drop for Deployer {
    fn drop(&mut self) {
        let names: Vec<String> = self.dbs.iter().map(|d| d.name.clone()).collect();
        self.dbs.clear(); // drops the databases first: their grants would keep the roles
        let Ok(mut admin) = pgmi_tests::config("postgres").connect(postgres::NoTls) else {
            return;
        };
        for db in names {
            for suffix in ["reader", "writer", "owner"] {
                let _ = admin.batch_execute(&format!("DROP ROLE IF EXISTS {db}_{suffix}"));
            }
        }
        let _ = admin.batch_execute(&format!("DROP ROLE IF EXISTS {}", self.name));
    }
}

/// How many roles are named `<db>_…` (the template's roles for database `db`).
fn template_roles(db: &str) -> i64 {
    let prefix = format!("{db}_");
    connect("postgres")
        .query_one(
            "SELECT count(*) FROM pg_roles WHERE starts_with(rolname, $1)",
            &[&prefix],
        )
        .expect("count roles")
        .get(0)
}

fn advanced(kind: Kind) {
    let label = format!("tpl_adv_{}", kind.flag());
    let mut deployer = Deployer::create();

    // The raw template and the instantiated copy both pass `metadata validate`.
    let db = deployer.database(&label);
    let project = instantiate("advanced", &db);
    for dir in [template_dir("advanced"), project.path().to_path_buf()] {
        let run = pgmi_upload(&["metadata", "validate", dir.to_str().unwrap()], &[]);
        assert_eq!(
            run.code,
            0,
            "metadata validate {}:\n{}{}",
            dir.display(),
            run.stdout,
            run.stderr
        );
    }

    // First deploy: the deployer creates the database (and, for the extension kind, installs
    // the trusted extension as the database's owner).
    let first = deployer.deploy(kind, &project, &[]);
    assert_ok(&first, "first deploy");
    let err = &first.stderr;
    assert!(err.contains(&format!("Session: {}", kind.flag())), "{err}");
    assert!(err.contains(&format!("created role {db}_owner")), "{err}");
    assert!(
        err.contains("8 plan step(s) run, 0 already applied"),
        "{err}"
    );
    assert!(err.contains("Tests: 4 passed, 0 failed (4 run)"), "{err}");
    assert_eq!(template_roles(&db), 3);
    assert!(exists(
        &db,
        &format!(
            "SELECT NOT r.rolcanlogin AND NOT r.rolsuper
                    AND (SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'app')
                        = r.rolname
               FROM pg_roles r WHERE r.rolname = '{db}_owner'"
        )
    ));
    assert!(exists(
        &db,
        "SELECT indisvalid FROM pg_index
          WHERE indexrelid = to_regclass('app.customer_order_placed_at_idx')"
    ));
    assert_eq!(count(&db, "SELECT count(*) FROM internal.deploy_ledger"), 7);

    // Second deploy: the idempotent files run again, nothing changes.
    let before = snapshot(&db);
    let second = deployer.deploy(kind, &project, &[]);
    assert_ok(&second, "second deploy");
    assert!(
        second
            .stderr
            .contains("6 plan step(s) run, 2 already applied"),
        "{}",
        second.stderr
    );
    assert!(
        second.stderr.contains("Tests: 4 passed, 0 failed (4 run)"),
        "{}",
        second.stderr
    );
    assert!(!second.stderr.contains("created role"), "{}", second.stderr);
    assert_unchanged(&before, &snapshot(&db), "the second deploy");

    // A grant made by hand is undone by the next deploy (the grants converge), and an
    // applied one-time file that was edited gives a warning and is not run again: the
    // database ends as it was.
    connect(&db)
        .batch_execute(&format!(
            "GRANT SELECT ON app.customer TO {db}_reader; GRANT USAGE ON SCHEMA internal TO PUBLIC"
        ))
        .expect("grant by hand");
    let path = "app/tables/002_customer_order.sql";
    let edited = instantiate("advanced", &db).file(
        path,
        std::fs::read_to_string(project.path().join(path)).unwrap()
            + "\nCREATE INDEX customer_order_amount_idx ON app.customer_order (amount);\n",
    );
    let run = deployer.deploy(kind, &edited, &[]);
    assert_ok(&run, "deploy of an edited one-time file");
    assert!(
        run.stderr.contains(&format!(
            "./{path} changed after it was applied; it is not run again"
        )),
        "{}",
        run.stderr
    );
    assert_unchanged(
        &before,
        &snapshot(&db),
        "the deploy of an edited one-time file",
    );

    // The tail: an INVALID leftover of a failed CREATE INDEX CONCURRENTLY (here a unique
    // index over duplicates) is dropped and the index built again.
    connect(&db)
        .batch_execute(
            "DROP INDEX app.customer_order_placed_at_idx;
             INSERT INTO app.customer (email, name) VALUES ('tail@example.test', 'Tail');
             INSERT INTO app.customer_order (customer_id, amount, placed_at)
             SELECT id, 1, '2020-01-01' FROM app.customer, generate_series(1, 2);",
        )
        .expect("prepare duplicates");
    let failed = connect(&db).batch_execute(
        "CREATE UNIQUE INDEX CONCURRENTLY customer_order_placed_at_idx
             ON app.customer_order (placed_at)",
    );
    assert!(
        failed.is_err(),
        "the unique index should fail on duplicates"
    );
    assert!(!exists(
        &db,
        "SELECT indisvalid FROM pg_index
          WHERE indexrelid = to_regclass('app.customer_order_placed_at_idx')"
    ));
    let run = deployer.deploy(kind, &project, &[]);
    assert_ok(&run, "deploy over an invalid index");
    assert!(
        run.stderr.contains("dropping the invalid index"),
        "{}",
        run.stderr
    );
    assert!(exists(
        &db,
        "SELECT indisvalid AND NOT indisunique FROM pg_index
          WHERE indexrelid = to_regclass('app.customer_order_placed_at_idx')"
    ));

    // A failing test in a new database: exit 13, no schema, no role.
    let broken_db = deployer.database(&label);
    let broken =
        instantiate("advanced", &broken_db).file("app/__test__/test_broken.sql", BROKEN_TEST);
    let run = deployer.deploy(kind, &broken, &[]);
    assert_eq!(run.code, 13, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("FAILED ./app/__test__/test_broken.sql: broken on purpose"),
        "{}",
        run.stderr
    );
    assert!(
        exists(
            &broken_db,
            "SELECT to_regnamespace('app') IS NULL AND to_regnamespace('api') IS NULL
                AND to_regnamespace('internal') IS NULL"
        ),
        "the failed deploy left schemas behind"
    );
    assert_eq!(
        template_roles(&broken_db),
        0,
        "the failed deploy left roles behind"
    );
    // The first database's roles are its own.
    assert_eq!(template_roles(&db), 3);
}

both_kinds!(basic, advanced);
