//! `pgmi_load(bundle bytea)`: the one call that turns an uploaded project into a session.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Duration;

use pgmi_core::project::{self, ProjectError, SourceFile};
use pgrx::prelude::*;

use crate::pipeline::{self, Invalid, Message};
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
    let mut timings = Timings::default();
    let summary = std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel();
        // Everything that needs no database runs on helper threads (`pipeline`, started
        // with signals blocked, see `signals`); this thread, the only one that may call into
        // PostgreSQL, meanwhile replaces the session objects (10-15 ms of catalog work) and
        // then inserts each run of sources as soon as it is finished, while later files are
        // still being unpacked and hashed. Errors are raised here, in precedence order.
        signals::blocked(|| scope.spawn(move || pipeline::produce(bundle, &limits, &tx)));
        session::create_objects();
        timings.objects = started.elapsed();
        let filler = session::Filler::new();

        let mut generation = 0;
        let mut inserted: Vec<Vec<SourceFile>> = Vec::new();
        let mut pending: BTreeMap<usize, Result<Vec<SourceFile>, ProjectError>> = BTreeMap::new();
        let mut last: Option<Message> = None;
        for message in rx {
            match message {
                Message::Invalid(Invalid::Bundle(e)) => errors::bundle(&e),
                Message::Invalid(Invalid::Params(e)) => errors::params(&e),
                Message::Restart => {
                    debug1!(
                        "pgmi_load: the archive is not in path order (a hand-made tar?); reading it again, sorted (bundles from pgmi-upload are always in order)"
                    );
                    generation += 1;
                    if !inserted.is_empty() {
                        filler.clear_sources();
                    }
                    inserted.clear();
                    pending.clear();
                }
                Message::Finished {
                    generation: g,
                    index,
                    run,
                } => {
                    if g == generation {
                        pending.insert(index, run);
                    }
                }
                end @ (Message::Routed { .. } | Message::RouteFailed { .. }) => {
                    timings.routed = started.elapsed();
                    last = Some(end);
                }
            }
            // Runs arrive out of order from several threads; insert them in order. A run's
            // error waits for the end of the bundle: a bundle error there comes first.
            while let Some(next) = pending.first_entry().filter(|e| *e.key() == inserted.len()) {
                if next.get().is_err() && last.is_none() {
                    break;
                }
                match next.remove() {
                    Ok(run) => {
                        filler.sources(&run);
                        inserted.push(run);
                    }
                    Err(e) => errors::project(&e),
                }
            }
        }
        let (mut project, parameters) = match last {
            Some(Message::Routed {
                project,
                parameters,
                runs,
            }) if runs == inserted.len() => (project, parameters),
            Some(Message::RouteFailed { error, runs }) if runs == inserted.len() => {
                errors::project(&error)
            }
            _ => errors::internal("the unpacking threads stopped before the end of the bundle"),
        };
        project.sources = inserted.into_iter().flatten().collect();
        project::finalize(&project).unwrap_or_else(|e| errors::project(&e));
        timings.validated = started.elapsed();
        filler.finish(&project, &parameters)
    });
    debug1!(
        "pgmi_load: {} files, {} bytes: session objects after {:.1} ms, routed after {:.1} ms, all sources inserted after {:.1} ms, done in {:.1} ms",
        summary.files,
        summary.bytes,
        ms(timings.objects),
        ms(timings.routed),
        ms(timings.validated),
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

#[derive(Default)]
struct Timings {
    objects: Duration,
    routed: Duration,
    validated: Duration,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
