//! Keeps PostgreSQL's signal handlers on the backend's own thread.
//!
//! `pgmi_load` unpacks and validates on a helper thread (and `pgmi_core::project::build`
//! spreads checksum work over a few more). PostgreSQL installs process-wide signal handlers
//! (query cancel, timeouts, latch wake-ups) that must only ever run on the backend's main
//! thread, and the kernel delivers a process-directed signal to any thread that does not
//! block it. New threads inherit the creating thread's signal mask, so the helper is started
//! with every signal blocked and the backend thread's mask is restored right after the
//! spawn: the helper and every thread it starts stay deaf, and the backend thread misses
//! nothing (a signal arriving during the spawn stays pending for a few microseconds).
//!
//! It also stops those threads when the backend exits. An ERROR unwinds through the load
//! and drops its pipeline, which stops and joins them; a FATAL (`pg_terminate_backend`,
//! fast shutdown, a lost client seen by `CHECK_FOR_INTERRUPTS`) calls `proc_exit` without
//! unwinding, so [`stop_helpers_at_exit`] registers a `before_shmem_exit` callback that
//! raises every pipeline's stop signal and waits for the threads. `before_shmem_exit`
//! rather than `on_proc_exit`: callbacks run last-registered first, so ours runs before
//! the transaction is aborted and before shared memory is detached, while the backend is
//! still whole. The threads only ever read memory they own (see `pipeline`), so this is
//! about ending promptly and quietly, not about memory safety.

use std::cell::Cell;
use std::mem::MaybeUninit;

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::pipeline;

/// Runs `f` with every blockable signal blocked on this thread (and so on every thread it
/// starts), then restores the previous mask, also if `f` panics.
pub fn blocked<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(libc::sigset_t);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: `self.0` is the mask pthread_sigmask returned below, a valid sigset_t.
            unsafe {
                libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut());
            }
        }
    }
    // SAFETY: sigfillset initialises the set it is given; pthread_sigmask reads `all` and
    // writes the previous mask into `old`, both valid for the call. Blocking signals has no
    // memory-safety consequences; SIGKILL and SIGSTOP cannot be blocked and are ignored.
    let restore = unsafe {
        let mut all = MaybeUninit::<libc::sigset_t>::zeroed();
        libc::sigfillset(all.as_mut_ptr());
        let mut old = MaybeUninit::<libc::sigset_t>::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, all.as_ptr(), old.as_mut_ptr());
        Restore(old.assume_init())
    };
    let result = f();
    drop(restore);
    result
}

/// Lowers the calling thread's scheduling priority (nice +5; threads it starts inherit
/// it). Helper threads then give way to this backend's own thread, which must wake every
/// few milliseconds to check for interrupts, and to every other backend on the server: a
/// load uses idle cores fully but does not crowd out other sessions. (On this 2-core
/// machine, busy with parallel builds, the longest wait between two interrupt checks in
/// the pipeline's test was 17-100 ms either way, against a median of 5 ms: other load
/// dominates; the point here is fairness, not a measured speed-up.)
pub fn yield_to_backends() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid has no preconditions; setpriority with PRIO_PROCESS and a thread id
    // changes only that thread's nice value on Linux, and only ever lowers it here (which
    // needs no privilege). Failure leaves the priority as it was, which is harmless.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 5);
    }
}

thread_local! {
    /// Whether this backend has registered [`stop_helpers`] (once per process).
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
}

/// Registers the exit callback that stops every load's helper threads, once per backend.
/// Call on the backend thread before starting any.
pub fn stop_helpers_at_exit() {
    if REGISTERED.with(|r| r.replace(true)) {
        return;
    }
    // SAFETY: called on the backend thread, as PostgreSQL requires of the exit lists;
    // `stop_helpers` is a plain function that lives as long as the library, which is never
    // unloaded while the process runs.
    unsafe {
        pg_sys::before_shmem_exit(Some(stop_helpers), pg_sys::Datum::from(0));
    }
}

/// The exit callback: raise every stop signal, wait for the threads (bounded, so a stuck
/// thread can never hold up a shutdown for more than `pipeline::EXIT_WAIT`).
#[pg_guard]
unsafe extern "C-unwind" fn stop_helpers(_code: std::ffi::c_int, _arg: pg_sys::Datum) {
    if !pipeline::stop_all(pipeline::EXIT_WAIT) {
        // A log line, not an error: the process is exiting either way.
        log!(
            "pgmi_load: helper threads did not stop within {:?} of the backend's exit",
            pipeline::EXIT_WAIT
        );
    }
}
