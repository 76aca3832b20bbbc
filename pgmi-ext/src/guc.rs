//! Loader limits as settings (`SET pgmi_loader.max_file_size = '20MB'`).
//!
//! They live under `pgmi_loader.` rather than `pgmi.` because `pgmi.<key>` belongs to the
//! project's deployment parameters: a registered `pgmi.max_files` would turn a user's
//! parameter of that name into a type error.
//!
//! Defaults and ceilings come from `pgmi_core::limits`, the one place the client reads
//! them from too. Any role may change them (USERSET), and the uploader relies on that
//! (`SET LOCAL pgmi_loader.max_file_size`): every ceiling is PostgreSQL's own 1 GB value
//! limit, so raising a limit lets a role spend no more memory than a plain
//! `SELECT repeat('x', 1000000000)` already does, and a load stays cancellable and bounded
//! in time whatever the settings. The caps that protect the server's CPU (path length and
//! depth, archive header size) are fixed constants, not settings.

use pgmi_core::limits::{self, Limits};
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

const KB: u64 = 1024;

/// `bytes` in whole kB, as the kB-valued settings hold it (every default and ceiling is
/// a multiple of 1 kB and at most 1 GB, checked at compile time).
const fn kb(bytes: u64) -> i32 {
    assert!(bytes.is_multiple_of(KB) && bytes / KB <= i32::MAX as u64);
    (bytes / KB) as i32
}

const fn count(n: usize) -> i32 {
    assert!(n <= i32::MAX as usize);
    n as i32
}

const CEILING_KB: i32 = kb(limits::CEILING_BYTES);

static MAX_FILE_SIZE_KB: GucSetting<i32> =
    GucSetting::<i32>::new(kb(limits::DEFAULT_MAX_FILE_BYTES));
static MAX_BUNDLE_SIZE_KB: GucSetting<i32> =
    GucSetting::<i32>::new(kb(limits::DEFAULT_MAX_BUNDLE_BYTES));
static MAX_UNPACKED_SIZE_KB: GucSetting<i32> =
    GucSetting::<i32>::new(kb(limits::DEFAULT_MAX_UNPACKED_BYTES));
static MAX_FILES: GucSetting<i32> = GucSetting::<i32>::new(count(limits::DEFAULT_MAX_FILES));

pub fn register() {
    GucRegistry::define_int_guc(
        c"pgmi_loader.max_file_size",
        c"Largest single project file pgmi_load() accepts.",
        c"Files over this size fail the load with SQLSTATE 54000.",
        &MAX_FILE_SIZE_KB,
        1,
        CEILING_KB,
        GucContext::Userset,
        GucFlags::UNIT_KB,
    );
    GucRegistry::define_int_guc(
        c"pgmi_loader.max_bundle_size",
        c"Largest compressed bundle pgmi_load() accepts.",
        c"Bundles over this size fail the load with SQLSTATE 54000.",
        &MAX_BUNDLE_SIZE_KB,
        1,
        CEILING_KB,
        GucContext::Userset,
        GucFlags::UNIT_KB,
    );
    GucRegistry::define_int_guc(
        c"pgmi_loader.max_unpacked_size",
        c"Largest total size of the files in one bundle.",
        c"Protects the server from decompression bombs; over it the load fails with SQLSTATE 54000.",
        &MAX_UNPACKED_SIZE_KB,
        1,
        CEILING_KB,
        GucContext::Userset,
        GucFlags::UNIT_KB,
    );
    GucRegistry::define_int_guc(
        c"pgmi_loader.max_files",
        c"Largest number of files in one bundle.",
        c"Over it the load fails with SQLSTATE 54000.",
        &MAX_FILES,
        1,
        count(limits::CEILING_FILES),
        GucContext::Userset,
        GucFlags::default(),
    );
}

/// The limits in force for this call.
pub fn limits() -> Limits {
    let kb = |s: &GucSetting<i32>| u64::try_from(s.get()).unwrap_or(1) * KB;
    Limits {
        max_file_bytes: kb(&MAX_FILE_SIZE_KB),
        max_bundle_bytes: kb(&MAX_BUNDLE_SIZE_KB),
        max_unpacked_bytes: kb(&MAX_UNPACKED_SIZE_KB),
        max_files: usize::try_from(MAX_FILES.get()).unwrap_or(1),
    }
}
