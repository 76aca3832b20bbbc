//! `CALL pgmi_test()`: runs the session's tests, each in a subtransaction that is always
//! rolled back, and aborts with the first failure — a real procedure instead of the
//! original pgmi's client-side text macro (docs/testing.md).
//!
//! The observable behaviour kept from the original: the plan (`pgmi_test_plan`), the nine
//! events with their fields and ordinals, which callback side effects survive (only
//! `suite_start`, the `teardown_end` of each tree root and `suite_end`), the error shape
//! `Failed in <path>: <message>` with the original SQLSTATE and DETAIL (HINT dropped), and
//! P0002 on an empty plan. Nesting mirrors the original's savepoints exactly: a directory
//! opens one subtransaction at its first fixture or test (directories that only pass through
//! open none), each test gets one inside it, and the directory's is rolled back at teardown.
//!
//! Unlike most of the extension, `pgmi_test` does not pin `search_path`: the tests and the
//! callback are the user's code and must resolve names exactly as the caller's session does.
//! Every name this module itself puts in SQL is schema-qualified instead.
//!
//! Per-step results (with server-side timings) are kept in backend memory, so they survive
//! the rollback a failed test causes; `pgmi_test_results()` returns them for reports.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use pgmi_core::testplan::{self, PlanDirectory, PlanFile, PlanStep, StepType};
use pgrx::pg_sys::panic::{CaughtError, ErrorReport};
use pgrx::prelude::*;
use pgrx::spi::{SpiClient, SpiResult};
use pgrx::{PgOid, PgSqlErrorCode};

use crate::subxact::Stack;

const DEFAULT_CALLBACK: &str = "pg_temp.pgmi_test_callback";

struct StepResult {
    suite: i32,
    ordinal: i32,
    step_type: StepType,
    path: String,
    directory: String,
    passed: bool,
    duration_us: i64,
    sqlstate: Option<String>,
    message: Option<String>,
    detail: Option<String>,
}

thread_local! {
    // A backend is single-threaded; this is per-session memory, untouched by rollbacks.
    static RESULTS: RefCell<Vec<StepResult>> = const { RefCell::new(Vec::new()) };
    static SUITES: Cell<i32> = const { Cell::new(0) };
}

/// Forgets the results of earlier suites (a new `pgmi_load` starts a new session).
pub fn reset() {
    RESULTS.with(|r| r.borrow_mut().clear());
    SUITES.with(|s| s.set(0));
}

fn raise(
    code: PgSqlErrorCode,
    message: impl Into<String>,
    detail: Option<String>,
    hint: Option<&str>,
) -> ! {
    let mut report = ErrorReport::new(code, message.into(), "pgmi_test");
    if let Some(detail) = detail {
        report = report.set_detail(detail);
    }
    if let Some(hint) = hint {
        report = report.set_hint(hint);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ERROR-level reports do not return")
}

fn spi_failed(e: pgrx::spi::Error) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        format!("pgmi_test: SPI failed: {e}"),
        None,
        None,
    )
}

fn require_session(client: &SpiClient<'_>) {
    let loaded = client
        .select(
            "SELECT pg_catalog.to_regclass('pg_temp._pgmi_test_source') IS NOT NULL",
            None,
            &[],
        )
        .and_then(|t| t.first().get_one::<bool>())
        .unwrap_or_else(|e| spi_failed(e));
    if loaded != Some(true) {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "no pgmi session in this connection",
            None,
            Some("load a project first: deploy it with pgmi-upload, or SELECT * FROM pgmi_load(<bundle>)"),
        );
    }
}

/// The plan for `pattern` (NULL or '' = every test), with each script's content when asked.
fn load_plan(
    client: &SpiClient<'_>,
    pattern: Option<&str>,
    with_content: bool,
) -> (Vec<PlanStep>, HashMap<String, String>) {
    require_session(client);
    let pattern = pattern.filter(|p| !p.is_empty());
    // Raises P0001 "Invalid regex pattern: …" before any data is read.
    client
        .select(
            "SELECT pg_temp.pgmi_validate_pattern($1)",
            None,
            &[pattern.into()],
        )
        .unwrap_or_else(|e| spi_failed(e));
    type Rows = (Vec<PlanDirectory>, Vec<PlanFile>, HashMap<String, String>);
    let read = || -> SpiResult<Rows> {
        let mut directories = Vec::new();
        for row in client.select(
            "SELECT path, parent_path, depth FROM pg_temp._pgmi_test_directory",
            None,
            &[],
        )? {
            directories.push(PlanDirectory {
                path: row.get::<String>(1)?.unwrap_or_default(),
                parent_path: row.get::<String>(2)?,
                depth: row.get::<i32>(3)?.unwrap_or_default(),
            });
        }
        let mut files = Vec::new();
        let mut contents = HashMap::new();
        let query = if with_content {
            "SELECT path, directory, filename, is_fixture, \
                    is_fixture OR $1::text IS NULL OR path OPERATOR(pg_catalog.~) $1, content \
               FROM pg_temp._pgmi_test_source"
        } else {
            "SELECT path, directory, filename, is_fixture, \
                    is_fixture OR $1::text IS NULL OR path OPERATOR(pg_catalog.~) $1 \
               FROM pg_temp._pgmi_test_source"
        };
        for row in client.select(query, None, &[pattern.into()])? {
            let file = PlanFile {
                path: row.get::<String>(1)?.unwrap_or_default(),
                directory: row.get::<String>(2)?.unwrap_or_default(),
                filename: row.get::<String>(3)?.unwrap_or_default(),
                is_fixture: row.get::<bool>(4)?.unwrap_or_default(),
                selected: row.get::<bool>(5)?.unwrap_or_default(),
            };
            if with_content && (file.is_fixture || file.selected) {
                contents.insert(file.path.clone(), row.get::<String>(6)?.unwrap_or_default());
            }
            files.push(file);
        }
        Ok((directories, files, contents))
    };
    let (directories, files, contents) = read().unwrap_or_else(|e| spi_failed(e));
    (testplan::build(&directories, &files), contents)
}

/// The test plan of the loaded session: fixture, test and teardown steps in execution order.
/// `p_pattern` is a POSIX regular expression matched against each test's path (NULL = all).
#[pg_extern(stable, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn pgmi_test_plan(
    p_pattern: default!(Option<&str>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(ordinal, i32),
        name!(step_type, String),
        name!(script_path, Option<String>),
        name!(directory, String),
        name!(depth, i32),
    ),
> {
    let (plan, _) = Spi::connect(|client| load_plan(client, p_pattern, false));
    TableIterator::new(plan.into_iter().map(|s| {
        (
            s.ordinal,
            s.step_type.as_str().to_string(),
            s.script_path,
            s.directory,
            s.depth,
        )
    }))
}

/// Validates a callback name (the original pgmi's rule) and resolves it the way PostgreSQL
/// resolves a call under the caller's search_path; returns it as a quoted, qualified name.
fn resolve_callback(client: &SpiClient<'_>, name: &str) -> String {
    let ident = |s: &str| {
        let mut bytes = s.bytes();
        matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    let valid = match name.split_once('.') {
        Some((schema, function)) => ident(schema) && ident(function),
        None => ident(name),
    };
    if !valid {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("Invalid callback name: {name}. Expected [schema.]function identifier."),
            None,
            None,
        );
    }
    let resolved = client
        .select(
            "SELECT pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.' \
                    OPERATOR(pg_catalog.||) pg_catalog.quote_ident(p.proname) \
               FROM pg_catalog.pg_proc p \
               JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace \
              WHERE p.oid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure( \
                        $1 OPERATOR(pg_catalog.||) '(pg_temp.pgmi_test_event)')",
            None,
            &[name.into()],
        )
        .and_then(|t| {
            if t.is_empty() {
                Ok(None)
            } else {
                t.first().get_one::<String>()
            }
        })
        .unwrap_or_else(|e| spi_failed(e));
    resolved.unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_FUNCTION,
            format!("function {name}(pg_temp.pgmi_test_event) does not exist"),
            None,
            Some("A callback is a function [schema.]name(pg_temp.pgmi_test_event) RETURNS void. Functions in pg_temp must be written pg_temp.name: PostgreSQL never looks up functions there otherwise."),
        )
    })
}

/// Runs the tests selected by `p_pattern` (all when NULL) and reports every event to
/// `p_callback` (default `pg_temp.pgmi_test_callback`). Leaves the database exactly as it
/// found it, or raises the first failure.
#[pg_extern(sql = r#"
CREATE PROCEDURE pgmi_test(p_pattern text DEFAULT NULL, p_callback text DEFAULT NULL)
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'pgmi_test_wrapper';
COMMENT ON PROCEDURE pgmi_test(text, text) IS
    'Runs the session''s tests, each in a rolled-back subtransaction; raises the first failure. Works in autocommit, in transactions, in DO blocks and functions.';
"#)]
fn pgmi_test(p_pattern: Option<&str>, p_callback: Option<&str>) {
    Spi::connect_mut(|client| {
        let callback = resolve_callback(client, p_callback.unwrap_or(DEFAULT_CALLBACK));
        let (plan, contents) = load_plan(client, p_pattern, true);
        if !plan.iter().any(|s| s.step_type == StepType::Test) {
            if p_pattern.is_some_and(|p| !p.is_empty()) {
                raise(
                    PgSqlErrorCode::ERRCODE_NO_DATA_FOUND,
                    "pgmi: no tests matched the requested pattern",
                    None,
                    Some("pgmi_test(pattern) ran nothing. Check the pattern against pg_temp.pgmi_test_source_view."),
                );
            }
            raise(
                PgSqlErrorCode::ERRCODE_NO_DATA_FOUND,
                "pgmi: no tests were discovered",
                None,
                Some("pgmi_test() ran nothing. Tests are *.sql files under a __test__/ directory; remove the call if this project has none."),
            );
        }
        let suite = SUITES.with(|s| {
            s.set(s.get() + 1);
            s.get()
        });
        run_suite(client, &plan, &contents, &callback, suite);
    });
}

/// Results of every `pgmi_test` call since the session's last `pgmi_load`, one row per
/// fixture or test that ran; a failed step is the last row of its suite.
#[allow(clippy::type_complexity)] // the row type is the SQL signature, spelled out
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn pgmi_test_results() -> TableIterator<
    'static,
    (
        name!(suite, i32),
        name!(ordinal, i32),
        name!(step_type, String),
        name!(path, String),
        name!(directory, String),
        name!(passed, bool),
        name!(duration_us, i64),
        name!(sqlstate, Option<String>),
        name!(message, Option<String>),
        name!(detail, Option<String>),
    ),
> {
    let rows: Vec<_> = RESULTS.with(|r| {
        r.borrow()
            .iter()
            .map(|s| {
                (
                    s.suite,
                    s.ordinal,
                    s.step_type.as_str().to_string(),
                    s.path.clone(),
                    s.directory.clone(),
                    s.passed,
                    s.duration_us,
                    s.sqlstate.clone(),
                    s.message.clone(),
                    s.detail.clone(),
                )
            })
            .collect()
    });
    TableIterator::new(rows)
}

/// Calls the callback for one event. Its side effects belong to whatever subtransaction is
/// open, which is what makes only the original's three events persist.
struct Events<'a> {
    statement: pgrx::spi::PreparedStatement<'a>,
}

impl<'a> Events<'a> {
    fn new(client: &SpiClient<'a>, callback: &str) -> Events<'a> {
        let text = PgOid::BuiltIn(pg_sys::BuiltinOid::TEXTOID);
        let int4 = PgOid::BuiltIn(pg_sys::BuiltinOid::INT4OID);
        let query =
            format!("SELECT {callback}(ROW($1, $2, $3, $4, $5, NULL)::pg_temp.pgmi_test_event)");
        let statement = client
            .prepare_mut(query.as_str(), &[text, text, text, int4, int4])
            .unwrap_or_else(|e| spi_failed(e));
        Events { statement }
    }

    fn emit(
        &self,
        client: &mut SpiClient<'a>,
        event: &str,
        path: Option<&str>,
        directory: &str,
        depth: i32,
        ordinal: i32,
    ) {
        client
            .update(
                &self.statement,
                None,
                &[
                    event.into(),
                    path.into(),
                    directory.into(),
                    depth.into(),
                    ordinal.into(),
                ],
            )
            .unwrap_or_else(|e| spi_failed(e));
    }
}

fn run_suite(
    client: &mut SpiClient<'_>,
    plan: &[PlanStep],
    contents: &HashMap<String, String>,
    callback: &str,
    suite: i32,
) {
    let events = Events::new(client, callback);
    // Planned once per suite, not parsed again for every script.
    let capture = client
        .prepare_mut(
            "SELECT c.state, c.message, c.detail FROM pg_temp._pgmi_test_capture($1) c",
            &[PgOid::BuiltIn(pg_sys::BuiltinOid::TEXTOID)],
        )
        .unwrap_or_else(|e| spi_failed(e));
    let stack = RefCell::new(Stack::default());
    // Directories whose subtransaction is open, innermost last (DFS keeps them nested).
    let mut open_dirs: Vec<&str> = Vec::new();
    let last_ordinal = plan.last().map_or(0, |s| s.ordinal);
    let stack_on_error = AssertUnwindSafe(&stack);

    PgTryBuilder::new(AssertUnwindSafe(|| {
        events.emit(client, "suite_start", None, "", 0, 0);
        for step in plan {
            let dir = step.directory.as_str();
            let path = step.script_path.as_deref();
            match step.step_type {
                StepType::Fixture | StepType::Test => {
                    if open_dirs.last() != Some(&dir) {
                        stack.borrow_mut().begin();
                        open_dirs.push(dir);
                    }
                    let (start, end) = if step.step_type == StepType::Fixture {
                        ("fixture_start", "fixture_end")
                    } else {
                        stack.borrow_mut().begin();
                        ("test_start", "test_end")
                    };
                    events.emit(client, start, path, dir, step.depth, step.ordinal);
                    run_script(client, &capture, step, contents, suite);
                    events.emit(client, end, path, dir, step.depth, step.ordinal);
                    if step.step_type == StepType::Test {
                        events.emit(client, "rollback", path, dir, step.depth, step.ordinal);
                        stack.borrow_mut().rollback();
                    }
                }
                StepType::Teardown => {
                    events.emit(
                        client,
                        "teardown_start",
                        None,
                        dir,
                        step.depth,
                        step.ordinal,
                    );
                    if open_dirs.last() == Some(&dir) {
                        stack.borrow_mut().rollback();
                        open_dirs.pop();
                    }
                    events.emit(client, "teardown_end", None, dir, step.depth, step.ordinal);
                }
            }
        }
        events.emit(client, "suite_end", None, "", 0, last_ordinal);
    }))
    .catch_others(move |error: CaughtError| {
        // Undo everything the suite did before the error leaves this procedure.
        stack_on_error.borrow_mut().rollback_all();
        error.rethrow()
    })
    .execute();
}

/// Runs one fixture or test script. A failure is recorded and raised as
/// `Failed in <path>: <message>` with the original SQLSTATE and DETAIL.
fn run_script<'a>(
    client: &mut SpiClient<'a>,
    capture: &pgrx::spi::PreparedStatement<'a>,
    step: &PlanStep,
    contents: &HashMap<String, String>,
    suite: i32,
) {
    let path = step.script_path.clone().unwrap_or_default();
    let content = contents.get(&path).map_or("", String::as_str);
    let started = Instant::now();
    // (raw SQLSTATE, message, detail) of a failure. The script runs inside
    // pg_temp._pgmi_test_capture (sql/session_extension.sql), which hands back the SQLSTATE
    // as text: pgrx only knows PostgreSQL's named codes and turns any other into XX000.
    // Errors PL/pgSQL cannot catch (a query cancel) still arrive here as errors.
    let outcome: Result<(), (String, String, Option<String>)> =
        PgTryBuilder::new(AssertUnwindSafe(|| {
            let captured = client
                .update(capture, None, &[content.into()])
                .and_then(|t| t.first().get_three::<String, String, String>());
            match captured {
                Ok((None, ..)) => Ok(()),
                Ok((Some(state), message, detail)) => Err((
                    state,
                    message.unwrap_or_default(),
                    detail.filter(|d| !d.is_empty()),
                )),
                Err(e) => Err((
                    sqlstate(PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED),
                    e.to_string(),
                    None,
                )),
            }
        }))
        .catch_others(|error| match error {
            CaughtError::PostgresError(r)
            | CaughtError::ErrorReport(r)
            | CaughtError::RustPanic { ereport: r, .. } => Err((
                sqlstate(r.sql_error_code()),
                r.message().to_string(),
                r.detail().map(str::to_string),
            )),
        })
        .execute();
    let duration_us = i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX);
    let failure = outcome.err();
    RESULTS.with(|r| {
        r.borrow_mut().push(StepResult {
            suite,
            ordinal: step.ordinal,
            step_type: step.step_type,
            path: path.clone(),
            directory: step.directory.clone(),
            passed: failure.is_none(),
            duration_us,
            sqlstate: failure.as_ref().map(|(state, ..)| state.clone()),
            message: failure
                .as_ref()
                .map(|(_, m, _)| format!("Failed in {path}: {m}")),
            detail: failure.as_ref().and_then(|(.., d)| d.clone()),
        })
    });
    if let Some((state, message, detail)) = failure {
        // A code pgrx does not know by name goes out as XX000; pg_temp.pgmi_test raises it
        // again with the code the result row keeps.
        raise(
            error_code(&state),
            format!("Failed in {path}: {message}"),
            detail,
            None,
        );
    }
}

/// The pgrx error code of a five-character SQLSTATE (XX000 for codes it has no name for).
fn error_code(state: &str) -> PgSqlErrorCode {
    let mut n: i32 = 0;
    for (i, b) in state.bytes().take(5).enumerate() {
        // MAKE_SQLSTATE: 6 bits per character, offset from '0', first character lowest.
        n |= (i32::from(b.wrapping_sub(b'0')) & 0x3F) << (6 * i);
    }
    PgSqlErrorCode::from(n)
}

/// The five-character SQLSTATE of a pgrx error code.
fn sqlstate(code: PgSqlErrorCode) -> String {
    let mut n = code as i32;
    let mut out = String::with_capacity(5);
    for _ in 0..5 {
        // PostgreSQL packs each character in 6 bits, offset from '0' (MAKE_SQLSTATE).
        out.push(char::from(b'0'.wrapping_add((n & 0x3F) as u8)));
        n >>= 6;
    }
    out
}
