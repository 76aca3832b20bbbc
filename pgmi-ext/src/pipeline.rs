//! The helper-thread side of `pgmi_load`: unpack, route and hash a bundle while the backend
//! thread inserts what is ready.
//!
//! Nothing here touches PostgreSQL; results travel to the backend thread as [`Message`]s.
//! The stages overlap:
//!
//! * the producer thread decompresses the bundle and routes each file as it comes out
//!   ([`pgmi_core::project::Router`]), cutting the sources into runs of ~1 MB;
//! * worker threads compute both checksums and the metadata of each run
//!   ([`pgmi_core::project::finish`]);
//! * the backend thread inserts finished runs in order (`load.rs`).
//!
//! Routing needs path order. Bundles from `pgmi-upload` are written in path order; a
//! hand-made `tar czf` usually is not. When a file arrives out of order, the producer
//! sends [`Message::Restart`], stops the workers, and reads the bundle again the plain way
//! (collect, sort, route) as a new generation; the backend thread drops what it inserted.
//!
//! Error precedence is that of `pgmi_core::project::build` after `bundle::read`: bundle
//! errors, then parameter errors, then the first project error in path order, then the
//! whole-project checks. So a run's error is raised only once the end of the bundle has
//! been reached without a bundle error ([`Message::Routed`] / [`Message::RouteFailed`]).

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};

use pgmi_core::limits::Limits;
use pgmi_core::project::{self, Project, ProjectError, RawFile, Router, SourceFile};
use pgmi_core::{bundle, params};

/// A run of sources is hashed and inserted as one unit: big enough that the per-INSERT
/// cost does not matter, small enough that the first insert starts early.
const RUN_BYTES: usize = 1 << 20;
const RUN_FILES: usize = 512;

pub enum Invalid {
    Bundle(bundle::BundleError),
    Params(params::ParamError),
}

/// What the helper threads report to the backend thread.
pub enum Message {
    /// The bundle or its parameters are invalid; this error comes before any other.
    Invalid(Invalid),
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

/// Runs on the producer thread, which must have been started with signals blocked; the
/// workers it starts inherit that. Returns when everything is sent, or early when the
/// backend thread has stopped listening (it raised an error).
pub fn produce(bytes: &[u8], limits: &Limits, tx: &mpsc::Sender<Message>) {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4);
    let in_order = generation(0, threads, tx, |feeder| {
        let mut unsorted = false;
        let read = bundle::read_each(bytes, limits, |file| {
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
    if in_order || tx.send(Message::Restart).is_err() {
        return;
    }
    generation(1, threads, tx, |feeder| {
        let read = bundle::read(bytes, limits).map(|bundle| {
            // `read` sorted the files, so they are in order now.
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
    threads: usize,
    tx: &mpsc::Sender<Message>,
    read: impl FnOnce(&mut Feeder) -> Option<Result<Vec<(String, String)>, bundle::BundleError>>,
) -> bool {
    let cancel = AtomicBool::new(false);
    let (work_tx, work_rx) = mpsc::channel::<(usize, Vec<SourceFile>)>();
    let work_rx = Mutex::new(work_rx);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (tx, work_rx, cancel) = (tx.clone(), &work_rx, &cancel);
                scope.spawn(move || work(number, work_rx, &tx, cancel))
            })
            .collect();
        let mut feeder = Feeder {
            router: Router::default(),
            previous: None,
            work: work_tx,
            runs: 0,
            run_bytes: 0,
            error: None,
        };
        let Some(read) = read(&mut feeder) else {
            cancel.store(true, Ordering::Relaxed);
            return false;
        };
        let parameters = match read {
            Ok(raw) => params::finalize(raw).map_err(Invalid::Params),
            Err(e) => Err(Invalid::Bundle(e)),
        };
        let parameters = match parameters {
            Ok(parameters) => parameters,
            Err(e) => {
                cancel.store(true, Ordering::Relaxed);
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
        for worker in workers {
            let _ = worker.join();
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
    work: mpsc::Sender<(usize, Vec<SourceFile>)>,
    runs: usize,
    run_bytes: usize,
    /// The first routing error; files after it are read (for bundle errors) but ignored.
    error: Option<ProjectError>,
}

impl Feeder {
    fn in_order(&self, path: &str) -> bool {
        self.previous.as_deref().is_none_or(|p| p < path)
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
            // The workers only stop early when cancelled, after which nothing is sent.
            let _ = self.work.send((self.runs, run));
            self.runs += 1;
        }
    }
}

fn work(
    generation: u32,
    queue: &Mutex<mpsc::Receiver<(usize, Vec<SourceFile>)>>,
    tx: &mpsc::Sender<Message>,
    cancel: &AtomicBool,
) {
    loop {
        let next = queue.lock().map(|q| q.recv());
        let Ok(Ok((index, mut run))) = next else {
            return;
        };
        if cancel.load(Ordering::Relaxed) {
            return;
        }
        let run = project::finish(&mut run).map(|()| run);
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
