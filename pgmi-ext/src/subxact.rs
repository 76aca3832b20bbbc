//! Internal subtransactions: the only `unsafe` code of the extension.
//!
//! `pgmi_test` runs every fixture and test inside one, and always rolls it back. These are
//! PostgreSQL's own internal subtransactions (what PL/pgSQL uses for `EXCEPTION` blocks and
//! PL/Python for `plpy.subtransaction()`), so they work in autocommit, inside
//! `BEGIN … COMMIT`, inside `DO` blocks and inside functions, where SQL-level SAVEPOINTs
//! are not allowed.
//!
//! Rules every caller keeps (they are why the `unsafe` blocks below are sound):
//! * subtransactions are rolled back strictly innermost first ([`Stack`] enforces it);
//! * SPI is connected *outside* all of them, and no SPI tuple table or other PostgreSQL
//!   memory obtained inside one is used after it ends (callers copy into Rust values);
//! * an error raised inside one is caught (pgrx turns it into a Rust panic at the FFI
//!   boundary, after `CopyErrorData`/`FlushErrorState`), every open subtransaction is then
//!   rolled back, and only then is the error re-raised. Nothing relies on `Drop` running
//!   across a PostgreSQL longjmp.

use pgrx::pg_sys;

/// One open internal subtransaction, with the memory context and resource owner that were
/// current when it began (both must be restored when it ends: `BeginInternalSubTransaction`
/// switches to the subtransaction's own, and rollback leaves the parent's transaction
/// context current rather than the caller's).
struct SubXact {
    context: pg_sys::MemoryContext,
    owner: pg_sys::ResourceOwner,
}

/// The open subtransactions of one `pgmi_test` call, innermost last.
#[derive(Default)]
pub struct Stack {
    open: Vec<SubXact>,
}

impl Stack {
    /// Begins a subtransaction nested in the innermost open one (or in the caller's
    /// transaction).
    pub fn begin(&mut self) {
        // SAFETY: we are in a backend with a transaction in progress (any SQL-callable
        // function is), which is all BeginInternalSubTransaction requires. A NULL name is
        // allowed. Reading and restoring CurrentMemoryContext is plain global access on the
        // backend's single thread; the saved context outlives the subtransaction because it
        // belongs to the caller, which is outside it.
        unsafe {
            let context = pg_sys::CurrentMemoryContext;
            let owner = pg_sys::CurrentResourceOwner;
            pg_sys::BeginInternalSubTransaction(std::ptr::null());
            pg_sys::CurrentMemoryContext = context;
            self.open.push(SubXact { context, owner });
        }
    }

    /// Rolls back the innermost open subtransaction: everything done inside it is undone.
    pub fn rollback(&mut self) {
        let Some(sub) = self.open.pop() else { return };
        // SAFETY: `sub` is the innermost open subtransaction (the stack guarantees the
        // order), so it is PostgreSQL's current subtransaction. Rolling it back works in the
        // aborted state an ERROR leaves behind too. Afterwards the caller's memory context
        // and resource owner, saved at begin, are made current again.
        unsafe {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
            pg_sys::CurrentMemoryContext = sub.context;
            pg_sys::CurrentResourceOwner = sub.owner;
        }
    }

    /// Rolls back every open subtransaction, innermost first.
    pub fn rollback_all(&mut self) {
        while !self.open.is_empty() {
            self.rollback();
        }
    }
}
