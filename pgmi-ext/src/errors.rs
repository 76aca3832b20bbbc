//! The extension's error boundary: every failure leaves as an `ErrorReport` with a chosen
//! SQLSTATE, the message naming the file, and a hint. Nothing escapes as a bare `Err`
//! (which pgrx would surface as the meaningless SQLSTATE 22000).
//!
//! SQLSTATE choices, by what the caller has to fix:
//! * 22P03 invalid_binary_representation — the bytes are not a readable bundle;
//! * 22021 character_not_in_repertoire — a file is not UTF-8 text (NUL byte, bad bytes);
//! * 22023 invalid_parameter_value — a hostile or unusable entry, path or `<pgmi-meta>`;
//! * 23505 unique_violation — duplicate `<pgmi-meta>` ids, parameter keys that collide;
//! * 54000 program_limit_exceeded — a `pgmi_loader.*` limit, or one of the fixed caps on
//!   paths and archive headers;
//! * 53200 out_of_memory — an allocation for the bundle failed (never an abort);
//! * 57014 query_canceled — the unpacking was stopped (only ever seen if a stop raced an
//!   error; a real cancel surfaces as PostgreSQL's own 57014).

use pgmi_core::bundle::{BundleError, BundleErrorKind};
use pgmi_core::params::ParamError;
use pgmi_core::project::{ErrorKind, ProjectError};

use crate::pipeline::LoadError;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

const FUNCTION: &str = "pgmi_load";

fn raise(code: PgSqlErrorCode, message: String, detail: Option<String>, hint: String) -> ! {
    let mut report = ErrorReport::new(code, message, FUNCTION).set_hint(hint);
    if let Some(detail) = detail {
        report = report.set_detail(detail);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ERROR-level reports do not return")
}

fn limit_hint(setting: &str) -> String {
    format!("raise the limit for this session with SET pgmi_loader.{setting} = '<size>', or make the project smaller")
}

pub fn bundle(e: &BundleError) -> ! {
    use BundleErrorKind as K;
    let (code, hint) = match e.kind() {
        K::NotGzip | K::CorruptGzip | K::CorruptTar | K::InvalidParameters => {
            (PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION, None)
        }
        K::FileTooLarge => (
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            Some(limit_hint("max_file_size")),
        ),
        K::TooManyFiles => (
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            Some(limit_hint("max_files")),
        ),
        K::BundleTooLarge => (
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            Some(limit_hint("max_bundle_size")),
        ),
        K::UnpackedTooLarge => (
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            Some(limit_hint("max_unpacked_size")),
        ),
        K::PathLimit | K::HeaderTooLarge => (PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED, None),
        K::OutOfMemory => (PgSqlErrorCode::ERRCODE_OUT_OF_MEMORY, None),
        K::Stopped => (PgSqlErrorCode::ERRCODE_QUERY_CANCELED, None),
        K::AbsolutePath
        | K::ParentComponent
        | K::Link
        | K::NotRegular
        | K::DuplicatePath
        | K::InvalidPath => (PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, None),
    };
    let hint = hint.or_else(|| e.hint()).unwrap_or_else(|| {
        "build the bundle with pgmi-upload, or as a tar.gz of the project directory".to_string()
    });
    raise(code, e.to_string(), None, hint)
}

pub fn project(e: &ProjectError) -> ! {
    let code = match e.kind() {
        ErrorKind::NulByte | ErrorKind::InvalidUtf8 => {
            PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE
        }
        ErrorKind::FileTooLarge | ErrorKind::TooManyFiles => {
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED
        }
        ErrorKind::DuplicateIds => PgSqlErrorCode::ERRCODE_UNIQUE_VIOLATION,
        _ => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
    };
    let (message, detail) = match e {
        // The original pgmi's text of a metadata error spans lines and embeds its hint; the
        // primary message gets the first part, the numbered list goes to DETAIL.
        ProjectError::Metadata(m) => {
            let text = m.message.split("\n\nHint:").next().unwrap_or(&m.message);
            match text.split_once('\n') {
                Some((first, rest)) => (first.to_string(), Some(rest.trim().to_string())),
                None => (text.to_string(), None),
            }
        }
        ProjectError::DuplicateIds(d) => match d.message.split_once('\n') {
            Some((first, rest)) => (first.to_string(), Some(rest.trim_end().to_string())),
            None => (d.message.clone(), None),
        },
        _ => (e.to_string(), None),
    };
    let hint = e
        .hint()
        .unwrap_or_else(|| "fix the file and upload the project again".to_string());
    raise(code, message, detail, hint)
}

pub fn params(e: &ParamError) -> ! {
    let code = match e {
        ParamError::CaseCollision { .. } => PgSqlErrorCode::ERRCODE_UNIQUE_VIOLATION,
        _ => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
    };
    let hint = e
        .hint()
        .unwrap_or_else(|| "fix the parameter in .pgmi/parameters.json".to_string());
    raise(code, e.to_string(), None, hint)
}

/// Any failure of the load pipeline.
pub fn load(e: &LoadError) -> ! {
    match e {
        LoadError::Bundle(e) => bundle(e),
        LoadError::Params(e) => params(e),
        LoadError::Project(e) => project(e),
        LoadError::Internal(what) => internal(what),
    }
}

/// The bundle could not be copied into the loader's own memory.
pub fn out_of_memory(bytes: usize) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_OUT_OF_MEMORY,
        format!("out of memory: pgmi_load could not allocate {bytes} bytes for the bundle"),
        None,
        "the server is short of memory; retry later, or upload a smaller bundle".to_string(),
    )
}

pub fn internal(what: &str) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        format!("pgmi_load failed: {what}"),
        None,
        "this is a bug in the pgmi extension; please report it with the PostgreSQL version"
            .to_string(),
    )
}

/// SPI-level failures (not SQL errors: those keep their own SQLSTATE as they propagate).
pub fn spi(e: &pgrx::spi::Error) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        format!("pgmi_load could not prepare the session: {e}"),
        None,
        "this is a bug in the pgmi extension; please report it with the PostgreSQL version"
            .to_string(),
    )
}
