use super::*;

fn raw(path: &str, bytes: &[u8]) -> RawFile {
    RawFile {
        path: path.to_owned(),
        bytes: bytes.to_vec(),
    }
}

fn built(files: &[(&str, &str)]) -> Project {
    build(files.iter().map(|(p, c)| raw(p, c.as_bytes())).collect()).unwrap()
}

fn err(files: Vec<RawFile>) -> ProjectError {
    build(files).unwrap_err()
}

fn dir(path: &str, parent: Option<&str>, depth: i32) -> TestDirectory {
    TestDirectory {
        path: path.into(),
        parent_path: parent.map(Into::into),
        depth,
    }
}

/// The error text names the file exactly once, in `./` form.
fn names_once(e: &ProjectError, path: &str) {
    let text = e.to_string();
    assert_eq!(text.matches(path).count(), 1, "{text}");
    assert_eq!(e.path(), Some(path));
}

#[test]
fn nul_byte_is_rejected_naming_the_file_once() {
    let e = err(vec![raw("data/blob.bin", b"ab\0cd")]);
    assert_eq!(e.kind(), ErrorKind::NulByte);
    assert!(
        e.to_string()
            .starts_with("file ./data/blob.bin contains a NUL byte; "),
        "{e}"
    );
    names_once(&e, "./data/blob.bin");
    assert!(e.hint().unwrap().contains("node_modules/"));
}

#[test]
fn invalid_utf8_is_rejected_naming_the_file_once() {
    let e = err(vec![raw("x.sql", b"\xff\xfe")]);
    assert_eq!(e.kind(), ErrorKind::InvalidUtf8);
    assert!(
        e.to_string()
            .starts_with("file ./x.sql is not valid UTF-8; "),
        "{e}"
    );
    names_once(&e, "./x.sql");
    // UTF-16 text contains NULs, which are reported first (the NUL check runs before the
    // UTF-8 check).
    let e = err(vec![raw("u16.sql", b"\xff\xfeS\0E\0")]);
    assert_eq!(e.kind(), ErrorKind::NulByte);
}

#[test]
fn bom_is_stripped() {
    let p = built(&[
        ("migrations/001_bom.sql", "\u{feff}CREATE TABLE t (id int);"),
        ("migrations/002_plain.sql", "CREATE TABLE t (id int);"),
    ]);
    let (a, b) = (&p.sources[0], &p.sources[1]);
    assert_eq!(a.content, "CREATE TABLE t (id int);");
    assert_eq!(a.content, b.content);
    assert_eq!(a.checksum, b.checksum);
    assert_eq!(a.pgmi_checksum, b.pgmi_checksum);
    assert_eq!(a.size_bytes(), 24);
    // Only one BOM goes.
    let p = built(&[("x.txt", "\u{feff}\u{feff}x")]);
    assert_eq!(p.sources[0].content, "\u{feff}x");
}

#[test]
fn unsupported_dunder_directory_is_rejected() {
    let e = err(vec![raw("__init__/x.py", b"")]);
    assert_eq!(e.kind(), ErrorKind::UnsupportedDirectory);
    assert_eq!(
        e.to_string(),
        "unsupported directory \"__init__\" in path \"./__init__/x.py\"; only __test__ and __tests__ are allowed"
    );
    names_once(&e, "./__init__/x.py");
    let e = err(vec![raw("__Test__/t.sql", b"")]);
    assert_eq!(e.kind(), ErrorKind::UnsupportedDirectory);
    // The dunder check runs before content checks.
    let e = err(vec![raw("__x__/bin", b"\0")]);
    assert_eq!(e.kind(), ErrorKind::UnsupportedDirectory);
}

#[test]
fn root_deploy_sql_excluded_nested_one_loaded() {
    let p = built(&[
        ("deploy.sql", "SELECT 1;"),
        ("examples/deploy.sql", "SELECT 2;"),
    ]);
    assert_eq!(p.files_loaded, 1);
    assert_eq!(p.sources.len(), 1);
    assert_eq!(p.sources[0].path.path, "./examples/deploy.sql");
    assert!(p.sources[0].path.is_sql_file());
}

#[test]
fn non_sql_test_files_are_dropped() {
    let p = built(&[
        ("__test__/README.md", "# tests"),
        ("__test__/test_a.sql", "SELECT 1;"),
    ]);
    assert!(p.sources.is_empty());
    assert_eq!(p.files_loaded, 2);
    assert_eq!(p.test_sources.len(), 1);
    let t = &p.test_sources[0];
    assert_eq!(t.path, "./__test__/test_a.sql");
    assert_eq!(t.directory, "./__test__/");
    assert_eq!(t.filename, "test_a.sql");
    assert_eq!(t.content, "SELECT 1;");
    assert!(!t.is_fixture);
    assert_eq!(p.test_directories, vec![dir("./__test__/", None, 0)]);
}

#[test]
fn only_setup_sql_and_setup_psql_are_fixtures() {
    let p = built(&[
        ("__test__/_SETUP.PSQL", ""),
        ("__test__/_setup.pgsql", ""),
        ("__test__/_teardown.sql", ""),
    ]);
    let fixture: Vec<(&str, bool)> = p
        .test_sources
        .iter()
        .map(|t| (t.filename.as_str(), t.is_fixture))
        .collect();
    assert_eq!(
        fixture,
        vec![
            ("_SETUP.PSQL", true),
            ("_setup.pgsql", false),
            ("_teardown.sql", false)
        ]
    );
}

#[test]
fn gapped_tree_parent_is_the_nearest_test_directory() {
    let p = built(&[
        ("__test__/_setup.sql", ""),
        ("__test__/test_a.sql", ""),
        ("__test__/sub/deep/test_b.sql", ""),
    ]);
    assert_eq!(
        p.test_directories,
        vec![
            dir("./__test__/", None, 0),
            dir("./__test__/sub/deep/", Some("./__test__/"), 2)
        ]
    );
    // Byte order of path: "sub/" sorts before "test_a.sql".
    assert_eq!(p.test_sources[1].filename, "test_b.sql");
    assert_eq!(p.test_sources[1].directory, "./__test__/sub/deep/");
}

#[test]
fn test_directory_rows_have_parent_depth_and_order() {
    let p = built(&[
        ("a/__test__/t.sql", ""),
        ("b/__test__/x/y/t.sql", ""),
        ("__test__/nested/__test__/t.sql", ""),
        ("__test__/t.sql", ""),
        ("src/__tests__/unit/data.json", "{}"),
        ("__test__/auth/oauth/t.sql", ""),
    ]);
    assert_eq!(
        p.test_directories,
        vec![
            dir("./__test__/", None, 0),
            dir("./a/__test__/", None, 0),
            dir("./src/__tests__/unit/", None, 1),
            dir("./__test__/auth/oauth/", Some("./__test__/"), 2),
            dir("./__test__/nested/__test__/", Some("./__test__/"), 2),
            dir("./b/__test__/x/y/", None, 2),
        ]
    );
    // The non-SQL file still produced its directory but no test source.
    assert_eq!(p.test_sources.len(), 5);
    assert_eq!(p.files_loaded, 6);
}

#[test]
fn excluded_paths_are_ignored_and_not_counted() {
    let p = build(vec![
        raw(".git/index", b"\0\0binary"),
        raw(".venv/lib/site.py", b"x"),
        raw("node_modules/pkg/index.js", b"\xff"),
        raw("api/__pycache__/g.pyc", b"\0"),
        raw(".env", b"PGPASSWORD=x"),
        raw("DEPLOY.SQL", b"SELECT 1;"),
    ])
    .unwrap();
    assert_eq!(p, Project::default());
}

#[test]
fn sources_route_metadata_only_for_sql() {
    let p = built(&[
        ("README.md", "/* <pgmi-meta id=\"not parsed\"/> */"),
        ("b.sql", "SELECT 1;"),
        ("a.txt", "x"),
    ]);
    let paths: Vec<&str> = p.sources.iter().map(|s| s.path.path.as_str()).collect();
    assert_eq!(paths, ["./README.md", "./a.txt", "./b.sql"]);
    assert!(p.sources.iter().all(|s| s.metadata.is_none()));
    assert!(!p.sources[0].path.is_sql_file());
    assert_eq!(p.sources[2].checksum.len(), 64);
}

#[test]
fn metadata_errors_and_duplicate_ids() {
    let e = err(vec![raw(
        "m.sql",
        b"/* <pgmi-meta idempotent=\"true\"/> */",
    )]);
    assert_eq!(e.kind(), ErrorKind::Metadata);
    assert_eq!(e.path(), Some("./m.sql"));
    assert!(e.to_string().contains("./m.sql"), "{e}");

    let block =
        "/* <pgmi-meta id=\"6f1c1a52-8f0e-4d3e-9b8a-0c7f1e2d3a4b\" idempotent=\"true\"/> */";
    let e = err(vec![
        raw("a.sql", block.as_bytes()),
        raw("b.sql", block.as_bytes()),
    ]);
    assert_eq!(e.kind(), ErrorKind::DuplicateIds);
    let text = e.to_string();
    assert!(
        text.contains("./a.sql") && text.contains("./b.sql"),
        "{text}"
    );

    // Metadata in a test file is never parsed.
    let p = built(&[("__test__/t.sql", "/* <pgmi-meta broken */")]);
    assert_eq!(p.test_sources.len(), 1);
}

#[test]
fn invalid_paths_are_rejected() {
    for (path, why) in [
        ("a/b.sql ", "different name"),
        ("a\\b.sql", "different name"),
        ("", "empty"),
        ("/abs.sql", "relative"),
        ("a//b.sql", "segment"),
        ("./a.sql", "segment"),
        ("a\0b", "NUL"),
    ] {
        let e = err(vec![raw(path, b"")]);
        assert_eq!(e.kind(), ErrorKind::InvalidPath, "{path:?}");
        assert!(e.to_string().contains(why), "{path:?}: {e}");
    }
    // A ".." segment starts with '.', so it is hidden like any dot-directory: ignored.
    assert_eq!(
        build(vec![raw("a/../b.sql", b"\0")]).unwrap().files_loaded,
        0
    );
    let e = err(vec![raw("x.txt", b"1"), raw("x.txt", b"2")]);
    assert!(e.to_string().contains("twice"), "{e}");
}

#[test]
fn constraint_errors_come_after_scan_errors() {
    let deep = format!("{}x.txt", "d/".repeat(101));
    let e = err(vec![raw(&deep, b"")]);
    assert_eq!(e.kind(), ErrorKind::InvalidPath);
    assert!(e.to_string().contains("chk_depth_reasonable"), "{e}");
    // A NUL in a later file wins over the earlier file's constraint violation.
    let e = err(vec![raw(&deep, b""), raw("z.bin", b"\0")]);
    assert_eq!(e.kind(), ErrorKind::NulByte);
    // Test files have no depth limit in the original pgmi's schema.
    let deep_test = format!("__test__/{}t.sql", "d/".repeat(120));
    assert_eq!(
        build(vec![raw(&deep_test, b"")]).unwrap().test_directories[0].depth,
        120
    );
}

#[test]
fn first_failing_file_in_byte_order_wins() {
    // '-' (0x2D) sorts before '/' (0x2F): byte order of the whole path.
    let e = err(vec![raw("a/x.bin", b"\0"), raw("a-b/x.bin", b"\0")]);
    assert_eq!(e.path(), Some("./a-b/x.bin"));
}

#[test]
fn ten_thousand_files_build_quickly() {
    let mut files = Vec::new();
    for i in 0..9_000 {
        files.push(raw(
            &format!("migrations/{:03}/{i:05}_step.sql", i % 300),
            b"CREATE TABLE t (id int); -- x",
        ));
    }
    for i in 0..1_000 {
        files.push(raw(
            &format!("__test__/d{:03}/e/f/test_{i:04}.sql", i % 200),
            b"SELECT 1;",
        ));
    }
    let start = std::time::Instant::now();
    let p = build(files).unwrap();
    let elapsed = start.elapsed();
    assert_eq!(p.files_loaded, 10_000);
    assert_eq!(p.sources.len(), 9_000);
    assert_eq!(p.test_directories.len(), 200);
    assert!(p
        .test_directories
        .iter()
        .all(|d| d.parent_path.is_none() && d.depth == 3));
    // Generous even for an unoptimised build; a quadratic step would take minutes.
    assert!(
        elapsed.as_secs() < 20,
        "build of 10,000 files took {elapsed:?}"
    );
}

#[test]
fn router_fed_in_order_and_finished_in_runs_equals_build() {
    let files = vec![
        raw("a.sql", b"/* <pgmi-meta id=\"11111111-1111-4111-8111-111111111111\" idempotent=\"true\"></pgmi-meta> */ SELECT 1;"),
        raw("b/__test__/_setup.sql", b"SELECT 0;"),
        raw("b/__test__/t.sql", b"SELECT 2;"),
        raw("b/c.txt", b"data"),
        raw("d.sql", b"SELECT   3 ;"),
    ];
    let expected = build(files.clone()).unwrap();

    let mut router = Router::default();
    let mut sources = Vec::new();
    for file in files {
        assert!(router.in_order(&file.path));
        router.push(file).unwrap();
        // A run per source here; any cut gives the same rows.
        let mut run = router.take_sources();
        finish(&mut run).unwrap();
        sources.extend(run);
    }
    assert!(
        !router.in_order("a.sql"),
        "a path already seen is not in order"
    );
    assert_eq!(router.pending_sources(), 0);
    let mut project = router.finish();
    project.sources = sources;
    finalize(&project).unwrap();
    assert_eq!(project, expected);
}

#[test]
fn finish_reports_the_first_metadata_error_of_a_run() {
    let mut project = route(vec![
        raw("a.sql", b"SELECT 1;"),
        raw(
            "b.sql",
            b"/* <pgmi-meta id=\"x\" idempotent=\"true\"></pgmi-meta> */",
        ),
        raw(
            "c.sql",
            b"/* <pgmi-meta id=\"y\" idempotent=\"true\"></pgmi-meta> */",
        ),
    ])
    .unwrap();
    let e = finish(&mut project.sources).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Metadata);
    assert_eq!(e.path(), Some("./b.sql"));
}

#[test]
fn unhashed_build_checks_the_same_and_hashing_it_later_gives_the_full_build() {
    // Enough files to spread the work over threads, one with metadata.
    let mut files: Vec<RawFile> = (0..600)
        .map(|i| {
            raw(
                &format!("m/{i:04}.sql"),
                format!("CREATE TABLE t{i} (id int); -- {i}\n").as_bytes(),
            )
        })
        .collect();
    files.push(raw(
        "m/meta.sql",
        b"/* <pgmi-meta id=\"8f0e5a5e-0000-4000-8000-000000000001\" idempotent=\"true\"><sortKeys><key>001</key></sortKeys></pgmi-meta> */ SELECT 1;",
    ));
    files.push(raw("__test__/test_a.sql", b"SELECT 1;"));
    let full = build(files.clone()).unwrap();
    let mut unhashed = build_unhashed(files.clone()).unwrap();
    assert!(unhashed
        .sources
        .iter()
        .all(|s| s.checksum.is_empty() && s.pgmi_checksum.is_empty()));
    assert!(unhashed.sources.iter().any(|s| s.metadata.is_some()));
    hash(&mut unhashed);
    assert_eq!(unhashed, full);

    // A metadata error is found without hashing, the same error as the full build's.
    files.push(raw(
        "m/bad.sql",
        b"/* <pgmi-meta id=\"nope\"></pgmi-meta> */",
    ));
    assert_eq!(
        build_unhashed(files.clone()).unwrap_err().to_string(),
        build(files).unwrap_err().to_string()
    );
}
