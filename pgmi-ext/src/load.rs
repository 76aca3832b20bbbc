//! `pgmi_load(bundle bytea)`: the one call that turns an uploaded project into a session.
//!
//! An adapter: the work happens in [`Pipeline`] (threads, ordering, error precedence,
//! stopping), which tests drive without a server; this file copies the argument, connects
//! the pipeline to the session tables and to PostgreSQL's interrupt checks, and maps
//! errors to SQLSTATEs.

use std::time::{Duration, Instant};

use pgmi_core::bundle;
use pgmi_core::project::{self, SourceFile};
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::pipeline::{Pipeline, Sink};
use crate::{errors, guc, session, signals};

/// Unpacks and validates `bundle` (a tar.gz made by `pgmi-upload` or by hand), then
/// (re)creates the session objects in `pg_temp` and fills them. Everything happens in the
/// caller's transaction: on any error nothing of this load remains and a previous load of
/// the same session is untouched. Cancel, `statement_timeout` and `pg_terminate_backend`
/// take effect within milliseconds at any point.
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
    let started = Instant::now();
    // The checks that need no unpacking come first, so an oversized upload is never copied.
    bundle::check_envelope(bundle, &limits).unwrap_or_else(|e| errors::bundle(&e));
    // The helper threads read their own copy, never PostgreSQL's memory (pipeline.rs).
    let owned = owned_copy(bundle);
    let copied = started.elapsed();
    signals::stop_helpers_at_exit();
    // Started with signals blocked: see `signals`. Dropping the pipeline (also while an
    // ERROR unwinds) stops and joins its threads.
    let pipeline = signals::blocked(|| Pipeline::start(owned, limits, signals::yield_to_backends))
        .unwrap_or_else(|e| errors::load(&e));
    // Meanwhile this thread, the only one that may call into PostgreSQL, replaces the
    // session objects (10-15 ms of catalog work), then inserts each run of sources as soon
    // as it is finished, while later files are still being unpacked and hashed.
    session::create_objects();
    let objects = started.elapsed();
    let mut backend = Backend {
        filler: session::Filler::new(),
    };
    let loaded = pipeline
        .run(&mut backend)
        .unwrap_or_else(|e| errors::load(&e));
    // `project::finalize`'s two checks, in its order: the rows were checked as they passed.
    project::check_ids(&loaded.project).unwrap_or_else(|e| errors::project(&e));
    if let Some(e) = &loaded.row_error {
        errors::project(e);
    }
    let validated = started.elapsed();
    let summary = backend.filler.finish(
        &loaded.project,
        loaded.source_bytes,
        loaded.sql_files,
        &loaded.parameters,
    );
    debug1!(
        "pgmi_load: {} files, {} bytes: bundle copied after {:.1} ms, session objects after {:.1} ms, routed after {:.1} ms, all sources inserted after {:.1} ms, done in {:.1} ms",
        summary.files,
        summary.bytes,
        ms(copied),
        ms(objects),
        ms(copied + loaded.routed_after),
        ms(validated),
        ms(started.elapsed())
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

/// The backend side of the pipeline.
struct Backend {
    filler: session::Filler,
}

impl Sink for Backend {
    fn poll(&mut self) {
        // A cancel or timeout raises an ERROR here (unwinding, which drops the pipeline);
        // a terminate ends the process (the exit callback stops the threads).
        pg_sys::check_for_interrupts!();
    }

    fn sources(&mut self, run: &[SourceFile]) {
        self.filler.sources(run);
    }

    fn clear_sources(&mut self) {
        debug1!(
            "pgmi_load: the archive is not in path order (a hand-made tar?); reading it again, sorted (bundles from pgmi-upload are always in order)"
        );
        self.filler.clear_sources();
    }
}

/// `bundle` in memory the loader owns; a failed allocation is an ERROR, never an abort.
///
/// Why a copy and not only the exit callback (`signals`): with it, no helper thread can
/// ever read memory PostgreSQL frees, whatever order exit callbacks run in and even if a
/// thread outlives the callback's bounded wait; memory safety does not hinge on timing.
/// The price, measured here (debug build): 7.7 ms for a 7 MB bundle, mostly first-touch
/// page faults, so about 0.3 s and twice the memory for a 256 MB one (the default limit),
/// whose unpacking takes tens of seconds anyway.
fn owned_copy(bundle: &[u8]) -> Vec<u8> {
    let mut owned = Vec::new();
    if owned.try_reserve_exact(bundle.len()).is_err() {
        errors::out_of_memory(bundle.len());
    }
    owned.extend_from_slice(bundle);
    owned
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
