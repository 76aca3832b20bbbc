//! The upload format: a gzip-compressed tar of the project's files plus an optional
//! reserved entry [`PARAMETERS_ENTRY`] holding the deployment parameters.
//!
//! Invariants:
//! * [`write`] is deterministic: same files and parameters → identical bytes (entries
//!   sorted by path, regular files only, mode 0644, mtime/uid/gid 0, empty owner names, no
//!   directory entries, gzip mtime 0). Long paths use GNU long-name entries.
//! * [`read`] accepts bundles from anyone — including a hand-made `tar czf` — and trusts
//!   nothing: every limit in [`Limits`] is checked before the memory it protects is
//!   allocated; decompression stops as soon as the unpacked total passes
//!   `max_unpacked_bytes`; links, devices, absolute paths and `..` are refused, never
//!   resolved (nothing is ever written to disk).
//! * Every name is held to the fixed path caps ([`crate::limits::MAX_PATH_BYTES`],
//!   [`crate::limits::MAX_PATH_DEPTH`]) before any per-segment work, and extension headers
//!   (GNU long names, PAX) to [`crate::limits::MAX_HEADER_BYTES`] before they are read;
//!   allocations of file data are fallible ([`BundleError::OutOfMemory`]), never an abort.
//! * Entry paths go through the same exclusion rules as a project walk
//!   ([`path::is_excluded`]), so a bundle and the directory it came from load identically.

use std::cell::Cell;
use std::collections::HashSet;
use std::io::{self, Read};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};

use flate2::{Compression, GzBuilder};
use tar::{EntryType, Header};

use crate::limits::Limits;
use crate::path::{self, go_quote};
use crate::project::RawFile;

mod error;
mod extensions;
pub use error::{BundleError, BundleErrorKind};
use extensions::Extensions;

/// Reserved entry holding the parameters: a JSON array of `[key, value]` string pairs in
/// precedence order. Hidden (leading `.`), so it can never collide with a project file.
pub const PARAMETERS_ENTRY: &str = ".pgmi/parameters.json";

/// gzip level 1. Measured here on 20.4 MB of real SQL (PostgreSQL's own shipped `.sql`
/// files, repeated), flate2 1.1 / miniz_oxide, release build: level 1 → 3.48 MB in 46 ms
/// (444 MB/s); level 6 → 2.30 MB in 243 ms (84 MB/s). Level 6 saves 1.2 MB (≈10 ms on a
/// 1 Gbit/s link, ≈95 ms at 100 Mbit/s) for 200 ms more CPU, so the fast level wins unless
/// the link is slower than ~50 Mbit/s.
const GZIP_LEVEL: u32 = 1;

/// What the compressor is handed at a time by [`write`].
const WRITE_CHUNK: usize = 256 << 10;

/// A decoded bundle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bundle {
    /// Project files in byte order of path (relative, no leading `./`).
    pub files: Vec<RawFile>,
    /// Parameters as stored, in order (empty when the entry is absent).
    pub parameters: Vec<(String, String)>,
}

/// Packs `files` and `parameters` into a deterministic tar.gz (see the module invariants).
/// Fails only on paths a bundle cannot carry (empty, absolute, `.`/`..`/empty segments, NUL,
/// duplicates, the reserved [`PARAMETERS_ENTRY`]).
pub fn write(files: &[RawFile], parameters: &[(String, String)]) -> Result<Vec<u8>, BundleError> {
    let params_json;
    let mut entries: Vec<(&str, &[u8])> = files
        .iter()
        .map(|f| (f.path.as_str(), f.bytes.as_slice()))
        .collect();
    for (p, _) in &entries {
        if *p == PARAMETERS_ENTRY {
            return Err(invalid(p, "the name is reserved for the parameters"));
        }
        path::check_limits(p).map_err(|limit| BundleError::PathLimit {
            path: go_quote(&path::abbreviate(p)),
            limit,
        })?;
        check_entry_path(p)?;
    }
    if !parameters.is_empty() {
        // Serialising string pairs cannot fail; map it anyway rather than unwrap.
        params_json = serde_json::to_vec(parameters)
            .map_err(|_| invalid(PARAMETERS_ENTRY, "the parameters could not be encoded"))?;
        entries.push((PARAMETERS_ENTRY, &params_json));
    }
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    if let Some(w) = entries.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(BundleError::DuplicatePath {
            path: shown(w[0].0),
        });
    }

    let total: usize = entries.iter().map(|(_, d)| d.len()).sum();
    let gz = GzBuilder::new().mtime(0).write(
        Vec::with_capacity(total / 4 + 1024),
        Compression::new(GZIP_LEVEL),
    );
    // tar writes each header, each 8 KiB piece of data and each padding apart, and flate2's
    // miniz_oxide backend zeroes its 32 KiB output buffer on every write: 30,000 small
    // writes for 10,000 files cost more than the compression. Large writes make it vanish.
    let mut builder = tar::Builder::new(std::io::BufWriter::with_capacity(WRITE_CHUNK, gz));
    for (p, data) in entries {
        let mut header = Header::new_gnu();
        header.set_entry_type(EntryType::Regular);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        builder
            .append_data(&mut header, p, data)
            .map_err(|e| invalid(p, &format!("cannot be stored in a tar archive: {e}")))?;
    }
    // Writing into a Vec cannot fail; the only errors left are impossible I/O ones.
    let gz = builder
        .into_inner()
        .map_err(|e| BundleError::CorruptTar {
            detail: e.to_string(),
        })?
        .into_inner()
        .map_err(|e| BundleError::CorruptTar {
            detail: e.error().to_string(),
        })?;
    gz.finish().map_err(|e| BundleError::CorruptGzip {
        detail: e.to_string(),
    })
}

/// Unpacks and validates a bundle (see the module invariants). Directory entries, a leading
/// `./` on entry names, PAX global headers and excluded paths are skipped, as a hand-made
/// `tar czf` produces them.
pub fn read(bytes: &[u8], limits: &Limits) -> Result<Bundle, BundleError> {
    read_until(bytes, limits, &AtomicBool::new(false))
}

/// [`read`] that gives up with [`BundleError::Stopped`] soon after `stop` is set (see
/// [`read_each_until`]).
pub fn read_until(bytes: &[u8], limits: &Limits, stop: &AtomicBool) -> Result<Bundle, BundleError> {
    let mut files = Vec::new();
    let mut oom = false;
    let parameters = read_each_until(bytes, limits, stop, |file| {
        if files.try_reserve(1).is_err() {
            oom = true;
            return ControlFlow::Break(());
        }
        files.push(file);
        ControlFlow::Continue(())
    })?;
    if oom {
        return Err(out_of_memory("the list of files", 0));
    }
    files.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    Ok(Bundle { files, parameters })
}

/// [`read`], handing each file to `each` as soon as it is unpacked, in archive order (which
/// for a bundle made by [`write`] is byte order of path), so the caller can start on the
/// first files while the rest is still being decompressed. Returns the parameters.
///
/// Every check of [`read`] still applies; a failure found after some files were handed
/// over is returned all the same, so the caller must treat what it got as void then.
/// `each` can stop the read early with `ControlFlow::Break` (the result is then `Ok` with
/// whatever parameters were seen so far, and nothing after that point was checked).
pub fn read_each(
    bytes: &[u8],
    limits: &Limits,
    each: impl FnMut(RawFile) -> ControlFlow<()>,
) -> Result<Vec<(String, String)>, BundleError> {
    read_each_until(bytes, limits, &AtomicBool::new(false), each)
}

/// [`read_each`] that also gives up with [`BundleError::Stopped`] soon after `stop` is
/// set by another thread: the flag is looked at before every read from the decompressor
/// (at most 64 KiB of output, well under a millisecond), so a stop takes effect within
/// milliseconds even in the middle of a large file.
pub fn read_each_until(
    bytes: &[u8],
    limits: &Limits,
    stop: &AtomicBool,
    mut each: impl FnMut(RawFile) -> ControlFlow<()>,
) -> Result<Vec<(String, String)>, BundleError> {
    check_envelope(bytes, limits)?;

    let failure = Cell::new(None);
    let total = Cell::new(0u64);
    let counted = Counted {
        // The bufread decoder reads exactly what the gzip member needs from the slice, so
        // what is left of it afterwards is what follows the stream.
        inner: flate2::bufread::GzDecoder::new(bytes),
        limit: limits.max_unpacked_bytes,
        total: &total,
        failure: &failure,
        stop,
    };
    let fail = |e: io::Error| classify(e, &failure, limits);

    let mut archive = tar::Archive::new(counted);
    let mut parameters = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut have_parameters = false;
    {
        // Raw entries: the tar crate would read GNU long names and PAX headers into memory
        // whole, whatever their size; here they are read by `Extensions`, after their size
        // was checked against MAX_HEADER_BYTES.
        let entries = archive.entries().map_err(fail)?.raw(true);
        let mut pending = Extensions::default();
        for entry in entries {
            let mut entry = entry.map_err(fail)?;
            let kind = entry.header().entry_type();
            let recognised =
                entry.header().as_gnu().is_some() || entry.header().as_ustar().is_some();
            if recognised && pending.absorbs(kind) {
                pending.read(&mut entry, kind, &fail)?;
                continue;
            }
            let extensions = std::mem::take(&mut pending);
            if kind.is_pax_global_extensions() {
                // Skipped unread (its data is passed over, never held).
                continue;
            }
            if let Some(size) = extensions.pax_size {
                // In raw mode the archive moves on by the header's size; an archive whose
                // PAX size disagrees would look different to other readers, so refuse it.
                if size != entry.size() {
                    return Err(BundleError::CorruptTar {
                        detail: format!(
                            "a PAX size record ({size}) disagrees with its entry's header ({})",
                            entry.size()
                        ),
                    });
                }
            }
            let name = match (&extensions.long_name, &extensions.pax_path) {
                (Some(long), _) => long.strip_suffix(b"\0").unwrap_or(long).to_vec(),
                (None, Some(pax)) => pax.clone(),
                (None, None) => entry.path_bytes().into_owned(),
            };
            // Old (v7) archives mark directories only by a trailing '/'.
            let is_dir = kind.is_dir() || name.ends_with(b"/");
            let Some(rel) = entry_path(&name)? else {
                continue;
            };
            if kind == EntryType::GNUSparse {
                // Refused even where excluded: a sparse entry may be followed by extension
                // blocks that raw reading would take for headers.
                return Err(BundleError::NotRegular {
                    path: shown(&rel),
                    what: "sparse file",
                });
            }
            if is_dir {
                continue;
            }
            let is_parameters = rel == PARAMETERS_ENTRY;
            if !is_parameters && path::is_excluded(&rel) {
                continue;
            }
            check_entry_type(kind, &rel)?;
            if is_parameters {
                if have_parameters {
                    return Err(BundleError::DuplicatePath { path: shown(&rel) });
                }
                have_parameters = true;
                let data = read_entry(&mut entry, &rel, limits, &total, &fail)?;
                parameters = parse_parameters(&data)?;
                continue;
            }
            if seen.contains(&rel) {
                return Err(BundleError::DuplicatePath { path: shown(&rel) });
            }
            if seen.len() >= limits.max_files {
                return Err(BundleError::TooManyFiles {
                    limit: limits.max_files,
                });
            }
            let data = read_entry(&mut entry, &rel, limits, &total, &fail)?;
            seen.try_reserve(1)
                .map_err(|_| out_of_memory("the list of paths", 0))?;
            seen.insert(rel.clone());
            if each(RawFile {
                path: rel,
                bytes: data,
            })
            .is_break()
            {
                return Ok(parameters);
            }
        }
        if !pending.is_empty() {
            return Err(BundleError::CorruptTar {
                detail: "the archive ends with a long-name or PAX header that describes no entry"
                    .into(),
            });
        }
    }
    // Decompress whatever follows the end-of-archive marker: it verifies the gzip CRC and
    // makes a bomb hidden after the archive hit the unpacked limit instead of passing.
    let mut counted = archive.into_inner();
    io::copy(&mut counted, &mut io::sink()).map_err(fail)?;
    // Bytes after the gzip stream (a second member, appended data) would be read by some
    // tools and ignored by others: refuse them, as the archive would mean different things.
    let rest = counted.inner.into_inner();
    if !rest.is_empty() {
        return Err(BundleError::CorruptGzip {
            detail: format!("{} byte(s) follow the end of the gzip stream", rest.len()),
        });
    }
    Ok(parameters)
}

/// The checks that need no decompression: the gzip magic bytes, then the compressed size.
/// The first errors [`read`] can return, in the same order; cheap enough to run before
/// the bundle is copied anywhere.
pub fn check_envelope(bytes: &[u8], limits: &Limits) -> Result<(), BundleError> {
    if bytes.len() < 2 || bytes[..2] != [0x1f, 0x8b] {
        return Err(BundleError::NotGzip);
    }
    if bytes.len() as u64 > limits.max_bundle_bytes {
        return Err(BundleError::BundleTooLarge {
            size: bytes.len() as u64,
            limit: limits.max_bundle_bytes,
        });
    }
    Ok(())
}

/// Why decompression stopped, recorded by [`Counted`] because the tar layer re-wraps errors.
#[derive(Debug, Clone)]
enum Failure {
    Unpacked,
    Gzip(String),
    Stopped,
}

/// Most bytes one read may decompress, so the stop flag is looked at every ~0.1 ms of
/// inflating at most (miniz_oxide inflates ~1 GB/s here) whatever buffer the tar layer
/// passes in; at 64 KiB the extra calls cost nothing measurable.
const READ_SLICE: usize = 64 * 1024;

/// Counts decompressed bytes, refuses to go past the limit, and stops when asked.
struct Counted<'a, R> {
    inner: R,
    limit: u64,
    total: &'a Cell<u64>,
    failure: &'a Cell<Option<Failure>>,
    stop: &'a AtomicBool,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.stop.load(Ordering::Relaxed) {
            self.failure.set(Some(Failure::Stopped));
            return Err(io::Error::other("stopped"));
        }
        // Ask for at most one byte beyond the limit: enough to detect passing it.
        let room = self
            .limit
            .saturating_sub(self.total.get())
            .saturating_add(1);
        let want = usize::try_from(room)
            .map_or(buf.len(), |r| r.min(buf.len()))
            .min(READ_SLICE);
        match self.inner.read(&mut buf[..want]) {
            Ok(n) => {
                let total = self.total.get() + n as u64;
                self.total.set(total);
                if total > self.limit {
                    self.failure.set(Some(Failure::Unpacked));
                    return Err(io::Error::other("unpacked size limit exceeded"));
                }
                Ok(n)
            }
            Err(e) => {
                self.failure.set(Some(Failure::Gzip(e.to_string())));
                Err(e)
            }
        }
    }
}

fn classify(e: io::Error, failure: &Cell<Option<Failure>>, limits: &Limits) -> BundleError {
    match failure.take() {
        Some(Failure::Unpacked) => BundleError::UnpackedTooLarge {
            limit: limits.max_unpacked_bytes,
        },
        Some(Failure::Gzip(detail)) => BundleError::CorruptGzip { detail },
        Some(Failure::Stopped) => BundleError::Stopped,
        None => BundleError::CorruptTar {
            detail: e.to_string(),
        },
    }
}

/// Reads one entry's data, refusing oversized entries before allocating, and never
/// reserving more than the unpacked budget that is left.
fn read_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    rel: &str,
    limits: &Limits,
    total: &Cell<u64>,
    fail: &dyn Fn(io::Error) -> BundleError,
) -> Result<Vec<u8>, BundleError> {
    // PAX `size` overrides the header's; the tar crate has applied it already.
    let size = entry.size();
    if size > limits.max_file_bytes {
        return Err(BundleError::FileTooLarge {
            path: shown(rel),
            size,
            cap: limits.max_file_bytes,
        });
    }
    let budget = limits.max_unpacked_bytes.saturating_sub(total.get());
    let reserve = size.min(budget);
    let mut data = Vec::new();
    // A failed allocation is an error the caller reports, never an abort of the process.
    data.try_reserve_exact(usize::try_from(reserve).unwrap_or(usize::MAX))
        .map_err(|_| out_of_memory(&shown(rel), reserve))?;
    entry
        .by_ref()
        .take(size)
        .read_to_end(&mut data)
        .map_err(fail)?;
    if data.len() as u64 != size {
        return Err(BundleError::CorruptTar {
            detail: format!("entry {} is truncated", shown(rel)),
        });
    }
    Ok(data)
}

/// Turns an entry name into a project-relative path: `None` for the archive root (`./`).
/// Accepts leading `./` runs and a trailing `/`; rejects absolute paths, `..`, empty or `.`
/// segments, NUL and non-UTF-8 names.
fn entry_path(raw: &[u8]) -> Result<Option<String>, BundleError> {
    let text = std::str::from_utf8(raw).map_err(|_| BundleError::InvalidPath {
        path: go_quote(&String::from_utf8_lossy(raw)),
        reason: "the name is not valid UTF-8".into(),
    })?;
    if text.starts_with('/') {
        return Err(BundleError::AbsolutePath {
            path: go_quote(text),
        });
    }
    let mut rel = text;
    while let Some(rest) = rel.strip_prefix("./") {
        rel = rest;
    }
    let rel = rel.strip_suffix('/').unwrap_or(rel);
    if rel.is_empty() || rel == "." {
        return Ok(None);
    }
    // Before any per-segment work, so the work per name stays linear and bounded.
    path::check_limits(rel).map_err(|limit| BundleError::PathLimit {
        path: go_quote(&path::abbreviate(rel)),
        limit,
    })?;
    if rel.split('/').any(|s| s == "..") {
        return Err(BundleError::ParentComponent {
            path: go_quote(text),
        });
    }
    check_entry_path(rel)?;
    Ok(Some(rel.to_owned()))
}

/// The shape every stored path must have (shared by [`write`] and [`read`]).
fn check_entry_path(rel: &str) -> Result<(), BundleError> {
    if rel.is_empty() {
        return Err(invalid(rel, "the name is empty"));
    }
    if rel.starts_with('/') {
        return Err(BundleError::AbsolutePath {
            path: go_quote(rel),
        });
    }
    if rel.contains('\0') {
        return Err(invalid(rel, "the name contains a NUL character"));
    }
    for segment in rel.split('/') {
        if segment == ".." {
            return Err(BundleError::ParentComponent {
                path: go_quote(rel),
            });
        }
        if segment.is_empty() || segment == "." {
            return Err(invalid(rel, "the path has an empty or \".\" segment"));
        }
    }
    Ok(())
}

fn check_entry_type(kind: EntryType, rel: &str) -> Result<(), BundleError> {
    let what = match kind {
        EntryType::Regular | EntryType::Continuous => return Ok(()),
        EntryType::Symlink => {
            return Err(BundleError::Link {
                path: shown(rel),
                what: "symbolic link",
            })
        }
        EntryType::Link => {
            return Err(BundleError::Link {
                path: shown(rel),
                what: "hard link",
            })
        }
        EntryType::Char | EntryType::Block => "device file",
        EntryType::Fifo => "FIFO",
        EntryType::GNUSparse => "sparse file",
        _ => "special entry",
    };
    Err(BundleError::NotRegular {
        path: shown(rel),
        what,
    })
}

fn parse_parameters(data: &[u8]) -> Result<Vec<(String, String)>, BundleError> {
    // Only the position is reported: serde's message can quote a value, and values are
    // often secrets.
    serde_json::from_slice::<Vec<(String, String)>>(data).map_err(|e| {
        BundleError::InvalidParameters {
            line: e.line(),
            column: e.column(),
        }
    })
}

fn out_of_memory(what: &str, bytes: u64) -> BundleError {
    BundleError::OutOfMemory {
        what: what.to_owned(),
        bytes,
    }
}

fn shown(rel: &str) -> String {
    format!("./{rel}")
}

fn invalid(rel: &str, reason: &str) -> BundleError {
    BundleError::InvalidPath {
        path: go_quote(rel),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod tests;
