//! Bundles against the file system: what `walk` reads, `bundle::write` packs and
//! `bundle::read` unpacks unchanged — also when the archive was made by the system `tar`.

use std::fs;
use std::path::Path;
use std::process::Command;

use pgmi_core::bundle;
use pgmi_core::limits::Limits;
use pgmi_core::project;

fn put(root: &Path, rel: &str, bytes: &[u8]) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, bytes).unwrap();
}

fn sample_project(root: &Path) {
    put(root, "deploy.sql", b"SELECT 1;");
    put(
        root,
        "migrations/001.sql",
        b"\xEF\xBB\xBFCREATE TABLE t (id int);",
    );
    put(root, "caf\u{e9}/\u{fc}.sql", "SELECT '\u{e9}';".as_bytes());
    let long = format!("{}/x.sql", "long_directory_name_".repeat(12));
    put(root, &long, b"SELECT 'long';");
    put(root, "__test__/_setup.sql", b"");
    put(root, ".git/config", b"[core]");
    put(root, "node_modules/x/y.js", b"\0");
    put(root, "README.md", b"# project\n");
}

#[test]
fn walk_write_read_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    sample_project(dir.path());
    let files = project::walk(dir.path(), &Limits::default()).unwrap();
    let params = vec![("env".to_string(), "dev".to_string())];
    let bytes = bundle::write(&files, &params).unwrap();
    let back = bundle::read(&bytes, &Limits::default()).unwrap();
    let mut sorted = files.clone();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(back.files, sorted);
    assert_eq!(back.parameters, params);
    assert_eq!(
        bundle::write(&files, &params).unwrap(),
        bytes,
        "not deterministic"
    );
}

#[test]
fn system_tar_archives_read_like_the_walk() {
    let dir = tempfile::tempdir().unwrap();
    let project_dir = dir.path().join("p");
    sample_project(&project_dir);
    let mut expected = project::walk(&project_dir, &Limits::default()).unwrap();
    expected.sort_by(|a, b| a.path.cmp(&b.path));
    for format in ["gnu", "pax"] {
        let out = dir.path().join(format!("b-{format}.tgz"));
        let status = Command::new("tar")
            .arg(format!("--format={format}"))
            .arg("-czf")
            .arg(&out)
            .arg("-C")
            .arg(&project_dir)
            .arg(".")
            .status();
        match status {
            Ok(s) if s.success() => {}
            // No usable tar here (or it refused the format): nothing to compare.
            _ => {
                eprintln!("tar --format={format} unavailable or refused; skipping");
                continue;
            }
        }
        let bytes = fs::read(&out).unwrap();
        let back = bundle::read(&bytes, &Limits::default()).unwrap();
        assert_eq!(back.files, expected, "format {format}");
        assert!(back.parameters.is_empty());
    }
}
