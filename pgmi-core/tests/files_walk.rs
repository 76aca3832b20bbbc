//! Project walking on a real file system: exclusions, symlinks, the per-file size cap, walk
//! order and the root `deploy.sql`, at the library level.

use std::fs;
use std::path::Path;

use pgmi_core::limits::Limits;
use pgmi_core::project::{self, ErrorKind, RawFile};

fn put(root: &Path, rel: &str, bytes: &[u8]) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, bytes).unwrap();
}

fn paths(files: &[RawFile]) -> Vec<&str> {
    files.iter().map(|f| f.path.as_str()).collect()
}

fn walk(root: &Path) -> Result<Vec<RawFile>, project::ProjectError> {
    project::walk(root, &Limits::default())
}

#[test]
fn excluded_trees_never_fail() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put(root, ".git/index", b"\0\x01binary");
    put(root, ".venv/lib/site.py", b"print()");
    put(root, "node_modules/pkg/index.js", b"\xff\xfe");
    put(root, "api/__pycache__/g.pyc", b"\0");
    put(root, ".env", b"PGPASSWORD=x");
    put(root, "api/handler.sql", b"SELECT 1;");
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("/etc/passwd", root.join("node_modules/link")).unwrap();
        std::os::unix::fs::symlink(root.join("api"), root.join(".hidden_dir_link")).unwrap();
    }
    let files = walk(root).unwrap();
    assert_eq!(paths(&files), ["api/handler.sql"]);
    assert_eq!(files[0].bytes, b"SELECT 1;");
}

#[cfg(unix)]
#[test]
fn symlinks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put(root, "real/a.sql", b"SELECT 1;");
    std::os::unix::fs::symlink(root.join("real/a.sql"), root.join("link.sql")).unwrap();
    let e = walk(root).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Symlink);
    assert!(
        e.to_string()
            .starts_with("refusing to read symlink ./link.sql "),
        "{e}"
    );
    assert_eq!(e.path(), Some("./link.sql"));
    assert!(e.hint().is_some());

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put(root, "real/a.sql", b"SELECT 1;");
    std::os::unix::fs::symlink(root.join("real"), root.join("linkdir")).unwrap();
    let e = walk(root).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Symlink);
    assert_eq!(e.path(), Some("./linkdir"));

    // A dangling link fails the same way: it is refused before anything is opened.
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", dir.path().join("dangling.sql")).unwrap();
    assert_eq!(walk(dir.path()).unwrap_err().kind(), ErrorKind::Symlink);
}

#[test]
fn files_over_the_size_cap_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put(root, "big.sql", &vec![b' '; 10 * 1024 * 1024 + 1]);
    let e = walk(root).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::FileTooLarge);
    assert_eq!(
        e.to_string(),
        "file ./big.sql is 10485761 bytes, exceeds 10485760-byte cap (override via PGMI_MAX_FILE_SIZE)"
    );
    let limits = Limits {
        max_file_bytes: 20_000_000,
        ..Limits::default()
    };
    let files = project::walk(root, &limits).unwrap();
    assert_eq!(files[0].bytes.len(), 10 * 1024 * 1024 + 1);
    // Exactly at the cap is fine.
    let limits = Limits {
        max_file_bytes: 10 * 1024 * 1024 + 1,
        ..Limits::default()
    };
    assert!(project::walk(root, &limits).is_ok());
}

#[test]
fn walk_order_is_per_directory_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for rel in ["b", "a.sql", "a-b/x", "a/x", "a/B", "a/_", "Z"] {
        put(root, rel, b"");
    }
    fs::create_dir_all(root.join("empty/nested")).unwrap();
    let files = walk(root).unwrap();
    assert_eq!(
        paths(&files),
        ["Z", "a/B", "a/_", "a/x", "a-b/x", "a.sql", "b"]
    );
}

#[test]
fn only_the_root_deploy_script_is_excluded() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put(root, "DEPLOY.SQL", b"SELECT 1;");
    put(root, "examples/deploy.sql", b"SELECT 2;");
    put(root, "deploy.sql.bak", b"");
    let files = walk(root).unwrap();
    assert_eq!(paths(&files), ["deploy.sql.bak", "examples/deploy.sql"]);
}

#[test]
fn root_errors_are_distinct() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let e = walk(&missing).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("does not exist"), "{e}");
    put(dir.path(), "file.sql", b"");
    let e = walk(&dir.path().join("file.sql")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotADirectory);
}

#[test]
fn too_many_files() {
    let dir = tempfile::tempdir().unwrap();
    for rel in ["a", "b", ".c", "node_modules/d"] {
        put(dir.path(), rel, b"");
    }
    let limits = Limits {
        max_files: 2,
        ..Limits::default()
    };
    assert_eq!(project::walk(dir.path(), &limits).unwrap().len(), 2);
    put(dir.path(), "e", b"");
    let e = project::walk(dir.path(), &limits).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooManyFiles);
}

#[cfg(unix)]
#[test]
fn fifos_are_refused_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.sql");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("mkfifo unavailable; skipping");
        return;
    }
    let e = walk(dir.path()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotRegularFile);
    assert!(
        e.to_string().contains("./pipe.sql") && e.to_string().contains("FIFO"),
        "{e}"
    );
}

#[cfg(unix)]
#[test]
fn non_utf8_names_are_refused_unless_excluded() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join(".cache")).unwrap();
    fs::write(root.join(".cache").join(OsStr::from_bytes(b"x\xff")), b"").unwrap();
    assert!(walk(root).unwrap().is_empty());
    fs::write(root.join(OsStr::from_bytes(b"bad\xff.sql")), b"").unwrap();
    let e = walk(root).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidPath);
    assert!(e.to_string().contains("not valid UTF-8"), "{e}");
}

#[test]
fn walk_then_build_routes_a_real_project() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put(root, "deploy.sql", b"SELECT 1;");
    put(
        root,
        "migrations/001.sql",
        b"/* <pgmi-meta id=\"3f2504e0-4f89-11d3-9a0c-0305e82c3301\" idempotent=\"false\">\n<sortKeys><key>001</key></sortKeys></pgmi-meta> */\nCREATE TABLE t (id int);",
    );
    put(root, "README.md", b"# demo");
    put(root, "__test__/README.md", b"notes");
    put(root, "__test__/_setup.sql", b"INSERT INTO t VALUES (1);");
    put(root, "__test__/sub/deep/test_b.sql", b"SELECT 1;");
    put(root, ".git/HEAD", b"ref: refs/heads/main");
    let files = walk(root).unwrap();
    let p = project::build(files).unwrap();
    assert_eq!(p.files_loaded, 5);
    let sources: Vec<&str> = p.sources.iter().map(|s| s.path.path.as_str()).collect();
    assert_eq!(sources, ["./README.md", "./migrations/001.sql"]);
    let meta = p.sources[1].metadata.as_ref().unwrap();
    assert_eq!(meta.sort_keys, ["001"]);
    assert!(!meta.idempotent);
    assert_eq!(meta.id.to_string(), "3f2504e0-4f89-11d3-9a0c-0305e82c3301");
    let dirs: Vec<(&str, Option<&str>, i32)> = p
        .test_directories
        .iter()
        .map(|d| (d.path.as_str(), d.parent_path.as_deref(), d.depth))
        .collect();
    assert_eq!(
        dirs,
        [
            ("./__test__/", None, 0),
            ("./__test__/sub/deep/", Some("./__test__/"), 2)
        ]
    );
    assert_eq!(p.test_sources.len(), 2);
    assert!(p.test_sources[0].is_fixture);
}

#[test]
fn ten_thousand_files_walk_and_build() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for i in 0..10_000 {
        let rel = if i % 10 == 0 {
            format!("schema/__test__/d{:02}/test_{i:05}.sql", i % 97)
        } else {
            format!("migrations/{:03}/{i:05}.sql", i % 250)
        };
        put(
            root,
            &rel,
            format!("CREATE TABLE t{i} (id int); -- {i}\n").as_bytes(),
        );
    }
    let start = std::time::Instant::now();
    let files = walk(root).unwrap();
    let walked = start.elapsed();
    let bundle = pgmi_core::bundle::write(&files, &[]).unwrap();
    let packed = start.elapsed();
    let back = pgmi_core::bundle::read(&bundle, &Limits::default()).unwrap();
    let unpacked = start.elapsed();
    let p = project::build(back.files).unwrap();
    let total = start.elapsed();
    eprintln!(
        "10,000 files: walk {walked:?}, write {:?} ({} bytes), read {:?}, build {:?}",
        packed - walked,
        bundle.len(),
        unpacked - packed,
        total - unpacked
    );
    assert_eq!(p.files_loaded, 10_000);
    assert_eq!(p.sources.len(), 9_000);
    assert_eq!(p.test_sources.len(), 1_000);
    assert!(total.as_secs() < 30, "walk+write+read+build took {total:?}");
}

/// Files are read on several threads (from 256 per thread); what is returned, and which
/// error wins, must not change: the first in walk order, as in a one-by-one walk.
#[test]
fn many_files_read_in_parallel_keep_walk_order_and_the_first_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for i in 0..1200 {
        put(
            root,
            &format!("m/{i:04}.sql"),
            format!("SELECT {i};").as_bytes(),
        );
    }
    let files = walk(root).unwrap();
    assert_eq!(files.len(), 1200);
    for (i, f) in files.iter().enumerate() {
        assert_eq!(f.path, format!("m/{i:04}.sql"));
        assert_eq!(f.bytes, format!("SELECT {i};").as_bytes());
    }

    let limits = Limits {
        max_file_bytes: 64,
        ..Limits::default()
    };
    // Two oversized files in different thirds of the walk: the earlier one is reported.
    put(root, "m/0900.sql", &[b' '; 100]);
    put(root, "m/0300.sql", &[b' '; 100]);
    let e = project::walk(root, &limits).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::FileTooLarge, "{e}");
    assert_eq!(e.path(), Some("./m/0300.sql"), "{e}");
    // A listing error (a symlink) after a read error: the read error still comes first;
    // before it, the listing error does.
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("/etc/passwd", root.join("m/1000-link.sql")).unwrap();
        let e = project::walk(root, &limits).unwrap_err();
        assert_eq!(e.path(), Some("./m/0300.sql"), "{e}");
        std::os::unix::fs::symlink("/etc/passwd", root.join("m/0100-link.sql")).unwrap();
        let e = project::walk(root, &limits).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Symlink, "{e}");
        assert_eq!(e.path(), Some("./m/0100-link.sql"), "{e}");
    }
}
