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

use std::mem::MaybeUninit;

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
