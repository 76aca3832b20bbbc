//! The bundle reader, against hostile uploads.
//!
//! Input: bytes starting with the gzip magic are read as they are (mutated real bundles);
//! anything else is first gzip-compressed here, so the fuzzer also reaches the tar layer
//! directly instead of spending its time on deflate streams and CRCs.
//!
//! Invariants checked, with the default limits and with tight ones:
//! * an accepted bundle respects every limit (file count, file size, total size);
//! * its files are in strictly increasing byte order of path (so no duplicates), and every
//!   path is relative, non-empty, free of NUL, `.`, `..` and empty segments, not excluded
//!   and not the reserved parameters entry;
//! * every accepted path is within the fixed path caps (`path::check_limits`), and the
//!   envelope check passes;
//! * `read_each` hands over the same files (in archive order) and parameters;
//! * a read whose stop flag is already set never succeeds;
//! * writing the accepted bundle again and reading that gives the same bundle;
//! * every error renders (message and hint) without panicking.
#![no_main]

use std::ops::ControlFlow;
use std::sync::atomic::AtomicBool;

use libfuzzer_sys::fuzz_target;
// The allocator with the single-allocation cap.
use pgmi_fuzz as _;
use pgmi_core::bundle::{self, Bundle};
use pgmi_core::limits::Limits;
use pgmi_core::path;

/// Small enough that the fuzzer reaches each limit with inputs of a few kilobytes.
const TIGHT: Limits = Limits {
    max_file_bytes: 1024,
    max_files: 8,
    max_bundle_bytes: 64 * 1024,
    max_unpacked_bytes: 16 * 1024,
};

fuzz_target!(|data: &[u8]| {
    let gz;
    let bytes = if data.starts_with(&[0x1f, 0x8b]) {
        data
    } else {
        gz = stored_gzip(data);
        &gz[..]
    };
    for limits in [Limits::default(), TIGHT] {
        check(bytes, &limits);
    }
});

/// Wraps `d` in a gzip stream of stored (uncompressed) deflate blocks: header, blocks of at
/// most 65,535 bytes, CRC-32 and length trailer. No compression crate needed.
fn stored_gzip(d: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut chunks = d.chunks(0xffff).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(c) = chunks.next() {
        let last = chunks.peek().is_none();
        let len = c.len() as u16;
        out.push(u8::from(last));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(c);
    }
    out.extend_from_slice(&crc32(d).to_le_bytes());
    out.extend_from_slice(&(d.len() as u32).to_le_bytes());
    out
}

fn crc32(d: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in d {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn check(bytes: &[u8], limits: &Limits) {
    let read = bundle::read(bytes, limits);
    let b = match read {
        Ok(b) => b,
        Err(e) => {
            let _ = (e.to_string(), e.hint(), e.kind());
            // read_each must fail too (it is the same reader).
            assert!(bundle::read_each(bytes, limits, |_| ControlFlow::Continue(())).is_err());
            return;
        }
    };

    assert!(b.files.len() <= limits.max_files);
    let mut total = 0u64;
    for f in &b.files {
        assert!(f.bytes.len() as u64 <= limits.max_file_bytes);
        total += f.bytes.len() as u64;
        check_path(&f.path);
    }
    assert!(total <= limits.max_unpacked_bytes);
    assert!(bundle::check_envelope(bytes, limits).is_ok());
    assert!(bundle::read_until(bytes, limits, &AtomicBool::new(true)).is_err());
    for w in b.files.windows(2) {
        assert!(w[0].path < w[1].path, "paths not strictly increasing");
    }

    // read_each: the same files (possibly in another order) and parameters.
    let mut each = Vec::new();
    let params = bundle::read_each(bytes, limits, |f| {
        each.push(f);
        ControlFlow::Continue(())
    })
    .expect("read accepted what read_each rejects");
    assert_eq!(params, b.parameters);
    each.sort_by(|a, c| a.path.cmp(&c.path));
    assert_eq!(each, b.files);

    // Stopping after the first file returns Ok.
    let mut calls = 0;
    assert!(bundle::read_each(bytes, limits, |_| {
        calls += 1;
        ControlFlow::Break(())
    })
    .is_ok());
    assert!(calls <= 1);

    // Write and read back: the same bundle.
    let again = bundle::write(&b.files, &b.parameters).expect("an accepted bundle can be written");
    let back: Bundle = bundle::read(&again, &Limits::default()).expect("a written bundle reads back");
    assert_eq!(back, b);
}

fn check_path(p: &str) {
    assert!(!p.is_empty() && !p.starts_with('/') && !p.contains('\0'));
    assert!(p.split('/').all(|s| !s.is_empty() && s != "." && s != ".."));
    assert_ne!(p, bundle::PARAMETERS_ENTRY);
    assert!(!path::is_excluded(p));
    assert!(path::check_limits(p).is_ok(), "an accepted path is over the caps");
}
