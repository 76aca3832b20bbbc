//! The extension headers of a tar archive (GNU long names and long links, PAX extended
//! headers), read by the bundle reader itself rather than by the tar crate, so that each
//! one's size is checked against [`MAX_HEADER_BYTES`] before anything is allocated.
//!
//! Only what the reader needs is kept: the long name, the PAX `path` and `size` records.
//! Link targets are never needed (links are refused), so they are read, bounded, and
//! dropped.

use std::io::{self, Read};

use tar::EntryType;

use super::{out_of_memory, BundleError};
use crate::limits::MAX_HEADER_BYTES;

/// The extension headers seen since the last real entry, which describe the next one.
#[derive(Default)]
pub(super) struct Extensions {
    pub(super) long_name: Option<Vec<u8>>,
    long_link: bool,
    pub(super) pax_path: Option<Vec<u8>>,
    pub(super) pax_size: Option<u64>,
    pax: bool,
}

impl Extensions {
    pub(super) fn absorbs(&self, kind: EntryType) -> bool {
        kind.is_gnu_longname() || kind.is_gnu_longlink() || kind.is_pax_local_extensions()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.long_name.is_none() && !self.long_link && !self.pax
    }

    /// Reads one extension header's data, refusing an oversized one before allocating.
    pub(super) fn read<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        kind: EntryType,
        fail: &dyn Fn(io::Error) -> BundleError,
    ) -> Result<(), BundleError> {
        let what = if kind.is_gnu_longname() {
            "GNU long-name"
        } else if kind.is_gnu_longlink() {
            "GNU long-link"
        } else {
            "PAX extended"
        };
        let twice = || BundleError::CorruptTar {
            detail: format!("two {what} headers describe the same entry"),
        };
        let size = entry.size();
        if size > MAX_HEADER_BYTES {
            return Err(BundleError::HeaderTooLarge {
                what,
                size,
                limit: MAX_HEADER_BYTES,
            });
        }
        // `size` is at most MAX_HEADER_BYTES (64 KiB), so this cannot truncate.
        let mut data = Vec::new();
        data.try_reserve_exact(size as usize)
            .map_err(|_| out_of_memory("an archive header", size))?;
        entry
            .by_ref()
            .take(size)
            .read_to_end(&mut data)
            .map_err(fail)?;
        if kind.is_gnu_longname() {
            if self.long_name.replace(data).is_some() {
                return Err(twice());
            }
        } else if kind.is_gnu_longlink() {
            // Links are refused anyway; the target is not needed.
            if std::mem::replace(&mut self.long_link, true) {
                return Err(twice());
            }
        } else {
            if std::mem::replace(&mut self.pax, true) {
                return Err(twice());
            }
            for record in tar::PaxExtensions::new(&data) {
                // A malformed record ends the list, as in the tar crate.
                let Ok(record) = record else { break };
                match record.key_bytes() {
                    b"path" if self.pax_path.is_none() => {
                        self.pax_path = Some(record.value_bytes().to_vec());
                    }
                    b"size" if self.pax_size.is_none() => {
                        let size = record.value().ok().and_then(|v| v.parse::<u64>().ok());
                        self.pax_size = Some(size.ok_or_else(|| BundleError::CorruptTar {
                            detail: "a PAX size record is not a number".into(),
                        })?);
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}
