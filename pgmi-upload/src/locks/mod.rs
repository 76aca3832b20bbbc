//! Lock-safe deploys: a bounded lock wait (`--lock-timeout`, `lock_timeout` in pgmi.yaml),
//! retries of what failed only because of locking (`--retries`), and the names of the
//! sessions that held the lock (`watch.rs`).
//!
//! What is retried, and why that is safe:
//! * SQLSTATE 55P03 (`lock_not_available`, what `lock_timeout` raises), 40P01
//!   (`deadlock_detected`) and 40001 (`serialization_failure`). Each one aborts the
//!   statement's transaction and has no other effect.
//! * The atomic head (deploy.sql up to and including its first top-level `COMMIT`) runs as
//!   one transaction, so when it fails nothing of it is committed: any open transaction
//!   block is rolled back and the whole head runs again on the same session, with the
//!   project still loaded.
//! * A tail unit is retried alone, and only when the session is outside a transaction block
//!   after the failure, i.e. the statement ran in its own transaction. Inside a block that
//!   an earlier tail statement opened, the failure aborted the block, and re-running one
//!   statement of it would not repeat the others: the deploy stops as without `--retries`.
//!
//! The wait before retry *n* (1-based) is drawn uniformly from `[d/2, d]` with
//! `d = min(BASE · 2ⁿ⁻¹, CAP)`: exponential, so a busy table gets room, and jittered, so two
//! deploys that collided do not collide again in lockstep. It never runs past `--timeout`.

pub mod budget;
pub mod redact;
pub mod watch;

use std::time::{Duration, Instant};

use serde::Serialize;

pub use watch::{LockWait, Watcher};

/// First backoff step. 250 ms: the next attempt comes after the lock holder's typical
/// short transaction (an OLTP statement) has had time to end.
const BASE: Duration = Duration::from_millis(250);
/// Longest single wait between attempts.
const CAP: Duration = Duration::from_secs(10);

/// `--lock-timeout` / `--retries`, resolved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LockOptions {
    /// `lock_timeout` for deploy.sql's statements; `None` leaves the server's setting,
    /// zero turns it off.
    pub lock_timeout: Option<Duration>,
    pub retries: u32,
}

/// Parse a `--lock-timeout` / `lock_timeout:` value: a duration such as `200ms`, `5s`,
/// `1m`; `0` turns the timeout off (as in PostgreSQL). Sub-millisecond values are refused,
/// because the server counts this setting in milliseconds.
pub fn parse_lock_timeout(text: &str) -> Result<Option<Duration>, String> {
    let invalid = || {
        format!(
            "invalid lock timeout {text:?}: expected a duration such as 200ms, 5s or 1m (0 turns it off)"
        )
    };
    let value = crate::duration::parse_timeout(text.trim()).map_err(|_| invalid())?;
    match value {
        Some(d) if d < Duration::from_millis(1) => Err(invalid()),
        // PostgreSQL's limit for the setting: INT_MAX milliseconds.
        Some(d) if d.as_millis() > i32::MAX as u128 => Err(invalid()),
        other => Ok(other),
    }
}

/// Set the session's `lock_timeout` before deploy.sql runs (session level, so a head that
/// is rolled back and retried keeps it; deploy.sql may still change it).
pub fn apply(
    client: &mut postgres::Client,
    options: &LockOptions,
) -> Result<(), crate::exit::Failure> {
    let Some(timeout) = options.lock_timeout else {
        return Ok(());
    };
    let millis = timeout.as_millis().to_string();
    client
        .query(
            "SELECT pg_catalog.set_config('lock_timeout', $1, false)",
            &[&millis],
        )
        .map(|_| ())
        .map_err(|e| {
            crate::exit::Failure::from_pg(
                crate::exit::Exit::General,
                "could not set lock_timeout",
                &e,
            )
        })
}

/// SQLSTATEs that mean "locking got in the way, nothing was done".
pub fn is_retryable(sqlstate: &str) -> bool {
    matches!(sqlstate, "55P03" | "40P01" | "40001")
}

/// The condition name, for messages.
pub fn condition(sqlstate: &str) -> &'static str {
    match sqlstate {
        "55P03" => "lock timeout",
        "40P01" => "deadlock",
        "40001" => "serialization failure",
        _ => "error",
    }
}

/// One failed attempt, as `--json` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// 1-based execution unit (1 is the head).
    pub unit: usize,
    pub sqlstate: String,
    /// The wait before the next attempt; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

/// What the deploy learnt about locking, for the summary and `--json`.
#[derive(Debug, Clone, Default)]
pub struct LockReport {
    pub attempts: Vec<Attempt>,
    /// The wait that ended the deploy (a lock timeout or deadlock with blockers seen).
    pub final_wait: Option<LockWait>,
}

/// The wait before retry `n` (1-based), with jitter from `unit_random` in `[0, 1)`.
pub fn backoff(n: u32, unit_random: f64) -> Duration {
    let factor = 2u32.saturating_pow(n.saturating_sub(1).min(16));
    let full = BASE.saturating_mul(factor).min(CAP);
    full / 2 + full.mul_f64(unit_random.clamp(0.0, 1.0) / 2.0)
}

/// A number in `[0, 1)` for the jitter. Randomness quality does not matter here, only that
/// two processes differ: std's per-process random hash keys, mixed with the clock.
pub fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// "waited 5.0 s for an AccessExclusiveLock on public.orders held by pid 4121 (app
/// billing-worker, idle in transaction for 14 min)".
pub fn describe(wait: &LockWait) -> String {
    let mut text = format!("waited {:.1} s", wait.waited_ms as f64 / 1000.0);
    if let Some(mode) = &wait.mode {
        let article = if mode.starts_with(['A', 'E', 'I', 'O', 'U']) {
            "an"
        } else {
            "a"
        };
        text.push_str(&format!(" for {article} {mode}"));
        match (&wait.relation, &wait.locktype) {
            (Some(relation), _) => text.push_str(&format!(" on {relation}")),
            (None, Some(locktype)) => text.push_str(&format!(" ({locktype} lock)")),
            (None, None) => {}
        }
    }
    let holders: Vec<String> = wait.blockers.iter().map(describe_blocker).collect();
    if !holders.is_empty() {
        text.push_str(" held by ");
        text.push_str(&holders.join(", "));
    }
    text
}

fn describe_blocker(b: &watch::Blocker) -> String {
    let mut parts = Vec::new();
    if let Some(app) = &b.application {
        parts.push(format!("app {app}"));
    }
    if let Some(user) = &b.user {
        parts.push(format!("user {user}"));
    }
    if let Some(addr) = &b.client_addr {
        parts.push(format!("from {addr}"));
    }
    match (&b.state, b.transaction_age_ms) {
        (Some(state), Some(age)) => {
            parts.push(format!("{state} for {}", human(Duration::from_millis(age))))
        }
        (Some(state), None) => parts.push(state.clone()),
        (None, Some(age)) => parts.push(format!(
            "in a transaction for {}",
            human(Duration::from_millis(age))
        )),
        (None, None) => {}
    }
    let mut inside = parts.join(", ");
    if let Some(query) = &b.query {
        let query = query.trim_end_matches([';', ' ']);
        if !inside.is_empty() {
            inside.push_str("; ");
        }
        inside.push_str(&format!("query: {query}"));
    }
    if inside.is_empty() {
        format!("pid {}", b.pid)
    } else {
        format!("pid {} ({inside})", b.pid)
    }
}

/// `0.4 s`, `12 s`, `14 min`, `2 h 5 min`.
fn human(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 10.0 {
        format!("{secs:.1} s")
    } else if secs < 120.0 {
        format!("{} s", secs.round() as u64)
    } else if secs < 7200.0 {
        format!("{} min", (secs / 60.0).floor() as u64)
    } else {
        let mins = (secs / 60.0).floor() as u64;
        format!("{} h {} min", mins / 60, mins % 60)
    }
}

/// The advice printed when locking stopped the deploy.
pub fn hint(wait: Option<&LockWait>, options: &LockOptions) -> String {
    let end = match wait.and_then(|w| w.blockers.first()) {
        Some(b) => format!(
            "let the blocking session finish, or end it (SELECT pg_catalog.pg_terminate_backend({}))",
            b.pid
        ),
        None => "let the sessions holding the lock finish".to_string(),
    };
    let tune = if options.retries == 0 {
        "retry with --retries N to try again automatically"
    } else {
        "raise --retries or --lock-timeout to wait longer"
    };
    format!("{end}, then deploy again; {tune}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_timeouts_parse() {
        assert_eq!(
            parse_lock_timeout("200ms").unwrap(),
            Some(Duration::from_millis(200))
        );
        assert_eq!(
            parse_lock_timeout("5s").unwrap(),
            Some(Duration::from_secs(5))
        );
        assert_eq!(parse_lock_timeout("0").unwrap(), None);
        for bad in ["", "5", "-1s", "10us", "abc", "1000h"] {
            let err = parse_lock_timeout(bad).unwrap_err();
            assert!(err.contains("invalid lock timeout"), "{bad}: {err}");
        }
    }

    #[test]
    fn only_locking_failures_are_retried() {
        for code in ["55P03", "40P01", "40001"] {
            assert!(is_retryable(code));
        }
        for code in ["57014", "42601", "23505", "40003", "25P02"] {
            assert!(!is_retryable(code), "{code}");
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_a_cap() {
        assert_eq!(backoff(1, 0.0), Duration::from_millis(125));
        assert_eq!(backoff(1, 1.0), Duration::from_millis(250));
        assert_eq!(backoff(2, 1.0), Duration::from_millis(500));
        assert_eq!(backoff(3, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(30, 1.0), CAP);
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }

    #[test]
    fn a_wait_reads_as_one_sentence() {
        assert_eq!(
            describe(&watch::sample()),
            "waited 5.0 s for an AccessExclusiveLock on public.orders held by pid 4121 \
             (app billing-worker, user billing, from 10.0.0.7, idle in transaction for 14 min; \
             query: UPDATE orders SET paid = ? WHERE id = ?)"
        );
        let mut row_lock = watch::sample();
        row_lock.mode = Some("ShareLock".into());
        row_lock.relation = None;
        row_lock.locktype = Some("transactionid".into());
        row_lock.blockers[0] = watch::Blocker {
            pid: 7,
            ..watch::Blocker::default()
        };
        assert_eq!(
            describe(&row_lock),
            "waited 5.0 s for a ShareLock (transactionid lock) held by pid 7"
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human(Duration::from_millis(400)), "0.4 s");
        assert_eq!(human(Duration::from_secs(42)), "42 s");
        assert_eq!(human(Duration::from_secs(14 * 60 + 5)), "14 min");
        assert_eq!(human(Duration::from_secs(2 * 3600 + 5 * 60)), "2 h 5 min");
    }

    #[test]
    fn attempts_serialise_in_camel_case() {
        let a = Attempt {
            unit: 1,
            sqlstate: "55P03".into(),
            wait_ms: Some(300),
        };
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            serde_json::json!({"unit": 1, "sqlstate": "55P03", "waitMs": 300})
        );
    }
}
