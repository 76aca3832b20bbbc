//! Running `deploy.sql` (reference `pgmi-session-api.md` §7.2, §7.7).
//!
//! `pgmi_core::split` cuts the script into the atomic head and psql-style tail units; each
//! unit is sent as one simple-query message (`batch_execute`), exactly as the reference
//! does, so multi-statement units, `COMMIT` and `CREATE INDEX CONCURRENTLY` in the tail
//! behave as in psql. The first failing unit stops the run (exit 13). Tail units carry
//! padding so server positions map to lines of the whole script; the error location is
//! computed from the exact text that was sent.

use postgres::error::ErrorPosition;
use postgres::Client;

use crate::exit::{Exit, Failure, ScriptLocation};
use crate::watchdog::Watchdog;

/// How far execution got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub units: usize,
    /// Units that completed before the failure (= `units` on success).
    pub committed: usize,
}

/// Run every unit in order; on failure, the index of the failing unit is
/// `progress.committed`.
pub fn run_units(
    client: &mut Client,
    units: &[pgmi_core::split::Unit],
    watchdog: &Watchdog,
    progress: &mut Progress,
) -> Result<(), Failure> {
    progress.units = units.len();
    progress.committed = 0;
    for unit in units {
        if watchdog.timed_out() || watchdog.interrupted() {
            return Err(Failure::new(
                Exit::ExecutionFailed,
                "execution stopped before the next statement",
            ));
        }
        if let Err(err) = client.batch_execute(&unit.text) {
            return Err(execution_failure(&err, &unit.text));
        }
        progress.committed += 1;
    }
    Ok(())
}

/// `execution failed: ERROR: <message> (SQLSTATE <code>)` with the server's fields and,
/// when it reported a position in the text we sent, the line and column in deploy.sql.
fn execution_failure(err: &postgres::Error, sent: &str) -> Failure {
    let mut failure = Failure::from_pg(Exit::ExecutionFailed, "execution failed", err);
    if let Some(ErrorPosition::Original(position)) = err.as_db_error().and_then(|db| db.position())
    {
        failure.location =
            pgmi_core::split::locate(sent, *position as usize).map(|loc| ScriptLocation {
                line: loc.line,
                column: loc.column,
                source_line: loc.source_line,
            });
    }
    failure
}
