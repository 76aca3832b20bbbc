//! The offline commands through the real binary: `info` and `metadata validate|plan|scaffold`
//! (README, "Other commands"), and the promise that `metadata plan --json` is exactly what a
//! session's `pgmi_plan_view` holds, checked on real sessions of both kinds.

use pgmi_core::limits::Limits;
use pgmi_tests::{both_kinds, pgmi_upload, Kind, Project, Run};

const ID_A: &str = "6f1c1f0e-6a39-4a55-9a65-2d1b8c4e0a11";
const ID_B: &str = "0b7c9b0e-3d7a-4f3e-8a55-7e0b2f1c9d42";

/// A SQL file with a `<pgmi-meta>` block.
fn meta(id: &str, idempotent: bool, keys: &[&str], description: &str) -> String {
    let keys: String = keys.iter().map(|k| format!("<key>{k}</key>")).collect();
    let keys = if keys.is_empty() {
        String::new()
    } else {
        format!("<sortKeys>{keys}</sortKeys>")
    };
    let description = if description.is_empty() {
        String::new()
    } else {
        format!("<description>{description}</description>")
    };
    format!(
        "/* <pgmi-meta id=\"{id}\" idempotent=\"{idempotent}\">{description}{keys}</pgmi-meta> */\nSELECT 1;\n"
    )
}

/// `pgmi-upload <command...> <project path> <extra...>`.
fn run(command: &[&str], project: &Project, extra: &[&str], env: &[(&str, &str)]) -> Run {
    let path = project.path().to_str().expect("utf-8 temp path");
    let mut args: Vec<&str> = command.to_vec();
    args.push(path);
    args.extend_from_slice(extra);
    pgmi_upload(&args, env)
}

#[track_caller]
fn ok(run: Run) -> Run {
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    run
}

/// Tests, a fixture, a nested test directory with a non-SQL file, metadata with two keys,
/// a data file and files without metadata.
fn sample() -> Project {
    Project::with_deploy("SELECT 1;\n")
        .file(
            "migrations/001_schema.sql",
            meta(ID_A, false, &["010/schema"], "The schema"),
        )
        .file(
            "migrations/002_two_phase.sql",
            meta(ID_B, true, &["020/first", "zzz/last"], ""),
        )
        .file(
            "functions/util.sql",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';\n",
        )
        .file("data/seed.csv", "id,name\n1,a\n")
        .file("__test__/_setup.sql", "CREATE TEMP TABLE fx (id int);\n")
        .file("__test__/test_one.sql", "SELECT 1;\n")
        .file("__test__/auth/test_login.sql", "SELECT 1;\n")
        .file("__test__/auth/notes.md", "not loaded\n")
}

#[test]
fn info_text_and_json() {
    let project = sample();
    let params = tempfile::tempdir().expect("tempdir");
    let params_file = params.path().join("prod.env");
    std::fs::write(&params_file, "env=prod\napi_token=s3cr3t-value\n").expect("params file");
    let params_path = params_file.to_str().expect("utf-8");
    let extra = [
        "--params-file",
        params_path,
        "--param",
        "env=st4ging-value",
        "-d",
        "appdb",
    ];
    let secret_env = [("PGPASSWORD", "hunter2-password")];

    let json = ok(run(&["info", "--json"], &project, &extra, &secret_env));
    let v = json.json();
    assert_eq!(
        v["path"].as_str(),
        Some(
            std::fs::canonicalize(project.path())
                .expect("canonical")
                .to_str()
                .expect("utf-8")
        )
    );
    assert_eq!(v["deploySql"], true);
    assert_eq!(v["pgmiYaml"], false);
    assert_eq!(v["totalFiles"], 8);
    assert_eq!(v["sqlFiles"], 3);
    assert_eq!(v["nonSqlFiles"], 1);
    assert_eq!(v["testFiles"], 3);
    assert_eq!(v["fixtures"], 1);
    assert_eq!(v["ignoredTestFiles"], 1);
    assert_eq!(v["filesWithMetadata"], 2);
    assert_eq!(
        v["testDirectories"],
        serde_json::json!([
            {"path": "./__test__/", "parentPath": null, "tests": 1, "fixtures": ["./__test__/_setup.sql"]},
            {"path": "./__test__/auth/", "parentPath": "./__test__/", "tests": 1, "fixtures": []},
        ])
    );
    assert_eq!(
        v["directories"],
        serde_json::json!({
            "./__test__/": 2, "./__test__/auth/": 1, "./data/": 1, "./functions/": 1,
            "./migrations/": 2
        })
    );
    let file_source = format!("--params-file {params_path}");
    assert_eq!(
        v["parameters"],
        serde_json::json!([
            {"key": "api_token", "source": file_source},
            {"key": "env", "source": "--param", "overriddenSources": [file_source]},
        ])
    );
    assert_eq!(v["connection"]["resolved"], true);
    assert_eq!(v["connection"]["database"], "appdb");
    assert!(v["connection"]["description"]
        .as_str()
        .expect("description")
        .contains("password: set"));

    let text = ok(run(&["info"], &project, &extra, &secret_env));
    for line in [
        "deploy.sql:           present",
        "Files scanned:        8",
        "  SQL files:          3",
        "  test files:         3 (1 fixture(s))",
        "<pgmi-meta> blocks:   2 file(s)",
        "  ./__test__/       1 test(s), fixture ./__test__/_setup.sql",
        "  ./__test__/auth/  1 test(s), no fixture, parent ./__test__/",
        "  ./migrations/     2 file(s)",
        &format!("  env        --param (overrides {file_source})"),
    ] {
        assert!(
            text.stdout.lines().any(|l| l == line),
            "{line:?} missing from:\n{}",
            text.stdout
        );
    }
    assert!(text.stdout.contains("Connection:           host="));
    assert!(text.stderr.is_empty(), "{}", text.stderr);

    for out in [&json, &text] {
        for secret in ["s3cr3t-value", "st4ging-value", "hunter2-password"] {
            assert!(
                !out.stdout.contains(secret) && !out.stderr.contains(secret),
                "{secret} printed"
            );
        }
    }
}

#[test]
fn info_without_deploy_sql_or_database_still_reports_the_project() {
    let project = Project::new().file("a.sql", "SELECT 1;\n");
    let v = ok(run(&["info", "--json"], &project, &[], &[])).json();
    assert_eq!(v["deploySql"], false);
    assert_eq!(v["totalFiles"], 1);
    assert_eq!(v["connection"]["resolved"], false);
    assert!(v["connection"]["error"]
        .as_str()
        .expect("error")
        .contains("database"));
    let text = ok(run(&["info"], &project, &[], &[]));
    assert!(text.stdout.contains("deploy.sql:           MISSING"));
    assert!(text.stdout.contains("Connection:           not resolved: "));
}

#[test]
fn info_fails_where_a_deploy_would() {
    let project = Project::with_deploy("SELECT 1;").file("data/blob.bin", b"ab\x00cd");
    let out = run(&["info"], &project, &[], &[]);
    assert_eq!(out.code, 10, "{}", out.stderr);
    assert!(out.stderr.starts_with("pgmi: error: "), "{}", out.stderr);
    assert_eq!(out.stderr.matches("./data/blob.bin").count(), 1);
    assert!(out.stdout.is_empty());

    let out = run(&["info"], &sample(), &["--param", "bad-key=x"], &[]);
    assert_eq!(out.code, 10, "{}", out.stderr);
    assert!(out.stderr.contains("bad-key"), "{}", out.stderr);

    let out = pgmi_upload(&["info", "/nonexistent/pgmi/project"], &[]);
    assert_eq!(out.code, 10, "{}", out.stderr);
}

#[test]
fn validate_passes_and_counts() {
    let project = sample();
    let out = ok(run(&["metadata", "validate", "--json"], &project, &[], &[]));
    assert_eq!(
        out.json(),
        serde_json::json!({
            "totalFiles": 3, "filesWithMetadata": 2, "filesWithoutMetadata": 1,
            "validationPassed": true, "duplicateIds": [], "sharedSortKeys": []
        })
    );
    assert!(out.stderr.contains("Validation passed"), "{}", out.stderr);
    let text = ok(run(&["metadata", "validate"], &project, &[], &[]));
    assert!(text.stdout.is_empty(), "summary goes to stderr");
    assert!(text.stderr.starts_with(
        "3 SQL file(s) checked (test files excluded): 2 with a <pgmi-meta> block, 1 without"
    ));
}

#[test]
fn validate_warns_about_shared_sort_keys_without_failing() {
    let project = sample().file(
        "migrations/003_copy_paste.sql",
        meta(
            "3c8a5a58-93a4-4c1e-9d0e-6f7f9e1b2c3d",
            true,
            &["010/schema"],
            "",
        ),
    );
    let out = ok(run(&["metadata", "validate", "--json"], &project, &[], &[]));
    let v = out.json();
    assert_eq!(v["validationPassed"], true);
    assert_eq!(
        v["sharedSortKeys"],
        serde_json::json!([
            "\"010/schema\": ./migrations/001_schema.sql, ./migrations/003_copy_paste.sql"
        ])
    );
    assert!(
        out.stderr.contains(
            "warning: sort key \"010/schema\": ./migrations/001_schema.sql, ./migrations/003_copy_paste.sql: these files share a plan position and run in path order"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn validate_reports_duplicate_ids_with_exit_1() {
    let block = meta(ID_A, true, &[], "");
    let project = sample()
        .file("copies/a.sql", &block)
        .file("copies/b.sql", &block);
    let out = run(&["metadata", "validate", "--json"], &project, &[], &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["validationPassed"], false);
    assert_eq!(v["totalFiles"], 5);
    assert_eq!(
        v["duplicateIds"],
        serde_json::json!([format!(
            "{ID_A}: ./copies/a.sql, ./copies/b.sql, ./migrations/001_schema.sql"
        )])
    );
    assert!(
        out.stderr.contains(&format!(
            "pgmi: error: duplicate <pgmi-meta id> across files; each script must have a unique id:\n  {ID_A}: ./copies/a.sql, ./copies/b.sql, ./migrations/001_schema.sql\nHINT: "
        )),
        "{}",
        out.stderr
    );
    // The commands that need a loadable project refuse it as the deploy does.
    let plan = run(&["metadata", "plan"], &project, &[], &[]);
    assert_eq!(plan.code, 10, "{}", plan.stderr);
}

#[test]
fn validate_names_the_file_and_line_of_a_malformed_block() {
    let project = sample().file(
        "migrations/003_bad.sql",
        format!(
            "-- leading line\n/* notes\n<pgmi-meta id=\"{ID_A}\" idempotent=\"true\">\n<sortKeys>\n</pgmi-meta> */\nSELECT 1;\n"
        ),
    );
    let out = run(&["metadata", "validate", "--json"], &project, &[], &[]);
    assert_eq!(out.code, 10, "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(
        out.stderr.starts_with(
            "pgmi: error: metadata error in ./migrations/003_bad.sql (line 4): element <sortKeys> closed by </pgmi-meta>\n\
             DETAIL: line 4 of the comment holding the block is line 5 of ./migrations/003_bad.sql\n\
             HINT: Check that all XML tags"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.matches("Check that all XML tags").count(), 1);
}

#[test]
fn plan_text_and_json() {
    let project = sample();
    let text = ok(run(&["metadata", "plan"], &project, &[], &[]));
    // Generic ids are md5 of the path (the session view's own value is compared below).
    assert_eq!(
        text.stdout,
        format!(
            "\
ORDER  SORT KEY              PATH                            ID                                              IDEMPOTENT  DESCRIPTION
1      ./data/seed.csv       ./data/seed.csv                 cd5bee5c-05e3-0bb8-4995-6ec609fa6522 (generic)  true
2      ./functions/util.sql  ./functions/util.sql            bdbbe6f4-4e9e-4cb7-8272-5801d28ee547 (generic)  true
3      010/schema            ./migrations/001_schema.sql     {ID_A}            false       The schema
4      020/first             ./migrations/002_two_phase.sql  {ID_B}            true
5      zzz/last              ./migrations/002_two_phase.sql  {ID_B}            true
"
        )
    );
    assert_eq!(
        text.stderr,
        "5 row(s) for 4 file(s): as in pgmi_plan_view, a file runs once per sort key, and a file without keys once under its path\n"
    );

    let v = ok(run(&["metadata", "plan", "--json"], &project, &[], &[])).json();
    assert_eq!(v["totalFiles"], 4);
    assert_eq!(v["totalRows"], 5);
    assert_eq!(
        v["plan"][2],
        serde_json::json!({
            "executionOrder": 3, "path": "./migrations/001_schema.sql", "sortKey": "010/schema",
            "id": ID_A,
            "genericId": pgmi_core::meta::generic_id("./migrations/001_schema.sql").to_string(),
            "idempotent": false, "description": "The schema"
        })
    );
    assert_eq!(v["plan"][0]["id"], serde_json::Value::Null);
    assert_eq!(v["plan"][0]["sortKey"], "./data/seed.csv");
}

/// The ordered `(path, sort key)` pairs of `metadata plan --json`.
fn plan_order(project: &Project) -> Vec<(String, String)> {
    let v = ok(run(&["metadata", "plan", "--json"], project, &[], &[])).json();
    v["plan"]
        .as_array()
        .expect("plan")
        .iter()
        .map(|r| {
            (
                r["path"].as_str().expect("path").to_owned(),
                r["sortKey"].as_str().expect("key").to_owned(),
            )
        })
        .collect()
}

#[test]
fn scaffold_previews_then_writes_without_changing_the_order() {
    let project = sample()
        .file("migrations/010_later.sql", "-- crlf file\r\nSELECT 1;\r\n")
        .file("zz/star*dir/x.sql", b"\xEF\xBB\xBFSELECT 1;\n");
    let before = plan_order(&project);
    let untouched = std::fs::read(project.path().join("functions/util.sql")).expect("read");

    let preview = ok(run(&["metadata", "scaffold"], &project, &[], &[]));
    // Each block is shown with the line ending it will be written with.
    for (path, newline) in [
        ("./functions/util.sql", "\n"),
        ("./migrations/010_later.sql", "\r\n"),
        ("./zz/star*dir/x.sql", "\n"),
    ] {
        let head = format!("==> {path} <==\n/*{newline}<pgmi-meta id=\"");
        assert!(
            preview.stdout.contains(&head),
            "{path}:\n{}",
            preview.stdout
        );
    }
    assert!(!preview.stdout.contains("001_schema"), "{}", preview.stdout);
    assert!(!preview.stdout.contains("seed.csv"), "only SQL files");
    assert!(!preview.stdout.contains("__test__"), "never test files");
    assert!(preview
        .stdout
        .contains("<key>./zz/star&#42;dir/x.sql</key>"));
    assert!(preview
        .stderr
        .contains("3 block(s) to add; nothing written"));
    assert_eq!(
        std::fs::read(project.path().join("functions/util.sql")).expect("read"),
        untouched,
        "a preview writes nothing"
    );

    let written = ok(run(
        &["metadata", "scaffold"],
        &project,
        &["--write", "--idempotent", "false"],
        &[],
    ));
    assert!(written
        .stderr
        .contains("Wrote 3 block(s); the project scans and its execution order is unchanged"));
    let util = std::fs::read_to_string(project.path().join("functions/util.sql")).expect("read");
    assert!(util.starts_with("/*\n<pgmi-meta id=\""), "{util}");
    assert!(util.contains("idempotent=\"false\""));
    assert!(util.ends_with(std::str::from_utf8(&untouched).expect("utf-8")));
    let crlf =
        std::fs::read_to_string(project.path().join("migrations/010_later.sql")).expect("read");
    assert!(crlf.starts_with("/*\r\n<pgmi-meta "), "{crlf:?}");
    let bom = std::fs::read(project.path().join("zz/star*dir/x.sql")).expect("read");
    assert!(bom.starts_with(b"\xEF\xBB\xBF/*\n"));

    let v = ok(run(&["metadata", "validate", "--json"], &project, &[], &[])).json();
    assert_eq!(v["filesWithoutMetadata"], 0);
    assert_eq!(v["filesWithMetadata"], 5);
    assert_eq!(plan_order(&project), before, "the order is unchanged");

    // Fresh version-4 ids, all different.
    let plan = ok(run(&["metadata", "plan", "--json"], &project, &[], &[])).json();
    let mut ids: Vec<String> = plan["plan"]
        .as_array()
        .expect("plan")
        .iter()
        .filter(|r| r["idempotent"] == false && r["path"] != "./migrations/001_schema.sql")
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.iter().all(|id| id.as_bytes()[14] == b'4'), "{ids:?}");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3);

    let again = ok(run(&["metadata", "scaffold"], &project, &["--write"], &[]));
    assert!(
        again.stderr.starts_with("Nothing to scaffold"),
        "{}",
        again.stderr
    );
    assert!(again.stdout.is_empty());
}

/// The project's files as the deploy reads them (for loading into a session).
fn files_on_disk(project: &Project) -> Vec<(String, Vec<u8>)> {
    pgmi_core::project::walk(project.path(), &Limits::default())
        .expect("walk")
        .into_iter()
        .map(|f| (f.path, f.bytes))
        .collect()
}

/// `metadata plan --json` rows as text, in the view's column order.
fn plan_rows_from_cli(project: &Project) -> Vec<String> {
    let v = ok(run(&["metadata", "plan", "--json"], project, &[], &[])).json();
    v["plan"]
        .as_array()
        .expect("plan")
        .iter()
        .map(|r| {
            format!(
                "{}|{}|{}|{}|{}|{}|{}",
                r["executionOrder"],
                r["path"].as_str().expect("path"),
                r["sortKey"].as_str().expect("key"),
                r["id"].as_str().unwrap_or("NULL"),
                r["genericId"].as_str().expect("generic id"),
                r["idempotent"],
                r["description"].as_str().expect("description"),
            )
        })
        .collect()
}

/// The same rows from a real session of `kind` holding `project`, on a database whose
/// linguistic collation would order `-`, `_`, `.` and case differently from bytes.
fn plan_rows_from_session(kind: Kind, project: &Project) -> Vec<String> {
    let db = kind.linguistic_db("offline_plan");
    let mut client = db.client();
    let files = files_on_disk(project);
    let borrowed: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    kind.load(&mut client, &borrowed);
    client
        .query(
            "SELECT execution_order, path, sort_key, id::text, generic_id::text, idempotent, description \
               FROM pg_temp.pgmi_plan_view ORDER BY execution_order",
            &[],
        )
        .expect("plan view")
        .iter()
        .map(|r| {
            format!(
                "{}|{}|{}|{}|{}|{}|{}",
                r.get::<_, i64>(0),
                r.get::<_, String>(1),
                r.get::<_, String>(2),
                r.get::<_, Option<String>>(3).as_deref().unwrap_or("NULL"),
                r.get::<_, String>(4),
                r.get::<_, bool>(5),
                r.get::<_, String>(6),
            )
        })
        .collect()
}

// The ordering fixture of session_api.rs (`~first`, `~~last`, a file with several sort keys)
// plus keys and paths whose byte
// order differs from any linguistic order, a non-SQL file, test files, a BOM and a
// non-ASCII path; then the same project after `metadata scaffold --write`.
fn plan_json_equals_the_session_view(kind: Kind) {
    let project = Project::with_deploy("SELECT 1;\n")
        .file(
            "first.sql",
            meta(
                "00000000-0000-0000-0000-000000000001",
                true,
                &["~first"],
                "",
            ),
        )
        .file(
            "last.sql",
            meta(
                "00000000-0000-0000-0000-000000000002",
                false,
                &["~~last"],
                "Last &amp; least",
            ),
        )
        .file(
            "multi.sql",
            meta(
                "00000000-0000-0000-0000-000000000003",
                true,
                &["001/000", "zzz/999", "Zed", " spaced"],
                "",
            ),
        )
        .file(
            "nokeys.sql",
            meta("00000000-0000-0000-0000-000000000004", true, &[], "no keys"),
        )
        .file("fallback_a.sql", "SELECT 1;")
        .file("fallback-b.sql", "SELECT 1;")
        .file("Upper.sql", "SELECT 1;")
        .file("migrations/002_data.sql", b"\xEF\xBB\xBFSELECT 1;")
        .file("migrations/caf\u{e9}.sql", "SELECT 'é';")
        .file("setup/functions.sql", "SELECT 1;")
        .file("docs/readme.md", "# notes\n")
        .file("__test__/_setup.sql", "SELECT 1;")
        .file("__test__/test_x.sql", "SELECT 1;");

    let cli = plan_rows_from_cli(&project);
    assert_eq!(cli.len(), 14, "{cli:#?}");
    assert_eq!(cli, plan_rows_from_session(kind, &project));

    ok(run(&["metadata", "scaffold"], &project, &["--write"], &[]));
    let after = plan_rows_from_cli(&project);
    assert_eq!(after, plan_rows_from_session(kind, &project));
    let order = |rows: &[String]| -> Vec<String> {
        rows.iter()
            .map(|r| r.split('|').take(3).collect::<Vec<_>>().join("|"))
            .collect()
    };
    assert_eq!(order(&after), order(&cli), "scaffolding keeps the order");
}

both_kinds!(plan_json_equals_the_session_view);
