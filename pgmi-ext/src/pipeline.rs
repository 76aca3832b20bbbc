//! The load pipeline behind `pgmi_load`: helper threads unpack, route and hash a bundle
//! while the calling (backend) thread inserts what is ready. Nothing here touches
//! PostgreSQL; the backend side is a [`Sink`], so tests drive the whole pipeline, threads
//! and consumer loop included, without a server (`pipeline/tests.rs`).
//!
//! The stages overlap:
//!
//! * the producer thread decompresses the bundle and routes each file as it comes out
//!   ([`pgmi_core::project::Router`]), cutting the sources into runs of ~256 KiB;
//! * worker threads compute both checksums and the metadata of each run
//!   ([`pgmi_core::project::finish`]);
//! * the consumer loop ([`Pipeline::run`], on the backend thread) inserts finished runs
//!   in order through the [`Sink`].
//!
//! Invariants:
//!
//! * **The threads own everything they read.** The bundle is moved in as a `Vec<u8>` (the
//!   caller copies PostgreSQL's `bytea` into it), the limits are copied, results travel as
//!   [`Message`]s. No thread ever holds a pointer into memory PostgreSQL can free, so
//!   however the backend ends (ERROR, FATAL, `proc_exit`) no thread can read freed memory.
//! * **One stop signal.** [`Pipeline`] owns a flag every helper thread obeys within
//!   milliseconds: the producer looks at it before every read from the decompressor
//!   (at most 64 KiB of output), the workers before every file. It is raised when the
//!   pipeline is dropped (any error or cancel on the backend thread unwinds through the
//!   drop), and by [`stop_all`], which the extension calls from an exit callback because
//!   a FATAL exits without unwinding.
//! * **The backend never waits blind.** The consumer loop waits at most [`POLL`] for a
//!   message before calling [`Sink::poll`] (the extension checks for interrupts there).
//! * **Bounded memory in flight.** Both channels are bounded; after a run fails, later
//!   runs are dropped on arrival instead of piling up.
//!
//! Routing needs path order. Bundles from `pgmi-upload` are written in path order; a
//! hand-made `tar czf` usually is not. When a file arrives out of order, the producer
//! sends [`Message::Restart`], stops the workers, and reads the bundle again the plain way
//! (collect, sort, route) as a new generation; the consumer drops what it inserted.
//!
//! Error precedence is that of `pgmi_core::project::build` after `bundle::read`: bundle
//! errors, then parameter errors, then the first project error in path order, then the
//! whole-project checks. So a run's error is raised only once the end of the bundle has
//! been reached without a bundle error ([`Message::Routed`] / [`Message::RouteFailed`]).

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pgmi_core::bundle::{self, BundleError};
use pgmi_core::limits::Limits;
use pgmi_core::params::{self, ParamError};
use pgmi_core::project::{self, Project, ProjectError, RawFile, Router, SourceFile};

/// A run of sources is hashed and inserted as one unit: big enough that the per-INSERT
/// cost does not matter, small enough that the first insert starts early and that the
/// runs in flight (about a dozen when the backend is the slowest stage) stay a small part
/// of the backend's memory: with 1 MiB runs they were 12-18 MiB of a 15 MB project's peak.
const RUN_BYTES: usize = 256 << 10;
const RUN_FILES: usize = 128;

/// Longest the consumer waits for a message before it polls the sink again. PostgreSQL
/// itself checks for interrupts about this often in its own loops; 5 ms keeps a cancel,
/// `statement_timeout` or terminate prompt at no measurable cost (a wake-up is ~µs).
pub const POLL: Duration = Duration::from_millis(5);

/// How long [`stop_all`] waits for the helper threads of a dying backend.
pub const EXIT_WAIT: Duration = Duration::from_secs(5);

/// What the pipeline needs from the backend thread.
pub trait Sink {
    /// Called between messages and at least every [`POLL`] while waiting: the extension
    /// checks for interrupts here (which may raise an ERROR or end the process).
    fn poll(&mut self);
    /// Inserts a finished run of sources (runs arrive in path order).
    fn sources(&mut self, run: &[SourceFile]);
    /// Forgets every run inserted so far (the bundle turned out not to be in order).
    fn clear_sources(&mut self);
}

/// Why a load failed, in the precedence order described in the module docs.
#[derive(Debug)]
pub enum LoadError {
    Bundle(BundleError),
    Params(ParamError),
    Project(ProjectError),
    /// A thread could not be started, or stopped without its final message.
    Internal(String),
}

/// The routed project (sources finished, in order) and its parameters.
#[derive(Debug)]
pub struct Loaded {
    /// The project with only the sources that carry `<pgmi-meta>` (for their own table and
    /// the duplicate-id check), and those without `content` or checksums: each run is
    /// dropped once inserted, so the backend holds one copy of the project (the session
    /// table's) and not two; the counts below keep what the summary needs.
    pub project: Project,
    /// The bytes of every source's content (the load summary's `bytes`, tests aside).
    pub source_bytes: usize,
    /// Sources that are SQL files (the summary's `sql_files`).
    pub sql_files: usize,
    /// The first source, in path order, that breaks a `_pgmi_source` CHECK constraint
    /// ([`project::check_row`]); reported after the duplicate-id check, as
    /// [`project::finalize`] orders them.
    pub row_error: Option<ProjectError>,
    pub parameters: Vec<(String, String)>,
    /// When the producer reached the end of the bundle, from [`Pipeline::start`].
    pub routed_after: Duration,
}

/// What the helper threads report to the consumer.
enum Message {
    /// The bundle or its parameters are invalid; this error comes before any other.
    Invalid(LoadError),
    /// The bundle is not in path order: everything sent so far is void; a new generation
    /// of runs follows.
    Restart,
    /// Run number `index` (from 0, in path order) of `generation`, finished, or its first
    /// error in path order.
    Finished {
        generation: u32,
        index: usize,
        run: Result<Vec<SourceFile>, ProjectError>,
    },
    /// The whole bundle was read and routed; `runs` runs were sent. Always the last message.
    Routed {
        project: Project,
        parameters: Vec<(String, String)>,
        runs: usize,
    },
    /// Routing failed at a file that comes after the `runs` runs sent (their errors, if
    /// any, come first). Always the last message.
    RouteFailed { error: ProjectError, runs: usize },
}

/// The stop flag and the count of live helper threads, shared with [`stop_all`].
struct Shared {
    stop: AtomicBool,
    live: Mutex<usize>,
    ended: Condvar,
}

impl Shared {
    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Waits until every helper thread has ended, at most `timeout`; true if they did.
    fn wait(&self, timeout: Duration) -> bool {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let (live, _) = self
            .ended
            .wait_timeout_while(live, timeout, |n| *n > 0)
            .unwrap_or_else(|e| e.into_inner());
        *live == 0
    }
}

/// Counts a helper thread as live until dropped (also when the thread panics).
struct Alive(Arc<Shared>);

impl Alive {
    fn new(shared: &Arc<Shared>) -> Alive {
        *shared.live.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        Alive(Arc::clone(shared))
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        let mut live = self.0.live.lock().unwrap_or_else(|e| e.into_inner());
        *live -= 1;
        if *live == 0 {
            self.0.ended.notify_all();
        }
    }
}

/// Pipelines of this process that have not been dropped (one per running `pgmi_load`).
static ACTIVE: Mutex<Vec<Arc<Shared>>> = Mutex::new(Vec::new());

/// Raises the stop signal of every pipeline in this process and waits up to `timeout`
/// for their threads to end; true if they all did. For an exit callback: a FATAL ends
/// the backend without unwinding, so no [`Pipeline`] is ever dropped then.
pub fn stop_all(timeout: Duration) -> bool {
    let active: Vec<Arc<Shared>> = ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).clone();
    active.iter().for_each(|s| s.stop());
    let deadline = Instant::now() + timeout;
    active
        .iter()
        .all(|s| s.wait(deadline.saturating_duration_since(Instant::now())))
}

/// A running load: the helper threads, and the receiving end of their messages. Dropping
/// it raises the stop signal and joins the threads (milliseconds, see the module docs).
pub struct Pipeline {
    shared: Arc<Shared>,
    rx: Option<Receiver<Message>>,
    producer: Option<JoinHandle<()>>,
    started: Instant,
}

impl Pipeline {
    /// Starts the helper threads on `bundle`. Threads inherit the caller's signal mask:
    /// in the backend, call this with signals blocked (`signals::blocked`).
    /// `setup` runs first on the producer thread, before it starts the workers (which
    /// inherit what it sets, such as a lower scheduling priority).
    pub fn start(bundle: Vec<u8>, limits: Limits, setup: fn()) -> Result<Pipeline, LoadError> {
        Pipeline::start_with(bundle, limits, worker_threads(), setup)
    }

    /// [`Pipeline::start`] with a given number of worker threads.
    pub fn start_with(
        bundle: Vec<u8>,
        limits: Limits,
        workers: usize,
        setup: fn(),
    ) -> Result<Pipeline, LoadError> {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            live: Mutex::new(0),
            ended: Condvar::new(),
        });
        // Each worker holds at most one message it cannot send yet; a few more let the
        // producer's final message through without waiting.
        let (tx, rx) = mpsc::sync_channel(workers + 4);
        let alive = Alive::new(&shared);
        let thread_shared = Arc::clone(&shared);
        let producer = std::thread::Builder::new()
            .name("pgmi-unpack".into())
            .spawn(move || {
                let _alive = alive;
                setup();
                produce(&bundle, &limits, workers.max(1), &thread_shared, &tx);
            })
            .map_err(|e| LoadError::Internal(format!("cannot start a thread: {e}")))?;
        ACTIVE
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::clone(&shared));
        Ok(Pipeline {
            shared,
            rx: Some(rx),
            producer: Some(producer),
            started: Instant::now(),
        })
    }

    /// The consumer loop: inserts runs through `sink` as they are finished, in order, and
    /// returns the project once the whole bundle was read, or the first error by
    /// precedence. Calls [`Sink::poll`] at least every [`POLL`].
    pub fn run(mut self, sink: &mut impl Sink) -> Result<Loaded, LoadError> {
        let rx = self.rx.take().ok_or_else(|| internal("run twice"))?;
        let mut generation = 0;
        let mut inserted = 0usize;
        let mut source_bytes = 0usize;
        let mut sql_files = 0usize;
        let mut row_error: Option<ProjectError> = None;
        let mut kept: Vec<SourceFile> = Vec::new();
        let mut pending: BTreeMap<usize, Result<Vec<SourceFile>, ProjectError>> = BTreeMap::new();
        // The lowest index of a failed run: later runs can never be inserted.
        let mut failed_at: Option<usize> = None;
        let end = loop {
            sink.poll();
            let message = match rx.recv_timeout(POLL) {
                Ok(message) => message,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(internal(
                        "the unpacking threads stopped before the end of the bundle",
                    ))
                }
            };
            match message {
                Message::Invalid(e) => return Err(e),
                Message::Restart => {
                    generation += 1;
                    if inserted > 0 {
                        sink.clear_sources();
                    }
                    inserted = 0;
                    source_bytes = 0;
                    sql_files = 0;
                    row_error = None;
                    kept.clear();
                    pending.clear();
                    failed_at = None;
                }
                Message::Finished {
                    generation: g,
                    index,
                    run,
                } => {
                    if g == generation && failed_at.is_none_or(|f| index < f) {
                        if run.is_err() {
                            failed_at = Some(index);
                            pending.retain(|&i, _| i < index);
                        }
                        pending.insert(index, run);
                    }
                }
                end @ (Message::Routed { .. } | Message::RouteFailed { .. }) => break end,
            }
            // Runs arrive out of order from several threads; insert them in order. A run's
            // error waits for the end of the bundle: a bundle error there comes first.
            while let Some(next) = pending.first_entry().filter(|e| *e.key() == inserted) {
                if next.get().is_err() {
                    break;
                }
                if let Ok(run) = next.remove() {
                    sink.sources(&run);
                    for mut source in run {
                        source_bytes += source.content.len();
                        sql_files += usize::from(source.path.is_sql_file());
                        if row_error.is_none() {
                            row_error = project::check_row(&source.path).err();
                        }
                        if source.metadata.is_some() {
                            source.content = String::new();
                            source.checksum = String::new();
                            source.pgmi_checksum = String::new();
                            kept.push(source);
                        }
                    }
                    inserted += 1;
                }
            }
        };
        let routed_after = self.started.elapsed();
        // The final message is sent after the workers were joined: everything is here.
        if let Some(Err(e)) = pending.remove(&inserted) {
            return Err(LoadError::Project(e));
        }
        let (mut project, parameters) = match end {
            Message::Routed {
                project,
                parameters,
                runs: sent,
            } if sent == inserted => (project, parameters),
            Message::RouteFailed { error, runs: sent } if sent == inserted => {
                return Err(LoadError::Project(error))
            }
            _ => return Err(internal("a run of sources went missing")),
        };
        project.sources = kept;
        Ok(Loaded {
            project,
            source_bytes,
            sql_files,
            row_error,
            parameters,
            routed_after,
        })
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.shared.stop();
        // Closing the channel wakes any helper blocked on a full queue.
        drop(self.rx.take());
        if let Some(producer) = self.producer.take() {
            // The producer joins the workers before it ends.
            let _ = producer.join();
        }
        ACTIVE
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|s| !Arc::ptr_eq(s, &self.shared));
    }
}

fn internal(what: &str) -> LoadError {
    LoadError::Internal(what.to_string())
}

fn worker_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4)
}

/// The producer thread: one in-order attempt, and a sorted one if the archive is not in
/// path order. Returns early, sending nothing more, once the stop signal is raised.
fn produce(
    bytes: &[u8],
    limits: &Limits,
    workers: usize,
    shared: &Arc<Shared>,
    tx: &SyncSender<Message>,
) {
    let in_order = generation(0, workers, shared, tx, |feeder| {
        let mut unsorted = false;
        let read = bundle::read_each_until(bytes, limits, &shared.stop, |file| {
            if feeder.in_order(&file.path) {
                feeder.feed(file);
                ControlFlow::Continue(())
            } else {
                unsorted = true;
                ControlFlow::Break(())
            }
        });
        (!unsorted).then_some(read)
    });
    if in_order || shared.stopped() || tx.send(Message::Restart).is_err() {
        return;
    }
    generation(1, workers, shared, tx, |feeder| {
        let read = bundle::read_until(bytes, limits, &shared.stop).map(|bundle| {
            // `read_until` sorted the files, so they are in order now.
            bundle.files.into_iter().for_each(|file| feeder.feed(file));
            bundle.parameters
        });
        Some(read)
    });
}

/// One attempt: starts the workers, lets `read` feed files, then sends the final message.
/// `read` returns `None` when the files turned out not to be in order (nothing final is
/// sent then, and the result is `false`).
fn generation(
    number: u32,
    workers: usize,
    shared: &Arc<Shared>,
    tx: &SyncSender<Message>,
    read: impl FnOnce(&mut Feeder) -> Option<Result<Vec<(String, String)>, BundleError>>,
) -> bool {
    // Two runs queued per worker keep them busy while the producer decompresses.
    let (work_tx, work_rx) = mpsc::sync_channel::<(usize, Vec<SourceFile>)>(workers * 2);
    // Only the workers hold the receiving end: once they have all left, a producer
    // blocked on a full queue gets an error instead of waiting forever.
    let work_rx = Arc::new(Mutex::new(work_rx));
    // Stops this generation's workers without stopping the pipeline (a restart).
    let abandon = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (worker_tx, queue, abandon) = (tx.clone(), Arc::clone(&work_rx), &abandon);
            let alive = Alive::new(shared);
            let spawned = std::thread::Builder::new()
                .name("pgmi-hash".into())
                .spawn_scoped(scope, move || {
                    let _alive = alive;
                    work(number, &queue, &worker_tx, shared, abandon);
                });
            match spawned {
                Ok(handle) => handles.push(handle),
                Err(e) => {
                    let _ = tx.send(Message::Invalid(LoadError::Internal(format!(
                        "cannot start a thread: {e}"
                    ))));
                    abandon.store(true, Ordering::Relaxed);
                    return true;
                }
            }
        }
        drop(work_rx);
        let mut feeder = Feeder {
            router: Router::default(),
            previous: None,
            work: work_tx,
            runs: 0,
            run_bytes: 0,
            error: None,
        };
        let Some(read) = read(&mut feeder) else {
            abandon.store(true, Ordering::Relaxed);
            return false;
        };
        let parameters = match read {
            Ok(raw) => params::finalize(raw).map_err(LoadError::Params),
            Err(BundleError::Stopped) => return true,
            Err(e) => Err(LoadError::Bundle(e)),
        };
        let parameters = match parameters {
            Ok(parameters) => parameters,
            Err(e) => {
                abandon.store(true, Ordering::Relaxed);
                let _ = tx.send(Message::Invalid(e));
                return true;
            }
        };
        if feeder.error.is_none() {
            feeder.dispatch();
        }
        let Feeder {
            router,
            work,
            runs,
            error,
            ..
        } = feeder;
        // Closing the queue lets the workers leave once it is empty; joining them makes
        // the final message the last one.
        drop(work);
        for handle in handles {
            let _ = handle.join();
        }
        if shared.stopped() {
            return true;
        }
        let _ = tx.send(match error {
            Some(error) => Message::RouteFailed { error, runs },
            None => Message::Routed {
                project: router.finish(),
                parameters,
                runs,
            },
        });
        true
    })
}

/// Routes files in order and hands runs of sources to the workers.
struct Feeder {
    router: Router,
    /// The last path fed, also after a routing error: order is checked to the end, since
    /// in an unsorted archive a file after the failing one may come first in path order.
    previous: Option<String>,
    work: SyncSender<(usize, Vec<SourceFile>)>,
    runs: usize,
    run_bytes: usize,
    /// The first routing error; files after it are read (for bundle errors) but ignored.
    error: Option<ProjectError>,
}

impl Feeder {
    fn in_order(&self, path: &str) -> bool {
        pgmi_core::project::ascends(self.previous.as_deref(), path)
    }

    fn feed(&mut self, file: RawFile) {
        self.previous = Some(file.path.clone());
        if self.error.is_some() {
            return;
        }
        let size = file.bytes.len();
        if let Err(e) = self.router.push(file) {
            // The sources before the failing file are still checked: an error among them
            // comes first in path order.
            self.dispatch();
            self.error = Some(e);
            return;
        }
        self.run_bytes += size;
        if self.router.pending_sources() >= RUN_FILES || self.run_bytes >= RUN_BYTES {
            self.dispatch();
        }
    }

    fn dispatch(&mut self) {
        let run = self.router.take_sources();
        self.run_bytes = 0;
        if !run.is_empty() {
            // Fails only when every worker has left (stopped); the producer then sees
            // the stop signal at its next read.
            let _ = self.work.send((self.runs, run));
            self.runs += 1;
        }
    }
}

fn work(
    generation: u32,
    queue: &Mutex<Receiver<(usize, Vec<SourceFile>)>>,
    tx: &SyncSender<Message>,
    shared: &Shared,
    abandon: &AtomicBool,
) {
    let stopped = || shared.stopped() || abandon.load(Ordering::Relaxed);
    loop {
        let next = queue.lock().map(|q| q.recv());
        let Ok(Ok((index, mut run))) = next else {
            return;
        };
        // File by file, so a stop waits for one file at most (a 10 MB file, the default
        // limit, hashes in ~30 ms); the first error is the run's first in path order.
        let mut result = Ok(());
        for one in run.chunks_mut(1) {
            if stopped() {
                return;
            }
            result = project::finish(one);
            if result.is_err() {
                break;
            }
        }
        let run = result.map(|()| run);
        if tx
            .send(Message::Finished {
                generation,
                index,
                run,
            })
            .is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
