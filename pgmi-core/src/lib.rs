//! Pure logic shared by the pgmi extension (server) and the `pgmi-upload` CLI (client).
//!
//! Nothing here talks to PostgreSQL or the network, so everything is tested with plain
//! `cargo test` and can be fuzzed. The rules that must never drift between client and
//! server live here once: which files a project contains, how paths are normalised, the
//! two checksums, `<pgmi-meta>` parsing, the bundle format, parameter rules and how
//! `deploy.sql` is split into execution units.
//!
//! The behaviour is compatible with the original pgmi (docs/session-api.md describes the
//! session; docs/compatibility.md what is kept only for compatibility, and why).

// Only the extension needs unsafe code (the PostgreSQL interface); nothing here does.
#![forbid(unsafe_code)]

pub mod bundle;
pub mod checksum;
pub mod execute;
pub mod lexer;
pub mod limits;
pub mod macros;
pub mod meta;
pub mod params;
pub mod path;
pub mod plan;
pub mod project;
pub mod scaffold;
pub mod split;
pub mod testplan;

/// Where the pgmi extension is installed, as the `FROM … WHERE …` part of a query that
/// selects from `n.nspname` (the schema's name): one text for the extension, the
/// uploader's session probe and the psql script. A macro, so each use can be a
/// compile-time `concat!`.
#[macro_export]
macro_rules! extension_schema_from {
    () => {
        "pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname OPERATOR(pg_catalog.=) 'pgmi'"
    };
}
