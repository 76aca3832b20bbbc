//! Running `deploy.sql` (docs/cookbook.md, "How `deploy.sql` is executed").
//!
//! `pgmi_core::split` cuts the script into the atomic head and psql-style tail units; each
//! unit is sent as one simple-query message (`batch_execute`), exactly as the original
//! pgmi does, so multi-statement units, `COMMIT` and `CREATE INDEX CONCURRENTLY` in the tail
//! behave as in psql. The first failing unit stops the run (exit 13). Tail units carry
//! padding so server positions map to lines of the whole script; the error location is
//! computed from the exact text that was sent.
//!
//! With `--retries`, a unit that failed only because of locking runs again (rules and why
//! they are safe in `locks/mod.rs`); with a [`Watcher`], a unit that waits on a lock has its
//! blockers recorded, and a lock timeout or deadlock that ends the deploy names them.

use postgres::error::ErrorPosition;
use postgres::Client;

use std::time::{Duration, Instant};

use crate::exit::{Exit, Failure, ScriptLocation};
use crate::locks::{self, Attempt, LockOptions, LockReport, LockWait, Watcher};
use crate::watchdog::Watchdog;

/// How far execution got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub units: usize,
    /// Units that completed before the failure (= `units` on success).
    pub committed: usize,
    /// The connection was lost while a unit ran, without the server saying why: whether
    /// that unit committed cannot be known here.
    pub outcome_unknown: bool,
}

/// How a run treats locking: the options, the watcher (absent when the session pid is
/// unknown) and where attempts and the final wait are recorded.
pub struct Locking<'a> {
    pub options: LockOptions,
    pub watcher: Option<&'a Watcher>,
    pub report: &'a mut LockReport,
    /// The settings that size the lock table, read before deploy.sql (explain a 53200).
    pub budget: Option<locks::budget::Budget>,
}

/// Run every unit in order; on failure, the index of the failing unit is
/// `progress.committed`.
pub fn run_units(
    client: &mut Client,
    units: &[pgmi_core::split::Unit],
    watchdog: &Watchdog,
    progress: &mut Progress,
    locking: &mut Locking<'_>,
) -> Result<(), Failure> {
    progress.units = units.len();
    progress.committed = 0;
    for (index, unit) in units.iter().enumerate() {
        let mut retry = 0u32;
        loop {
            if watchdog.timed_out() || watchdog.interrupted() {
                return Err(stopped());
            }
            let (result, wait) = match locking.watcher {
                Some(watcher) => watcher.watch(|| client.batch_execute(&unit.text)),
                None => (client.batch_execute(&unit.text), None),
            };
            let err = match result {
                Ok(()) => break,
                Err(err) => err,
            };
            let mut failure = execution_failure(&err, unit);
            if client.is_closed() && failure.sqlstate.is_none() {
                // No answer from the server: the unit may have committed just before the
                // connection went (a lost acknowledgement), or not at all.
                progress.outcome_unknown = true;
                failure.message = format!(
                    "{}; the connection was lost while {} ran, so whether the server committed it is unknown",
                    failure.message,
                    unit_label(index, units.len())
                );
                failure.hint = Some(
                    "check the database before deploying again; the deploy lock went with the connection".into(),
                );
                return Err(failure);
            }
            if failure.sqlstate.as_deref() == Some("53200") {
                // Out of shared memory: the lock table is full. Explained before the
                // session rolls back (the count was taken while the unit ran).
                let held = match locking.watcher {
                    Some(watcher) => watcher.held(),
                    None => Err("the session's backend pid is unknown, so no second connection counted them".into()),
                };
                locks::budget::explain(
                    &mut failure,
                    locking.watcher.map(Watcher::session_pid),
                    held,
                    locking.budget.as_ref(),
                );
                return Err(failure);
            }
            let Some(sqlstate) = failure.sqlstate.clone().filter(|c| locks::is_retryable(c)) else {
                return Err(failure);
            };
            let obstacle = if retry >= locking.options.retries {
                None
            } else {
                retry_obstacle(client, index)
            };
            let last = retry >= locking.options.retries || obstacle.is_some();
            let delay = (!last).then(|| locks::backoff(retry + 1, locks::jitter()));
            locking.report.attempts.push(Attempt {
                unit: index + 1,
                sqlstate: sqlstate.clone(),
                wait_ms: delay.map(|d| d.as_millis() as u64),
            });
            let Some(delay) = delay else {
                return Err(lock_failure(failure, wait, obstacle, retry, locking));
            };
            retry += 1;
            eprintln!(
                "pgmi: {} failed with a {} (SQLSTATE {sqlstate}){}; {}, retry {retry} of {} in {} ms",
                unit_label(index, units.len()),
                locks::condition(&sqlstate),
                wait.as_ref()
                    .map(|w| format!(": {}", locks::describe(w)))
                    .unwrap_or_default(),
                if index == 0 {
                    "nothing of it was committed"
                } else {
                    "it ran in its own transaction"
                },
                locking.options.retries,
                delay.as_millis()
            );
            if !sleep_unless_stopped(delay, watchdog) {
                return Err(stopped());
            }
        }
        progress.committed += 1;
    }
    Ok(())
}

fn stopped() -> Failure {
    Failure::new(
        Exit::ExecutionFailed,
        "execution stopped before the next statement",
    )
}

/// `unit 1 of 3 (the atomic head)`, `unit 4 of 5`.
fn unit_label(index: usize, total: usize) -> String {
    if index == 0 {
        format!("unit 1 of {total} (the atomic head)")
    } else {
        format!("unit {} of {total}", index + 1)
    }
}

/// Make the session ready to run unit `index` again; why it cannot be, if so. The head's
/// transaction block (if deploy.sql opened one) is rolled back; a tail unit is retried only
/// when no block is open, i.e. it ran in its own transaction.
fn retry_obstacle(client: &mut Client, index: usize) -> Option<String> {
    if client.is_closed() {
        return Some("the connection was closed".into());
    }
    if !in_transaction_block(client) {
        return None;
    }
    if index > 0 {
        return Some(
            "not retried: the statement ran inside a transaction block that an earlier statement of deploy.sql opened, and that block is now aborted".into(),
        );
    }
    match client.batch_execute("ROLLBACK") {
        Ok(()) => None,
        Err(e) => Some(format!("not retried: rolling back the head failed: {e}")),
    }
}

/// Is an explicit transaction block open (or aborted) on the session? In an aborted block
/// the question itself fails (25P02), which also means yes.
fn in_transaction_block(client: &mut Client) -> bool {
    match client.simple_query(
        "SELECT pg_catalog.statement_timestamp() OPERATOR(pg_catalog.<>) pg_catalog.transaction_timestamp()",
    ) {
        Ok(messages) => messages.iter().any(|m| match m {
            postgres::SimpleQueryMessage::Row(row) => row.get(0) == Some("t"),
            _ => false,
        }),
        Err(_) => true,
    }
}

/// The failure that ends the deploy: the blockers in DETAIL (before the server's own), and
/// advice in HINT when the server gave none.
fn lock_failure(
    mut failure: Failure,
    wait: Option<LockWait>,
    obstacle: Option<String>,
    retries_done: u32,
    locking: &mut Locking<'_>,
) -> Failure {
    let mut lines = Vec::new();
    if let Some(wait) = &wait {
        lines.push(locks::describe(wait));
    }
    if retries_done > 0 {
        lines.push(format!(
            "gave up after {} attempts of this unit",
            retries_done + 1
        ));
    }
    if let Some(obstacle) = obstacle {
        lines.push(obstacle);
    }
    if let Some(detail) = failure.detail.take().filter(|d| !d.is_empty()) {
        lines.push(detail);
    }
    if !lines.is_empty() {
        failure.detail = Some(lines.join("\n"));
    }
    if failure.hint.as_deref().is_none_or(str::is_empty) {
        failure.hint = Some(locks::hint(wait.as_ref(), &locking.options));
    }
    locking.report.final_wait = wait;
    failure
}

/// Sleep `delay` in short steps; false when Ctrl-C or the deadline came first.
fn sleep_unless_stopped(delay: Duration, watchdog: &Watchdog) -> bool {
    let until = Instant::now() + delay;
    loop {
        if watchdog.timed_out() || watchdog.interrupted() {
            return false;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// `execution failed: ERROR: <message> (SQLSTATE <code>)` with the server's fields and,
/// when it reported a position in the text we sent, the line and column in deploy.sql
/// (the unit knows where it starts in the script).
fn execution_failure(err: &postgres::Error, unit: &pgmi_core::split::Unit) -> Failure {
    let mut failure = Failure::from_pg(Exit::ExecutionFailed, "execution failed", err);
    if let Some(ErrorPosition::Original(position)) = err.as_db_error().and_then(|db| db.position())
    {
        failure.location = unit.locate(*position as usize).map(|loc| ScriptLocation {
            line: loc.line,
            column: loc.column,
            source_line: loc.source_line,
        });
    }
    failure
}
