//! Resource limits for reading a project (from disk or from an uploaded bundle).
//!
//! The same struct bounds the client walk ([`crate::project::walk`]) and the server-side
//! bundle reader ([`crate::bundle::read`]), so a project the uploader accepts is accepted by
//! the extension when both run with default settings. Every limit is checked *before* the
//! memory it protects is allocated.

/// Upper bounds applied while reading project files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest single file, in bytes. A file over this is an error, never truncated.
    pub max_file_bytes: u64,
    /// Most files a project may contain (excluded paths do not count).
    pub max_files: usize,
    /// Largest compressed bundle accepted by [`crate::bundle::read`], in bytes.
    pub max_bundle_bytes: u64,
    /// Largest decompressed tar stream (headers included) accepted by
    /// [`crate::bundle::read`], in bytes: the decompression-bomb guard.
    pub max_unpacked_bytes: u64,
}

/// 10 MiB: the original pgmi's per-file cap (the default of `PGMI_MAX_FILE_SIZE`).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;

/// 100,000 files: ten times the largest project the design is benchmarked with (10,000
/// migrations), yet small enough that per-file bookkeeping stays in the low megabytes.
pub const DEFAULT_MAX_FILES: usize = 100_000;

/// 256 MiB compressed: measured SQL compresses to ~17% at the bundle's gzip level (see
/// `bundle.rs`), so this admits well over 1 GiB of text while keeping the upload, which the
/// server holds in memory as one `bytea`, far below PostgreSQL's 1 GiB value ceiling.
pub const DEFAULT_MAX_BUNDLE_BYTES: u64 = 256 * 1024 * 1024;

/// 1 GiB unpacked: PostgreSQL cannot hold a `text`/`bytea` value of 1 GiB or more, and the
/// loaded files end up as text in session tables; anything beyond this could never load.
pub const DEFAULT_MAX_UNPACKED_BYTES: u64 = 1024 * 1024 * 1024;

/// Longest project-relative path, in bytes, accepted anywhere (sources, tests, every
/// file of a bundle or a walk): Linux's `PATH_MAX`. A walk cannot produce a longer one
/// through ordinary system calls, so only a hand-made archive ever hits it. Fixed, not a
/// setting: it bounds the CPU and memory spent per path, which protects the server.
pub const MAX_PATH_BYTES: usize = 4096;

/// Most directories a path may sit under (`a/b/c.sql` is 2 deep), for every file. Twice
/// `_pgmi_source`'s own limit ([`crate::path::MAX_DEPTH`], 100), so a source that is too
/// deep for the table still gets the original pgmi's `chk_depth_reasonable` error, and test
/// trees (which the original pgmi never limits) keep the same headroom. Fixed, like
/// [`MAX_PATH_BYTES`].
pub const MAX_PATH_DEPTH: usize = 200;

/// Largest archive extension header (GNU long name or long link, PAX extended header)
/// [`crate::bundle::read`] reads into memory. A long name holds one path ([`MAX_PATH_BYTES`]
/// plus a NUL); a PAX header holds a path and a handful of short records (times, owner
/// names, a few extended attributes from macOS tar). 64 KiB leaves 16 times the room of
/// the longest path and is allocated only after this check. Fixed, like [`MAX_PATH_BYTES`].
pub const MAX_HEADER_BYTES: u64 = 64 * 1024;

/// The highest value any size limit may be raised to: PostgreSQL cannot hold a `bytea` or
/// `text` value of 1 GiB or more, so nothing larger could ever load (and the server-side
/// settings are kB-valued `int4`s).
pub const CEILING_BYTES: u64 = 1024 * 1024 * 1024;

/// The highest value the file-count limit may be raised to.
pub const CEILING_FILES: usize = 10_000_000;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            max_files: DEFAULT_MAX_FILES,
            max_bundle_bytes: DEFAULT_MAX_BUNDLE_BYTES,
            max_unpacked_bytes: DEFAULT_MAX_UNPACKED_BYTES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_original_pgmi_and_postgres_ceilings() {
        let l = Limits::default();
        assert_eq!(l.max_file_bytes, 10_485_760);
        assert_eq!(l.max_files, 100_000);
        assert_eq!(l.max_bundle_bytes, 268_435_456);
        assert_eq!(l.max_unpacked_bytes, 1_073_741_824);
    }

    #[test]
    fn defaults_sit_below_the_ceilings() {
        let l = Limits::default();
        for bytes in [l.max_file_bytes, l.max_bundle_bytes, l.max_unpacked_bytes] {
            assert!(bytes <= CEILING_BYTES && bytes.is_multiple_of(1024));
        }
        assert!(l.max_files <= CEILING_FILES);
        assert!(MAX_HEADER_BYTES > MAX_PATH_BYTES as u64);
        assert!(MAX_PATH_DEPTH > crate::path::MAX_DEPTH as usize);
    }
}
