use super::*;

fn row(raw: &str) -> SourcePath {
    derive(raw)
}

fn parts(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

// ---- The columns derived from a path, one test per path ---------------------------------

#[test]
fn derive_migrations_001() {
    let r = row("./migrations/001.sql");
    assert_eq!(r.path, "./migrations/001.sql");
    assert_eq!(r.name, "001.sql");
    assert_eq!(r.directory, "./migrations/");
    assert_eq!(r.extension, ".sql");
    assert_eq!(r.depth, 1);
    assert_eq!(r.path_parts, parts(&[".", "migrations", "001.sql"]));
    assert_eq!(r.parent_folder_name.as_deref(), Some("migrations"));
    assert!(r.is_sql_file());
    assert!(!r.is_test_file());
    assert_eq!(check_source_row(&r), Ok(()));
}

#[test]
fn derive_backslash_path() {
    // Backslashes become slashes and the `./` prefix is added.
    let r = row("migrations\\002.sql");
    assert_eq!(r.path, "./migrations/002.sql");
    assert_eq!(r.name, "002.sql");
    assert_eq!(r.directory, "./migrations/");
    assert_eq!(r.depth, 1);
    assert_eq!(r.path_parts, parts(&[".", "migrations", "002.sql"]));
    assert_eq!(r.parent_folder_name.as_deref(), Some("migrations"));
    assert!(r.is_sql_file());
}

#[test]
fn derive_absolute_double_slash_upper_ext() {
    let r = row("/abs//x.SQL");
    assert_eq!(r.path, "./abs/x.SQL");
    assert_eq!(r.name, "x.SQL");
    assert_eq!(r.directory, "./abs/");
    assert_eq!(r.extension, ".SQL");
    assert!(r.is_sql_file());
    assert_eq!(r.depth, 1);
    assert_eq!(r.parent_folder_name.as_deref(), Some("abs"));
}

#[test]
fn derive_root_file() {
    let r = row("root.txt");
    assert_eq!(r.path, "./root.txt");
    assert_eq!(r.directory, "./");
    assert_eq!(r.extension, ".txt");
    assert_eq!(r.depth, 0);
    assert_eq!(r.path_parts, parts(&[".", "root.txt"]));
    assert_eq!(r.parent_folder_name, None);
    assert!(!r.is_sql_file());
    assert_eq!(check_source_row(&r), Ok(()));
}

#[test]
fn derive_double_extension() {
    let r = row("./a/b/c/d.tar.gz");
    assert_eq!(r.path, "./a/b/c/d.tar.gz");
    assert_eq!(r.name, "d.tar.gz");
    assert_eq!(r.directory, "./a/b/c/");
    assert_eq!(r.extension, ".gz");
    assert_eq!(r.depth, 3);
    assert_eq!(r.parent_folder_name.as_deref(), Some("c"));
}

#[test]
fn derive_no_extension_variants() {
    for p in ["./notes.txt~", "./noext", "./trail."] {
        let r = row(p);
        assert_eq!(r.path, p);
        assert_eq!(r.directory, "./");
        assert_eq!(r.extension, "", "{p}");
        assert_eq!(r.depth, 0);
        assert_eq!(r.parent_folder_name, None);
        assert!(!r.is_sql_file());
        assert_eq!(check_source_row(&r), Ok(()));
    }
}

#[test]
fn derive_spaced_path_is_trimmed() {
    let r = row(" ./spaced.sql ");
    assert_eq!(r.path, "./spaced.sql");
    assert_eq!(r.extension, ".sql");
    assert_eq!(r.depth, 0);
    assert_eq!(r.parent_folder_name, None);
}

#[test]
fn derive_non_ascii() {
    let r = row("./é/ü.sql");
    assert_eq!(r.path, "./é/ü.sql");
    assert_eq!(r.name, "ü.sql");
    assert_eq!(r.directory, "./é/");
    assert_eq!(r.extension, ".sql");
    assert_eq!(r.depth, 1);
    assert_eq!(r.parent_folder_name.as_deref(), Some("é"));
}

#[test]
fn derive_directory_only_is_rejected_by_name_check() {
    let r = row("./dir/");
    assert_eq!(r.name, "");
    assert_eq!(
        check_source_row(&r).unwrap_err().constraint,
        "chk_name_format"
    );
}

#[test]
fn derive_test_path_is_rejected() {
    let r = row("./__test__/x.sql");
    let err = check_source_row(&r).unwrap_err();
    assert_eq!(err.constraint, "chk_path_is_not_test");
    assert!(err.to_string().contains("./__test__/x.sql"), "{err}");
}

#[test]
fn depth_over_100_is_rejected() {
    let ok = format!("./{}x.sql", "d/".repeat(100));
    assert_eq!(row(&ok).depth, 100);
    assert_eq!(check_source_row(&row(&ok)), Ok(()));
    let deep = format!("./{}x.sql", "d/".repeat(101));
    assert_eq!(
        check_source_row(&row(&deep)).unwrap_err().constraint,
        "chk_depth_reasonable"
    );
}

#[test]
fn hand_built_rows_are_checked_too() {
    let mut r = row("./a/b.sql");
    r.directory = "./x/".into();
    assert_eq!(
        check_source_row(&r).unwrap_err().constraint,
        "chk_path_directory_match"
    );
    let mut r = row("./a/b.sql");
    r.extension = ".s~".into();
    assert_eq!(
        check_source_row(&r).unwrap_err().constraint,
        "chk_extension_format"
    );
    let mut r = row("./a/b.sql");
    r.parent_folder_name = None;
    assert_eq!(
        check_source_row(&r).unwrap_err().constraint,
        "chk_parent_folder_depth"
    );
}

// ---- Normalisation ----------------------------------------------------------------------

#[test]
fn normalize_rules() {
    assert_eq!(normalize("a/b.sql"), "./a/b.sql");
    assert_eq!(normalize("./a/b.sql"), "./a/b.sql");
    assert_eq!(normalize("././a"), "././a"); // already starts with ./ — kept
    assert_eq!(normalize("/./a"), "./a");
    assert_eq!(normalize("//.//a"), "./a");
    assert_eq!(normalize(".//x"), "./x");
    assert_eq!(normalize("a\\\\b"), "./a/b");
    assert_eq!(normalize("  x  "), "./x");
    assert_eq!(normalize("\tx"), "./\tx"); // only ASCII spaces are trimmed
    assert_eq!(normalize(""), "./");
    assert_eq!(normalize("../x"), "./../x");
    assert_eq!(normalize(".hidden"), "./.hidden");
}

#[test]
fn extension_rule() {
    assert_eq!(extension_of("x.PlPgSql"), ".PlPgSql");
    assert_eq!(extension_of(".sql"), ".sql");
    assert_eq!(extension_of("a.b-c"), "");
    assert_eq!(extension_of("a.é"), "");
    assert_eq!(extension_of("abc"), "");
}

// ---- The SQL extensions -----------------------------------------------------------------

#[test]
fn sql_extension_list() {
    for yes in [
        "x.sql",
        "x.ddl",
        "x.dml",
        "x.dql",
        "x.dcl",
        "x.psql",
        "x.pgsql",
        "x.plpgsql",
        "x.SQL",
        "x.PlPgSql",
        "./dir.d/x.Sql",
    ] {
        assert!(is_sql_file(yes), "{yes}");
    }
    for no in [
        "x.sql.bak",
        "x.sql~",
        "x.sqlx",
        "x.md",
        "x.json",
        "x",
        "sql",
        "x.s ql",
        "é",
    ] {
        assert!(!is_sql_file(no), "{no}");
    }
}

// ---- Exclusions -------------------------------------------------------------------------

#[test]
fn exclusions() {
    for yes in [
        ".git/index",
        ".venv/lib/site.py",
        "node_modules/pkg/index.js",
        "api/__pycache__/g.pyc",
        ".env",
        "a/.DS_Store",
        "deploy.sql",
        "DEPLOY.SQL",
        "./deploy.sql",
        "Deploy.Sql",
        "a/node_modules/x.sql",
        ".pgmi/parameters.json",
    ] {
        assert!(is_excluded(yes), "{yes}");
    }
    for no in [
        "examples/deploy.sql",
        "deploy.sql.bak",
        "a/b.sql",
        "node_modules2/x",
        "x.node_modules",
        "__pycache__x/y",
        "a.b/c",
        "./a/b",
    ] {
        assert!(!is_excluded(no), "{no}");
    }
}

// ---- Test paths and fixtures ------------------------------------------------------------

#[test]
fn test_paths_and_fixtures() {
    assert!(is_test_path("./__test__/x.sql"));
    assert!(is_test_path("./schema/__test__/y.sql"));
    assert!(is_test_path("./a/__tests__/b/c.sql"));
    assert!(!is_test_path("./__testing__/x.sql"));
    assert!(!is_test_path("./a__test__/x.sql"));
    assert!(!is_test_path("./x/__test__"));
    for yes in ["_setup.sql", "_SETUP.PSQL", "_Setup.Sql", "_setup.psql"] {
        assert!(is_fixture(yes), "{yes}");
    }
    for no in [
        "_setup.pgsql",
        "setup.sql",
        "_setup",
        "_setup.sql.bak",
        "_teardown.sql",
    ] {
        assert!(!is_fixture(no), "{no}");
    }
    assert_eq!(directory_of("./__test__/a/t.sql"), "./__test__/a/");
    assert_eq!(file_name_of("./__test__/a/t.sql"), "t.sql");
}

// ---- Test directory depth ---------------------------------------------------------------

#[test]
fn test_directory_depths() {
    assert_eq!(test_directory_depth("./__test__/"), 0);
    assert_eq!(test_directory_depth("./__test__/auth/oauth/"), 2);
    assert_eq!(test_directory_depth("./src/__test__/unit/"), 1);
    assert_eq!(test_directory_depth("./__test__/nested/__test__/"), 2);
    assert_eq!(test_directory_depth("./__test__/a/b/c/"), 3);
    assert_eq!(test_directory_depth("./__tests__/x/"), 1);
    // The earliest dunder wins, whichever spelling it has.
    assert_eq!(test_directory_depth("./__tests__/a/__test__/b/"), 3);
}

// ---- Dunder directories -----------------------------------------------------------------

#[test]
fn dunder_check() {
    assert_eq!(check_dunder("./__test__/x.sql"), Ok(()));
    assert_eq!(check_dunder("./a/__tests__/b/c.sql"), Ok(()));
    assert_eq!(check_dunder("./__init__/x.py"), Err("__init__".into()));
    assert_eq!(check_dunder("./__Test__/t.sql"), Err("__Test__".into()));
    assert_eq!(check_dunder("./a/__mocks__/m.sql"), Err("__mocks__".into()));
    assert_eq!(check_dunder("./a/b/__x_y__/c/d"), Err("__x_y__".into()));
    // File names are not directories: no trailing '/'.
    assert_eq!(check_dunder("./__init__.py"), Ok(()));
    assert_eq!(check_dunder("./a/__x__"), Ok(()));
    // Too short to be __X__.
    assert_eq!(check_dunder("./____/x"), Ok(()));
    assert_eq!(check_dunder("./_____/x"), Err("_____".into()));
    // Quirk: matches are non-overlapping, so a dunder right after another escapes.
    assert_eq!(check_dunder("./__test__/__x__/f.sql"), Ok(()));
    assert_eq!(
        check_dunder("./__test__/a/__x__/f.sql"),
        Err("__x__".into())
    );
    // A non-dunder segment does not consume its slash.
    assert_eq!(check_dunder("./a/__x__/f.sql"), Err("__x__".into()));
}

#[test]
fn go_quote_escapes() {
    assert_eq!(go_quote("./a b/é.sql"), "\"./a b/é.sql\"");
    assert_eq!(go_quote("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\x01\"");
}

#[test]
fn path_caps() {
    use crate::limits::{MAX_PATH_BYTES, MAX_PATH_DEPTH};
    assert_eq!(check_limits("a.sql"), Ok(()));
    assert_eq!(check_limits(&"a".repeat(MAX_PATH_BYTES)), Ok(()));
    assert_eq!(
        check_limits(&"a".repeat(MAX_PATH_BYTES + 1)),
        Err(PathLimit::TooLong {
            bytes: MAX_PATH_BYTES + 1
        })
    );
    // The leading "./" does not count.
    assert_eq!(
        check_limits(&format!("./{}", "a".repeat(MAX_PATH_BYTES))),
        Ok(())
    );
    let deep = |n: usize| format!("{}x.sql", "d/".repeat(n));
    assert_eq!(check_limits(&deep(MAX_PATH_DEPTH)), Ok(()));
    assert_eq!(
        check_limits(&deep(MAX_PATH_DEPTH + 1)),
        Err(PathLimit::TooDeep {
            depth: MAX_PATH_DEPTH + 1
        })
    );
}

#[test]
fn abbreviate_keeps_short_paths_and_cuts_long_ones_on_char_boundaries() {
    assert_eq!(abbreviate("./a/b.sql"), "./a/b.sql");
    let long = "é".repeat(1000);
    let short = abbreviate(&long);
    assert_eq!(short.chars().count(), 181);
    assert!(short.contains('…'));
}

// Through `project::build` (client walk and server routing share it): every path, tests
// included, is held to the caps, and the work per test directory is linear.
#[test]
fn build_holds_every_path_to_the_caps_and_stays_linear() {
    use crate::limits::MAX_PATH_DEPTH;
    use crate::project::{build, RawFile};
    let file = |path: String| RawFile {
        path,
        bytes: b"SELECT 1;".to_vec(),
    };
    let deep_test = format!("__test__/{}t.sql", "d/".repeat(MAX_PATH_DEPTH));
    let e = build(vec![file(deep_test)]).unwrap_err();
    assert!(e.to_string().contains("directories deep"), "{e}");

    // 2,000 test directories each ~190 deep: the old ancestor lookup hashed ~190 prefixes
    // per directory; now each is one pass (no timing asserted: debug builds on a busy
    // machine vary too much; the live test measures the server).
    let mut files = Vec::new();
    for i in 0..2_000 {
        files.push(file(format!("__test__/{}{i}/t.sql", "d/".repeat(190))));
    }
    let project = build(files).unwrap();
    assert_eq!(project.test_directories.len(), 2_000);
    assert!(project
        .test_directories
        .iter()
        .all(|d| d.parent_path.is_none()));
}

#[test]
fn test_directory_parents_are_the_nearest_listed_ancestor() {
    use crate::project::{build, RawFile};
    let file = |path: &str| RawFile {
        path: path.to_owned(),
        bytes: b"SELECT 1;".to_vec(),
    };
    let p = build(vec![
        file("__test__/t.sql"),
        file("__test__/a-b/t.sql"),
        file("__test__/a/t.sql"),
        file("__test__/a/x/y/t.sql"),
        file("__test__/a.b/t.sql"),
    ])
    .unwrap();
    let parents: Vec<(&str, Option<&str>)> = p
        .test_directories
        .iter()
        .map(|d| (d.path.as_str(), d.parent_path.as_deref()))
        .collect();
    assert_eq!(
        parents,
        [
            ("./__test__/", None),
            ("./__test__/a-b/", Some("./__test__/")),
            ("./__test__/a.b/", Some("./__test__/")),
            ("./__test__/a/", Some("./__test__/")),
            ("./__test__/a/x/y/", Some("./__test__/a/")),
        ]
    );
}
