//! Where one deploy's wall-clock time went, phase by phase: printed with `--verbose` and
//! given as `phasesMs` in `--json` (README "Output"), and read by `scripts/bench.sh deploy`.
//!
//! A phase ends with [`lap`], which charges the time since the previous lap (or since
//! [`start`]) to it; a phase that runs twice adds up. One deploy per process, so the record is
//! a process-wide one rather than a value threaded through every step.

use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Record {
    last: Instant,
    phases: Vec<(&'static str, Duration)>,
}

static RECORD: Mutex<Option<Record>> = Mutex::new(None);

/// Start timing from `at` (the process's start of the deploy).
pub fn start(at: Instant) {
    if let Ok(mut record) = RECORD.lock() {
        *record = Some(Record {
            last: at,
            phases: Vec::new(),
        });
    }
}

/// End the phase `name` now.
pub fn lap(name: &'static str) {
    let Ok(mut guard) = RECORD.lock() else { return };
    let Some(record) = guard.as_mut() else { return };
    let now = Instant::now();
    let spent = now.saturating_duration_since(record.last);
    record.last = now;
    match record.phases.iter_mut().find(|(n, _)| *n == name) {
        Some((_, total)) => *total += spent,
        None => record.phases.push((name, spent)),
    }
}

/// The phases so far, in the order they first ended.
pub fn phases() -> Vec<(&'static str, Duration)> {
    RECORD
        .lock()
        .ok()
        .and_then(|r| r.as_ref().map(|r| r.phases.clone()))
        .unwrap_or_default()
}

/// `scan 12.3 ms, check 40.1 ms, …` for `--verbose`.
pub fn describe(phases: &[(&'static str, Duration)]) -> String {
    phases
        .iter()
        .map(|(name, d)| format!("{name} {:.1} ms", d.as_secs_f64() * 1e3))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn laps_charge_the_time_since_the_previous_one_and_repeat_phases_add_up() {
        start(Instant::now() - Duration::from_millis(50));
        lap("scan");
        std::thread::sleep(Duration::from_millis(5));
        lap("load");
        std::thread::sleep(Duration::from_millis(5));
        lap("scan");
        let p = phases();
        let names: Vec<_> = p.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["scan", "load"]);
        assert!(p[0].1 >= Duration::from_millis(55), "{p:?}");
        assert!(p[1].1 >= Duration::from_millis(5), "{p:?}");
        let text = describe(&p);
        assert!(
            text.starts_with("scan ") && text.contains(" ms, load "),
            "{text}"
        );
    }
}
