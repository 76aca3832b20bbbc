//! The `pgmi` PostgreSQL extension.
//!
//! `CREATE EXTENSION pgmi` installs a handful of functions; the per-session objects that
//! deploy scripts query (`pgmi_source_view`, `pgmi_plan_view`, ...) are created in
//! `pg_temp` by [`load::pgmi_load`], which unpacks an uploaded project bundle, validates it
//! with `pgmi-core` (the same code the uploader runs before connecting) and bulk-inserts the
//! rows.
//!
//! Every `#[pg_extern]` here is a thin adapter: convert the arguments, call `pgmi-core`,
//! turn its error into an `ErrorReport` with a chosen SQLSTATE, detail and hint.

use pgrx::prelude::*;

::pgrx::pg_module_magic!(name, version);

mod arrays;
mod errors;
mod execute;
mod guc;
mod load;
mod pipeline;
mod session;
mod signals;
mod subxact;
mod testrun;

/// Runs once per backend when the library is loaded: registers the size limits.
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    guc::register();
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    include!("tests.rs");
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
