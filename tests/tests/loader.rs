//! The loader under hostile or broken input, privileges, and secrecy: every bad bundle
//! fails with a specific SQLSTATE and leaves the previous session state intact.

use pgmi_core::bundle;
use pgmi_core::project::RawFile;
use pgmi_tests::bundles::{good as good_bundle, gzip};
use pgmi_tests::{deploy, deploy_ok, pgmi_upload, Client, Project, TestDb};

/// A tar.gz built header by header, so it can hold what a well-behaved writer never would.
fn raw_bundle(entries: &[(&[u8], tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut tar = Vec::new();
    for (name, kind, data) in entries {
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.set_entry_type(*kind);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        if *kind == tar::EntryType::Symlink {
            header.as_old_mut().linkname[..6].copy_from_slice(b"/etc/x");
        }
        header.set_cksum();
        tar.extend_from_slice(header.as_bytes());
        tar.extend_from_slice(data);
        tar.resize(tar.len().div_ceil(512) * 512, 0);
    }
    tar.resize(tar.len() + 1024, 0);
    gzip(&tar)
}

/// Loads `bad` after a good bundle and returns its SQLSTATE and message; asserts that the
/// good session is still there.
fn rejected(db: &TestDb, c: &mut Client, bad: &[u8]) -> (String, String) {
    c.query("SELECT * FROM pgmi_load($1)", &[&good_bundle()])
        .expect("good load");
    let err = c
        .query("SELECT * FROM pgmi_load($1)", &[&bad])
        .expect_err("bad bundle must fail");
    let db_err = err
        .as_db_error()
        .unwrap_or_else(|| panic!("not a server error: {err}"));
    let out = (
        db_err.code().code().to_string(),
        db_err.message().to_string(),
    );
    assert!(
        db_err.hint().is_some(),
        "every loader error carries a hint: {out:?}"
    );
    let paths: Vec<String> = c
        .query("SELECT path FROM pgmi_source_view", &[])
        .expect("view")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        paths,
        ["./keep.sql"],
        "{}: the previous load must survive a failed one",
        db.name
    );
    out
}

#[test]
fn hostile_and_broken_bundles_are_rejected() {
    let db = TestDb::new("hostile");
    let mut c = db.client();
    let file = tar::EntryType::Regular;

    let (code, msg) = rejected(&db, &mut c, b"plain text is not a bundle");
    assert_eq!(code, "22P03", "{msg}");
    assert!(msg.contains("gzip"), "{msg}");

    let (code, msg) = rejected(
        &db,
        &mut c,
        &raw_bundle(&[(b"../evil.sql", file, b"SELECT 1;")]),
    );
    assert_eq!(code, "22023", "{msg}");
    assert!(msg.contains("../evil.sql"), "{msg}");

    let (code, msg) = rejected(
        &db,
        &mut c,
        &raw_bundle(&[(b"/etc/evil.sql", file, b"SELECT 1;")]),
    );
    assert_eq!(code, "22023", "{msg}");

    let (code, msg) = rejected(
        &db,
        &mut c,
        &raw_bundle(&[(b"link.sql", tar::EntryType::Symlink, b"")]),
    );
    assert_eq!(code, "22023", "{msg}");
    assert!(msg.contains("link.sql"), "{msg}");

    let mut truncated = good_bundle();
    truncated.truncate(truncated.len() / 2);
    let (code, msg) = rejected(&db, &mut c, &truncated);
    assert_eq!(code, "22P03", "{msg}");

    let (code, msg) = rejected(&db, &mut c, &raw_bundle(&[(b"blob.bin", file, b"a\x00b")]));
    assert_eq!(code, "22021", "{msg}");
    assert!(msg.contains("./blob.bin"), "{msg}");

    let meta = b"/* <pgmi-meta id=\"zzz\" idempotent=\"true\"></pgmi-meta> */";
    let (code, msg) = rejected(&db, &mut c, &raw_bundle(&[(b"bad_meta.sql", file, meta)]));
    assert_eq!(code, "22023", "{msg}");
    assert!(msg.contains("./bad_meta.sql"), "{msg}");
}

// A decompression bomb: 64 MiB of zeros compress to ~64 KiB; with a 16 MB unpacked limit
// the loader stops reading long before inflating all of it.
#[test]
fn decompression_bomb_is_stopped_by_the_unpacked_limit() {
    let db = TestDb::new("bomb");
    let mut c = db.client();
    let zeros = vec![0u8; 64 << 20];
    let bomb = raw_bundle(&[(b"bomb.sql", tar::EntryType::Regular, &zeros)]);
    assert!(
        bomb.len() < 1 << 20,
        "the bomb itself is small ({} bytes)",
        bomb.len()
    );
    c.batch_execute(
        "SET pgmi_loader.max_file_size = '1GB'; SET pgmi_loader.max_unpacked_size = '16MB'",
    )
    .expect("set limits");
    let (code, msg) = rejected(&db, &mut c, &bomb);
    assert_eq!(code, "54000", "{msg}");
}

#[test]
fn file_count_and_bundle_size_limits() {
    let db = TestDb::new("limits");
    let mut c = db.client();
    let files: Vec<RawFile> = (0..20)
        .map(|i| RawFile {
            path: format!("f{i:02}.sql"),
            bytes: b"SELECT 1;".to_vec(),
        })
        .collect();
    let many = bundle::write(&files, &[]).expect("bundle");
    c.batch_execute("SET pgmi_loader.max_files = 10")
        .expect("set");
    let (code, msg) = rejected(&db, &mut c, &many);
    assert_eq!(code, "54000", "{msg}");
    c.batch_execute("RESET pgmi_loader.max_files; SET pgmi_loader.max_bundle_size = '1kB'")
        .expect("set");
    let noise: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 | 0x20)
        .collect();
    let big = bundle::write(
        &[RawFile {
            path: "noise.txt".into(),
            bytes: noise.iter().map(|b| b & 0x7f).collect(),
        }],
        &[],
    )
    .expect("bundle");
    c.batch_execute("RESET pgmi_loader.max_bundle_size")
        .expect("reset");
    c.query("SELECT * FROM pgmi_load($1)", &[&big])
        .expect("fits the default limit");
    c.batch_execute("SET pgmi_loader.max_bundle_size = '1kB'")
        .expect("set");
    let (code, msg) = rejected(&db, &mut c, &big);
    assert_eq!(code, "54000", "{msg}");
}

// Duplicate <pgmi-meta> ids are caught by the server too (a psql user can upload anything).
#[test]
fn duplicate_metadata_ids_fail_the_load() {
    let db = TestDb::new("dupids");
    let mut c = db.client();
    let m = b"/* <pgmi-meta id=\"11111111-1111-1111-1111-111111111111\" idempotent=\"true\"></pgmi-meta> */";
    let (code, msg) = rejected(
        &db,
        &mut c,
        &raw_bundle(&[
            (b"a.sql", tar::EntryType::Regular, m),
            (b"b.sql", tar::EntryType::Regular, m),
        ]),
    );
    assert_eq!(code, "23505", "{msg}");
}

// A role that is not a superuser but has CREATE on the database installs the (trusted)
// extension through pgmi-upload, authenticating with PGPASSWORD over TCP. Without CREATE
// the uploader stops with exit 10 and names the fix.
#[test]
fn non_superuser_installs_the_trusted_extension() {
    let db = TestDb::empty("nonsuper");
    let role = format!("{}_app", db.name);
    let admin = pgmi_tests::connect("postgres");
    let mut admin = admin;
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'app-secret-pw'"
        ))
        .expect("create role");
    // PostgreSQL 15 gives nobody but the owner CREATE on public: the app uses its own schema.
    let project = Project::with_deploy("CREATE SCHEMA app; CREATE TABLE app.made_by_app (id int);");
    let path = project.path().to_str().expect("path");
    let env = [
        ("PGPASSWORD", "app-secret-pw"),
        ("PGHOST", "127.0.0.1"),
        ("PGUSER", role.as_str()),
    ];

    // Without CREATE on the database, `--session extension` is refused (auto would fall
    // back to the portable session, which tests/tests/portable.rs covers).
    let denied = pgmi_upload(
        &["deploy", path, "-d", &db.name, "--session", "extension"],
        &env,
    );
    assert_eq!(denied.code, 10, "{}", denied.stderr);
    assert!(
        denied.stderr.contains("--session portable"),
        "{}",
        denied.stderr
    );
    assert!(
        denied.stderr.contains("CREATE EXTENSION pgmi"),
        "{}",
        denied.stderr
    );
    assert!(!denied.stderr.contains("app-secret-pw"));

    admin
        .batch_execute(&format!("GRANT CREATE ON DATABASE {} TO {role}", db.name))
        .expect("grant");
    let run = pgmi_upload(&["deploy", path, "-d", &db.name], &env);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        db.text("SELECT extowner::regrole::text FROM pg_extension WHERE extname = 'pgmi'")
            .as_deref(),
        Some(role.as_str())
    );
    assert_eq!(
        db.text("SELECT tableowner::text FROM pg_tables WHERE tablename = 'made_by_app'")
            .as_deref(),
        Some(role.as_str())
    );
    drop(db);
    let _ = admin.batch_execute(&format!("DROP ROLE IF EXISTS {role}"));
}

// With log_statement = 'all' the server logs every statement; --verbose asks for those LOG
// lines too, so stderr shows what the server log got: the COPY statement, but never the
// bundle bytes or a parameter value.
#[test]
fn bundle_and_parameters_never_reach_the_server_log() {
    let db = TestDb::new("secrecy");
    db.client()
        .batch_execute(&format!(
            "ALTER DATABASE {} SET log_statement = 'all'",
            db.name
        ))
        .expect("alter database");
    let project = Project::with_deploy("SELECT current_setting('pgmi.token') IS NOT NULL;")
        .file("migrations/001.sql", "SELECT 'FILE_MARKER_7c1e';");
    let run = deploy(
        &project,
        &db.name,
        &["--verbose", "--param", "token=TOP_SECRET_91f2"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("COPY pg_temp._pgmi_upload"),
        "LOG lines must reach the client:\n{}",
        run.stderr
    );
    for secret in ["TOP_SECRET_91f2", "FILE_MARKER_7c1e", "\\x1f8b"] {
        assert!(
            !run.stderr.contains(secret),
            "{secret} leaked:\n{}",
            run.stderr
        );
    }
}

// Deploys into a database whose extension is missing create it (the role may).
#[test]
fn deploy_installs_the_extension_when_missing() {
    let db = TestDb::empty("autoext");
    let run = deploy_ok(&Project::with_deploy("SELECT 1;"), &db.name, &[]);
    assert!(
        run.stderr.contains("Installing extension pgmi"),
        "{}",
        run.stderr
    );
    assert_eq!(
        db.count("SELECT count(*) FROM pg_extension WHERE extname = 'pgmi'"),
        1
    );
}

/// `n` small SQL files in path order, every tenth with metadata, plus one test.
fn many_files(n: usize) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| {
            let body = if i % 10 == 0 {
                format!("/* <pgmi-meta id=\"00000000-0000-4000-8000-{i:012}\" idempotent=\"true\"><sortKeys><key>{i:04}</key></sortKeys></pgmi-meta> */\nSELECT {i};\n")
            } else {
                format!("-- file {i}\nSELECT   {i} ;\n")
            };
            (format!("m/{i:05}.sql"), body.into_bytes())
        })
        .collect();
    files.push(("m/__test__/t.sql".into(), b"SELECT 1 WHERE true;".to_vec()));
    files
}

fn session_rows(c: &mut Client) -> Vec<(String, String, String)> {
    c.query(
        "SELECT path, checksum, pgmi_checksum FROM pgmi_source_view ORDER BY path",
        &[],
    )
    .expect("sources")
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

// The loader routes files as they come out of the archive and inserts the first ones
// while later ones are still unpacked; that needs path order, which pgmi-upload's bundles
// have and a hand-made tar usually lacks. An out-of-order entry after more than one run
// of files makes the loader start over; the result is the same session.
#[test]
fn an_unsorted_bundle_loads_like_a_sorted_one() {
    let db = TestDb::new("unsorted");
    let mut c = db.client();
    let mut files = many_files(1500);
    files.push(("a_first.sql".into(), b"SELECT 'first';".to_vec()));
    let entries: Vec<(&[u8], tar::EntryType, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_bytes(), tar::EntryType::Regular, b.as_slice()))
        .collect();
    let summary = c
        .query_one(
            "SELECT files, sql_files, test_files FROM pgmi_load($1)",
            &[&raw_bundle(&entries)],
        )
        .expect("unsorted bundle loads");
    assert_eq!(
        (
            summary.get::<_, i32>(0),
            summary.get::<_, i32>(1),
            summary.get::<_, i32>(2)
        ),
        (1502, 1501, 1)
    );
    let unsorted = session_rows(&mut c);
    let metadata = c
        .query_one("SELECT count(*) FROM pgmi_source_metadata_view", &[])
        .expect("metadata")
        .get::<_, i64>(0);

    let raw: Vec<RawFile> = files
        .iter()
        .map(|(p, b)| RawFile {
            path: p.clone(),
            bytes: b.clone(),
        })
        .collect();
    c.query(
        "SELECT * FROM pgmi_load($1)",
        &[&bundle::write(&raw, &[]).expect("bundle")],
    )
    .expect("sorted bundle loads");
    let sorted = session_rows(&mut c);
    assert_eq!(unsorted.len(), 1501);
    assert_eq!(unsorted, sorted);
    assert_eq!(metadata, 150);
    assert_eq!(
        c.query_one("SELECT count(*) FROM pgmi_source_metadata_view", &[])
            .expect("metadata")
            .get::<_, i64>(0),
        150
    );
}

// Files are checked while the archive is still being read, yet the errors keep their
// order: a broken archive beats a bad file before the break, and a file's metadata error
// beats a bad file after it.
#[test]
fn load_errors_keep_their_precedence_while_streaming() {
    let db = TestDb::new("precedence");
    let mut c = db.client();
    let bad_meta: &[u8] = b"/* <pgmi-meta id=\"zzz\" idempotent=\"true\"></pgmi-meta> */";
    let files = many_files(1200);
    let mut entries: Vec<(&[u8], tar::EntryType, &[u8])> =
        vec![(b"a.sql", tar::EntryType::Regular, bad_meta)];
    entries.extend(
        files
            .iter()
            .map(|(p, b)| (p.as_bytes(), tar::EntryType::Regular, b.as_slice())),
    );

    let mut broken = raw_bundle(&entries);
    broken.truncate(broken.len() - 200);
    let (code, msg) = rejected(&db, &mut c, &broken);
    assert_eq!(code, "22P03", "the broken archive comes first: {msg}");

    entries.push((b"z.bin", tar::EntryType::Regular, b"nul\x00byte"));
    let (code, msg) = rejected(&db, &mut c, &raw_bundle(&entries));
    assert_eq!(code, "22023", "{msg}");
    assert!(
        msg.contains("./a.sql"),
        "the earlier file's error comes first: {msg}"
    );

    let (code, msg) = rejected(&db, &mut c, &raw_bundle(&entries[1..]));
    assert_eq!(code, "22021", "{msg}");
    assert!(msg.contains("./z.bin"), "{msg}");

    // Out of order: the bad file comes first in the archive, the file that comes first in
    // path order after it. Path order decides, as for a sorted bundle.
    let unsorted = raw_bundle(&[
        (b"z.bin", tar::EntryType::Regular, b"nul\x00byte"),
        (b"a.sql", tar::EntryType::Regular, bad_meta),
    ]);
    let (code, msg) = rejected(&db, &mut c, &unsorted);
    assert_eq!(code, "22023", "{msg}");
    assert!(msg.contains("./a.sql"), "{msg}");
}
