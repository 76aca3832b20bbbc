//! Hostile archives aimed at the reader's memory and time: every one is refused quickly,
//! with its own error, before the memory it asks for is allocated.

use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use flate2::write::GzEncoder;

use super::*;
use crate::limits::{MAX_HEADER_BYTES, MAX_PATH_BYTES, MAX_PATH_DEPTH};
use crate::path::PathLimit;

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// One 512-byte header block of type `kind` claiming `size` bytes of data.
fn header(name: &[u8], kind: EntryType, size: u64) -> Vec<u8> {
    let mut h = Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    h.as_bytes().to_vec()
}

fn block(data: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    v.resize(data.len().div_ceil(512) * 512, 0);
    v
}

fn pax_record(key: &str, value: &str) -> String {
    // "<len> key=value\n", where len counts itself.
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while format!("{len}{body}").len() != len {
        len += 1;
    }
    format!("{len}{body}")
}

fn end() -> Vec<u8> {
    vec![0; 1024]
}

/// A bundle of one file at `path`, written the way GNU tar writes long names.
fn one_file(path: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = Header::new_gnu();
    h.set_size(9);
    h.set_mode(0o644);
    h.set_entry_type(EntryType::Regular);
    b.append_data(&mut h, path, &b"SELECT 1;"[..]).unwrap();
    gz(&b.into_inner().unwrap())
}

fn quick(started: Instant) {
    // Generous for debug builds on a loaded machine; the point is "not seconds".
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_test_file_100000_directories_deep_is_refused_at_once() {
    let path = format!("__test__/{}t.sql", "d/".repeat(100_000));
    let bundle = one_file(&path);
    let started = Instant::now();
    // The long name (200 kB) is over the header limit before it is even read.
    let e = read(&bundle, &Limits::default()).unwrap_err();
    quick(started);
    assert_eq!(e.kind(), BundleErrorKind::HeaderTooLarge, "{e}");
}

#[test]
fn paths_over_the_depth_cap_are_refused_tests_included() {
    for prefix in ["", "__test__/"] {
        let ok = format!(
            "{prefix}{}t.sql",
            "d/".repeat(MAX_PATH_DEPTH - prefix.len() / 9)
        );
        assert!(read(&one_file(&ok), &Limits::default()).is_ok(), "{ok}");
        let deep = format!("{prefix}{}t.sql", "d/".repeat(MAX_PATH_DEPTH + 1));
        let started = Instant::now();
        let e = read(&one_file(&deep), &Limits::default()).unwrap_err();
        quick(started);
        match e {
            BundleError::PathLimit {
                limit: PathLimit::TooDeep { depth },
                ref path,
            } => {
                assert!(depth > MAX_PATH_DEPTH);
                assert!(path.len() < 300, "the message abbreviates the path: {path}");
            }
            other => panic!("{other}"),
        }
        assert!(e.hint().is_some());
    }
}

#[test]
fn paths_over_the_length_cap_are_refused() {
    let long = format!("{}.sql", "a".repeat(MAX_PATH_BYTES));
    let e = read(&one_file(&long), &Limits::default()).unwrap_err();
    assert!(
        matches!(
            e,
            BundleError::PathLimit {
                limit: PathLimit::TooLong { .. },
                ..
            }
        ),
        "{e}"
    );
    let fits = format!("{}.sql", "a".repeat(MAX_PATH_BYTES - 4));
    assert!(read(&one_file(&fits), &Limits::default()).is_ok());
    // The writer refuses what the reader would.
    let file = RawFile {
        path: long,
        bytes: Vec::new(),
    };
    assert_eq!(
        write(&[file], &[]).unwrap_err().kind(),
        BundleErrorKind::PathLimit
    );
}

#[test]
fn a_huge_long_name_header_is_refused_before_allocation() {
    // Claims a 1 GiB long name, and 8 GiB; the data is not even there.
    for size in [1u64 << 30, (1 << 33) - 1] {
        let mut tar = header(b"././@LongLink", EntryType::GNULongName, size);
        tar.extend(block(b"x"));
        let started = Instant::now();
        let e = read_err_unbounded(&gz(&tar));
        quick(started);
        match e {
            BundleError::HeaderTooLarge { size: s, what, .. } => {
                assert_eq!(s, size);
                assert_eq!(what, "GNU long-name");
            }
            other => panic!("{other}"),
        }
    }
}

/// With every size limit at its ceiling, so only the header cap can stop the read.
fn read_err_unbounded(bytes: &[u8]) -> BundleError {
    let limits = Limits {
        max_file_bytes: crate::limits::CEILING_BYTES,
        max_files: crate::limits::CEILING_FILES,
        max_bundle_bytes: crate::limits::CEILING_BYTES,
        max_unpacked_bytes: crate::limits::CEILING_BYTES,
    };
    read(bytes, &limits).unwrap_err()
}

#[test]
fn huge_pax_and_long_link_headers_are_refused() {
    for (kind, what) in [
        (EntryType::XHeader, "PAX extended"),
        (EntryType::GNULongLink, "GNU long-link"),
    ] {
        let tar = header(b"x", kind, MAX_HEADER_BYTES + 1);
        match read_err_unbounded(&gz(&tar)) {
            BundleError::HeaderTooLarge { what: w, .. } => assert_eq!(w, what),
            other => panic!("{other}"),
        }
    }
}

#[test]
fn pax_path_is_used_and_a_disagreeing_pax_size_is_refused() {
    let pax = pax_record("path", "from_pax/a.sql");
    let mut tar = header(b"PaxHeaders/a", EntryType::XHeader, pax.len() as u64);
    tar.extend(block(pax.as_bytes()));
    tar.extend(header(b"short_name.sql", EntryType::Regular, 9));
    tar.extend(block(b"SELECT 1;"));
    tar.extend(end());
    let b = read(&gz(&tar), &Limits::default()).unwrap();
    assert_eq!(b.files[0].path, "from_pax/a.sql");

    let pax = pax_record("size", "100000");
    let mut tar = header(b"PaxHeaders/a", EntryType::XHeader, pax.len() as u64);
    tar.extend(block(pax.as_bytes()));
    tar.extend(header(b"a.sql", EntryType::Regular, 9));
    tar.extend(block(b"SELECT 1;"));
    tar.extend(end());
    let e = read(&gz(&tar), &Limits::default()).unwrap_err();
    assert_eq!(e.kind(), BundleErrorKind::CorruptTar, "{e}");
    assert!(e.to_string().contains("PAX size"), "{e}");
}

#[test]
fn extension_headers_must_describe_an_entry() {
    let mut tar = header(b"././@LongLink", EntryType::GNULongName, 6);
    tar.extend(block(b"a.sql\0"));
    tar.extend(end());
    assert_eq!(
        read(&gz(&tar), &Limits::default()).unwrap_err().kind(),
        BundleErrorKind::CorruptTar
    );
    let mut tar = Vec::new();
    for _ in 0..2 {
        tar.extend(header(b"././@LongLink", EntryType::GNULongName, 6));
        tar.extend(block(b"a.sql\0"));
    }
    tar.extend(header(b"x", EntryType::Regular, 0));
    tar.extend(end());
    let e = read(&gz(&tar), &Limits::default()).unwrap_err();
    assert!(e.to_string().contains("two GNU long-name headers"), "{e}");
}

#[test]
fn a_stop_request_ends_the_read_within_milliseconds() {
    // 256 MiB of zeros in one entry: about a second of work if not stopped.
    let limits = Limits {
        max_file_bytes: crate::limits::CEILING_BYTES,
        max_unpacked_bytes: crate::limits::CEILING_BYTES,
        ..Limits::default()
    };
    let mut tar = header(b"big.sql", EntryType::Regular, 256 << 20);
    tar.resize(tar.len() + (256 << 20), 0);
    let bundle = gz(&tar);
    drop(tar);
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let stopped_at = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(20));
            stop.store(true, Ordering::Relaxed);
            Instant::now()
        });
        let e = read_each_until(&bundle, &limits, &stop, |_| ControlFlow::Continue(()));
        assert_eq!(e.unwrap_err(), BundleError::Stopped);
        Instant::now()
    });
    assert!(
        stopped_at - started < Duration::from_millis(500),
        "{:?}",
        stopped_at - started
    );
}
