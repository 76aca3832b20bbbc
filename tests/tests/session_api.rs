//! The session API (docs/session-api.md), checked on real sessions of both kinds
//! (README, "Managed PostgreSQL"): files loaded from an ordinary connection
//! (`pgmi_load()`, the psql path, or the portable session's client-side load), and projects
//! deployed with the real `pgmi-upload` binary.

use pgmi_tests::{both_kinds, deploy_ok_as, Client, Kind, Project, TestDb};

/// A fresh database for `kind` created with `options` (encoding, locale...).
fn db_with(kind: Kind, label: &str, options: &str) -> TestDb {
    let db = TestDb::unnamed(label);
    pgmi_tests::connect("postgres")
        .batch_execute(&format!("CREATE DATABASE {} {options}", db.name))
        .expect("create database");
    if kind == Kind::Extension {
        db.client()
            .batch_execute("CREATE EXTENSION pgmi")
            .expect("extension");
    }
    db
}

fn strings(client: &mut Client, query: &str) -> Vec<String> {
    client
        .query(query, &[])
        .expect(query)
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

/// The `_`-prefixed (internal) routines and types a kind's own SQL file creates in pg_temp:
/// `sql/session_extension.sql` or `sql/session_portable.sql`, which each kind runs right
/// after `sql/session.sql` (which creates none).
fn internal_objects(kind: Kind) -> (Vec<String>, Vec<String>) {
    let sql = match kind {
        Kind::Extension => include_str!("../../sql/session_extension.sql"),
        Kind::Portable => include_str!("../../sql/session_portable.sql"),
    };
    let (mut routines, mut types) = (Vec::new(), Vec::new());
    for line in sql.lines() {
        for (prefix, suffix) in [
            ("CREATE FUNCTION pg_temp.", " f"),
            ("CREATE PROCEDURE pg_temp.", " p"),
            ("CREATE TYPE pg_temp.", ""),
        ] {
            if let Some(rest) = line.strip_prefix(prefix).filter(|r| r.starts_with('_')) {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if suffix.is_empty() {
                    types.push(name);
                } else {
                    routines.push(format!("{name}{suffix}"));
                }
            }
        }
    }
    routines.sort();
    types.sort();
    (routines, types)
}

// Exactly the session API's objects in pg_temp, and nothing else: the nine functions of the
// original pgmi's session plus pgmi_test (a procedure), pgmi_test_results and pgmi_execute
// in both kinds, and besides them only the internal _pgmi_test_* and _pgmi_execute_*
// helpers of the kind's own SQL file (the portable session's PL/pgSQL test runner; the
// extension's capture of a test's SQLSTATE; pgmi_execute's statements and positions), and
// the portable session's table of where each file's statements start.
fn zero_file_session_has_exactly_the_session_api_objects(kind: Kind) {
    let db = kind.db("objects");
    let mut c = db.client();
    kind.load(&mut c, &[]);
    let routines = strings(
        &mut c,
        "SELECT proname::text || ' ' || prokind::text FROM pg_proc \
          WHERE pronamespace = pg_my_temp_schema() AND proname NOT LIKE '\\_%' ORDER BY proname::text COLLATE \"C\"",
    );
    assert_eq!(
        routines,
        [
            "pgmi_execute f",
            "pgmi_has_tests f",
            "pgmi_is_sql_file f",
            "pgmi_persist_test_plan f",
            "pgmi_register_file f",
            "pgmi_run_test_source f",
            "pgmi_test p",
            "pgmi_test_callback f",
            "pgmi_test_generate f",
            "pgmi_test_plan f",
            "pgmi_test_results f",
            "pgmi_validate_pattern f"
        ]
    );
    let (expected_routines, expected_types) = internal_objects(kind);
    assert!(
        expected_routines
            .iter()
            .chain(&expected_types)
            .all(|name| name.starts_with("_pgmi_test_") || name.starts_with("_pgmi_execute_")),
        "internal helpers are named _pgmi_test_* or _pgmi_execute_*: {expected_routines:?} {expected_types:?}"
    );
    // pgmi_execute's two helpers, in both kinds
    for helper in ["_pgmi_execute_position f", "_pgmi_execute_statements f"] {
        assert!(
            expected_routines.iter().any(|r| r == helper),
            "{helper}: {expected_routines:?}"
        );
    }
    if kind == Kind::Portable {
        assert!(!expected_routines.is_empty(), "the portable test runner");
    }
    let internal = strings(
        &mut c,
        "SELECT proname::text || ' ' || prokind::text FROM pg_proc \
          WHERE pronamespace = pg_my_temp_schema() AND proname LIKE '\\_%' ORDER BY proname::text COLLATE \"C\"",
    );
    assert_eq!(
        internal, expected_routines,
        "exactly the internal routines of this kind's SQL file (for the extension: is the \
         installed extension built from this tree?)"
    );
    let views = strings(
        &mut c,
        "SELECT relname::text FROM pg_class WHERE relnamespace = pg_my_temp_schema() AND relkind = 'v' ORDER BY 1",
    );
    assert_eq!(
        views,
        [
            "pgmi_parameter_view",
            "pgmi_plan_view",
            "pgmi_source_metadata_view",
            "pgmi_source_view",
            "pgmi_test_directory_view",
            "pgmi_test_source_view"
        ]
    );
    let tables = strings(
        &mut c,
        "SELECT relname::text FROM pg_class WHERE relnamespace = pg_my_temp_schema() AND relkind = 'r' ORDER BY 1",
    );
    let mut expected_tables = vec![
        "_pgmi_parameter",
        "_pgmi_source",
        "_pgmi_source_metadata",
        "_pgmi_test_directory",
        "_pgmi_test_source",
    ];
    if kind == Kind::Portable {
        // where each file's statements start, for pgmi_execute (the extension computes it)
        expected_tables.insert(3, "_pgmi_source_statement");
    }
    assert_eq!(tables, expected_tables);
    let types = strings(
        &mut c,
        "SELECT typname::text FROM pg_type WHERE typnamespace = pg_my_temp_schema() AND typtype = 'c' \
            AND typrelid IN (SELECT oid FROM pg_class WHERE relkind = 'c') ORDER BY typname::text COLLATE \"C\"",
    );
    let mut expected: Vec<String> = std::iter::once("pgmi_test_event".to_string())
        .chain(expected_types)
        .collect();
    expected.sort();
    assert_eq!(types, expected);
}

fn columns(c: &mut Client, relation: &str) -> Vec<String> {
    c.query(
        "SELECT attname || ' ' || format_type(atttypid, atttypmod) FROM pg_attribute \
          WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        &[&relation],
    )
    .expect("columns")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

// View columns and the event type, in order, with types.
fn view_columns_and_event_type_match_the_session_api(kind: Kind) {
    let db = kind.db("columns");
    let mut c = db.client();
    kind.load(&mut c, &[]);
    assert_eq!(
        columns(&mut c, "pg_temp.pgmi_plan_view"),
        [
            "path text",
            "content text",
            "checksum text",
            "generic_id uuid",
            "id uuid",
            "idempotent boolean",
            "description text",
            "sort_key text",
            "execution_order bigint"
        ]
    );
    assert_eq!(
        columns(&mut c, "pg_temp.pgmi_source_view"),
        [
            "path text",
            "name text",
            "directory text",
            "extension text",
            "depth integer",
            "content text",
            "size_bytes bigint",
            "checksum text",
            "pgmi_checksum text",
            "path_parts text[]",
            "is_sql_file boolean",
            "is_test_file boolean",
            "parent_folder_name text"
        ]
    );
    assert_eq!(
        columns(&mut c, "pg_temp.pgmi_parameter_view"),
        [
            "key text",
            "value text",
            "type text",
            "required boolean",
            "default_value text",
            "description text"
        ]
    );
    assert_eq!(
        columns(&mut c, "pg_temp.pgmi_test_source_view"),
        [
            "path text",
            "directory text",
            "filename text",
            "content text",
            "is_fixture boolean"
        ]
    );
    assert_eq!(
        columns(&mut c, "pg_temp.pgmi_test_directory_view"),
        ["path text", "parent_path text", "depth integer"]
    );
    assert_eq!(
        columns(&mut c, "pg_temp.pgmi_source_metadata_view"),
        [
            "path text",
            "id uuid",
            "idempotent boolean",
            "sort_keys text[]",
            "description text"
        ]
    );
    assert_eq!(
        columns(&mut c, "pg_temp.pgmi_test_event"),
        [
            "event text",
            "path text",
            "directory text",
            "depth integer",
            "ordinal integer",
            "context jsonb"
        ]
    );
}

// `pgmi_register_file` normalises paths and derives their columns like the original pgmi.
fn register_file_normalises_and_derives(kind: Kind) {
    let db = kind.db("register");
    let mut c = db.client();
    kind.load(&mut c, &[]);
    let sum = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let row = c
        .query_one(
            "SELECT path, directory, depth, path_parts::text, parent_folder_name, is_sql_file \
               FROM pg_temp.pgmi_register_file('migrations\\002.sql', '', $1, $1)",
            &[&sum],
        )
        .expect("register");
    assert_eq!(row.get::<_, String>(0), "./migrations/002.sql");
    assert_eq!(row.get::<_, String>(1), "./migrations/");
    assert_eq!(row.get::<_, i32>(2), 1);
    assert_eq!(row.get::<_, String>(3), "{.,migrations,002.sql}");
    assert_eq!(
        row.get::<_, Option<String>>(4).as_deref(),
        Some("migrations")
    );
    assert!(row.get::<_, bool>(5));

    let row = c
        .query_one("SELECT extension, is_sql_file FROM pg_temp.pgmi_register_file('./notes.txt~', '', $1, $1)", &[&sum])
        .expect("register");
    assert_eq!(row.get::<_, String>(0), "");
    assert!(!row.get::<_, bool>(1));
    let row = c
        .query_one("SELECT extension, depth, parent_folder_name FROM pg_temp.pgmi_register_file('./a/b/c/d.tar.gz', '', $1, $1)", &[&sum])
        .expect("register");
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, i32>(1)),
        (".gz".to_string(), 3)
    );
    assert_eq!(row.get::<_, Option<String>>(2).as_deref(), Some("c"));
    let row = c
        .query_one("SELECT depth, parent_folder_name FROM pg_temp.pgmi_register_file('root.txt', '', $1, $1)", &[&sum])
        .expect("register");
    assert_eq!(row.get::<_, i32>(0), 0);
    assert_eq!(row.get::<_, Option<String>>(1), None);
    let size: i64 = c
        .query_one(
            "SELECT size_bytes FROM pg_temp.pgmi_register_file('./e.sql', 'SELECT ''é'';', $1, $1)",
            &[&sum],
        )
        .expect("register")
        .get(0);
    assert_eq!(size, 12, "size_bytes counts bytes, not characters");

    let err = c
        .query(
            "SELECT pg_temp.pgmi_register_file('./__test__/x.sql', '', $1, $1)",
            &[&sum],
        )
        .expect_err("test paths are rejected");
    let err = err.as_db_error().expect("db error");
    assert_eq!(err.code().code(), "23514");
    assert_eq!(err.constraint(), Some("chk_path_is_not_test"));
    let err = c
        .query(
            "SELECT pg_temp.pgmi_register_file('migrations/002.sql', '', $1, $1)",
            &[&sum],
        )
        .expect_err("duplicate path");
    assert_eq!(err.code().map(|s| s.code()), Some("23505"));
}

// `pgmi_is_sql_file`: the eight SQL extensions, ASCII case-insensitively, final extension only.
fn sql_extension_list(kind: Kind) {
    let db = kind.db("sqlext");
    let mut c = db.client();
    kind.load(&mut c, &[]);
    for (name, expected) in [
        ("x.sql", true),
        ("x.ddl", true),
        ("x.dml", true),
        ("x.dql", true),
        ("x.dcl", true),
        ("x.psql", true),
        ("x.pgsql", true),
        ("x.plpgsql", true),
        ("x.SQL", true),
        ("x.PlPgSql", true),
        ("x.sql.bak", false),
        ("x.sql~", false),
        ("x.sqlx", false),
        ("x.md", false),
        ("x.json", false),
        ("x", false),
    ] {
        let got: bool = c
            .query_one("SELECT pg_temp.pgmi_is_sql_file($1)", &[&name])
            .expect("is_sql_file")
            .get(0);
        assert_eq!(got, expected, "{name}");
    }
}

// The checksums computed by the session: the same hashes the original pgmi stores.
fn checksums_are_bit_exact(kind: Kind) {
    let db = kind.db("checksums");
    let mut c = db.client();
    kind.load(
        &mut c,
        &[
            ("a.sql", b"SELECT * FROM users;"),
            ("b.sql", b"SELECT * FROM USERS;"),
            ("empty.sql", b""),
            ("c.sql", b"-- header\nSELECT   1;  /* trailer */\n"),
            ("d.sql", b"SELECT 1;\r\n"),
            ("e.sql", b"SELECT \"Users\";"),
            ("f.sql", b"SELECT \"users\";"),
        ],
    );
    let get = |c: &mut Client, path: &str| -> (String, String) {
        let r = c
            .query_one(
                "SELECT checksum, pgmi_checksum FROM pgmi_source_view WHERE path = $1",
                &[&path],
            )
            .expect(path);
        (r.get(0), r.get(1))
    };
    let a = get(&mut c, "./a.sql");
    let b = get(&mut c, "./b.sql");
    assert_eq!(
        a.0,
        "d1ec24bdafb79996d598fd0707064fc6766042c1054c8ca379da5fc6a3a03e5a"
    );
    assert_eq!(
        a.1,
        "770ec17e2277e313a56c78ecab71d0ee460922cac72efddf9869ca4194276572"
    );
    assert_eq!(b.1, a.1);
    let e = get(&mut c, "./empty.sql");
    assert_eq!(
        e.0,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(e.1, e.0);
    let one = "354b7196c9ba5fb4b21cf615bb6ec4cd5c07503c34229feef033fc081a8c03f4";
    assert_eq!(get(&mut c, "./c.sql").1, one);
    assert_eq!(get(&mut c, "./d.sql").1, one);
    assert_ne!(get(&mut c, "./e.sql").1, get(&mut c, "./f.sql").1);
    // pgmi_plan_view.checksum is the normalised one
    let plan: String = c
        .query_one(
            "SELECT checksum FROM pgmi_plan_view WHERE path = './b.sql'",
            &[],
        )
        .expect("plan")
        .get(0);
    assert_eq!(plan, a.1);
}

fn meta(id: &str, keys: &[&str]) -> String {
    let keys: String = keys.iter().map(|k| format!("<key>{k}</key>")).collect();
    let keys = if keys.is_empty() {
        String::new()
    } else {
        format!("<sortKeys>{keys}</sortKeys>")
    };
    format!("/* <pgmi-meta id=\"{id}\" idempotent=\"true\">{keys}</pgmi-meta> */\nSELECT 1;\n")
}

// The plan view orders by bytes even on a linguistic collation, with one row per sort key.
fn plan_view_orders_by_bytes_and_expands_sort_keys(kind: Kind) {
    // An en-US database: its collation puts '-' and '_' and '.' in a different order
    // than bytes do, which is what the plan must not follow.
    let db = kind.linguistic_db("plan");
    let first = meta("00000000-0000-0000-0000-000000000001", &["~first"]);
    let last = meta("00000000-0000-0000-0000-000000000002", &["~~last"]);
    let multi = meta(
        "00000000-0000-0000-0000-000000000003",
        &["001/000", "zzz/999"],
    );
    let nokeys = meta("00000000-0000-0000-0000-000000000004", &[]);
    let mut c = db.client();
    kind.load(
        &mut c,
        &[
            ("first.sql", first.as_bytes()),
            ("last.sql", last.as_bytes()),
            ("multi.sql", multi.as_bytes()),
            ("nokeys.sql", nokeys.as_bytes()),
            ("fallback_a.sql", b"SELECT 1;"),
            ("fallback-b.sql", b"SELECT 1;"),
            ("migrations/002_data.sql", b"SELECT 1;"),
            ("setup/functions.sql", b"SELECT 1;"),
        ],
    );
    let order = strings(
        &mut c,
        "SELECT path || ' ' || sort_key FROM pgmi_plan_view ORDER BY execution_order",
    );
    assert_eq!(
        order,
        [
            "./fallback-b.sql ./fallback-b.sql",
            "./fallback_a.sql ./fallback_a.sql",
            "./migrations/002_data.sql ./migrations/002_data.sql",
            "./nokeys.sql ./nokeys.sql",
            "./setup/functions.sql ./setup/functions.sql",
            "./multi.sql 001/000",
            "./multi.sql zzz/999",
            "./first.sql ~first",
            "./last.sql ~~last"
        ]
    );
    let row = c
        .query_one(
            "SELECT id IS NULL, idempotent, description, sort_key = path, \
                    checksum = (SELECT pgmi_checksum FROM pgmi_source_view s WHERE s.path = p.path) \
               FROM pgmi_plan_view p WHERE path = './fallback_a.sql'",
            &[],
        )
        .expect("defaults");
    assert!(row.get::<_, bool>(0));
    assert!(row.get::<_, bool>(1));
    assert_eq!(row.get::<_, String>(2), "");
    assert!(row.get::<_, bool>(3));
    assert!(row.get::<_, bool>(4));
    let sort_keys: String = c
        .query_one(
            "SELECT sort_keys::text FROM pgmi_source_metadata_view WHERE path = './nokeys.sql'",
            &[],
        )
        .expect("nokeys")
        .get(0);
    assert_eq!(sort_keys, "{}");
}

// `generic_id` is md5 of the UTF-8 path bytes, on UTF8 and LATIN1 databases.
fn generic_id_is_the_same_on_utf8_and_latin1_databases(kind: Kind) {
    for encoding in ["UTF8", "LATIN1"] {
        let db = db_with(
            kind,
            &format!("genid_{encoding}"),
            &format!("ENCODING '{encoding}' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"),
        );
        let mut c = db.client();
        kind.load(
            &mut c,
            &[
                ("migrations/001.sql", b"SELECT 1;"),
                ("migrations/caf\u{e9}.sql", "SELECT 'é';".as_bytes()),
            ],
        );
        let ids = strings(
            &mut c,
            "SELECT generic_id::text FROM pgmi_plan_view ORDER BY execution_order",
        );
        assert_eq!(
            ids,
            [
                "18a606ed-2992-a4e9-70c1-b9c7044ab9b8",
                "9bbc3810-8180-8c39-61fd-68b968fbc799"
            ],
            "{encoding}"
        );
        let content: String = c
            .query_one(
                "SELECT content FROM pgmi_source_view WHERE name = 'café.sql'",
                &[],
            )
            .expect("content")
            .get(0);
        assert_eq!(content, "SELECT 'é';", "{encoding}");
    }
}

// Excluded paths, BOM stripping, the root deploy.sql, non-SQL test files and fixture names,
// through a real deploy: deploy.sql copies the views into a
// permanent table, the test reads it afterwards.
fn deploy_loads_exactly_the_project_files(kind: Kind) {
    let db = TestDb::unnamed("loaded");
    let project = Project::with_deploy(
        "CREATE TABLE seen AS SELECT path, content, checksum, pgmi_checksum, is_sql_file FROM pgmi_source_view;\n\
         CREATE TABLE seen_tests AS SELECT path, is_fixture FROM pgmi_test_source_view;\n\
         CREATE TABLE seen_dirs AS SELECT path, parent_path, depth FROM pgmi_test_directory_view;\n",
    )
    .file(".git/index", b"\x00\x01binary")
    .file(".venv/lib/site.py", "x = 1")
    .file("node_modules/pkg/index.js", "module.exports = 1")
    .file("api/__pycache__/g.pyc", b"\x00\x00")
    .file(".env", "PGPASSWORD=nope")
    .file("migrations/001_bom.sql", b"\xEF\xBB\xBFCREATE TABLE t (id int);")
    .file("migrations/002_plain.sql", "CREATE TABLE t (id int);")
    .file("examples/deploy.sql", "SELECT 1;")
    .file("__test__/README.md", "docs")
    .file("__test__/test_a.sql", "SELECT 1;")
    .file("__test__/_SETUP.PSQL", "SELECT 1;")
    .file("__test__/_setup.pgsql", "SELECT 1;")
    .file("__test__/_teardown.sql", "SELECT 1;");
    deploy_ok_as(kind, &project, &db.name, &[]);
    let mut c = db.client();
    let paths = strings(&mut c, "SELECT path FROM seen ORDER BY path COLLATE \"C\"");
    assert_eq!(
        paths,
        [
            "./examples/deploy.sql",
            "./migrations/001_bom.sql",
            "./migrations/002_plain.sql"
        ]
    );
    let r = c
        .query_one(
            "SELECT a.checksum = b.checksum, a.pgmi_checksum = b.pgmi_checksum, a.content \
               FROM seen a, seen b WHERE a.path = './migrations/001_bom.sql' AND b.path = './migrations/002_plain.sql'",
            &[],
        )
        .expect("bom");
    assert!(
        r.get::<_, bool>(0) && r.get::<_, bool>(1),
        "BOM must not change checksums"
    );
    assert_eq!(r.get::<_, String>(2), "CREATE TABLE t (id int);");
    assert!(c
        .query_one(
            "SELECT is_sql_file FROM seen WHERE path = './examples/deploy.sql'",
            &[]
        )
        .expect("q")
        .get::<_, bool>(0));
    let tests = strings(
        &mut c,
        "SELECT path || ' ' || is_fixture FROM seen_tests ORDER BY path COLLATE \"C\"",
    );
    assert_eq!(
        tests,
        [
            "./__test__/_SETUP.PSQL true",
            "./__test__/_setup.pgsql false",
            "./__test__/_teardown.sql false",
            "./__test__/test_a.sql false"
        ]
    );
    let dirs = strings(
        &mut c,
        "SELECT path || ' ' || coalesce(parent_path, 'NULL') || ' ' || depth FROM seen_dirs",
    );
    assert_eq!(dirs, ["./__test__/ NULL 0"]);
}

// Gapped test trees and the plan over them.
fn gapped_test_tree_and_its_plan(kind: Kind) {
    let db = kind.db("gapped");
    let mut c = db.client();
    kind.load(
        &mut c,
        &[
            ("__test__/_setup.sql", b"SELECT 1;"),
            ("__test__/test_a.sql", b"SELECT 1;"),
            ("__test__/sub/deep/test_b.sql", b"SELECT 1;"),
        ],
    );
    let dirs = strings(
        &mut c,
        "SELECT path || ' ' || coalesce(parent_path, 'NULL') || ' ' || depth FROM pgmi_test_directory_view ORDER BY path",
    );
    assert_eq!(
        dirs,
        ["./__test__/ NULL 0", "./__test__/sub/deep/ ./__test__/ 2"]
    );
    let plan = strings(
        &mut c,
        "SELECT ordinal || ' ' || step_type || ' ' || coalesce(script_path, directory) FROM pg_temp.pgmi_test_plan() ORDER BY ordinal",
    );
    assert_eq!(
        plan,
        [
            "1 fixture ./__test__/_setup.sql",
            "2 test ./__test__/test_a.sql",
            "3 test ./__test__/sub/deep/test_b.sql",
            "4 teardown ./__test__/sub/deep/",
            "5 teardown ./__test__/"
        ]
    );
}

// The loader adds _pgmi_source's CHECKs and the two foreign keys NOT VALID after its bulk
// insert, because pgmi-core checked every row against the same rules. This proves the two
// agree on a varied project: PostgreSQL validates every such constraint over the rows.
fn rows_satisfy_every_constraint_added_not_valid(kind: Kind) {
    let db = kind.db("validate");
    let mut c = db.client();
    let meta = meta("00000000-0000-0000-0000-00000000000a", &["k1", "k2"]);
    kind.load(
        &mut c,
        &[
            ("root.txt", b"plain"),
            ("noext", b""),
            ("trail.", b"x"),
            ("notes.txt~", b"x"),
            ("a/b/c/d.tar.gz", b"x"),
            ("\u{e9}/\u{fc}.sql", b"SELECT 1;"),
            ("x.SQL", meta.as_bytes()),
            ("spaced name/with space.sql", b"SELECT 2;"),
            ("__test__/t.sql", b"SELECT 3;"),
            ("__test__/deep/er/_setup.sql", b"SELECT 4;"),
        ],
    );
    let pending: Vec<(String, String)> = c
        .query(
            "SELECT conrelid::regclass::text, conname::text FROM pg_constraint \
              WHERE connamespace = pg_my_temp_schema() AND NOT convalidated",
            &[],
        )
        .expect("constraints")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(pending.len(), 23 + 2, "{pending:?}");
    for (table, constraint) in pending {
        c.batch_execute(&format!(
            "ALTER TABLE {table} VALIDATE CONSTRAINT {constraint}"
        ))
        .unwrap_or_else(|e| panic!("{table}.{constraint}: {e}"));
    }
}

both_kinds!(
    zero_file_session_has_exactly_the_session_api_objects,
    view_columns_and_event_type_match_the_session_api,
    register_file_normalises_and_derives,
    sql_extension_list,
    checksums_are_bit_exact,
    plan_view_orders_by_bytes_and_expands_sort_keys,
    generic_id_is_the_same_on_utf8_and_latin1_databases,
    deploy_loads_exactly_the_project_files,
    gapped_test_tree_and_its_plan,
    rows_satisfy_every_constraint_added_not_valid,
);
