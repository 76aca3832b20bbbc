//! Progress on stderr for the long phases of a deploy: the project scan, the upload of the
//! bundle and its load on the server (extension session), the load of the rows (portable
//! session). README "Output".
//!
//! Rules:
//! * Shown only when [`enable`]d (`deploy` without `--json`) and stderr is a terminal; never
//!   on a pipe or a file. `NO_COLOR` does not matter: the line has no colour.
//! * A phase shows nothing until it has run for [`DELAY`]; then one line is redrawn in place
//!   (carriage return, padded with spaces, no escape sequences) at most every [`INTERVAL`],
//!   and erased when the phase ends, so what stays on screen is the normal output.
//! * The work pays two relaxed atomic additions where it already iterates ([`Counters`]);
//!   drawing is a reporter thread's, started per phase only when progress is on.
//! * Anything else written to stderr during a phase (server notices) first calls [`clear`],
//!   under the stderr lock, so it never lands on the progress line.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A phase shorter than this shows nothing.
pub const DELAY: Duration = Duration::from_secs(1);
/// At most one redraw per interval.
pub const INTERVAL: Duration = Duration::from_millis(100);

static ENABLED: AtomicBool = AtomicBool::new(false);
/// Characters of the progress line on screen (0: none). Changed only under the stderr lock.
static DRAWN: AtomicUsize = AtomicUsize::new(0);

/// Turn progress on for this process when `wanted` and stderr is a terminal.
pub fn enable(wanted: bool) {
    ENABLED.store(wanted && std::io::stderr().is_terminal(), Ordering::Relaxed);
}

/// Erase the progress line, if one is drawn, before other output on `err` (the locked
/// stderr). The reporter draws it again on its next tick.
pub fn clear(err: &mut impl Write) {
    let width = DRAWN.swap(0, Ordering::Relaxed);
    if width > 0 {
        let _ = write!(err, "\r{:width$}\r", "");
    }
}

/// `text` and a newline on stderr, after erasing the progress line (for messages written
/// while a phase may be running: Ctrl-C, the deadline).
pub fn message(text: &str) {
    let mut err = std::io::stderr().lock();
    clear(&mut err);
    let _ = writeln!(err, "{text}");
}

/// What a phase has done so far; updated by the work, read by the reporter.
#[derive(Debug, Default)]
pub struct Counters {
    files: AtomicU64,
    bytes: AtomicU64,
}

impl Counters {
    /// One more file of `bytes` bytes.
    pub fn file(&self, bytes: u64) {
        self.files.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn add_files(&self, n: u64) {
        self.files.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    fn get(&self) -> (u64, u64) {
        (
            self.files.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

/// What a phase's line shows besides its counters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    pub label: &'static str,
    /// Whether the line counts files (`12,345 files, `).
    pub files: bool,
    /// The bytes the phase will reach, when known (`1.2 MB of 5.3 MB`).
    pub total_bytes: Option<u64>,
    /// Bytes per second (work done by this process), or else the time spent (work done by
    /// the server, which reports nothing until it is finished).
    pub rate: bool,
}

impl Shape {
    /// The server's part of a load, which reports nothing until it ends:
    /// `Loading on the server: 5.3 MB, 2.4s`.
    pub const SERVER: Shape = Shape {
        label: "Loading on the server",
        files: false,
        total_bytes: None,
        rate: false,
    };

    /// `Scanning: 12,345 files, 15.6 MB, 48.2 MB/s`.
    pub const fn counting(label: &'static str) -> Shape {
        Shape {
            label,
            files: true,
            total_bytes: None,
            rate: true,
        }
    }
}

/// One running phase; its line (if any was drawn) is erased when it is dropped.
pub struct Phase {
    shared: Arc<Shared>,
    reporter: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

#[derive(Debug)]
struct Shared {
    counters: Counters,
    shape: Mutex<Shape>,
}

impl Phase {
    pub fn start(shape: Shape) -> Phase {
        let shared = Arc::new(Shared {
            counters: Counters::default(),
            shape: Mutex::new(shape),
        });
        let reporter = ENABLED.load(Ordering::Relaxed).then(|| {
            let (stop, stopped) = mpsc::channel::<()>();
            let seen = Arc::clone(&shared);
            let started = Instant::now();
            let handle = std::thread::Builder::new()
                .name("pgmi-progress".into())
                .spawn(move || report(&seen, started, &stopped))
                .ok()?;
            Some((stop, handle))
        });
        Phase {
            shared,
            reporter: reporter.flatten(),
        }
    }

    /// A phase that never shows (a library caller's load).
    pub fn hidden(shape: Shape) -> Phase {
        Phase {
            shared: Arc::new(Shared {
                counters: Counters::default(),
                shape: Mutex::new(shape),
            }),
            reporter: None,
        }
    }

    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    /// The next step of the same phase (same clock, same counters): the scan's validation
    /// after its walk.
    pub fn relabel(&self, shape: Shape) {
        *self.shared.shape.lock().unwrap_or_else(|e| e.into_inner()) = shape;
    }
}

impl Drop for Phase {
    fn drop(&mut self) {
        if let Some((stop, handle)) = self.reporter.take() {
            drop(stop);
            let _ = handle.join();
        }
    }
}

/// The reporter thread: tick every [`INTERVAL`] until the phase ends, then erase.
fn report(shared: &Shared, started: Instant, stopped: &mpsc::Receiver<()>) {
    let mut throttle = Throttle::new(started);
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
        let now = Instant::now();
        if throttle.due(now) {
            let shape = *shared.shape.lock().unwrap_or_else(|e| e.into_inner());
            let (files, bytes) = shared.counters.get();
            draw(&line(&shape, files, bytes, now.duration_since(started)));
        }
    }
    clear(&mut std::io::stderr().lock());
}

fn draw(text: &str) {
    let mut err = std::io::stderr().lock();
    let width = text.chars().count();
    let pad = DRAWN.load(Ordering::Relaxed).saturating_sub(width);
    let _ = write!(err, "\r{text}{:pad$}", "");
    let _ = err.flush();
    DRAWN.store(width + pad, Ordering::Relaxed);
}

/// When to draw: not before [`DELAY`] after the start, then at most every [`INTERVAL`].
/// The clock is the caller's (`now`), so the rule is testable.
#[derive(Debug, Clone, Copy)]
pub struct Throttle {
    started: Instant,
    last: Option<Instant>,
}

impl Throttle {
    pub fn new(started: Instant) -> Throttle {
        Throttle {
            started,
            last: None,
        }
    }

    /// Whether to draw at `now`; a `true` counts as a draw.
    pub fn due(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.started) < DELAY {
            return false;
        }
        if self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < INTERVAL)
        {
            return false;
        }
        self.last = Some(now);
        true
    }
}

/// The progress line: `Scanning: 12,345 files, 15.6 MB, 48.2 MB/s`,
/// `Uploading: 1.2 MB of 5.3 MB, 2.1 MB/s`, `Loading on the server: 5.3 MB, 2.4s`.
pub fn line(shape: &Shape, files: u64, bytes: u64, elapsed: Duration) -> String {
    let mut out = format!("{}: ", shape.label);
    if shape.files {
        out.push_str(&format!(
            "{} file{}, ",
            thousands(files),
            if files == 1 { "" } else { "s" }
        ));
    }
    out.push_str(&size(bytes));
    if let Some(total) = shape.total_bytes {
        out.push_str(&format!(" of {}", size(total)));
    }
    let secs = elapsed.as_secs_f64();
    if shape.rate {
        let rate = if secs > 0.0 { bytes as f64 / secs } else { 0.0 };
        out.push_str(&format!(", {}/s", size(rate as u64)));
    } else {
        out.push_str(&format!(", {secs:.1}s"));
    }
    out
}

/// `12345` → `12,345`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Decimal units, one decimal: `512 B`, `15.6 kB`, `48.2 MB`, `1.3 GB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    // 999.95 would print as 1000.0: move up a unit from there.
    while value >= 999.95 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Counts the bytes written through it (the upload of the bundle).
pub struct CountingWriter<'a, W> {
    pub inner: W,
    pub counters: &'a Counters,
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.counters.add_bytes(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(12_345), "12,345");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(size(0), "0 B");
        assert_eq!(size(999), "999 B");
        assert_eq!(size(1000), "1.0 kB");
        assert_eq!(size(15_600_000), "15.6 MB");
        assert_eq!(size(999_960), "1.0 MB");
        assert_eq!(size(1_300_000_000), "1.3 GB");
        assert_eq!(size(u64::MAX), "18446744.1 TB");
    }

    #[test]
    fn lines() {
        let secs = Duration::from_secs_f64;
        assert_eq!(
            line(&Shape::counting("Scanning"), 12_345, 15_600_000, secs(0.5)),
            "Scanning: 12,345 files, 15.6 MB, 31.2 MB/s"
        );
        assert_eq!(
            line(&Shape::counting("Loading"), 1, 10, Duration::ZERO),
            "Loading: 1 file, 10 B, 0 B/s"
        );
        let upload = Shape {
            label: "Uploading",
            files: false,
            total_bytes: Some(5_300_000),
            rate: true,
        };
        assert_eq!(
            line(&upload, 1_200_000, 1_200_000, secs(2.0)),
            "Uploading: 1.2 MB of 5.3 MB, 600.0 kB/s"
        );
        let server = Shape {
            label: "Loading on the server",
            files: false,
            total_bytes: None,
            rate: false,
        };
        assert_eq!(
            line(&server, 0, 5_300_000, secs(2.44)),
            "Loading on the server: 5.3 MB, 2.4s"
        );
    }

    #[test]
    fn nothing_before_one_second_then_ten_a_second() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut throttle = Throttle::new(t0);
        for ms in [0, 100, 500, 999] {
            assert!(!throttle.due(at(ms)), "{ms} ms");
        }
        assert!(throttle.due(at(1000)));
        assert!(!throttle.due(at(1050)));
        assert!(!throttle.due(at(1099)));
        assert!(throttle.due(at(1100)));
        assert!(throttle.due(at(1300)));
        assert!(!throttle.due(at(1350)));
        // a clock that goes back draws nothing
        assert!(!Throttle::new(t0).due(t0.checked_sub(Duration::from_secs(5)).unwrap_or(t0)));
    }

    #[test]
    fn counters_and_counting_writer() {
        let counters = Counters::default();
        counters.file(10);
        counters.file(5);
        counters.add_files(2);
        let mut out = CountingWriter {
            inner: Vec::new(),
            counters: &counters,
        };
        out.write_all(b"abc").unwrap();
        assert_eq!(out.inner, b"abc");
        assert_eq!(counters.get(), (4, 18));
    }

    #[test]
    fn a_disabled_phase_starts_no_reporter() {
        // Tests do not run on a terminal with progress enabled.
        let phase = Phase::start(Shape::counting("Scanning"));
        phase.counters().file(1);
        assert!(phase.reporter.is_none());
    }

    #[test]
    fn clear_erases_only_a_drawn_line() {
        let mut out = Vec::new();
        clear(&mut out);
        assert!(out.is_empty());
        DRAWN.store(5, Ordering::Relaxed);
        clear(&mut out);
        assert_eq!(out, b"\r     \r");
        assert_eq!(DRAWN.load(Ordering::Relaxed), 0);
    }
}
