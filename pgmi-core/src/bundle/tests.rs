use std::io::Write;
use std::time::{Duration, Instant};

use flate2::write::GzEncoder;

use super::*;

fn raw(path: &str, bytes: &[u8]) -> RawFile {
    RawFile {
        path: path.to_owned(),
        bytes: bytes.to_vec(),
    }
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A tar whose headers are written byte by byte, so names the tar crate would refuse to
/// write (absolute, `..`) can be tested.
fn tar_of(entries: &[(&[u8], EntryType, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, data) in entries {
        let mut h = Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_entry_type(*kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn read_err(bytes: &[u8]) -> BundleError {
    read(bytes, &Limits::default()).unwrap_err()
}

fn reg(name: &str, data: &'static [u8]) -> (Vec<u8>, EntryType, &'static [u8]) {
    (name.as_bytes().to_vec(), EntryType::Regular, data)
}

fn tgz(entries: &[(Vec<u8>, EntryType, &[u8])]) -> Vec<u8> {
    let borrowed: Vec<(&[u8], EntryType, &[u8])> = entries
        .iter()
        .map(|(n, k, d)| (n.as_slice(), *k, *d))
        .collect();
    gz(&tar_of(&borrowed))
}

fn sample_files() -> Vec<RawFile> {
    let long = format!(
        "{}/deep_file_name.sql",
        "very_long_directory_name".repeat(10)
    );
    vec![
        raw("migrations/002.sql", b"SELECT 2;"),
        raw("migrations/001.sql", b"\xEF\xBB\xBFSELECT 1;"),
        raw("empty.txt", b""),
        raw("caf\u{e9}/\u{fc}.sql", "SELECT '\u{e9}';".as_bytes()),
        raw(&long, b"SELECT 'long';"),
        raw("__test__/_setup.sql", b"INSERT INTO t VALUES (1);"),
    ]
}

fn params() -> Vec<(String, String)> {
    vec![
        ("env".into(), "prod".into()),
        ("Z".into(), "a\nb \"q\" \u{2713}".into()),
        ("env".into(), "".into()),
    ]
}

#[test]
fn round_trip_keeps_files_and_parameters() {
    let files = sample_files();
    let bytes = write(&files, &params()).unwrap();
    let bundle = read(&bytes, &Limits::default()).unwrap();
    let mut expected = files.clone();
    expected.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(bundle.files, expected);
    assert_eq!(bundle.parameters, params());
    // Without parameters no reserved entry is written.
    let bundle = read(&write(&files, &[]).unwrap(), &Limits::default()).unwrap();
    assert!(bundle.parameters.is_empty());
    assert_eq!(bundle.files.len(), files.len());
}

#[test]
fn write_is_deterministic() {
    let files = sample_files();
    let a = write(&files, &params()).unwrap();
    let mut reversed = files.clone();
    reversed.reverse();
    let b = write(&reversed, &params()).unwrap();
    assert_eq!(a, b);
    // gzip header: mtime (bytes 4..8) is zero.
    assert_eq!(&a[4..8], &[0, 0, 0, 0]);
}

#[test]
fn written_entries_are_plain_regular_files() {
    let bytes = write(&sample_files(), &params()).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
    let mut names = Vec::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let h = entry.header();
        assert_eq!(h.entry_type(), EntryType::Regular);
        assert_eq!(h.mode().unwrap(), 0o644);
        assert_eq!(h.mtime().unwrap(), 0);
        assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
        assert_eq!(h.username_bytes().unwrap_or_default(), b"");
        assert_eq!(h.groupname_bytes().unwrap_or_default(), b"");
        names.push(String::from_utf8(entry.path_bytes().into_owned()).unwrap());
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(names[0], PARAMETERS_ENTRY);
    assert!(names.iter().any(|n| n.len() > 200));
}

#[test]
fn hand_made_archives_are_accepted() {
    let bytes = tgz(&[
        (b"./".to_vec(), EntryType::Directory, b""),
        (b"./a/".to_vec(), EntryType::Directory, b""),
        reg("./a/b.sql", b"SELECT 1;"),
        reg("./deploy.sql", b"SELECT 0;"),
        reg("./DEPLOY.SQL", b"SELECT 0;"),
        reg("./.git/HEAD", b"\0"),
        (b"./node_modules/x".to_vec(), EntryType::Symlink, b""),
        (b"./.hidden/fifo".to_vec(), EntryType::Fifo, b""),
        reg("examples/deploy.sql", b"SELECT 2;"),
        // v7 style: a "regular" entry whose name ends in '/' is a directory.
        reg("./old_style_dir/", b""),
    ]);
    let bundle = read(&bytes, &Limits::default()).unwrap();
    let paths: Vec<&str> = bundle.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["a/b.sql", "examples/deploy.sql"]);
}

#[test]
fn not_gzip() {
    for bytes in [&b""[..], b"\x1f", b"PK\x03\x04", b"plain text"] {
        let e = read_err(bytes);
        assert_eq!(e.kind(), BundleErrorKind::NotGzip);
        assert!(e.hint().unwrap().contains("tar czf"));
    }
}

#[test]
fn corrupt_gzip() {
    let good = write(&sample_files(), &[]).unwrap();
    // Damaged CRC in the trailer: only detected by draining the stream to its end.
    let mut bad_crc = good.clone();
    let n = bad_crc.len();
    bad_crc[n - 8] ^= 0xff;
    assert_eq!(read_err(&bad_crc).kind(), BundleErrorKind::CorruptGzip);
    // Truncated stream.
    let truncated = &good[..good.len() / 2];
    assert_eq!(read_err(truncated).kind(), BundleErrorKind::CorruptGzip);
    // Bad compression method in the header.
    let mut bad_header = good.clone();
    bad_header[2] = 7;
    assert_eq!(read_err(&bad_header).kind(), BundleErrorKind::CorruptGzip);
}

#[test]
fn corrupt_tar() {
    let e = read_err(&gz(&[0x41; 1024]));
    assert_eq!(e.kind(), BundleErrorKind::CorruptTar, "{e}");
    // A header promising more data than the stream holds.
    let mut tar = tar_of(&[(b"a.sql", EntryType::Regular, &[b'x'; 600])]);
    tar.truncate(512 + 100);
    assert_eq!(read_err(&gz(&tar)).kind(), BundleErrorKind::CorruptTar);
}

#[test]
fn absolute_and_parent_paths() {
    let e = read_err(&tgz(&[reg("/etc/passwd", b"x")]));
    assert_eq!(e.kind(), BundleErrorKind::AbsolutePath);
    assert!(e.to_string().contains("\"/etc/passwd\""), "{e}");
    for name in ["a/../b.sql", "../b.sql", "./../x", "a/.."] {
        let e = read_err(&tgz(&[reg(name, b"x")]));
        assert_eq!(e.kind(), BundleErrorKind::ParentComponent, "{name}");
    }
    // Even inside an excluded tree, `..` is refused.
    assert_eq!(
        read_err(&tgz(&[reg(".git/../../x", b"")])).kind(),
        BundleErrorKind::ParentComponent
    );
}

#[test]
fn links_and_special_files() {
    let e = read_err(&tgz(&[(b"a.sql".to_vec(), EntryType::Symlink, b"")]));
    assert_eq!(e.kind(), BundleErrorKind::Link);
    assert!(
        e.to_string().contains("./a.sql") && e.to_string().contains("symbolic link"),
        "{e}"
    );
    let e = read_err(&tgz(&[(b"a.sql".to_vec(), EntryType::Link, b"")]));
    assert_eq!(e.kind(), BundleErrorKind::Link);
    for kind in [EntryType::Fifo, EntryType::Char, EntryType::Block] {
        let e = read_err(&tgz(&[(b"dev".to_vec(), kind, b"")]));
        assert_eq!(e.kind(), BundleErrorKind::NotRegular, "{kind:?}");
    }
}

#[test]
fn duplicate_paths() {
    let e = read_err(&tgz(&[reg("a.sql", b"1"), reg("./a.sql", b"2")]));
    assert_eq!(e.kind(), BundleErrorKind::DuplicatePath);
    assert!(e.to_string().contains("./a.sql"));
    let json: &'static [u8] = b"[]";
    let e = read_err(&tgz(&[
        reg(PARAMETERS_ENTRY, json),
        reg(PARAMETERS_ENTRY, json),
    ]));
    assert_eq!(e.kind(), BundleErrorKind::DuplicatePath);
}

#[test]
fn invalid_names() {
    let e = read_err(&tgz(&[(b"bad\xff.sql".to_vec(), EntryType::Regular, b"")]));
    assert_eq!(e.kind(), BundleErrorKind::InvalidPath);
    let e = read_err(&tgz(&[reg("a//b.sql", b"")]));
    assert_eq!(e.kind(), BundleErrorKind::InvalidPath);
    let e = read_err(&tgz(&[reg("a/./b.sql", b"")]));
    assert_eq!(e.kind(), BundleErrorKind::InvalidPath);
}

#[test]
fn per_file_and_count_limits() {
    let limits = Limits {
        max_file_bytes: 10,
        max_files: 2,
        ..Limits::default()
    };
    let e = read(&tgz(&[reg("big.sql", b"01234567890")]), &limits).unwrap_err();
    assert_eq!(
        e,
        BundleError::FileTooLarge {
            path: "./big.sql".into(),
            size: 11,
            cap: 10
        }
    );
    assert!(read(&tgz(&[reg("ok.sql", b"0123456789")]), &limits).is_ok());

    let three = tgz(&[reg("a", b""), reg("b", b""), reg("c", b"")]);
    assert_eq!(
        read(&three, &limits).unwrap_err().kind(),
        BundleErrorKind::TooManyFiles
    );
    // Excluded entries and the parameters entry do not count.
    let two = tgz(&[
        reg("a", b""),
        reg(".x", b""),
        reg("node_modules/y", b""),
        reg("b", b""),
        reg(PARAMETERS_ENTRY, b"[]"),
    ]);
    assert_eq!(read(&two, &limits).unwrap().files.len(), 2);
}

#[test]
fn compressed_size_limit() {
    let bytes = write(&sample_files(), &[]).unwrap();
    let limits = Limits {
        max_bundle_bytes: bytes.len() as u64 - 1,
        ..Limits::default()
    };
    let e = read(&bytes, &limits).unwrap_err();
    assert_eq!(e.kind(), BundleErrorKind::BundleTooLarge);
    let limits = Limits {
        max_bundle_bytes: bytes.len() as u64,
        ..Limits::default()
    };
    assert!(read(&bytes, &limits).is_ok());
}

/// Streams `total` zero bytes through the encoder without holding them in memory.
fn gzip_of_zeros(prefix: &[u8], total: usize) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(prefix).unwrap();
    let chunk = vec![0u8; 1 << 20];
    let mut left = total;
    while left > 0 {
        let n = left.min(chunk.len());
        e.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    e.finish().unwrap()
}

#[test]
fn decompression_bomb_of_zeros_stops_at_the_limit() {
    // 256 MiB of zeros: a tar reader sees an empty archive at once; the bomb is in the tail.
    let bomb = gzip_of_zeros(b"", 256 << 20);
    assert!(
        bomb.len() < 2 << 20,
        "compressed bomb is {} bytes",
        bomb.len()
    );
    let limits = Limits {
        max_unpacked_bytes: 8 << 20,
        ..Limits::default()
    };
    let start = Instant::now();
    let e = read(&bomb, &limits).unwrap_err();
    assert_eq!(e, BundleError::UnpackedTooLarge { limit: 8 << 20 });
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn decompression_bomb_inside_an_entry_stops_at_the_limit() {
    // One entry declaring 256 MiB of zeros, with no per-file cap to stop it first.
    let mut header = Header::new_gnu();
    header.as_old_mut().name[..5].copy_from_slice(b"a.sql");
    header.set_entry_type(EntryType::Regular);
    header.set_size(256 << 20);
    header.set_cksum();
    let bomb = gzip_of_zeros(header.as_bytes(), 256 << 20);
    let limits = Limits {
        max_file_bytes: u64::MAX,
        max_unpacked_bytes: 8 << 20,
        ..Limits::default()
    };
    let start = Instant::now();
    let e = read(&bomb, &limits).unwrap_err();
    assert_eq!(e.kind(), BundleErrorKind::UnpackedTooLarge);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn invalid_parameters_never_echo_values() {
    for json in [
        &b"{\"k\": \"supersecret\"}"[..],
        b"[[\"k\"]]",
        b"[[\"k\", 1]]",
        b"[[\"k\", \"supersecret\", \"x\"]]",
        b"not json supersecret",
        b"[[\"k\", \"\\ud800\"]]",
    ] {
        let leaked: &'static [u8] = Box::leak(json.to_vec().into_boxed_slice());
        let e = read_err(&tgz(&[reg(PARAMETERS_ENTRY, leaked)]));
        assert_eq!(
            e.kind(),
            BundleErrorKind::InvalidParameters,
            "{}",
            String::from_utf8_lossy(json)
        );
        assert!(!e.to_string().contains("supersecret"), "{e}");
    }
    // Other hidden files under .pgmi/ are ignored like any hidden file.
    let ok = read(
        &tgz(&[
            reg(".pgmi/other.json", b"garbage"),
            reg(PARAMETERS_ENTRY, b"[[\"a\",\"b\"]]"),
        ]),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(ok.parameters, vec![("a".to_string(), "b".to_string())]);
}

#[test]
fn write_refuses_paths_a_bundle_cannot_carry() {
    let cases = [
        (raw("a/../b", b""), BundleErrorKind::ParentComponent),
        (raw("/abs", b""), BundleErrorKind::AbsolutePath),
        (raw("", b""), BundleErrorKind::InvalidPath),
        (raw("a//b", b""), BundleErrorKind::InvalidPath),
        (raw(PARAMETERS_ENTRY, b"[]"), BundleErrorKind::InvalidPath),
    ];
    for (file, kind) in cases {
        assert_eq!(
            write(std::slice::from_ref(&file), &[]).unwrap_err().kind(),
            kind,
            "{:?}",
            file.path
        );
    }
    let dup = [raw("a", b"1"), raw("a", b"2")];
    assert_eq!(
        write(&dup, &[]).unwrap_err().kind(),
        BundleErrorKind::DuplicatePath
    );
}

#[test]
fn every_error_has_a_hint() {
    let errors = [
        BundleError::NotGzip,
        BundleError::UnpackedTooLarge { limit: 1 },
        BundleError::InvalidParameters { line: 1, column: 2 },
    ];
    for e in errors {
        assert!(e.hint().is_some_and(|h| !h.is_empty()));
    }
}

#[test]
fn read_each_hands_files_over_in_archive_order_and_read_sorts_them() {
    let bundle = tgz(&[reg("b.sql", b"B"), reg("a.sql", b"A"), reg("c.sql", b"C")]);
    let mut seen = Vec::new();
    read_each(&bundle, &Limits::default(), |f| {
        seen.push(f.path);
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(seen, ["b.sql", "a.sql", "c.sql"]);

    let sorted: Vec<String> = read(&bundle, &Limits::default())
        .unwrap()
        .files
        .into_iter()
        .map(|f| f.path)
        .collect();
    assert_eq!(sorted, ["a.sql", "b.sql", "c.sql"]);

    let mut first = Vec::new();
    read_each(&bundle, &Limits::default(), |f| {
        first.push(f.path);
        std::ops::ControlFlow::Break(())
    })
    .unwrap();
    assert_eq!(first, ["b.sql"], "Break stops the read");
}

#[test]
fn read_each_reports_a_late_archive_error_after_handing_files_over() {
    let mut bundle = tgz(&[reg("a.sql", b"A"), reg("b.sql", b"B")]);
    bundle.truncate(bundle.len() - 4);
    let mut handed = 0;
    let e = read_each(&bundle, &Limits::default(), |_| {
        handed += 1;
        std::ops::ControlFlow::Continue(())
    })
    .unwrap_err();
    assert_eq!(e.kind(), BundleErrorKind::CorruptGzip, "{e}");
    assert_eq!(handed, 2);
}
