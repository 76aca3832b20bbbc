//! The two session kinds side by side (README, "Managed PostgreSQL"): the portable session
//! with nothing but CONNECT and TEMPORARY,
//! how `--session auto|extension|portable` chooses, the original pgmi's `CALL pgmi_test(...)`
//! macro forms in both kinds, and a corpus of broken projects that must fail with the same
//! exit code and the same error in both kinds.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgmi_tests::{
    both_kinds, config, connect, deploy, deploy_as, deploy_ok_as, pgmi_upload, Kind, Project, Run,
    TestDb,
};

const PASSWORD: &str = "portable-test-pw";

static ROLES: AtomicUsize = AtomicUsize::new(0);

/// A LOGIN role that is not a superuser, reached over TCP with a password (the cluster's
/// pg_hba.conf has `host all all 127.0.0.1/32 scram-sha-256`; loader.rs does the same).
/// Dropped at the end, even when the test fails: the database it has privileges on is dropped
/// first, because those privileges would keep `DROP ROLE` from succeeding.
struct Role {
    name: String,
    db: String,
}

impl Role {
    fn create(db: &TestDb, label: &str) -> Role {
        let name = format!(
            "pgmi_r_{label}_{}_{}",
            std::process::id(),
            ROLES.fetch_add(1, Ordering::SeqCst)
        );
        connect("postgres")
            .batch_execute(&format!(
                "CREATE ROLE {name} LOGIN PASSWORD '{PASSWORD}' NOSUPERUSER NOCREATEDB NOCREATEROLE"
            ))
            .expect("create role");
        Role {
            name,
            db: db.name.clone(),
        }
    }

    fn env(&self) -> [(&str, &str); 3] {
        [
            ("PGHOST", "127.0.0.1"),
            ("PGUSER", self.name.as_str()),
            ("PGPASSWORD", PASSWORD),
        ]
    }

    /// `pgmi-upload deploy <project> -d <db> <extra>` as this role.
    fn deploy(&self, project: &Project, extra: &[&str]) -> Run {
        let path = project.path().to_str().expect("utf-8 temp path");
        let mut args = vec!["deploy", path, "-d", self.db.as_str()];
        args.extend_from_slice(extra);
        let run = pgmi_upload(&args, &self.env());
        assert!(
            !run.stderr.contains(PASSWORD),
            "password leaked:\n{}",
            run.stderr
        );
        run
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        // never panic here: a panic while unwinding another one aborts the test binary
        if let Ok(mut admin) = config("postgres").connect(postgres::NoTls) {
            let _ =
                admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db));
            let _ = admin.batch_execute(&format!("DROP ROLE IF EXISTS {}", self.name));
        }
    }
}

/// Every schema, relation, routine and type of the database outside the system schemas and
/// the temporary schemas, as `kind schema.name`.
fn objects(db: &TestDb) -> BTreeSet<String> {
    const QUERY: &str = "
        SELECT o.kind || ' ' || o.name FROM (
            SELECT 'schema' AS kind, n.nspname::text AS name, n.nspname::text AS nsp
              FROM pg_namespace n
            UNION ALL
            SELECT 'relation', n.nspname || '.' || c.relname, n.nspname
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            UNION ALL
            SELECT 'routine', n.nspname || '.' || p.proname
                   || '(' || pg_get_function_identity_arguments(p.oid) || ')', n.nspname
              FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            UNION ALL
            SELECT 'type', n.nspname || '.' || t.typname, n.nspname
              FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        ) o
        WHERE o.nsp NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
          AND o.nsp !~ '^pg_(toast_)?temp_'";
    db.client()
        .query(QUERY, &[])
        .expect("objects")
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

fn extensions(db: &TestDb) -> String {
    db.text("SELECT string_agg(extname, ',' ORDER BY extname) FROM pg_extension")
        .unwrap_or_default()
}

/// Objects in any temporary schema of the database. A backend drops its temporary objects
/// as it exits, which may be just after the client has gone: wait up to 10 s for zero.
fn temp_objects_after_disconnect(db: &TestDb) -> i64 {
    const QUERY: &str = "
        SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname ~ '^pg_(toast_)?temp_')
             + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                 WHERE n.nspname ~ '^pg_(toast_)?temp_')
             + (SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                 WHERE n.nspname ~ '^pg_(toast_)?temp_')";
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = db.count(QUERY);
        if n == 0 || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn relation_exists(db: &TestDb, relation: &str) -> bool {
    db.text(&format!("SELECT to_regclass('{relation}')::text"))
        .is_some()
}

/// The `Session: <kind> (<why>)` line of stderr.
fn session_line(run: &Run) -> &str {
    run.stderr
        .lines()
        .find(|l| l.starts_with("Session: "))
        .unwrap_or_else(|| panic!("no Session: line on stderr:\n{}", run.stderr))
}

/// A project whose deploy.sql creates `app.t` (in a schema the test created) and runs the
/// tests: one fixture and two tests that check what the fixture and the parameter did.
fn app_project() -> Project {
    Project::with_deploy(
        "CREATE TABLE app.t (id int);\n\
         INSERT INTO app.t SELECT 42 WHERE current_setting('pgmi.env') = 'least';\n\
         BEGIN;\n\
         CALL pgmi_test();\n\
         COMMIT;\n",
    )
    .file("migrations/001_noop.sql", "SELECT 1;\n")
    .file("__test__/_setup.sql", "INSERT INTO app.t VALUES (1);\n")
    .file(
        "__test__/test_fixture_applied.sql",
        "DO $$ BEGIN\n\
           IF (SELECT array_agg(id ORDER BY id) FROM app.t) IS DISTINCT FROM ARRAY[1, 42] THEN\n\
             RAISE EXCEPTION 'expected rows 1 and 42';\n\
           END IF;\n\
         END $$;\n",
    )
    .file(
        "__test__/test_parameter.sql",
        "DO $$ BEGIN\n\
           IF current_setting('pgmi.env') <> 'least' THEN RAISE EXCEPTION 'no parameter'; END IF;\n\
         END $$;\n",
    )
}

// A role with only CONNECT and TEMPORARY on the database (and CREATE on one schema, for
// its own table) deploys with the default `--session auto`: portable, because it may not
// create the extension. Afterwards the database holds exactly what deploy.sql created: no
// extension, no session object, nothing in public, no prepared transaction.
#[test]
fn least_privilege_role_deploys_with_a_portable_session() {
    let db = TestDb::empty("leastpriv");
    let role = Role::create(&db, "least");
    let (d, r) = (&db.name, &role.name);
    db.client()
        .batch_execute(&format!(
            "REVOKE ALL ON DATABASE {d} FROM PUBLIC;
             GRANT CONNECT, TEMPORARY ON DATABASE {d} TO {r};
             REVOKE ALL ON SCHEMA public FROM PUBLIC;
             CREATE SCHEMA app;
             GRANT USAGE, CREATE ON SCHEMA app TO {r};"
        ))
        .expect("grants");
    // The premise: this role can create nothing permanent but in app.
    let privileges = db.text(&format!(
        "SELECT concat_ws(',', r.rolsuper, has_database_privilege('{r}', '{d}', 'CREATE'),
                has_database_privilege('{r}', '{d}', 'TEMPORARY'),
                has_schema_privilege('{r}', 'public', 'CREATE'),
                has_schema_privilege('{r}', 'app', 'CREATE'))
           FROM pg_roles r WHERE r.rolname = '{r}'"
    ));
    assert_eq!(privileges.as_deref(), Some("f,f,t,f,t"));
    let before = objects(&db);

    let run = role.deploy(&app_project(), &["--json", "--param", "env=least"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let json = run.json();
    assert_eq!(json["session"], "portable", "{json}");
    assert_eq!(json["filesLoaded"], 4, "{json}");
    assert_eq!(json["testMacros"], 1, "{json}");
    assert_eq!(
        json["tests"],
        serde_json::json!({"run": 2, "passed": 2, "failed": 0}),
        "{json}"
    );
    assert_eq!(
        session_line(&run),
        format!(
            "Session: portable (the pgmi extension is not installed in \"{d}\" and role \"{r}\" may not create it)"
        )
    );
    assert!(
        !run.stderr.contains("Installing extension"),
        "{}",
        run.stderr
    );

    let after = objects(&db);
    let added: Vec<&String> = after.difference(&before).collect();
    let removed: Vec<&String> = before.difference(&after).collect();
    assert_eq!(
        added,
        ["relation app.t", "type app._t", "type app.t"],
        "the deploy created exactly app.t"
    );
    assert!(removed.is_empty(), "{removed:?}");
    assert_eq!(extensions(&db), "plpgsql", "no extension was installed");
    assert_eq!(
        db.text("SELECT string_agg(id::text, ',' ORDER BY id) FROM app.t")
            .as_deref(),
        Some("42"),
        "the fixture was rolled back, deploy.sql's own row committed"
    );
    assert_eq!(
        db.text(
            "SELECT tableowner::text FROM pg_tables WHERE schemaname = 'app' AND tablename = 't'"
        )
        .as_deref(),
        Some(r.as_str())
    );
    assert_eq!(
        temp_objects_after_disconnect(&db),
        0,
        "temporary objects left"
    );
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM pg_prepared_xacts WHERE database = '{d}'"
        )),
        0
    );
    // A new connection has no session (and no pgmi.* setting).
    let mut c = db.client();
    let row = c
        .query_one(
            "SELECT to_regclass('pg_temp._pgmi_source')::text, current_setting('pgmi.env', true)",
            &[],
        )
        .expect("fresh session");
    assert_eq!(row.get::<_, Option<String>>(0), None);
    assert_eq!(row.get::<_, Option<String>>(1), None);
}

// Without TEMPORARY no session can be built, whatever the kind: the load fails before
// deploy.sql ran (exit 1, as in the original pgmi), the hint names the grant, and
// nothing is created.
#[test]
fn role_without_temporary_gets_a_clear_failure() {
    let db = TestDb::new("notemp");
    let role = Role::create(&db, "notemp");
    let (d, r) = (&db.name, &role.name);
    db.client()
        .batch_execute(&format!(
            "REVOKE ALL ON DATABASE {d} FROM PUBLIC;
             GRANT CONNECT ON DATABASE {d} TO {r};
             REVOKE ALL ON SCHEMA public FROM PUBLIC;
             GRANT USAGE ON SCHEMA public TO {r};
             CREATE SCHEMA app;
             GRANT USAGE, CREATE ON SCHEMA app TO {r};"
        ))
        .expect("grants");
    assert_eq!(
        db.text(&format!(
            "SELECT has_database_privilege('{r}', '{d}', 'TEMPORARY')::text"
        ))
        .as_deref(),
        Some("false")
    );
    let before = objects(&db);
    let project = app_project();
    for kind in [Kind::Extension, Kind::Portable] {
        let run = role.deploy(
            &project,
            &["--json", "--session", kind.flag(), "--param", "env=least"],
        );
        assert_eq!(run.code, 1, "{}: {}", kind.flag(), run.stderr);
        let json = run.json();
        assert_eq!(json["exitCode"], 1);
        assert_eq!(json["session"], kind.flag(), "{json}");
        assert_eq!(json["sqlstate"], "42501", "{json}");
        let error = json["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("permission denied to create temporary tables"),
            "{}: {json}",
            kind.flag()
        );
        let hint = json["hint"].as_str().unwrap_or_default();
        assert_eq!(
            hint,
            format!(
                "the role needs the TEMPORARY privilege: GRANT TEMPORARY ON DATABASE \"{d}\" TO \"{r}\";"
            ),
            "{}: {json}",
            kind.flag()
        );
        assert!(
            run.stderr
                .contains("HINT: the role needs the TEMPORARY privilege"),
            "{}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("Executing deploy.sql"),
            "{}",
            run.stderr
        );
        assert_eq!(
            objects(&db),
            before,
            "{}: something was created",
            kind.flag()
        );
        assert!(!relation_exists(&db, "app.t"));
    }
}

// (a) The extension is installed: auto uses it.
#[test]
fn auto_uses_the_installed_extension() {
    let db = TestDb::new("autoinstalled");
    let run = deploy(
        &Project::with_deploy("CREATE TABLE made (id int);"),
        &db.name,
        &["--json"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["session"], "extension");
    assert_eq!(
        session_line(&run),
        "Session: extension (the pgmi extension is installed in schema \"public\")"
    );
    assert!(!run.stderr.contains("Installing extension"));
    assert!(relation_exists(&db, "made"));
}

// (b) A superuser on a database without the extension: auto installs it (the server has
// its files) and uses it.
#[test]
fn auto_installs_the_extension_for_a_superuser() {
    let db = TestDb::empty("autosuper");
    assert_eq!(extensions(&db), "plpgsql");
    let run = deploy(
        &Project::with_deploy("CREATE TABLE made (id int);"),
        &db.name,
        &["--json"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["session"], "extension");
    assert!(
        run.stderr.contains("Installing extension pgmi"),
        "{}",
        run.stderr
    );
    assert_eq!(
        session_line(&run),
        "Session: extension (installed the pgmi extension in schema \"public\")"
    );
    assert_eq!(extensions(&db), "pgmi,plpgsql");
    assert!(relation_exists(&db, "made"));
}

// A search_path that names no existing schema leaves CREATE EXTENSION nowhere to go
// (3F000): exit 10 with the ways out, nothing deployed.
#[test]
fn auto_install_without_a_schema_on_the_search_path_says_why() {
    let db = TestDb::empty("autonoschema");
    db.client()
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" SET search_path = no_such_schema",
            db.name
        ))
        .expect("set the search_path");
    let run = deploy(
        &Project::with_deploy("CREATE TABLE public.made (id int);"),
        &db.name,
        &[],
    );
    assert_eq!(run.code, 10, "{}", run.stderr);
    for needle in [
        "could not install the pgmi extension",
        "SQLSTATE 3F000",
        "names no schema that exists",
        "--session portable",
    ] {
        assert!(
            run.stderr.contains(needle),
            "{needle:?} not in:\n{}",
            run.stderr
        );
    }
    assert!(!relation_exists(&db, "public.made"));
    // The way out it names works.
    let run = deploy(
        &Project::with_deploy("CREATE TABLE public.made (id int);"),
        &db.name,
        &["--session", "portable"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(relation_exists(&db, "public.made"));
}

// (c) and (d): a role without CREATE on the database. `--session extension` stops before
// anything is touched (exit 10) and names the way out; auto goes portable and says why.
#[test]
fn role_without_create_gets_portable_or_a_hint() {
    let db = TestDb::empty("nocreate");
    let role = Role::create(&db, "nocreate");
    let (d, r) = (&db.name, &role.name);
    db.client()
        .batch_execute(&format!(
            "CREATE SCHEMA app; GRANT USAGE, CREATE ON SCHEMA app TO {r};"
        ))
        .expect("grants");
    assert_eq!(
        db.text(&format!(
            "SELECT has_database_privilege('{r}', '{d}', 'CREATE')::text"
        ))
        .as_deref(),
        Some("false")
    );
    let project = Project::with_deploy("CREATE TABLE app.made (id int);\n")
        .file("__test__/test_ok.sql", "SELECT 1;\n");
    let before = objects(&db);

    let refused = role.deploy(&project, &["--json", "--session", "extension"]);
    assert_eq!(refused.code, 10, "{}", refused.stderr);
    let json = refused.json();
    assert_eq!(json["exitCode"], 10);
    assert_eq!(
        json["error"],
        format!(
            "--session extension: the pgmi extension is not installed in \"{d}\" and role \"{r}\" may not create it"
        )
    );
    let hint = json["hint"].as_str().unwrap_or_default();
    assert!(hint.contains("--session portable"), "{json}");
    assert!(
        refused
            .stderr
            .contains("HINT: deploy with --session portable"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains("Executing deploy.sql"));
    assert_eq!(extensions(&db), "plpgsql", "no extension");
    assert!(!relation_exists(&db, "app.made"), "deploy.sql did not run");
    assert_eq!(objects(&db), before, "nothing was created");

    let run = role.deploy(&project, &["--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["session"], "portable");
    assert_eq!(
        session_line(&run),
        format!(
            "Session: portable (the pgmi extension is not installed in \"{d}\" and role \"{r}\" may not create it)"
        )
    );
    assert_eq!(extensions(&db), "plpgsql");
    assert!(relation_exists(&db, "app.made"));
}

// (e) `--session portable` wins over an installed extension, and the deploy works (tests
// included); the extension is left as it was.
#[test]
fn portable_flag_overrides_an_installed_extension() {
    let db = TestDb::new("forceportable");
    let project = Project::with_deploy(
        "CREATE TABLE made (id int);\nBEGIN;\nCALL pgmi_test();\nCOMMIT;\n",
    )
    .file("__test__/_setup.sql", "INSERT INTO made VALUES (1);\n")
    .file(
        "__test__/test_sees_fixture.sql",
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM made WHERE id = 1) THEN RAISE EXCEPTION 'no fixture'; END IF; END $$;\n",
    );
    let before = extensions(&db);
    let run = deploy_ok_as(Kind::Portable, &project, &db.name, &["--json"]);
    let json = run.json();
    assert_eq!(json["session"], "portable");
    assert_eq!(
        json["tests"],
        serde_json::json!({"run": 1, "passed": 1, "failed": 0})
    );
    assert_eq!(session_line(&run), "Session: portable (--session portable)");
    assert!(relation_exists(&db, "made"));
    assert_eq!(db.count("SELECT count(*) FROM made"), 0);
    assert_eq!(extensions(&db), before);
    assert_eq!(before, "pgmi,plpgsql");
}

/// The test files of the macro tests: one fixture, two tests.
fn macro_tests(project: Project) -> Project {
    project
        .file(
            "__test__/_setup.sql",
            "CREATE TEMP TABLE fixture_ran (x int);\n",
        )
        .file("__test__/test_a.sql", "SELECT * FROM fixture_ran;\n")
        .file("__test__/test_b.sql", "SELECT 1;\n")
}

/// The stderr lines the default callback and `pg_temp.cb` print.
fn test_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("[pgmi] ") || l.starts_with("cb "))
        .collect()
}

// The original pgmi's macro forms are rewritten into `CALL pg_temp.pgmi_test(...)`, so they
// work whatever the search_path (here it does not include the extension's schema), with a
// pattern and with a callback; forms in comments, in string literals and in dollar-quoted
// bodies are not macros (the DO block's qualified call runs as written).
fn macro_forms_work_in_both_kinds(kind: Kind) {
    let db = kind.db("macros");
    let project = macro_tests(Project::with_deploy(
        "CREATE SCHEMA other_schema;\n\
         SET search_path = other_schema;\n\
         CREATE FUNCTION pg_temp.cb(e pg_temp.pgmi_test_event) RETURNS void\n\
             LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE 'cb %', e.event; END $$;\n\
         -- CALL pgmi_test();\n\
         /* CALL pgmi_test('test_b'); */\n\
         SELECT 'CALL pgmi_test();' AS not_a_macro;\n\
         BEGIN;\n\
         CALL pgmi_test();\n\
         CALL pg_temp.pgmi_test('test_a');\n\
         CALL pgmi_test(, 'pg_temp.cb');\n\
         COMMIT;\n\
         DO $$ BEGIN CALL pg_temp.pgmi_test('test_b'); END $$;\n",
    ));
    let run = deploy_ok_as(kind, &project, &db.name, &["--json"]);
    let json = run.json();
    assert_eq!(json["session"], kind.flag());
    assert_eq!(json["testMacros"], 3, "{json}");
    assert_eq!(
        json["tests"],
        serde_json::json!({"run": 6, "passed": 6, "failed": 0}),
        "{json}"
    );
    assert_eq!(
        test_lines(&run.stderr),
        [
            // CALL pgmi_test();
            "[pgmi] Test suite started",
            "[pgmi] Fixture: ./__test__/_setup.sql",
            "[pgmi] Test: ./__test__/test_a.sql",
            "[pgmi] Test: ./__test__/test_b.sql",
            "[pgmi] Test suite completed (4 steps)",
            // CALL pg_temp.pgmi_test('test_a');
            "[pgmi] Test suite started",
            "[pgmi] Fixture: ./__test__/_setup.sql",
            "[pgmi] Test: ./__test__/test_a.sql",
            "[pgmi] Test suite completed (3 steps)",
            // CALL pgmi_test(, 'pg_temp.cb');
            "cb suite_start",
            "cb fixture_start",
            "cb fixture_end",
            "cb test_start",
            "cb test_end",
            "cb rollback",
            "cb test_start",
            "cb test_end",
            "cb rollback",
            "cb teardown_start",
            "cb teardown_end",
            "cb suite_end",
            // the DO block, in autocommit
            "[pgmi] Test suite started",
            "[pgmi] Fixture: ./__test__/_setup.sql",
            "[pgmi] Test: ./__test__/test_b.sql",
            "[pgmi] Test suite completed (3 steps)",
        ],
        "{}",
        run.stderr
    );
    assert_eq!(
        db.text("SELECT nspname::text FROM pg_namespace WHERE nspname = 'other_schema'")
            .as_deref(),
        Some("other_schema")
    );
}

// From a plain connection (no uploader, so no rewriting), after loading a session of
// either kind: `CALL pg_temp.pgmi_test(...)` works inside a DO block, with a pattern and a
// callback, and a failing test inside a DO block raises the same error in both kinds.
fn pgmi_test_runs_inside_a_do_block(kind: Kind) {
    let db = kind.db("doblock");
    let notices = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&notices);
    let mut cfg = config(&db.name);
    cfg.notice_callback(move |n| sink.lock().unwrap().push(n.message().to_string()));
    let mut c = cfg.connect(postgres::NoTls).expect("connect");
    kind.load(
        &mut c,
        &[
            ("deploy.sql", b"SELECT 1;\n"),
            (
                "__test__/_setup.sql",
                b"CREATE TEMP TABLE fixture_ran (x int);\n",
            ),
            ("__test__/test_a.sql", b"SELECT * FROM fixture_ran;\n"),
            ("__test__/test_b.sql", b"SELECT 1;\n"),
        ],
    );
    c.batch_execute(
        "CREATE FUNCTION pg_temp.cb(e pg_temp.pgmi_test_event) RETURNS void
             LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE 'cb % %', e.event, e.path; END $$;",
    )
    .expect("callback");
    c.batch_execute("DO $$ BEGIN CALL pg_temp.pgmi_test(); END $$;")
        .unwrap_or_else(|e| panic!("{}: DO block: {e:?}", kind.flag()));
    c.batch_execute("DO $$ BEGIN CALL pg_temp.pgmi_test('test_b', 'pg_temp.cb'); END $$;")
        .unwrap_or_else(|e| panic!("{}: DO block with callback: {e:?}", kind.flag()));
    assert_eq!(
        *notices.lock().unwrap(),
        [
            "[pgmi] Test suite started",
            "[pgmi] Fixture: ./__test__/_setup.sql",
            "[pgmi] Test: ./__test__/test_a.sql",
            "[pgmi] Test: ./__test__/test_b.sql",
            "[pgmi] Test suite completed (4 steps)",
            "cb suite_start <NULL>",
            "cb fixture_start ./__test__/_setup.sql",
            "cb fixture_end ./__test__/_setup.sql",
            "cb test_start ./__test__/test_b.sql",
            "cb test_end ./__test__/test_b.sql",
            "cb rollback ./__test__/test_b.sql",
            "cb teardown_start <NULL>",
            "cb teardown_end <NULL>",
            "cb suite_end <NULL>",
        ],
        "{}",
        kind.flag()
    );
    // Everything the tests did was rolled back; the session is still usable.
    assert_eq!(
        c.query_one("SELECT to_regclass('pg_temp.fixture_ran')::text", &[])
            .expect("regclass")
            .get::<_, Option<String>>(0),
        None
    );
    c.batch_execute("DO $$ BEGIN CALL pg_temp.pgmi_test('no_such_test'); END $$;")
        .map(|()| panic!("{}: an empty plan must fail", kind.flag()))
        .unwrap_or_else(|e| {
            let db_error = e.as_db_error().expect("a server error");
            assert_eq!(db_error.code().code(), "P0002", "{}", kind.flag());
            assert_eq!(
                db_error.message(),
                "pgmi: no tests matched the requested pattern"
            );
        });
}

/// One broken project and what both kinds must report for it.
struct Case {
    name: &'static str,
    project: fn() -> Project,
    extra: &'static [&'static str],
    exit: i32,
    /// A fragment of the `--json` `error`.
    error: &'static str,
    sqlstate: Option<&'static str>,
    failed_file: Option<&'static str>,
    line: Option<u64>,
}

const DUP_META: &str = "/* <pgmi-meta id=\"6f1c1f0e-6a39-4a55-9a65-2d1b8c4e0a11\" idempotent=\"true\"></pgmi-meta> */\nSELECT 1;\n";

fn corpus() -> Vec<Case> {
    vec![
        Case {
            name: "NUL byte in a SQL file",
            project: || {
                Project::with_deploy("CREATE TABLE made (id int);\n")
                    .file("migrations/001.sql", b"SELECT 1;\0\n")
            },
            extra: &[],
            exit: 10,
            error: "file ./migrations/001.sql contains a NUL byte",
            sqlstate: None,
            failed_file: None,
            line: None,
        },
        Case {
            name: "invalid UTF-8 in a SQL file",
            project: || {
                Project::with_deploy("CREATE TABLE made (id int);\n")
                    .file("migrations/001.sql", b"SELECT '\xff\xfe';\n")
            },
            extra: &[],
            exit: 10,
            error: "file ./migrations/001.sql is not valid UTF-8",
            sqlstate: None,
            failed_file: None,
            line: None,
        },
        Case {
            name: "bad <pgmi-meta> XML",
            project: || {
                Project::with_deploy("CREATE TABLE made (id int);\n").file(
                    "migrations/001.sql",
                    "/* <pgmi-meta id=\"6f1c1f0e-6a39-4a55-9a65-2d1b8c4e0a11\" idempotent=\"true\"><sortKeys></pgmi-meta> */\nSELECT 1;\n",
                )
            },
            extra: &[],
            exit: 10,
            error: "metadata error in ./migrations/001.sql (line 1)",
            sqlstate: None,
            failed_file: None,
            line: None,
        },
        Case {
            name: "duplicate metadata ids",
            project: || {
                Project::with_deploy("CREATE TABLE made (id int);\n")
                    .file("migrations/001.sql", DUP_META)
                    .file("migrations/002.sql", DUP_META)
            },
            extra: &[],
            exit: 10,
            error: "6f1c1f0e-6a39-4a55-9a65-2d1b8c4e0a11: ./migrations/001.sql, ./migrations/002.sql",
            sqlstate: None,
            failed_file: None,
            line: None,
        },
        Case {
            name: "unsupported dunder directory",
            project: || {
                Project::with_deploy("CREATE TABLE made (id int);\n")
                    .file("__migrations__/001.sql", "SELECT 1;\n")
            },
            extra: &[],
            exit: 10,
            error: "unsupported directory \"__migrations__\"",
            sqlstate: None,
            failed_file: None,
            line: None,
        },
        Case {
            name: "symlink",
            project: || {
                let project = Project::with_deploy("CREATE TABLE made (id int);\n")
                    .file("migrations/001.sql", "SELECT 1;\n");
                std::os::unix::fs::symlink("001.sql", project.path().join("migrations/002.sql"))
                    .expect("symlink");
                project
            },
            extra: &[],
            exit: 10,
            error: "refusing to read symlink ./migrations/002.sql",
            sqlstate: None,
            failed_file: None,
            line: None,
        },
        Case {
            name: "bad --param key",
            project: || Project::with_deploy("CREATE TABLE made (id int);\n"),
            extra: &["--param", "1bad=x"],
            exit: 10,
            error: "invalid parameter key '1bad'",
            sqlstate: None,
            failed_file: None,
            line: None,
        },
        Case {
            name: "missing deploy.sql",
            project: || Project::new().file("migrations/001.sql", "SELECT 1;\n"),
            extra: &[],
            exit: 14,
            error: "deploy.sql not found in ",
            sqlstate: None,
            failed_file: None,
            line: None,
        },
        Case {
            name: "syntax error in deploy.sql",
            project: || {
                Project::with_deploy("CREATE TABLE made (id int);\nSELECT 1;\nSELEC 2;\n")
            },
            extra: &[],
            exit: 13,
            error: "execution failed: ERROR: syntax error at or near \"SELEC\" (SQLSTATE 42601)",
            sqlstate: Some("42601"),
            failed_file: None,
            line: Some(3),
        },
        Case {
            name: "undefined table in deploy.sql, after the tests",
            project: || {
                Project::with_deploy(
                    "BEGIN;\nCREATE TABLE made (id int);\nCALL pgmi_test();\nINSERT INTO made\n  SELECT id FROM no_such_table;\nCOMMIT;\n",
                )
                .file("__test__/test_ok.sql", "SELECT 1;\n")
            },
            extra: &[],
            exit: 13,
            error: "execution failed: ERROR: relation \"no_such_table\" does not exist (SQLSTATE 42P01)",
            sqlstate: Some("42P01"),
            failed_file: None,
            line: Some(5),
        },
        Case {
            name: "runtime error in deploy.sql",
            project: || Project::with_deploy("CREATE TABLE made (id int);\nSELECT 1 / 0;\n"),
            extra: &[],
            exit: 13,
            error: "execution failed: ERROR: division by zero (SQLSTATE 22012)",
            sqlstate: Some("22012"),
            failed_file: None,
            line: None,
        },
        Case {
            name: "failing test",
            project: || {
                Project::with_deploy(
                    "BEGIN;\nCREATE TABLE made (id int);\nCALL pgmi_test();\nCOMMIT;\n",
                )
                .file("__test__/_setup.sql", "SELECT 1;\n")
                .file("__test__/test_a_ok.sql", "SELECT 1;\n")
                .file("__test__/test_b_bad.sql", "SELECT 1;\nSELECT 1 / 0;\n")
            },
            extra: &[],
            exit: 13,
            error: "execution failed: ERROR: Failed in ./__test__/test_b_bad.sql: division by zero (SQLSTATE 22012)",
            sqlstate: Some("22012"),
            failed_file: Some("./__test__/test_b_bad.sql"),
            line: None,
        },
        Case {
            name: "failing test with a custom SQLSTATE and DETAIL",
            project: || {
                Project::with_deploy(
                    "BEGIN;\nCREATE TABLE made (id int);\nCALL pgmi_test();\nCOMMIT;\n",
                )
                .file(
                    "__test__/test_custom.sql",
                    "DO $$ BEGIN RAISE EXCEPTION 'custom failure' USING ERRCODE = 'PG123', DETAIL = 'the detail'; END $$;\n",
                )
            },
            extra: &[],
            exit: 13,
            error: "execution failed: ERROR: Failed in ./__test__/test_custom.sql: custom failure (SQLSTATE PG123)",
            sqlstate: Some("PG123"),
            failed_file: Some("./__test__/test_custom.sql"),
            line: None,
        },
        Case {
            name: "syntax error in a test",
            project: || {
                Project::with_deploy(
                    "BEGIN;\nCREATE TABLE made (id int);\nCALL pgmi_test();\nCOMMIT;\n",
                )
                .file("__test__/test_syntax.sql", "SELECT 1;\nSELEC 2;\n")
            },
            extra: &[],
            exit: 13,
            error: "execution failed: ERROR: Failed in ./__test__/test_syntax.sql: syntax error at or near \"SELEC\" (SQLSTATE 42601)",
            sqlstate: Some("42601"),
            failed_file: Some("./__test__/test_syntax.sql"),
            line: None,
        },
        Case {
            name: "failing fixture",
            project: || {
                Project::with_deploy(
                    "BEGIN;\nCREATE TABLE made (id int);\nCALL pgmi_test();\nCOMMIT;\n",
                )
                .file("__test__/_setup.sql", "INSERT INTO no_such_table VALUES (1);\n")
                .file("__test__/test_ok.sql", "SELECT 1;\n")
            },
            extra: &[],
            exit: 13,
            error: "execution failed: ERROR: Failed in ./__test__/_setup.sql: relation \"no_such_table\" does not exist (SQLSTATE 42P01)",
            sqlstate: Some("42P01"),
            failed_file: Some("./__test__/_setup.sql"),
            line: None,
        },
        Case {
            name: "failure in the psql tail, parameter missing",
            project: || {
                Project::with_deploy(
                    "BEGIN;\nSELECT current_setting('pgmi.env');\nCOMMIT;\nSELECT 2;\nSELECT current_setting('pgmi.nope');\n",
                )
            },
            extra: &["--param", "env=x"],
            exit: 13,
            error: "execution failed: ERROR: unrecognized configuration parameter \"pgmi.nope\" (SQLSTATE 42704)",
            sqlstate: Some("42704"),
            failed_file: None,
            line: None,
        },
        Case {
            name: "no tests discovered",
            project: || {
                Project::with_deploy(
                    "BEGIN;\nCREATE TABLE made (id int);\nCALL pgmi_test();\nCOMMIT;\n",
                )
            },
            extra: &[],
            exit: 13,
            error: "execution failed: ERROR: pgmi: no tests were discovered (SQLSTATE P0002)",
            sqlstate: Some("P0002"),
            failed_file: None,
            line: None,
        },
        Case {
            name: "invalid test pattern",
            project: || {
                Project::with_deploy(
                    "BEGIN;\nCREATE TABLE made (id int);\nCALL pgmi_test('./api/**');\nCOMMIT;\n",
                )
                .file("__test__/test_ok.sql", "SELECT 1;\n")
            },
            extra: &[],
            exit: 13,
            error: "execution failed: ERROR: Invalid regex pattern: ./api/** (SQLSTATE P0001)",
            sqlstate: Some("P0001"),
            failed_file: None,
            line: None,
        },
        Case {
            name: "invalid callback name",
            project: || {
                Project::with_deploy(
                    "BEGIN;\nCREATE TABLE made (id int);\nCALL pgmi_test(NULL, 'bad-name');\nCOMMIT;\n",
                )
                .file("__test__/test_ok.sql", "SELECT 1;\n")
            },
            extra: &[],
            exit: 13,
            error: "execution failed: ERROR: Invalid callback name: bad-name. Expected [schema.]function identifier. (SQLSTATE 22023)",
            sqlstate: Some("22023"),
            failed_file: None,
            line: None,
        },
    ]
}

/// What a failed deploy reports, with the database name replaced by `<db>`: the fields
/// that must not depend on the session kind (everything but `session`, `where`, timings).
fn outcome(run: &Run, db: &str) -> serde_json::Value {
    let json = run.json();
    let mut out = serde_json::Map::new();
    for key in [
        "status",
        "exitCode",
        "error",
        "sqlstate",
        "detail",
        "hint",
        "failedFile",
        "line",
        "column",
        "sourceLine",
        "scriptExpanded",
        "executionMode",
        "executionUnits",
        "unitsCommitted",
        "testMacros",
        "filesLoaded",
        "tests",
    ] {
        if let Some(value) = json.get(key) {
            let value = match value {
                serde_json::Value::String(s) => serde_json::Value::String(s.replace(db, "<db>")),
                other => other.clone(),
            };
            out.insert(key.to_string(), value);
        }
    }
    serde_json::Value::Object(out)
}

/// Runs `case` against `db` with `kind` and checks it against the table: the outcome, and
/// every way it differs from the table (all of them, so one run shows the whole picture).
fn run_case(
    kind: Kind,
    db: &TestDb,
    project: &Project,
    case: &Case,
) -> (serde_json::Value, Vec<String>) {
    let before = objects(db);
    let mut extra = vec!["--json"];
    extra.extend_from_slice(case.extra);
    let run = deploy_as(kind, project, &db.name, &extra);
    let what = format!("{} / {}", case.name, kind.flag());
    let mut wrong = Vec::new();
    let mut check = |ok: bool, text: String| {
        if !ok {
            wrong.push(format!("{what}: {text}"));
        }
    };
    check(
        run.code == case.exit,
        format!("exit {} (expected {})\n{}", run.code, case.exit, run.stderr),
    );
    let json = run.json();
    check(
        json["exitCode"] == case.exit && json["status"] == "failed",
        format!("exitCode/status in {json}"),
    );
    let error = json["error"].as_str().unwrap_or_default();
    check(
        error.contains(case.error),
        format!("error {error:?} does not contain {:?}", case.error),
    );
    let sqlstate = json.get("sqlstate").and_then(|v| v.as_str());
    check(
        sqlstate == case.sqlstate,
        format!("sqlstate {sqlstate:?} (expected {:?})", case.sqlstate),
    );
    let failed_file = json.get("failedFile").and_then(|v| v.as_str());
    check(
        failed_file == case.failed_file,
        format!(
            "failedFile {failed_file:?} (expected {:?})",
            case.failed_file
        ),
    );
    let line = json.get("line").and_then(serde_json::Value::as_u64);
    check(
        line == case.line,
        format!("line {line:?} (expected {:?})", case.line),
    );
    if case.exit == 13 {
        // The session was built: the kind is reported.
        check(
            json["session"] == kind.flag(),
            format!("session {}", json["session"]),
        );
    }
    // Nothing is left behind: no table from deploy.sql, no session object, no extension
    // change.
    let after = objects(db);
    check(
        after == before,
        format!(
            "objects left: {:?}, objects gone: {:?}",
            after.difference(&before).collect::<Vec<_>>(),
            before.difference(&after).collect::<Vec<_>>()
        ),
    );
    check(
        !relation_exists(db, "made"),
        "deploy.sql's table survived".into(),
    );
    let temp = temp_objects_after_disconnect(db);
    check(temp == 0, format!("{temp} temporary objects left"));
    (outcome(&run, &db.name), wrong)
}

// Every broken project of the corpus fails with the exit code, error, SQLSTATE, failed
// file and line of the table, in each kind, and leaves nothing in the database.
fn broken_projects_fail_as_expected(kind: Kind) {
    let db = kind.db("corpus");
    let ext = extensions(&db);
    let mut wrong = Vec::new();
    for case in corpus() {
        let project = (case.project)();
        wrong.extend(run_case(kind, &db, &project, &case).1);
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(extensions(&db), ext);
}

both_kinds!(
    macro_forms_work_in_both_kinds,
    pgmi_test_runs_inside_a_do_block,
    broken_projects_fail_as_expected,
);

// The same broken projects, run with both kinds side by side: the reports agree field by
// field (exitCode, error, sqlstate, detail, hint, failedFile, line, column, tests, ...),
// whether or not they match the table.
#[test]
fn both_kinds_report_broken_projects_identically() {
    let ext_db = Kind::Extension.db("agree_ext");
    let port_db = Kind::Portable.db("agree_port");
    let mut differences = Vec::new();
    for case in corpus() {
        let project = (case.project)();
        let (a, _) = run_case(Kind::Extension, &ext_db, &project, &case);
        let (b, _) = run_case(Kind::Portable, &port_db, &project, &case);
        if a != b {
            differences.push(format!(
                "{}:\n  extension: {a}\n  portable:  {b}",
                case.name
            ));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}
