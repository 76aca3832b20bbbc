//! The extension's half of `pg_temp.pgmi_execute(path)` (`sql/session.sql`), which runs a
//! project file statement by statement and names the line and column of a failure:
//!
//! * [`pgmi_statements`]: where the file's statements start and stop, and on which line and
//!   column (pgmi-core's splitter, `pgmi_core::execute`);
//! * [`pgmi_error_position`]: where in a failed statement PostgreSQL put its error.
//!
//! PL/pgSQL can catch an error with its SQLSTATE (also one PostgreSQL does not know, such as
//! `PG123`), DETAIL and HINT, but cannot read its position; pgrx can catch an error, but drops
//! the position and turns unknown SQLSTATEs into XX000. So `pgmi_execute` catches in
//! PL/pgSQL, and only for an error that PostgreSQL positioned in the statement asks
//! [`pgmi_error_position`], which parses and analyses the statement again (nothing runs)
//! with an error context callback on `error_context_stack`: PostgreSQL calls it while it
//! reports the error, before the error unwinds, and it records the error's SQLSTATE and
//! cursor position. The position counts only if the SQLSTATE is the original one.
//!
//! The parse runs inside an internal subtransaction that is always rolled back, so the locks
//! and memory of the analysis go away with it, and the callback is removed on every path
//! (a guard restores the stack when it is dropped, also when an error unwinds through it).

use std::ffi::c_void;
use std::panic::AssertUnwindSafe;

use pgmi_core::execute::file_statements;
use pgmi_core::split::Options;
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::subxact::Stack;

/// The statements of a project file: `content` is its UTF-8 text; `start` and `stop` are
/// 1-based byte offsets (the statement is `substr(content, start, stop - start)`), `line`
/// and `col` where it starts (1-based, `col` in characters).
#[pg_extern(immutable, parallel_safe)]
fn pgmi_statements(
    content: &[u8],
    standard_conforming_strings: bool,
) -> TableIterator<
    'static,
    (
        name!(start, i32),
        name!(stop, i32),
        name!(line, i32),
        name!(col, i32),
    ),
> {
    let text = std::str::from_utf8(content).unwrap_or_else(|e| {
        pgrx::error!("pgmi_statements: the content is not UTF-8 ({e})");
    });
    let options = Options {
        standard_conforming_strings,
    };
    // Files are at most 1 GiB (pgmi-core's limit), so every number fits.
    let int = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let rows: Vec<_> = file_statements(text, options)
        .into_iter()
        .map(|s| (int(s.start + 1), int(s.end + 1), int(s.line), int(s.column)))
        .collect();
    TableIterator::new(rows)
}

/// What the error context callback saw of the last error reported while it was installed.
#[derive(Default)]
struct Seen {
    sqlstate: i32,
    position: i32,
}

/// The error context callback: records the SQLSTATE and cursor position of the report being
/// made. Runs inside PostgreSQL's `errfinish`; it only reads the error being built.
unsafe extern "C-unwind" fn record(arg: *mut c_void) {
    // SAFETY: `arg` is the `Seen` that `pgmi_error_position` installed with this callback;
    // it outlives the callback's place on the stack (the guard removes it first).
    let seen = unsafe { &mut *arg.cast::<Seen>() };
    // SAFETY: called by errfinish, while an error report is in progress, which is what the
    // two getters read.
    unsafe {
        seen.sqlstate = pg_sys::geterrcode();
        seen.position = pg_sys::geterrposition();
    }
}

/// Keeps a callback on `error_context_stack` while it lives; puts the previous stack back
/// when dropped.
struct ContextGuard {
    previous: *mut pg_sys::ErrorContextCallback,
}

impl ContextGuard {
    /// # Safety
    /// `callback` must stay where it is, and alive, until the guard is dropped.
    unsafe fn push(callback: &mut pg_sys::ErrorContextCallback) -> ContextGuard {
        // SAFETY: plain access to the backend's global on its only thread.
        unsafe {
            let previous = pg_sys::error_context_stack;
            callback.previous = previous;
            pg_sys::error_context_stack = callback;
            ContextGuard { previous }
        }
    }
}

impl Drop for ContextGuard {
    fn drop(&mut self) {
        // SAFETY: as in push; the stack is restored to what it was before the push.
        unsafe {
            pg_sys::error_context_stack = self.previous;
        }
    }
}

/// `SQLSTATE` packed as PostgreSQL's `MAKE_SQLSTATE` does; None if it is not 5 characters
/// of `0-9A-Z`.
fn packed_sqlstate(code: &str) -> Option<i32> {
    let bytes = code.as_bytes();
    if bytes.len() != 5
        || !bytes
            .iter()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
    {
        return None;
    }
    Some(
        bytes
            .iter()
            .enumerate()
            .map(|(i, b)| (i32::from(b - b'0') & 0x3F) << (6 * i))
            .sum(),
    )
}

/// Where in `statement` (its bytes in the database encoding) an error with SQLSTATE
/// `sqlstate` is: the 1-based character position that PostgreSQL's parser or parse analysis
/// reports when the statement is parsed again, or NULL when that raises no positioned error
/// with this SQLSTATE. Nothing of the statement runs.
#[pg_extern(volatile, parallel_unsafe)]
fn pgmi_error_position(statement: &[u8], sqlstate: &str) -> Option<i32> {
    let wanted = packed_sqlstate(sqlstate)?;
    if statement.contains(&0) {
        return None;
    }
    let mut text = Vec::with_capacity(statement.len() + 1);
    text.extend_from_slice(statement);
    text.push(0);

    let mut seen = Seen::default();
    let mut callback = pg_sys::ErrorContextCallback {
        previous: std::ptr::null_mut(),
        callback: Some(record),
        arg: std::ptr::from_mut(&mut seen).cast::<c_void>(),
    };
    let mut subxact = Stack::default();
    subxact.begin();
    let failed = {
        // SAFETY: `callback` stays in this frame until the guard, declared after it, is
        // dropped at the end of this block.
        let _guard = unsafe { ContextGuard::push(&mut callback) };
        PgTryBuilder::new(AssertUnwindSafe(|| {
            // SAFETY: `text` is NUL-terminated and outlives the calls; the parse trees are
            // palloc'd in the current memory context and only read here.
            unsafe { parse_and_analyze(text.as_ptr().cast()) };
            false
        }))
        .catch_others(|_| true)
        .execute()
    };
    subxact.rollback();
    (failed && seen.sqlstate == wanted && seen.position > 0).then_some(seen.position)
}

/// `raw_parser`, then parse analysis of every statement it returns.
///
/// # Safety
/// `text` must be a NUL-terminated string in the database encoding.
unsafe fn parse_and_analyze(text: *const std::ffi::c_char) {
    // SAFETY: the caller's contract; the list and its cells are PostgreSQL's own.
    unsafe {
        // PostgreSQL 14 added the parse mode; 15 renamed parse_analyze.
        #[cfg(feature = "pg13")]
        let list = pg_sys::raw_parser(text);
        #[cfg(not(feature = "pg13"))]
        let list = pg_sys::raw_parser(text, pg_sys::RawParseMode::RAW_PARSE_DEFAULT);
        if list.is_null() {
            return;
        }
        let n = usize::try_from((*list).length).unwrap_or(0);
        for i in 0..n {
            let raw = (*(*list).elements.add(i))
                .ptr_value
                .cast::<pg_sys::RawStmt>();
            #[cfg(any(feature = "pg13", feature = "pg14"))]
            pg_sys::parse_analyze(raw, text, std::ptr::null_mut(), 0, std::ptr::null_mut());
            #[cfg(not(any(feature = "pg13", feature = "pg14")))]
            pg_sys::parse_analyze_fixedparams(raw, text, std::ptr::null(), 0, std::ptr::null_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::packed_sqlstate;

    #[test]
    fn sqlstates_pack_as_make_sqlstate() {
        // ERRCODE_SYNTAX_ERROR = MAKE_SQLSTATE('4','2','6','0','1')
        let expected = 4 | (2 << 6) | (6 << 12) | (1 << 24);
        assert_eq!(packed_sqlstate("42601"), Some(expected));
        assert!(packed_sqlstate("PG123").is_some());
        assert_eq!(packed_sqlstate("4260"), None);
        assert_eq!(packed_sqlstate("4260a"), None);
    }
}
