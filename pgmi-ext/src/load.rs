//! `pgmi_load(bundle bytea)`: the one call that turns an uploaded project into a session.

use pgmi_core::{bundle, params, project};
use pgrx::prelude::*;

use crate::{errors, guc, session};

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
    let bundle = bundle::read(bundle, &limits).unwrap_or_else(|e| errors::bundle(&e));
    let parameters = params::finalize(bundle.parameters).unwrap_or_else(|e| errors::params(&e));
    let project = project::build(bundle.files).unwrap_or_else(|e| errors::project(&e));
    let summary = session::create(&project, &parameters);
    crate::testrun::reset();
    TableIterator::once((
        count(summary.files),
        count(summary.sql_files),
        count(summary.test_files),
        i64::try_from(summary.bytes).unwrap_or(i64::MAX),
        count(summary.parameters),
    ))
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
