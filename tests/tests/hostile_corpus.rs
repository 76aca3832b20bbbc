//! A corpus of hostile projects and bundles (issue 7, item 5): every one gets its own
//! specific error — an exit code of `pgmi-upload` with a telling message, or a SQLSTATE of
//! `pgmi_load` — within a second, and leaves nothing half-loaded: no target table, and no
//! session table with rows in it. Each table row below is one case and its expected
//! outcome; the run prints every case with its time and the slowest one.
//!
//! Projects go through the real `pgmi-upload` binary; bundles are handed to `pgmi_load`
//! directly, as a psql user could. Everything runs on a throw-away cluster, whose log is
//! checked for crashes at the end.

use std::os::unix::ffi::OsStrExt;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pgmi_core::bundle;
use pgmi_core::limits::{MAX_HEADER_BYTES, MAX_PATH_BYTES, MAX_PATH_DEPTH};
use pgmi_core::project::RawFile;
use pgmi_tests::bundles::{good, gzip, lying_header};
use pgmi_tests::cluster::Cluster;
use pgmi_tests::{pgmi_upload, Project};

/// "Within a second", with room for a busy CI machine running debug builds.
const BOUND: Duration = Duration::from_secs(5);

/// What every hostile project's deploy.sql would do if it ever ran.
const DEPLOY: &str = "CREATE TABLE hostile_target (id int);\n";

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| Cluster::builder().start())
}

fn assert_no_crash(cluster: &Cluster) {
    let log = cluster.log();
    let crashes: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("terminated by signal") || l.contains("PANIC"))
        .collect();
    assert!(
        crashes.is_empty(),
        "the server log shows a crash:\n{crashes:#?}"
    );
}

fn database_exists(name: &str) -> bool {
    cluster()
        .connect("postgres")
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .expect("pg_database")
        .is_some()
}

// ---------------------------------------------------------------------------------------
// Projects through pgmi-upload

struct ProjectCase {
    name: &'static str,
    project: Project,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    /// Replaces the project directory argument (a missing path, a plain file).
    path: Option<String>,
    code: i32,
    needle: &'static str,
}

fn case(name: &'static str, project: Project, code: i32, needle: &'static str) -> ProjectCase {
    ProjectCase {
        name,
        project,
        args: Vec::new(),
        env: Vec::new(),
        path: None,
        code,
        needle,
    }
}

impl ProjectCase {
    fn args(mut self, args: &[&str]) -> ProjectCase {
        self.args = args.iter().map(|s| s.to_string()).collect();
        self
    }

    fn env(mut self, key: &'static str, value: &str) -> ProjectCase {
        self.env.push((key, value.to_string()));
        self
    }

    fn path(mut self, path: String) -> ProjectCase {
        self.path = Some(path);
        self
    }
}

fn deploy_project() -> Project {
    Project::with_deploy(DEPLOY)
}

fn symlink(project: Project, target: &str, link: &str) -> Project {
    std::os::unix::fs::symlink(target, project.path().join(link)).expect("symlink");
    project
}

fn meta(id: &str) -> String {
    format!("/* <pgmi-meta id=\"{id}\" idempotent=\"true\"></pgmi-meta> */\nSELECT 1;\n")
}

const ID: &str = "11111111-1111-1111-1111-111111111111";

/// The cases; `scratch` holds the files that live outside any project (parameters files,
/// a plain file given as the project path) and outlives the run.
fn project_cases(scratch: &std::path::Path) -> Vec<ProjectCase> {
    let deep = format!("__test__/{}t.sql", "d/".repeat(MAX_PATH_DEPTH));
    let deep_source = format!("{}s.sql", "d/".repeat(MAX_PATH_DEPTH + 1));
    let fifo = deploy_project();
    let fifo_path = fifo.path().join("pipe.sql");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo_path)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let mut non_utf8_name = deploy_project();
    {
        let name = std::ffi::OsStr::from_bytes(b"caf\xe9.sql");
        std::fs::write(non_utf8_name.path().join(name), "SELECT 1;").expect("write");
        non_utf8_name = non_utf8_name.file("ok.sql", "SELECT 1;");
    }
    let params = |name: &str, content: &[u8]| -> String {
        let path = scratch.join(name);
        std::fs::write(&path, content).expect("write params file");
        path.to_str().expect("utf-8").to_string()
    };
    let plain_file_path = params("plain.txt", b"not a directory");
    let bad_params_file = params("bad.env", b"this line has no equals sign\n");
    let nul_params_file = params("nul.env", b"key=va\0lue\n");
    let bad_key_params_file = params("badkey.env", b"1bad=x\n");

    vec![
        // file contents
        case(
            "nul_byte_in_sql",
            deploy_project().file("a.sql", b"SELECT 1;\0"),
            10,
            "./a.sql",
        ),
        case(
            "invalid_utf8_sql",
            deploy_project().file("a.sql", b"SELECT '\xff\xfe';"),
            10,
            "is not valid UTF-8",
        ),
        case(
            "binary_blob",
            deploy_project().file("data/blob.bin", b"\x89PNG\r\n\x1a\n\0\0\0"),
            10,
            "./data/blob.bin",
        ),
        case(
            "utf16_text",
            deploy_project().file("u.sql", b"\xff\xfeS\0E\0L\0"),
            10,
            "./u.sql",
        ),
        case(
            "file_over_default_cap",
            deploy_project().file("big.txt", vec![b'x'; 10 * 1024 * 1024 + 1]),
            10,
            "./big.txt",
        ),
        case(
            "file_over_env_cap",
            deploy_project().file("mid.sql", vec![b'-'; 2000]),
            10,
            "./mid.sql",
        )
        .env("PGMI_MAX_FILE_SIZE", "1000"),
        case("bad_max_file_size", deploy_project(), 10, "PGMI_MAX_FILE_SIZE")
            .env("PGMI_MAX_FILE_SIZE", "lots"),
        case("negative_max_file_size", deploy_project(), 10, "PGMI_MAX_FILE_SIZE")
            .env("PGMI_MAX_FILE_SIZE", "-1"),
        // file system objects
        case(
            "symlink_to_file",
            symlink(deploy_project().file("real.sql", "SELECT 1;"), "real.sql", "link.sql"),
            10,
            "symlink",
        ),
        case(
            "symlink_to_dir",
            symlink(deploy_project().file("d/x.sql", "SELECT 1;"), "d", "e"),
            10,
            "symlink",
        ),
        case(
            "dangling_symlink",
            symlink(deploy_project(), "nowhere.sql", "gone.sql"),
            10,
            "symlink",
        ),
        case(
            "symlink_out_of_project",
            symlink(deploy_project(), "/etc/passwd", "passwd.sql"),
            10,
            "symlink",
        ),
        case("fifo", fifo, 10, "./pipe.sql"),
        case("non_utf8_file_name", non_utf8_name, 10, "UTF-8"),
        // paths
        case(
            "test_tree_too_deep",
            deploy_project().file(&deep, "SELECT 1;"),
            10,
            "directories deep",
        ),
        case(
            "source_tree_too_deep",
            deploy_project().file(&deep_source, "SELECT 1;"),
            10,
            "directories deep",
        ),
        case(
            "unsupported_dunder_dir",
            deploy_project().file("__init__/x.sql", "SELECT 1;"),
            10,
            "unsupported directory \"__init__\"",
        ),
        case(
            "test_dir_wrong_case",
            deploy_project().file("__Test__/t.sql", "SELECT 1;"),
            10,
            "__Test__",
        ),
        case(
            "dunder_dir_in_subdir",
            deploy_project().file("a/__setup__/x.sql", "SELECT 1;"),
            10,
            "__setup__",
        ),
        // metadata
        case(
            "duplicate_meta_ids",
            deploy_project()
                .file("a.sql", meta(ID))
                .file("b.sql", meta(ID)),
            10,
            ID,
        ),
        case("meta_id_not_uuid", deploy_project().file("a.sql", meta("zzz")), 10, "./a.sql"),
        case(
            "meta_unterminated",
            deploy_project().file(
                "a.sql",
                format!("/* <pgmi-meta id=\"{ID}\" idempotent=\"true\"> */\nSELECT 1;\n"),
            ),
            10,
            "./a.sql",
        ),
        case(
            "meta_bad_idempotent",
            deploy_project().file(
                "a.sql",
                format!("/* <pgmi-meta id=\"{ID}\" idempotent=\"maybe\"></pgmi-meta> */\n"),
            ),
            10,
            "./a.sql",
        ),
        case(
            "meta_mismatched_end_tag",
            deploy_project().file(
                "a.sql",
                format!("/* <pgmi-meta id=\"{ID}\" idempotent=\"true\"></pgmi-metax> */\n"),
            ),
            10,
            "./a.sql",
        ),
        case(
            "meta_twice_in_one_file",
            deploy_project().file(
                "a.sql",
                format!("{}{}", meta(ID), meta("22222222-2222-2222-2222-222222222222")),
            ),
            10,
            "./a.sql",
        ),
        // parameters
        case("param_key_starts_with_digit", deploy_project(), 10, "1bad")
            .args(&["--param", "1bad=x"]),
        case("param_without_equals", deploy_project(), 10, "novalue")
            .args(&["--param", "novalue"]),
        case("param_key_too_long", deploy_project(), 10, "63")
            .args(&["--param", &format!("{}=x", "k".repeat(64))]),
        case("param_key_with_dot", deploy_project(), 10, "a.b").args(&["--param", "a.b=x"]),
        case("params_file_missing", deploy_project(), 10, "no-such.env")
            .args(&["--params-file", "/nonexistent/no-such.env"]),
        case("params_file_bad_line", deploy_project(), 10, "bad.env")
            .args(&["--params-file", &bad_params_file]),
        // The message names the key but not the file or line (the other params-file
        // errors do): worth adding.
        case("params_file_nul_byte", deploy_project(), 10, "NUL byte")
            .args(&["--params-file", &nul_params_file]),
        case("params_file_bad_key", deploy_project(), 10, "1bad")
            .args(&["--params-file", &bad_key_params_file]),
        // deploy.sql
        case(
            "deploy_sql_missing",
            Project::new().file("a.sql", "SELECT 1;"),
            14,
            "deploy.sql",
        ),
        case(
            "deploy_sql_is_a_directory",
            Project::new().file("deploy.sql/x.sql", "SELECT 1;"),
            10,
            "is a directory",
        ),
        case(
            "deploy_sql_invalid_utf8",
            Project::with_deploy("SELECT '\u{0}';").file("deploy.sql", b"SELECT '\xc3\x28';"),
            10,
            "deploy.sql",
        ),
        case(
            "deploy_sql_binary",
            Project::new().file("deploy.sql", b"\x1f\x8b\x08\0\0\0\0\0\0\x03"),
            10,
            "deploy.sql",
        ),
        case(
            "deploy_sql_nul_byte",
            Project::new().file("deploy.sql", b"CREATE TABLE hostile_target (id int);\0"),
            10,
            "deploy.sql",
        ),
        case(
            "deploy_sql_dangling_symlink",
            symlink(Project::new(), "elsewhere.sql", "deploy.sql"),
            14,
            "deploy.sql",
        ),
        // pgmi.yaml
        case(
            "yaml_unknown_key",
            deploy_project().file("pgmi.yaml", "connection:\n  password: x\n"),
            10,
            "password",
        ),
        case(
            "yaml_wrong_type",
            deploy_project().file("pgmi.yaml", "connection:\n  port: many\n"),
            10,
            "port",
        ),
        case(
            "yaml_not_yaml",
            deploy_project().file("pgmi.yaml", "connection: [unclosed\n"),
            10,
            "pgmi.yaml",
        ),
        case(
            "yaml_binary",
            deploy_project().file("pgmi.yaml", b"\0\x01\x02\xff"),
            10,
            "pgmi.yaml",
        ),
        case(
            "yaml_bad_timeout",
            deploy_project().file("pgmi.yaml", "timeout: soon\n"),
            10,
            "timeout",
        ),
        // flags and the environment
        case("timeout_garbage", deploy_project(), 10, "forever")
            .args(&["--timeout", "forever"]),
        case("lock_timeout_negative", deploy_project(), 10, "--lock-timeout")
            .args(&["--lock-timeout", "-5s"]),
        case("compat_2", deploy_project(), 10, "--compat").args(&["--compat", "2"]),
        case("test_report_bad_format", deploy_project(), 10, "xml")
            .args(&["--test-report", "xml=out.xml"]),
        case("port_zero", deploy_project(), 10, "port").args(&["-p", "0"]),
        case("bad_connection_uri", deploy_project(), 10, "connection")
            .args(&["--connection", "postgresql://[::1"]),
        case("connection_unknown_key", deploy_project(), 10, "frobnicate")
            .args(&["--connection", "host=x frobnicate=1"]),
        case("connection_with_host_flag", deploy_project(), 10, "-h")
            .args(&["--connection", "host=x", "-h", "y"]),
        case("project_is_a_file", Project::new(), 10, "directory").path(plain_file_path),
        case("project_missing", Project::new(), 10, "no-such-project")
            .path("/nonexistent/no-such-project".to_string()),
        // online: the atomic head fails after doing work
        case(
            "head_fails_after_work",
            Project::with_deploy(
                "BEGIN;\nCREATE TABLE hostile_target (id int);\nSELECT 1/0;\nCOMMIT;\n",
            ),
            13,
            "division by zero",
        ),
        case(
            "head_syntax_error",
            Project::with_deploy("CREATE TABLE hostile_target (id int);\nSELEC 1;\n"),
            13,
            "42601",
        ),
        case(
            "head_raises",
            Project::with_deploy(
                "CREATE TABLE hostile_target (id int);\nDO $$ BEGIN RAISE EXCEPTION 'no'; END $$;\n",
            ),
            13,
            "no",
        ),
    ]
}

#[test]
fn hostile_projects_fail_fast_with_specific_exit_codes() {
    let cluster = cluster();
    let socket = cluster.socket_dir().to_str().expect("utf-8").to_string();
    let port = cluster.port().to_string();
    let mut failures = Vec::new();
    let mut slowest = (Duration::ZERO, "");
    let scratch = tempfile::tempdir().expect("tempdir");
    let cases = project_cases(scratch.path());
    let total = cases.len();
    for (i, case) in cases.into_iter().enumerate() {
        let db = format!("hostile_p_{}_{i}", std::process::id());
        let path = case
            .path
            .clone()
            .unwrap_or_else(|| case.project.path().to_str().expect("utf-8").to_string());
        let mut args: Vec<&str> = vec!["deploy", &path, "-d", &db];
        args.extend(case.args.iter().map(String::as_str));
        // --connection cannot be combined with PGHOST/PGPORT from the environment;
        // those cases fail offline anyway, so they keep the test runner's defaults.
        let mut env: Vec<(&str, &str)> = Vec::new();
        if !case.args.iter().any(|a| a == "--connection") {
            env.extend([("PGHOST", socket.as_str()), ("PGPORT", port.as_str())]);
        }
        env.push(("PGUSER", "postgres"));
        env.extend(case.env.iter().map(|(k, v)| (*k, v.as_str())));
        let started = Instant::now();
        let run = pgmi_upload(&args, &env);
        let took = started.elapsed();
        if took > slowest.0 {
            slowest = (took, case.name);
        }
        let first_error = run
            .stderr
            .lines()
            .find(|l| l.starts_with("pgmi: error"))
            .unwrap_or("")
            .to_string();
        eprintln!(
            "project {:<30} exit {:>3} in {:>7.1?}  {first_error}",
            case.name, run.code, took
        );
        let mut problems = Vec::new();
        if run.code != case.code {
            problems.push(format!("exit {} instead of {}", run.code, case.code));
        }
        if !run.stderr.contains(case.needle) {
            problems.push(format!("stderr lacks {:?}", case.needle));
        }
        if took > BOUND {
            problems.push(format!("took {took:?}"));
        }
        if database_exists(&db) {
            if run.code != 13 {
                problems.push("a database was created by a deploy that failed offline".into());
            }
            let mut c = cluster.connect(&db);
            let target: Option<String> = c
                .query_one("SELECT to_regclass('hostile_target')::text", &[])
                .expect("to_regclass")
                .get(0);
            if target.is_some() {
                problems.push("the head's table exists".into());
            }
            drop(c);
            cluster.execute(&format!("DROP DATABASE {db} WITH (FORCE)"));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {}\n{}",
                case.name,
                problems.join("; "),
                run.stderr
            ));
        }
    }
    eprintln!(
        "{total} hostile projects; slowest: {} in {:?}",
        slowest.1, slowest.0
    );
    assert!(total >= 50, "the corpus has {total} projects");
    assert_no_crash(cluster);
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Bundles through pgmi_load

/// One tar header (old format, name ≤ 100 bytes), with its data padded to a block.
fn entry(name: &[u8], kind: tar::EntryType, data: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_entry_type(kind);
    header.set_size(if kind == tar::EntryType::Regular {
        data.len() as u64
    } else {
        0
    });
    header.set_mode(0o644);
    if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
        header.as_old_mut().linkname[..8].copy_from_slice(b"deploy.s");
    }
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    if kind == tar::EntryType::Regular {
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out
}

/// A tar.gz of regular files, header by header.
fn raw(entries: &[(&[u8], &[u8])]) -> Vec<u8> {
    raw_kinds(
        &entries
            .iter()
            .map(|(n, d)| (*n, tar::EntryType::Regular, *d))
            .collect::<Vec<_>>(),
    )
}

fn raw_kinds(entries: &[(&[u8], tar::EntryType, &[u8])]) -> Vec<u8> {
    gzip(&raw_tar(entries))
}

fn raw_tar(entries: &[(&[u8], tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut tar = Vec::new();
    for (name, kind, data) in entries {
        tar.extend(entry(name, *kind, data));
    }
    tar.resize(tar.len() + 1024, 0);
    tar
}

/// A bundle of one file whose (long) name goes into a GNU long-name entry.
fn gnu_long(path: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(9);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, path, &b"SELECT 1;"[..])
        .expect("append");
    gzip(&b.into_inner().expect("tar"))
}

/// A PAX extended header setting `path`, then a regular file named `decoy.sql`.
fn pax_path(path: &str) -> Vec<u8> {
    let record = {
        let body = format!(" path={path}\n");
        let mut len = body.len() + 1;
        while format!("{len}{body}").len() != len {
            len += 1;
        }
        format!("{len}{body}")
    };
    let mut h = tar::Header::new_ustar();
    h.set_path("PaxHeader/decoy.sql").expect("path");
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_size(record.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    let mut tar = h.as_bytes().to_vec();
    tar.extend_from_slice(record.as_bytes());
    tar.resize(tar.len().div_ceil(512) * 512, 0);
    tar.extend(entry(b"decoy.sql", tar::EntryType::Regular, b"SELECT 1;"));
    tar.resize(tar.len() + 1024, 0);
    gzip(&tar)
}

fn params_bundle(json: &[u8]) -> Vec<u8> {
    raw(&[(b"a.sql", b"SELECT 1;"), (b".pgmi/parameters.json", json)])
}

struct BundleCase {
    name: &'static str,
    bundle: Vec<u8>,
    /// Run first on the loading session (limits).
    setup: &'static str,
    /// The SQLSTATE, or [`LOADS`] for input that is odd but harmless.
    sqlstate: &'static str,
    needle: &'static str,
}

/// The expectation of a case that must load (and is in the corpus to prove it harmless).
const LOADS: &str = "loaded";

fn b(
    name: &'static str,
    bundle: Vec<u8>,
    sqlstate: &'static str,
    needle: &'static str,
) -> BundleCase {
    BundleCase {
        name,
        bundle,
        setup: "",
        sqlstate,
        needle,
    }
}

impl BundleCase {
    fn setup(mut self, sql: &'static str) -> BundleCase {
        self.setup = sql;
        self
    }
}

fn bundle_cases() -> Vec<BundleCase> {
    use tar::EntryType as E;
    let file = b"SELECT 1;";
    let mut truncated = good();
    truncated.truncate(truncated.len() / 2);
    let mut trailing = good();
    trailing.extend_from_slice(b"garbage after the gzip stream");
    let mut bad_crc = good();
    let n = bad_crc.len();
    bad_crc[n - 8] ^= 0xff;
    let short_entry = {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..5].copy_from_slice(b"a.sql");
        h.set_entry_type(E::Regular);
        h.set_size(100_000);
        h.set_mode(0o644);
        h.set_cksum();
        let mut tar = h.as_bytes().to_vec();
        tar.extend_from_slice(&[b'x'; 512]);
        gzip(&tar)
    };
    let bad_checksum = {
        let mut tar = raw_tar(&[(b"a.sql", E::Regular, file)]);
        tar[148..156].copy_from_slice(b"0000000\0");
        gzip(&tar)
    };
    let zeros = vec![0u8; 64 << 20];
    let bomb = raw(&[(b"bomb.sql", &zeros)]);
    let many: Vec<RawFile> = (0..20)
        .map(|i| RawFile {
            path: format!("f{i:02}.sql"),
            bytes: file.to_vec(),
        })
        .collect();
    let many = bundle::write(&many, &[]).expect("bundle");
    let noise: Vec<u8> = (0..8192u32)
        .map(|i| ((i.wrapping_mul(2654435761) >> 13) as u8 | 0x20) & 0x7f)
        .collect();
    let noisy = bundle::write(
        &[RawFile {
            path: "noise.txt".into(),
            bytes: noise,
        }],
        &[],
    )
    .expect("bundle");
    let m = meta(ID);

    vec![
        // envelope
        b("empty_bytea", Vec::new(), "22P03", "gzip"),
        b(
            "plain_text",
            b"plain text is not a bundle".to_vec(),
            "22P03",
            "gzip",
        ),
        b(
            "zip_magic",
            b"PK\x03\x04\x14\0\0\0".to_vec(),
            "22P03",
            "gzip",
        ),
        // An empty project: nothing to refuse.
        b("gzip_of_nothing", gzip(b""), LOADS, ""),
        b("empty_tar", gzip(&[0u8; 1024]), LOADS, ""),
        b(
            "gzip_of_text",
            gzip(&b"not a tar archive\n".repeat(100)),
            "22P03",
            "",
        ),
        b("truncated_gzip", truncated, "22P03", "gzip"),
        b("gzip_bad_crc", bad_crc, "22P03", "gzip"),
        b(
            "gzip_trailing_garbage",
            trailing,
            "22P03",
            "follow the end of the gzip stream",
        ),
        b("tar_entry_cut_short", short_entry, "22P03", ""),
        b("tar_bad_checksum", bad_checksum, "22P03", ""),
        // entry kinds
        b(
            "symlink_entry",
            raw_kinds(&[(b"link.sql", E::Symlink, b"")]),
            "22023",
            "link.sql",
        ),
        b(
            "hardlink_entry",
            raw_kinds(&[(b"hard.sql", E::Link, b"")]),
            "22023",
            "hard.sql",
        ),
        b(
            "char_device",
            raw_kinds(&[(b"dev.sql", E::Char, b"")]),
            "22023",
            "dev.sql",
        ),
        b(
            "block_device",
            raw_kinds(&[(b"blk.sql", E::Block, b"")]),
            "22023",
            "blk.sql",
        ),
        b(
            "fifo_entry",
            raw_kinds(&[(b"fifo.sql", E::Fifo, b"")]),
            "22023",
            "fifo.sql",
        ),
        b(
            "sparse_entry",
            raw_kinds(&[(b"sparse.sql", E::GNUSparse, b"")]),
            "22023",
            "sparse.sql",
        ),
        // paths
        b(
            "dotdot",
            raw(&[(b"../evil.sql", file)]),
            "22023",
            "../evil.sql",
        ),
        b(
            "dotdot_inside",
            raw(&[(b"a/../../evil.sql", file)]),
            "22023",
            "evil.sql",
        ),
        b(
            "absolute",
            raw(&[(b"/etc/evil.sql", file)]),
            "22023",
            "/etc/evil.sql",
        ),
        b(
            "empty_segment",
            raw(&[(b"a//b.sql", file)]),
            "22023",
            "a//b.sql",
        ),
        // A backslash is an ordinary character in a POSIX file name (the path is text in
        // the session and never touches a file system), and a name starting with a dot is
        // a hidden file, which is skipped: it loads as an empty project.
        b(
            "backslash_dotdot",
            raw(&[(b"..\\evil.sql", file)]),
            LOADS,
            "",
        ),
        b(
            "non_utf8_name",
            raw(&[(b"caf\xe9.sql", file)]),
            "22023",
            "not valid UTF-8",
        ),
        b(
            "pax_path_dotdot",
            pax_path("../pax.sql"),
            "22023",
            "pax.sql",
        ),
        b(
            "pax_path_absolute",
            pax_path("/tmp/pax.sql"),
            "22023",
            "pax.sql",
        ),
        b(
            "gnu_long_name_dotdot",
            gnu_long(&format!("{}/../../../x.sql", "a".repeat(120))),
            "22023",
            "x.sql",
        ),
        b(
            "path_too_long",
            gnu_long(&format!("{}.sql", "n".repeat(MAX_PATH_BYTES))),
            "54000",
            "bytes long",
        ),
        b(
            "path_too_deep",
            gnu_long(&format!("{}t.sql", "d/".repeat(MAX_PATH_DEPTH + 1))),
            "54000",
            "directories deep",
        ),
        b(
            "test_path_too_deep",
            gnu_long(&format!(
                "__test__/{}t.sql",
                "d/".repeat(MAX_PATH_DEPTH + 1)
            )),
            "54000",
            "directories deep",
        ),
        b(
            "unsupported_dunder",
            raw(&[(b"__init__/x.sql", file)]),
            "22023",
            "__init__",
        ),
        b(
            "test_dir_wrong_case",
            raw(&[(b"__Test__/t.sql", file)]),
            "22023",
            "__Test__",
        ),
        b(
            "duplicate_entries",
            raw(&[(b"a.sql", file), (b"a.sql", file)]),
            "22023",
            "more than once",
        ),
        b(
            "duplicate_after_dot_slash",
            raw(&[(b"a.sql", file), (b"./a.sql", file)]),
            "22023",
            "more than once",
        ),
        // headers
        b(
            "huge_gnu_long_name",
            lying_header(E::GNULongName, 1 << 30),
            "54000",
            "GNU long-name header",
        ),
        b(
            "huge_gnu_long_link",
            lying_header(E::GNULongLink, 1 << 30),
            "54000",
            "GNU long-link header",
        ),
        b(
            "huge_pax_header",
            lying_header(E::XHeader, MAX_HEADER_BYTES + 1),
            "54000",
            "PAX extended header",
        ),
        // contents
        b(
            "nul_byte",
            raw(&[(b"blob.bin", b"a\x00b")]),
            "22021",
            "./blob.bin",
        ),
        b(
            "invalid_utf8",
            raw(&[(b"latin.sql", b"SELECT '\xe9';")]),
            "22021",
            "./latin.sql",
        ),
        b(
            "bad_meta_id",
            raw(&[(b"m.sql", meta("zzz").as_bytes())]),
            "22023",
            "./m.sql",
        ),
        b(
            "duplicate_meta_ids",
            raw(&[(b"a.sql", m.as_bytes()), (b"b.sql", m.as_bytes())]),
            "23505",
            "duplicate <pgmi-meta id>",
        ),
        // parameters
        b(
            "params_not_json",
            params_bundle(b"not json"),
            "22P03",
            "parameters.json",
        ),
        b(
            "params_wrong_shape",
            params_bundle(br#"{"a":"b"}"#),
            "22P03",
            "parameters.json",
        ),
        b(
            "params_bad_key",
            params_bundle(br#"[["1bad","x"]]"#),
            "22023",
            "1bad",
        ),
        b(
            "params_duplicate_key",
            params_bundle(br#"[["k","x"],["K","y"]]"#),
            "23505",
            "differ only in case",
        ),
        b(
            "params_nul_value",
            params_bundle(br#"[["k","a\u0000b"]]"#),
            "22023",
            "k",
        ),
        // limits
        b("gzip_bomb", bomb, "54000", "").setup(
            "SET pgmi_loader.max_file_size = '1GB'; SET pgmi_loader.max_unpacked_size = '16MB'",
        ),
        b(
            "file_over_limit",
            raw(&[(b"big.sql", &[b'-'; 4096])]),
            "54000",
            "./big.sql",
        )
        .setup("SET pgmi_loader.max_file_size = '1kB'"),
        b("too_many_files", many, "54000", "").setup("SET pgmi_loader.max_files = 10"),
        b("bundle_over_limit", noisy, "54000", "").setup("SET pgmi_loader.max_bundle_size = '1kB'"),
    ]
}

fn session_paths(c: &mut postgres::Client) -> Vec<String> {
    c.query("SELECT path FROM pgmi_source_view ORDER BY path", &[])
        .map(|rows| rows.iter().map(|r| r.get(0)).collect())
        .unwrap_or_default()
}

/// Session tables with rows in them (the loader's temporary tables), by name.
fn loaded_rows(c: &mut postgres::Client) -> Vec<String> {
    let tables: Vec<String> = c
        .query(
            "SELECT c.oid::regclass::text FROM pg_class c \
              WHERE c.relnamespace = pg_my_temp_schema() AND c.relkind = 'r'",
            &[],
        )
        .expect("temp tables")
        .iter()
        .map(|r| r.get(0))
        .collect();
    tables
        .into_iter()
        .filter(|t| {
            c.query_one(&format!("SELECT count(*) FROM {t}"), &[])
                .map(|r| r.get::<_, i64>(0) > 0)
                .unwrap_or(true)
        })
        .collect()
}

#[test]
fn hostile_bundles_fail_fast_with_specific_sqlstates() {
    let cluster = cluster();
    let db = format!("hostile_b_{}", std::process::id());
    cluster.execute(&format!("CREATE DATABASE {db}"));
    cluster
        .connect(&db)
        .batch_execute("CREATE EXTENSION pgmi")
        .expect("CREATE EXTENSION pgmi");
    let mut failures = Vec::new();
    let mut slowest = (Duration::ZERO, "");
    let cases = bundle_cases();
    let total = cases.len();
    for case in cases {
        // A fresh session per case: whatever a failed load left behind is visible.
        let mut c = cluster.connect(&db);
        if !case.setup.is_empty() {
            c.batch_execute(case.setup).expect("setup");
        }
        let started = Instant::now();
        let result = c.query("SELECT * FROM pgmi_load($1)", &[&case.bundle]);
        let took = started.elapsed();
        if took > slowest.0 {
            slowest = (took, case.name);
        }
        let mut problems = Vec::new();
        let (code, message, hint) = match &result {
            Ok(_) => ("loaded".to_string(), String::new(), None),
            Err(e) => match e.as_db_error() {
                Some(db) => (
                    db.code().code().to_string(),
                    db.message().to_string(),
                    db.hint().map(str::to_string),
                ),
                None => ("client".to_string(), e.to_string(), None),
            },
        };
        eprintln!(
            "bundle  {:<30} {code:>6} in {:>7.1?}  {message}",
            case.name, took
        );
        if code != case.sqlstate {
            problems.push(format!("{code} instead of {}", case.sqlstate));
        }
        if !message.contains(case.needle) {
            problems.push(format!("message lacks {:?}", case.needle));
        }
        if result.is_err() && hint.is_none() {
            problems.push("no hint".into());
        }
        if took > BOUND {
            problems.push(format!("took {took:?}"));
        }
        if case.sqlstate == LOADS && code == LOADS {
            // Harmless input loads as what it is, and nothing more.
            eprintln!("  loaded: {:?}", session_paths(&mut c));
        }
        if !c.is_closed() {
            let rows = loaded_rows(&mut c);
            if result.is_err() && !rows.is_empty() {
                problems.push(format!("half-loaded session tables: {rows:?}"));
            }
            let created: i64 = c
                .query_one(
                    "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'",
                    &[],
                )
                .expect("pg_class")
                .get(0);
            if created > 0 {
                problems.push(format!("{created} table(s) created in public"));
            }
        } else {
            problems.push("the session was lost".into());
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {} ({message})",
                case.name,
                problems.join("; ")
            ));
        }
    }
    eprintln!(
        "{total} hostile bundles; slowest: {} in {:?}",
        slowest.1, slowest.0
    );
    cluster.execute(&format!("DROP DATABASE {db} WITH (FORCE)"));
    assert!(total >= 40, "the corpus has {total} bundles");
    assert_no_crash(cluster);
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
