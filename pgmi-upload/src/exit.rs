//! The exit-code table (README "Exit codes") and the one error type the deploy
//! returns.
//!
//! Every failure is classified exactly once, where it is detected, by choosing an [`Exit`];
//! `main` only turns it into a process exit code. The precedence rules of the original pgmi
//! (interrupted beats everything, the `--timeout` deadline beats "execution failed") are
//! applied in `run.rs`, which knows whether a watchdog fired.

use std::fmt;

/// Exit codes, numerically identical to the original pgmi's so scripts written for it keep
/// working.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success,
    /// Anything unclassified (I/O errors, SQL errors while preparing the session).
    General,
    /// Bad flags or arguments (clap exits with 2 itself), and `init`'s refusals.
    Usage,
    /// A panic reached `main`.
    Panic,
    /// Decided offline or by configuration: nothing on any server was touched
    /// (except a database created by a previous step).
    InvalidConfig,
    ConnectionFailed,
    /// `--overwrite` was not approved (wrong name typed, no answer, no terminal and no
    /// `--force`).
    ApprovalDenied,
    ExecutionFailed,
    DeploySqlNotFound,
    /// Deploy lock busy, or lost a `CREATE DATABASE` race.
    ConcurrentDeploy,
    /// The `--timeout` deadline expired.
    Timeout,
    /// SIGINT or SIGTERM.
    Interrupted,
}

impl Exit {
    pub fn code(self) -> i32 {
        match self {
            Exit::Success => 0,
            Exit::General => 1,
            Exit::Usage => 2,
            Exit::Panic => 3,
            Exit::InvalidConfig => 10,
            Exit::ConnectionFailed => 11,
            Exit::ApprovalDenied => 12,
            Exit::ExecutionFailed => 13,
            Exit::DeploySqlNotFound => 14,
            Exit::ConcurrentDeploy => 15,
            Exit::Timeout => 16,
            Exit::Interrupted => 130,
        }
    }
}

/// Where in `deploy.sql` the server said an error is (from the error's `Position`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptLocation {
    pub line: usize,
    pub column: usize,
    pub source_line: String,
}

/// A failed deploy: the exit class, the message chain and the server's diagnostics.
///
/// `message` is the whole chain on one line (`execution failed: ERROR: … (SQLSTATE …)`);
/// it is redacted when printed, not here, so nothing can forget to.
#[derive(Debug, Clone)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
    pub sqlstate: Option<String>,
    pub detail: Option<String>,
    pub hint: Option<String>,
    pub where_: Option<String>,
    pub location: Option<ScriptLocation>,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Failure {
        Failure {
            exit,
            message: message.into(),
            sqlstate: None,
            detail: None,
            hint: None,
            where_: None,
            location: None,
        }
    }

    /// Shorthand for the most common class: invalid configuration (exit 10).
    pub fn config(message: impl Into<String>) -> Failure {
        Failure::new(Exit::InvalidConfig, message)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }

    /// Prefix the message with what was being done (`"<context>: <message>"`).
    pub fn context(mut self, context: &str) -> Failure {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// A failure built from a server error: `ERROR: <message> (SQLSTATE <code>)` plus its
    /// DETAIL, HINT and WHERE fields.
    pub fn from_db(exit: Exit, context: &str, db: &postgres::error::DbError) -> Failure {
        // A message of several lines (pgmi_execute's source line and caret) keeps its
        // first line the error and the SQLSTATE, and the excerpt below it intact.
        let (first, rest) = match db.message().split_once('\n') {
            Some((first, rest)) => (first, format!("\n{rest}")),
            None => (db.message(), String::new()),
        };
        Failure {
            exit,
            message: format!(
                "{context}: {}: {first} (SQLSTATE {}){rest}",
                db.severity(),
                db.code().code()
            ),
            sqlstate: Some(db.code().code().to_string()),
            // An empty DETAIL or HINT (`RAISE … USING DETAIL = ''`) is no detail.
            detail: db.detail().filter(|d| !d.is_empty()).map(str::to_string),
            hint: db.hint().filter(|h| !h.is_empty()).map(str::to_string),
            where_: db.where_().and_then(user_context),
            location: None,
        }
    }

    /// A failure from any client error: server errors keep their diagnostics, transport
    /// errors keep their source chain in the message.
    pub fn from_pg(exit: Exit, context: &str, err: &postgres::Error) -> Failure {
        match err.as_db_error() {
            Some(db) => Failure::from_db(exit, context, db),
            None => Failure::new(exit, format!("{context}: {}", error_chain(err))),
        }
    }
}

/// The lines of a server error's CONTEXT that say something about the user's code: the
/// frames of pgmi's own session routines (`pg_temp_N.pgmi_test(…)`, `…pgmi_execute(…)`,
/// the `_pgmi_…` helpers, the extension procedure `pgmi_test` calls) are dropped, since
/// every test failure and every `pgmi_execute` failure would end with them. `None` when
/// nothing is left.
fn user_context(context: &str) -> Option<String> {
    let internal = |line: &str| {
        let routine = line
            .strip_prefix("PL/pgSQL function ")
            .or_else(|| line.strip_prefix("SQL function "));
        match routine {
            // `pg_temp_3.pgmi_test(text,text) line 7 at CALL`, `"pgmi_execute" …`
            Some(rest) => {
                let name = rest.trim_start_matches('"');
                (name.starts_with("pg_temp_") || name.starts_with("pg_temp."))
                    && name
                        .split_once('.')
                        .is_some_and(|(_, f)| f.starts_with("pgmi_") || f.starts_with("_pgmi_"))
            }
            // `SQL statement "CALL public.pgmi_test(p_pattern, p_callback)"`
            None => line.contains(".pgmi_test(p_pattern, p_callback)"),
        }
    };
    let kept: Vec<&str> = context.lines().filter(|l| !internal(l)).collect();
    (!kept.is_empty()).then(|| kept.join("\n"))
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// `outer: inner: innermost`, without repeating a source that its parent already printed.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_original_pgmi() {
        let table = [
            (Exit::Success, 0),
            (Exit::General, 1),
            (Exit::Usage, 2),
            (Exit::Panic, 3),
            (Exit::InvalidConfig, 10),
            (Exit::ConnectionFailed, 11),
            (Exit::ExecutionFailed, 13),
            (Exit::DeploySqlNotFound, 14),
            (Exit::ConcurrentDeploy, 15),
            (Exit::Timeout, 16),
            (Exit::Interrupted, 130),
            (Exit::ApprovalDenied, 12),
        ];
        for (exit, code) in table {
            assert_eq!(exit.code(), code, "{exit:?}");
        }
    }

    #[test]
    fn context_prefixes_the_message() {
        let f = Failure::config("bad").context("loading");
        assert_eq!(f.message, "loading: bad");
        assert_eq!(f.exit, Exit::InvalidConfig);
    }

    #[test]
    fn pgmi_frames_are_dropped_from_the_context() {
        assert_eq!(
            user_context(
                "SQL statement \"CALL public.pgmi_test(p_pattern, p_callback)\"\nPL/pgSQL function pg_temp_3.pgmi_test(text,text) line 7 at CALL"
            ),
            None
        );
        assert_eq!(
            user_context(
                "PL/pgSQL function pg_temp_3.pgmi_execute(text) line 89 at RAISE\nSQL statement \"SELECT pg_temp.pgmi_execute(m.path)\"\nPL/pgSQL function inline_code_block line 13 at PERFORM"
            )
            .as_deref(),
            Some("SQL statement \"SELECT pg_temp.pgmi_execute(m.path)\"\nPL/pgSQL function inline_code_block line 13 at PERFORM")
        );
        // The user's own functions, in pg_temp or not, stay.
        for line in [
            "PL/pgSQL function pg_temp_3.seed_users() line 4 at SQL statement",
            "PL/pgSQL function app.pgmi_like_name() line 2 at RAISE",
        ] {
            assert_eq!(user_context(line).as_deref(), Some(line));
        }
    }
}
