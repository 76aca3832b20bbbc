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

/// 10 MiB: the reference's per-file cap (`PGMI_MAX_FILE_SIZE` default, §2.2 step 1).
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
    fn defaults_match_reference_and_postgres_ceilings() {
        let l = Limits::default();
        assert_eq!(l.max_file_bytes, 10_485_760);
        assert_eq!(l.max_files, 100_000);
        assert_eq!(l.max_bundle_bytes, 268_435_456);
        assert_eq!(l.max_unpacked_bytes, 1_073_741_824);
    }
}
