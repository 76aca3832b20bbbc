//! `pgmi_load(bundle bytea)`: the one call that turns an uploaded project into a session.

use pgmi_core::{bundle, params, project};
use pgrx::prelude::*;

use crate::{errors, guc, session, signals};

/// Unpacks and validates `bundle` (a tar.gz made by `pgmi-upload` or by hand), then
/// (re)creates the session objects in `pg_temp` and fills them. Everything happens in the
/// caller's transaction: on any error nothing of this load remains and a previous load of
/// the same session is untouched.
///
/// From psql, without the uploader:
/// `SELECT * FROM pgmi_load(pg_catalog.decode(:'bundle', 'base64'));`
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn pgmi_load(
    bundle: &[u8],
) -> TableIterator<
    'static,
    (
        name!(files, i32),
        name!(sql_files, i32),
        name!(test_files, i32),
        name!(bytes, i64),
        name!(parameters, i32),
    ),
> {
    let limits = guc::limits();
    let started = std::time::Instant::now();
    // Unpacking and validating is pure Rust; it runs on a helper thread while this thread
    // (the only one that may call into PostgreSQL) replaces the session objects, which
    // takes 10-15 ms of catalog work. Errors are raised here, after the join.
    let (outcome, objects_ready) = std::thread::scope(|scope| {
        let worker = signals::blocked(|| scope.spawn(|| unpack_and_validate(bundle, &limits)));
        session::create_objects();
        let objects_ready = started.elapsed();
        (worker.join(), objects_ready)
    });
    let (project, parameters) = match outcome {
        Ok(Ok(loaded)) => loaded,
        Ok(Err(Invalid::Bundle(e))) => errors::bundle(&e),
        Ok(Err(Invalid::Params(e))) => errors::params(&e),
        Ok(Err(Invalid::Project(e))) => errors::project(&e),
        Err(_) => errors::internal("the unpacking thread panicked"),
    };
    let validated = started.elapsed();
    let summary = session::fill(&project, &parameters);
    debug1!(
        "pgmi_load: {} files, {} bytes: session objects after {:.1} ms, unpacked and validated after {:.1} ms, filled in {:.1} ms",
        summary.files,
        summary.bytes,
        objects_ready.as_secs_f64() * 1e3,
        validated.as_secs_f64() * 1e3,
        (started.elapsed() - validated).as_secs_f64() * 1e3
    );
    crate::testrun::reset();
    TableIterator::once((
        count(summary.files),
        count(summary.sql_files),
        count(summary.test_files),
        i64::try_from(summary.bytes).unwrap_or(i64::MAX),
        count(summary.parameters),
    ))
}

enum Invalid {
    Bundle(pgmi_core::bundle::BundleError),
    Params(pgmi_core::params::ParamError),
    Project(pgmi_core::project::ProjectError),
}

/// Everything `pgmi_load` does that needs no database: safe to run off the backend thread.
fn unpack_and_validate(
    bytes: &[u8],
    limits: &pgmi_core::limits::Limits,
) -> Result<(project::Project, Vec<(String, String)>), Invalid> {
    let bundle = bundle::read(bytes, limits).map_err(Invalid::Bundle)?;
    let parameters = params::finalize(bundle.parameters).map_err(Invalid::Params)?;
    let project = project::build(bundle.files).map_err(Invalid::Project)?;
    Ok((project, parameters))
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
