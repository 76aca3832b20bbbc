//! Asking before a destructive step (`--overwrite`), with the original pgmi's approver matrix
//! (README, "Overwriting a database"):
//!
//! | terminal | `--force` | what happens                                                  |
//! |----------|-----------|---------------------------------------------------------------|
//! | yes      | no        | the user types the database name; anything else → exit 12     |
//! | yes      | yes       | a 5-second countdown on stderr; Ctrl-C during it → exit 130   |
//! | no       | yes       | one log line, no delay                                        |
//! | no       | no        | refused at once → exit 12 (never waits for input that cannot come) |
//!
//! "Terminal" means standard input and standard error are both terminals (the prompt is
//! written to stderr and the answer read from stdin; stdout may be a `--json` pipe), and
//! neither `PGMI_NON_INTERACTIVE=1` nor a non-empty `CI` says otherwise.

use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::conninfo::EnvLookup;
use crate::exit::{Exit, Failure};
use crate::watchdog::Watchdog;

/// How long `--force` waits on a terminal before dropping a database.
pub const COUNTDOWN: Duration = Duration::from_secs(5);

/// Whether prompts can be shown and answered.
pub fn interactive(env: EnvLookup<'_>) -> bool {
    if env("PGMI_NON_INTERACTIVE").as_deref() == Some("1") || env("CI").is_some() {
        return false;
    }
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Approve dropping and re-creating `db`, or say why not (exit 12, or 130 when Ctrl-C
/// ends the countdown).
pub fn overwrite(
    db: &str,
    force: bool,
    interactive: bool,
    watchdog: &Watchdog,
) -> Result<(), Failure> {
    match (interactive, force) {
        (false, true) => {
            eprintln!("--force: dropping and recreating \"{db}\"");
            Ok(())
        }
        (false, false) => Err(Failure::new(
            Exit::ApprovalDenied,
            format!(
                "--overwrite would drop database \"{db}\", and there is no terminal to confirm it"
            ),
        )
        .with_hint(
            "add --force to drop and re-create it without asking (for throw-away databases in CI)",
        )),
        (true, true) => countdown(db, watchdog),
        (true, false) => confirm(db, &mut std::io::stdin().lock()),
    }
}

fn countdown(db: &str, watchdog: &Watchdog) -> Result<(), Failure> {
    let start = Instant::now();
    let mut shown = None;
    loop {
        if watchdog.interrupted() {
            eprintln!();
            return Err(Failure::new(
                Exit::Interrupted,
                format!("interrupted: database \"{db}\" was not dropped"),
            ));
        }
        let elapsed = start.elapsed();
        if elapsed >= COUNTDOWN {
            eprintln!("\r--force: dropping and recreating \"{db}\" now.                  ");
            return Ok(());
        }
        let left = (COUNTDOWN - elapsed).as_secs() + 1;
        if shown != Some(left) {
            eprint!("\r--force: dropping and recreating \"{db}\" in {left} s (Ctrl-C to cancel) ");
            let _ = std::io::stderr().flush();
            shown = Some(left);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn confirm(db: &str, input: &mut dyn BufRead) -> Result<(), Failure> {
    eprintln!(
        "WARNING: --overwrite drops database \"{db}\" and everything in it, then creates it again."
    );
    eprint!("Type the database name to confirm: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let read = input.read_line(&mut line).map_err(|e| {
        Failure::new(
            Exit::ApprovalDenied,
            format!("could not read the confirmation: {e}"),
        )
    })?;
    if read == 0 {
        eprintln!();
        return Err(Failure::new(
            Exit::ApprovalDenied,
            format!("no confirmation given; database \"{db}\" was not dropped"),
        )
        .with_hint("to overwrite without a prompt, add --force"));
    }
    let answer = line.trim_end_matches(['\n', '\r']);
    if answer != db {
        return Err(Failure::new(
            Exit::ApprovalDenied,
            format!("the name typed does not match \"{db}\"; cancelled, nothing was dropped"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmation_must_match_exactly() {
        assert!(confirm("app", &mut "app\n".as_bytes()).is_ok());
        assert!(confirm("app", &mut "app\r\n".as_bytes()).is_ok());
        let err = confirm("app", &mut "App\n".as_bytes()).unwrap_err();
        assert_eq!(err.exit, Exit::ApprovalDenied);
        assert!(err.message.contains("does not match"));
        let err = confirm("app", &mut "".as_bytes()).unwrap_err();
        assert_eq!(err.exit, Exit::ApprovalDenied);
        assert!(err.hint.unwrap().contains("--force"));
    }

    #[test]
    fn no_terminal_needs_force() {
        let watchdog = Watchdog::default();
        assert!(overwrite("app", true, false, &watchdog).is_ok());
        let err = overwrite("app", false, false, &watchdog).unwrap_err();
        assert_eq!(err.exit, Exit::ApprovalDenied);
    }

    #[test]
    fn ci_and_the_variable_disable_prompts() {
        assert!(!interactive(&|k| (k == "CI").then(|| "true".to_string())));
        assert!(!interactive(&|k| {
            (k == "PGMI_NON_INTERACTIVE").then(|| "1".to_string())
        }));
    }
}
