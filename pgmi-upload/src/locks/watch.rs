//! Who holds the lock a deploy statement waits for.
//!
//! While a unit runs on the session, a helper thread sleeps; once the statement has run
//! longer than a threshold ([`THRESHOLD`], shorter with a short `lock_timeout`) it looks from a second connection (same settings,
//! opened on first need and kept for the rest of the deploy) at what the session waits for
//! (`pg_locks`, its ungranted lock) and who is in the way (`pg_blocking_pids` joined to
//! `pg_stat_activity`), and again every [`POLL`] until the statement ends. The last
//! snapshot that found blockers is what a lock timeout or deadlock is explained with.
//!
//! A statement that finishes before the threshold costs a thread start and nothing on the
//! server. A failure of the second connection is never the deploy's failure: the watcher
//! then stays quiet for the rest of the run (the reason is printed with `--verbose`). The
//! helper thread owns what it uses, so when the second connection stops answering (its
//! replies lost on the network) the deploy waits at most [`LOOKER_GRACE`] for it after the
//! unit ended, then goes on without it.
//!
//! Each look also counts the locks the session holds (`pg_locks`), so that a unit failing
//! with "out of shared memory" (SQLSTATE 53200) can say how many it had taken: the failed
//! transaction releases them before the client hears of the failure (`budget.rs`).
//!
//! SQL here qualifies every function and operator with `pg_catalog` (the deploy may have
//! created look-alikes in schemas on the search path) and binds the session pid as a
//! parameter.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::{Duration, Instant};

use postgres::Client;
use serde::Serialize;

use crate::connect::Connector;

/// How long a statement runs before the watcher looks. 200 ms: longer than an ordinary DDL
/// statement on an idle table takes, shorter than any lock wait worth explaining. With a
/// shorter `lock_timeout` it looks at half the timeout, so a timed-out wait is still seen.
const THRESHOLD: Duration = Duration::from_millis(200);

/// Between two looks while the wait goes on.
const POLL: Duration = Duration::from_millis(250);

/// After the unit ended, how long the deploy waits for a look still in progress.
const LOOKER_GRACE: Duration = Duration::from_millis(500);

/// What the session waited for, and who held it, at the last look.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LockWait {
    /// How long the statement had waited when it ended.
    pub waited_ms: u64,
    /// `pg_locks.mode`, e.g. `AccessExclusiveLock`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// `pg_locks.locktype`: `relation`, `transactionid`, `tuple`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locktype: Option<String>,
    /// `schema.table` for a relation lock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relation: Option<String>,
    pub blockers: Vec<Blocker>,
    /// The wait's length at the last look and when that was (the rest is measured here).
    #[serde(skip)]
    waited_at_look: Duration,
    #[serde(skip)]
    looked_at: Option<Instant>,
}

/// One session in the way (`pg_stat_activity`).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blocker {
    pub pid: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    /// `local` for a Unix-socket client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Age of its open transaction; absent when none is open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_age_ms: Option<u64>,
    /// First line of its current or last query, literals replaced by `?`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

impl LockWait {
    /// Fix `waited_ms` at the moment the statement ended.
    fn finish(mut self, started: Instant) -> LockWait {
        let waited = match self.looked_at {
            Some(at) if !self.waited_at_look.is_zero() => self.waited_at_look + at.elapsed(),
            // No wait start from the server (PostgreSQL 13): the statement's whole run.
            _ => started.elapsed(),
        };
        self.waited_ms = waited.as_millis() as u64;
        self
    }
}

/// The second connection and what it needs. One looker thread serves every unit (a thread
/// per unit cost a spawn for each of a long tail's statements); it ends when the watcher
/// is dropped.
pub struct Watcher {
    shared: Arc<Shared>,
    jobs: mpsc::Sender<Job>,
}

/// One unit to watch: when it started, the channel that closes when it ends, and where to
/// send the last wait seen.
struct Job {
    started: Instant,
    finished: mpsc::Receiver<()>,
    report: mpsc::Sender<Option<LockWait>>,
}

/// Owned by the watcher and its helper threads (a thread may outlive its unit).
struct Shared {
    info: crate::conninfo::ConnInfo,
    tls: crate::tls::Tls,
    start: Instant,
    verbose: bool,
    deadline: Option<Instant>,
    session_pid: i32,
    threshold: Duration,
    conn: Mutex<Option<Client>>,
    /// The second connection failed once: do not try again.
    given_up: AtomicBool,
    /// Why it was given up, for the explanation of a 53200.
    given_up_why: Mutex<Option<String>>,
    /// The last unit watched: when it ran and the last lock count taken while it did.
    last_unit: Mutex<LastUnit>,
}

/// The last unit watched, for [`Watcher::held`].
#[derive(Debug, Clone, Copy, Default)]
struct LastUnit {
    started: Option<Instant>,
    ended: Option<Instant>,
    /// The most locks the session was seen holding, and when they were counted.
    count: Option<(i64, Instant)>,
}

impl Watcher {
    pub fn new(
        connector: &Connector<'_>,
        session_pid: i32,
        lock_timeout: Option<Duration>,
    ) -> Watcher {
        let threshold = match lock_timeout {
            Some(t) if !t.is_zero() && t < THRESHOLD * 2 => (t / 2).max(Duration::from_millis(20)),
            _ => THRESHOLD,
        };
        let shared = Arc::new(Shared {
            info: connector.info.clone(),
            tls: connector.tls.clone(),
            start: connector.start,
            verbose: connector.verbose,
            deadline: connector.deadline,
            session_pid,
            threshold,
            conn: Mutex::new(None),
            given_up: AtomicBool::new(false),
            given_up_why: Mutex::new(None),
            last_unit: Mutex::new(LastUnit::default()),
        });
        let (jobs, queue) = mpsc::channel::<Job>();
        let looker = Arc::clone(&shared);
        std::thread::spawn(move || {
            for job in queue {
                let _ = job
                    .report
                    .send(looker.look_until(job.finished, job.started));
            }
        });
        Watcher { shared, jobs }
    }

    /// Run `work` (one unit on the session) while watching for lock waits; its result and
    /// the last wait seen with blockers, if any.
    pub fn watch<T>(&self, work: impl FnOnce() -> T) -> (T, Option<LockWait>) {
        let started = Instant::now();
        // A new unit: no count yet (an unwatched unit keeps none, and `held` says why).
        self.shared.set_last_unit(LastUnit {
            started: Some(started),
            ..LastUnit::default()
        });
        // After a look hung, the looker may still be stuck in it: units run unwatched.
        if self.shared.given_up.load(Ordering::SeqCst) {
            return (work(), None);
        }
        let (done, finished) = mpsc::channel::<()>();
        let (report, seen) = mpsc::channel::<Option<LockWait>>();
        let job = Job {
            started,
            finished,
            report,
        };
        if self.jobs.send(job).is_err() {
            return (work(), None);
        }
        let result = work();
        let ended = Instant::now();
        drop(done);
        let wait = match seen.recv_timeout(LOOKER_GRACE) {
            Ok(wait) => wait,
            Err(_) => {
                // The looker is left in its look: it ends with its connection, or with the
                // process; later units run unwatched (`given_up`).
                self.shared
                    .give_up("the lock-holder connection stopped answering; not waiting for it");
                None
            }
        };
        if let Ok(mut last) = self.shared.last_unit.lock() {
            last.ended = Some(ended);
        }
        (result, wait.map(|w| w.finish(started)))
    }

    /// The backend pid of the deploying session.
    pub fn session_pid(&self) -> i32 {
        self.shared.session_pid
    }

    /// The most locks the session was seen holding while the last unit ran, or why they
    /// were not counted.
    pub fn held(&self) -> Result<super::budget::Held, String> {
        let last = self.shared.last_unit.lock().map(|l| *l).unwrap_or_default();
        if let (Some((locks, at)), Some(ended)) = (last.count, last.ended) {
            return Ok(super::budget::Held {
                locks,
                before_end: ended.saturating_duration_since(at),
            });
        }
        if let Some(why) = self.shared.given_up_why.lock().ok().and_then(|w| w.clone()) {
            return Err(why);
        }
        let ran = match (last.started, last.ended) {
            (Some(started), Some(ended)) => ended.saturating_duration_since(started),
            _ => Duration::ZERO,
        };
        Err(format!(
            "the unit failed after {:.2} s, before the first count (a second connection counts them once a unit has run {:.2} s)",
            ran.as_secs_f64(),
            self.shared.threshold.as_secs_f64()
        ))
    }
}

impl Shared {
    fn set_last_unit(&self, unit: LastUnit) {
        match self.last_unit.lock() {
            Ok(mut last) => *last = unit,
            Err(e) => *e.into_inner() = unit,
        }
    }

    fn look_until(&self, finished: mpsc::Receiver<()>, started: Instant) -> Option<LockWait> {
        let mut latest = None;
        let mut next = started + self.threshold;
        loop {
            match finished.recv_timeout(next.saturating_duration_since(Instant::now())) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => return latest,
            }
            if let Some(wait) = self.look() {
                latest = Some(wait);
            }
            next = Instant::now() + POLL;
        }
    }

    /// One look; `None` when the session waits for no lock, the look failed, or an earlier
    /// look (of an earlier unit) still hangs on the connection.
    fn look(&self) -> Option<LockWait> {
        if self.given_up.load(Ordering::SeqCst) {
            return None;
        }
        let mut guard = match self.conn.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        if guard.is_none() {
            match self.open() {
                Ok(client) => *guard = Some(client),
                Err(why) => {
                    self.give_up(&why);
                    return None;
                }
            }
        }
        let client = guard.as_mut()?;
        match client.query_one(HELD, &[&self.session_pid]) {
            Ok(row) => {
                let locks: i64 = row.get(0);
                // The most counted: a look that ends after the failure sees the locks
                // already released.
                if let Ok(mut last) = self.last_unit.lock() {
                    if last.count.is_none_or(|(most, _)| locks > most) {
                        last.count = Some((locks, Instant::now()));
                    }
                }
            }
            Err(e) => {
                self.give_up(&format!("counting the session's locks failed: {e}"));
                *guard = None;
                return None;
            }
        }
        match snapshot(client, self.session_pid) {
            Ok(wait) => wait,
            Err(e) => {
                self.give_up(&format!("looking for lock holders failed: {e}"));
                *guard = None;
                None
            }
        }
    }

    fn open(&self) -> Result<Client, String> {
        let connector = Connector {
            info: &self.info,
            start: self.start,
            verbose: self.verbose,
            deadline: self.deadline,
            tls: &self.tls,
        };
        let db = &self.info.target_db;
        let mut client = connector.connect(db).map_err(|e| {
            format!("could not open a second connection to look for lock holders: {e}")
        })?;
        // The look must never hang the deploy; two seconds is ages for two catalog reads.
        client
            .batch_execute("SELECT pg_catalog.set_config('statement_timeout', '2000', false)")
            .map_err(|e| format!("could not prepare the lock-holder connection: {e}"))?;
        Ok(client)
    }

    fn give_up(&self, why: &str) {
        self.given_up.store(true, Ordering::SeqCst);
        if let Ok(mut slot) = self.given_up_why.lock() {
            slot.get_or_insert_with(|| why.to_string());
        }
        crate::report::verbose(self.verbose, why);
    }
}

/// How many locks `pid` holds or waits for.
const HELD: &str =
    "SELECT pg_catalog.count(*) FROM pg_catalog.pg_locks l WHERE l.pid OPERATOR(pg_catalog.=) $1";

/// What the ungranted lock of `pid` is and who blocks it. The wait start comes from
/// `pg_locks.waitstart` (PostgreSQL 14+), read through `to_jsonb` so the same text runs on 13.
const WAITING_FOR: &str = "\
SELECT l.mode, l.locktype,
       (SELECT pg_catalog.format('%I.%I', n.nspname, c.relname)
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
         WHERE c.oid OPERATOR(pg_catalog.=) l.relation),
       pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-)
           CAST(pg_catalog.to_jsonb(l) OPERATOR(pg_catalog.->>) 'waitstart' AS timestamptz))
  FROM pg_catalog.pg_locks l
 WHERE l.pid OPERATOR(pg_catalog.=) $1 AND NOT l.granted
 LIMIT 1";

const BLOCKERS: &str = "\
SELECT a.pid, CAST(a.usename AS text), a.application_name,
       COALESCE(pg_catalog.host(a.client_addr), CASE WHEN a.client_port OPERATOR(pg_catalog.=) -1 THEN 'local' END),
       a.state,
       pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) a.xact_start),
       a.query
  FROM pg_catalog.pg_stat_activity a
 WHERE a.pid OPERATOR(pg_catalog.=) ANY (pg_catalog.pg_blocking_pids($1))
 ORDER BY a.pid";

fn snapshot(client: &mut Client, pid: i32) -> Result<Option<LockWait>, postgres::Error> {
    let Some(lock) = client.query_opt(WAITING_FOR, &[&pid])? else {
        return Ok(None);
    };
    let blockers: Vec<Blocker> = client
        .query(BLOCKERS, &[&pid])?
        .iter()
        .map(|row| Blocker {
            pid: row.get(0),
            user: row.get(1),
            application: row.get::<_, Option<String>>(2).filter(|s| !s.is_empty()),
            client_addr: row.get(3),
            state: row.get(4),
            transaction_age_ms: row
                .get::<_, Option<f64>>(5)
                .map(|s| (s.max(0.0) * 1000.0) as u64),
            query: row
                .get::<_, Option<String>>(6)
                .map(|q| super::redact::first_line(&q))
                .filter(|q| !q.is_empty()),
        })
        .collect();
    if blockers.is_empty() {
        return Ok(None);
    }
    let waited: Option<f64> = lock.get(3);
    Ok(Some(LockWait {
        waited_ms: 0,
        mode: lock.get(0),
        locktype: lock.get(1),
        relation: lock.get(2),
        blockers,
        waited_at_look: Duration::from_secs_f64(waited.unwrap_or(0.0).max(0.0)),
        looked_at: Some(Instant::now()),
    }))
}

#[cfg(test)]
pub(crate) fn sample() -> LockWait {
    LockWait {
        waited_ms: 5000,
        mode: Some("AccessExclusiveLock".into()),
        locktype: Some("relation".into()),
        relation: Some("public.orders".into()),
        blockers: vec![Blocker {
            pid: 4121,
            user: Some("billing".into()),
            application: Some("billing-worker".into()),
            client_addr: Some("10.0.0.7".into()),
            state: Some("idle in transaction".into()),
            transaction_age_ms: Some(14 * 60 * 1000 + 3000),
            query: Some("UPDATE orders SET paid = ? WHERE id = ?".into()),
        }],
        ..LockWait::default()
    }
}
