//! The `--timeout` deadline and Ctrl-C / SIGTERM (exit 16 and 130, README "Exit codes").
//!
//! Both cancel the statement running on the session through its cancel token (a separate
//! connection sending a CancelRequest), and both set a flag the deploy reads to classify
//! the resulting error: interrupted → 130, deadline → 16, both before "execution failed"
//! → 13.
//!
//! A cancel request that arrives between two statements cancels nothing, so the request is
//! repeated every [`RECANCEL_INTERVAL`] until the deploy calls [`Watchdog::stop`]; the
//! deploy also checks the flags before each statement it sends. `stop` takes the same lock
//! as a cancel, so no new cancel request is started after it returns; each request is sent
//! from a thread of its own (a silent server must not stall the watchdog), so one started
//! just before may still arrive, and one delivered may still hit the next statement:
//! PostgreSQL processes cancels asynchronously, which is why the clean-up statements in
//! `session.rs` retry once on 57014.
//!
//! When the server does not answer at all (a network black hole), the deadline ends the
//! process with 16 a few seconds after it passed, and Ctrl-C with 130 after its grace.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use postgres::CancelToken;

use crate::tls::Canceller;

use crate::exit::Exit;

/// How often a cancel request is repeated while the deploy has not yet noticed it.
const RECANCEL_INTERVAL: Duration = Duration::from_millis(500);

/// After the deadline, how long a cancelled deploy may take to unwind before the process
/// exits with 16 anyway (a cancel is normally answered within milliseconds).
const DEADLINE_GRACE: Duration = Duration::from_secs(3);

/// After Ctrl-C, how long the deploy may take to unwind (roll back, release the lock)
/// before the process exits anyway; a second Ctrl-C exits at once.
const INTERRUPT_GRACE: Duration = Duration::from_secs(10);

#[derive(Clone, Default)]
pub struct Watchdog {
    inner: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// The session's cancel token, and how to reach the server with it (over TLS when the
    /// session uses TLS); `None` before connecting. The flag inside is `stopped`.
    token: Mutex<(Option<(CancelToken, Canceller)>, bool)>,
    timed_out: AtomicBool,
    interrupted: AtomicBool,
}

impl Watchdog {
    /// Start the deadline thread (when there is a deadline) and the signal handler.
    pub fn start(deadline: Option<Instant>) -> Watchdog {
        let watchdog = Watchdog::default();
        if let Some(deadline) = deadline {
            let w = watchdog.clone();
            thread::spawn(move || w.run_deadline(deadline));
        }
        let w = watchdog.clone();
        // Failing to install the handler (one exists already) only loses the clean unwind
        // on Ctrl-C; the default disposition still stops the process.
        let _ = ctrlc::set_handler(move || w.on_signal());
        watchdog
    }

    /// The session's cancel token, once connected.
    pub fn set_client(&self, client: &postgres::Client, canceller: Canceller) {
        self.lock().0 = Some((client.cancel_token(), canceller));
    }

    pub fn timed_out(&self) -> bool {
        self.inner.timed_out.load(Ordering::SeqCst)
    }

    pub fn interrupted(&self) -> bool {
        self.inner.interrupted.load(Ordering::SeqCst)
    }

    /// The deploy has seen the outcome: send no further cancel requests.
    pub fn stop(&self) {
        self.lock().1 = true;
    }

    fn stopped(&self) -> bool {
        self.lock().1
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Option<(CancelToken, Canceller)>, bool)> {
        self.inner.token.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cancel(&self) {
        let guard = self.lock();
        if let (Some((token, canceller)), false) = (&guard.0, guard.1) {
            // Sent from a thread of its own: a server that does not answer must not stall
            // the deadline or Ctrl-C grace. The deploy reports the outcome; a failed cancel
            // request changes nothing.
            let (token, canceller) = (token.clone(), canceller.clone());
            thread::spawn(move || {
                let _ = canceller.cancel(&token);
            });
        }
    }

    fn run_deadline(&self, deadline: Instant) {
        loop {
            if self.stopped() {
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            thread::sleep((deadline - now).min(Duration::from_millis(200)));
        }
        self.inner.timed_out.store(true, Ordering::SeqCst);
        // A server that no longer answers (a network black hole) never acknowledges the
        // cancel; after a grace the process ends with the deadline's code rather than hang
        // past --timeout.
        let expired = Instant::now();
        while !self.stopped() {
            if expired.elapsed() >= DEADLINE_GRACE {
                crate::progress::message(&format!(
                    "pgmi: error: deadline exceeded: the server did not answer the cancel request within {} s; giving up (the connection is abandoned; the server rolls back what did not commit)",
                    DEADLINE_GRACE.as_secs()
                ));
                std::process::exit(Exit::Timeout.code());
            }
            self.cancel();
            thread::sleep(RECANCEL_INTERVAL);
        }
    }

    fn on_signal(&self) {
        if self.inner.interrupted.swap(true, Ordering::SeqCst) {
            std::process::exit(Exit::Interrupted.code());
        }
        crate::progress::message("pgmi: interrupted, cancelling deployment...");
        let w = self.clone();
        thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < INTERRUPT_GRACE {
                w.cancel();
                thread::sleep(RECANCEL_INTERVAL);
            }
            std::process::exit(Exit::Interrupted.code());
        });
    }
}
