//! Loader limits as settings (`SET pgmi_loader.max_file_size = '20MB'`).
//!
//! They live under `pgmi_loader.` rather than `pgmi.` because `pgmi.<key>` belongs to the
//! project's deployment parameters: a registered `pgmi.max_files` would turn a user's
//! parameter of that name into a type error. Defaults are `pgmi_core::limits::Limits`'s.
//! Any role may change them (USERSET): the memory a load uses is its own backend's, and
//! PostgreSQL's 1 GB value limit bounds it anyway.

use pgmi_core::limits::Limits;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

const KB: u64 = 1024;

static MAX_FILE_SIZE_KB: GucSetting<i32> = GucSetting::<i32>::new(10 * 1024);
static MAX_BUNDLE_SIZE_KB: GucSetting<i32> = GucSetting::<i32>::new(256 * 1024);
static MAX_UNPACKED_SIZE_KB: GucSetting<i32> = GucSetting::<i32>::new(1024 * 1024);
static MAX_FILES: GucSetting<i32> = GucSetting::<i32>::new(100_000);

pub fn register() {
    GucRegistry::define_int_guc(
        c"pgmi_loader.max_file_size",
        c"Largest single project file pgmi_load() accepts.",
        c"Files over this size fail the load with SQLSTATE 54000.",
        &MAX_FILE_SIZE_KB,
        1,
        1024 * 1024,
        GucContext::Userset,
        GucFlags::UNIT_KB,
    );
    GucRegistry::define_int_guc(
        c"pgmi_loader.max_bundle_size",
        c"Largest compressed bundle pgmi_load() accepts.",
        c"Bundles over this size fail the load with SQLSTATE 54000.",
        &MAX_BUNDLE_SIZE_KB,
        1,
        1024 * 1024,
        GucContext::Userset,
        GucFlags::UNIT_KB,
    );
    GucRegistry::define_int_guc(
        c"pgmi_loader.max_unpacked_size",
        c"Largest total size of the files in one bundle.",
        c"Protects the server from decompression bombs; over it the load fails with SQLSTATE 54000.",
        &MAX_UNPACKED_SIZE_KB,
        1,
        1024 * 1024,
        GucContext::Userset,
        GucFlags::UNIT_KB,
    );
    GucRegistry::define_int_guc(
        c"pgmi_loader.max_files",
        c"Largest number of files in one bundle.",
        c"Over it the load fails with SQLSTATE 54000.",
        &MAX_FILES,
        1,
        10_000_000,
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
