// In-backend tests: each runs inside one transaction that pgrx rolls back. Anything
// involving COMMIT, CALL, session lifetime or the CLI is tested live in `tests/`.

use pgmi_core::bundle;
use pgmi_core::project::RawFile;
use pgrx::prelude::*;

fn bundle_of(files: &[(&str, &str)], parameters: &[(&str, &str)]) -> Vec<u8> {
    let files: Vec<RawFile> = files
        .iter()
        .map(|(path, text)| RawFile { path: (*path).to_string(), bytes: text.as_bytes().to_vec() })
        .collect();
    let parameters: Vec<(String, String)> =
        parameters.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect();
    bundle::write(&files, &parameters).expect("bundle")
}

fn load(bundle: &[u8]) -> i32 {
    Spi::get_one_with_args::<i32>("SELECT files FROM pgmi_load($1)", &[bundle.into()])
        .expect("pgmi_load failed")
        .expect("pgmi_load returned NULL")
}

fn count(query: &str) -> i64 {
    Spi::get_one::<i64>(query).expect("query failed").expect("NULL count")
}

#[pg_test]
fn load_fills_the_session_tables() {
    let bundle = bundle_of(
        &[
            ("migrations/001_users.sql", "CREATE TABLE users (id int);"),
            ("data/settings.json", "{\"a\": 1}"),
            ("__test__/_setup.sql", "SELECT 1;"),
            ("__test__/test_users.sql", "SELECT 2;"),
            ("__test__/README.md", "not a test"),
        ],
        &[],
    );
    assert_eq!(load(&bundle), 5);
    assert_eq!(count("SELECT count(*) FROM pgmi_source_view"), 2);
    assert_eq!(count("SELECT count(*) FROM pgmi_test_source_view"), 2);
    assert_eq!(count("SELECT count(*) FROM pgmi_test_directory_view WHERE path = './__test__/'"), 1);
    assert_eq!(
        Spi::get_one::<String>(
            "SELECT directory FROM pgmi_source_view WHERE path = './migrations/001_users.sql'"
        )
        .unwrap()
        .as_deref(),
        Some("./migrations/")
    );
}

#[pg_test]
fn session_objects_are_exactly_the_session_api() {
    load(&bundle_of(&[], &[]));
    assert_eq!(
        count("SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema() AND relkind = 'v'"),
        6
    );
    assert_eq!(
        count("SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema() AND relkind = 'r'"),
        5
    );
    // the original pgmi's nine, pg_temp.pgmi_test, pgmi_test_results and pgmi_execute ...
    assert_eq!(
        count("SELECT count(*) FROM pg_proc WHERE pronamespace = pg_my_temp_schema() AND proname LIKE 'pgmi\\_%'"),
        12
    );
    // ... and the extension session's internal helpers: _pgmi_test_capture, and
    // pgmi_execute's _pgmi_execute_statements and _pgmi_execute_position
    assert_eq!(
        count("SELECT count(*) FROM pg_proc WHERE pronamespace = pg_my_temp_schema() AND proname LIKE '\\_pgmi\\_%'"),
        3
    );
}

#[pg_test]
fn the_callers_check_function_bodies_is_put_back() {
    for setting in ["on", "off"] {
        Spi::run(&format!("SET LOCAL check_function_bodies = {setting}")).unwrap();
        load(&bundle_of(&[("a.sql", "SELECT 1;")], &[]));
        assert_eq!(
            Spi::get_one::<String>("SELECT current_setting('check_function_bodies')")
                .unwrap()
                .as_deref(),
            Some(setting)
        );
    }
    // Created without compiling them, the PL/pgSQL functions still run.
    assert_eq!(
        Spi::get_one::<String>("SELECT pg_temp.pgmi_validate_pattern('x%')").unwrap().as_deref(),
        Some("x%")
    );
}

#[pg_test]
fn second_load_replaces_the_first() {
    load(&bundle_of(&[("a.sql", "SELECT 1;"), ("b.sql", "SELECT 2;")], &[("k", "one")]));
    load(&bundle_of(&[("c.sql", "SELECT 3;")], &[("k", "two")]));
    assert_eq!(count("SELECT count(*) FROM pgmi_source_view"), 1);
    assert_eq!(
        Spi::get_one::<String>("SELECT current_setting('pgmi.k')").unwrap().as_deref(),
        Some("two")
    );
}

#[pg_test]
fn parameters_become_settings_and_rows() {
    load(&bundle_of(&[], &[("MyParam", "value1")]));
    assert_eq!(
        Spi::get_one::<String>("SELECT current_setting('pgmi.myparam')").unwrap().as_deref(),
        Some("value1")
    );
    assert_eq!(
        count("SELECT count(*) FROM pgmi_parameter_view WHERE key = 'myparam' AND type = 'text' AND NOT required"),
        1
    );
}

#[pg_test]
fn checksums_and_plan_defaults() {
    load(&bundle_of(&[("migrations/001.sql", "SELECT * FROM users;")], &[]));
    let row = Spi::get_two::<String, String>(
        "SELECT s.checksum, p.generic_id::text FROM pgmi_source_view s JOIN pgmi_plan_view p USING (path)",
    )
    .unwrap();
    assert_eq!(
        row.0.as_deref(),
        Some("d1ec24bdafb79996d598fd0707064fc6766042c1054c8ca379da5fc6a3a03e5a")
    );
    assert_eq!(row.1.as_deref(), Some("18a606ed-2992-a4e9-70c1-b9c7044ab9b8"));
}

#[pg_test(error = "the bundle is not gzip data (it does not start with the gzip magic bytes 1f 8b)")]
fn not_gzip_is_rejected() {
    load(b"this is plain text, not a bundle");
}

fn position(statement: &str, sqlstate: &str) -> Option<i32> {
    Spi::get_one_with_args::<i32>(
        "SELECT pgmi_error_position(convert_to($1, getdatabaseencoding()), $2)",
        &[statement.into(), sqlstate.into()],
    )
    .expect("pgmi_error_position failed")
}

#[pg_test]
fn error_positions_are_found_by_parsing_again() {
    // a syntax error, on the second line of the statement
    assert_eq!(position("SELECT 1,\n  2 FRM x;", "42601"), Some(19));
    // parse analysis positions an unknown column and a bad literal
    assert_eq!(position("SELECT nocol FROM pg_class;", "42703"), Some(8));
    assert_eq!(position("SELECT 'é', 'x'::int;", "22P02"), Some(13));
    // a runtime error has no position: nothing runs, nothing is found
    assert_eq!(position("SELECT 1/0;", "22012"), None);
    // another SQLSTATE than the original error's does not count
    assert_eq!(position("SELEC 1;", "22012"), None);
    assert_eq!(position("SELEC 1;", "bad"), None);
    // the analysis is rolled back: it leaves no lock behind, and the error stack is clean
    assert_eq!(position("INSERT INTO pg_class (nocol) VALUES (1);", "42703"), Some(23));
    assert_eq!(
        count("SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND relation = 'pg_class'::regclass AND mode = 'RowExclusiveLock'"),
        0
    );
    assert_eq!(Spi::get_one::<i32>("SELECT 1").unwrap(), Some(1));
}

#[pg_test]
fn statements_of_a_file() {
    let rows = Spi::get_one::<String>(
        "SELECT string_agg(format('%s-%s@%s:%s', start, stop, line, col), ' ' ORDER BY start) \
           FROM pgmi_statements(convert_to(E'-- c\\nSELECT 1;\\n  SELECT $$;$$;', 'UTF8'), true)",
    )
    .unwrap();
    assert_eq!(rows.as_deref(), Some("6-18@2:1 18-31@3:3"));
}
