//! The pipeline without a server: a recording sink stands in for the backend thread.

use std::panic::{self, AssertUnwindSafe};

use pgmi_core::bundle;
use pgmi_core::project::RawFile;

use super::*;

#[derive(Default)]
struct Recorder {
    inserted: Vec<String>,
    clears: usize,
    polls: Vec<Instant>,
    /// Panics (as an ERROR raised by CHECK_FOR_INTERRUPTS would) once this time is passed.
    cancel_at: Option<Instant>,
    cancelled: Option<Instant>,
}

impl Sink for Recorder {
    fn poll(&mut self) {
        let now = Instant::now();
        self.polls.push(now);
        if self.cancel_at.is_some_and(|at| now >= at) {
            self.cancelled = Some(now);
            // Unwinds without the panic hook (whose backtrace would dominate the timing),
            // as pgrx's ERROR unwinding does.
            panic::resume_unwind(Box::new("canceling statement due to user request"));
        }
    }

    fn sources(&mut self, run: &[SourceFile]) {
        self.inserted
            .extend(run.iter().map(|s| s.path.path.clone()));
    }

    fn clear_sources(&mut self) {
        self.clears += 1;
        self.inserted.clear();
    }
}

fn file(path: &str, text: &str) -> RawFile {
    RawFile {
        path: path.to_string(),
        bytes: text.as_bytes().to_vec(),
    }
}

fn many(n: usize) -> Vec<RawFile> {
    (0..n)
        .map(|i| {
            file(
                &format!("m/{i:05}.sql"),
                &format!("SELECT {i}; -- {}", "x".repeat(2000)),
            )
        })
        .collect()
}

/// A tar.gz in archive order `files` (not sorted, unlike `bundle::write`): plain ustar
/// headers and a gzip stream of stored deflate blocks, so no compression crate is needed.
fn unsorted(files: &[RawFile]) -> Vec<u8> {
    let mut tar = Vec::new();
    for f in files {
        let mut h = [0u8; 512];
        h[..f.path.len()].copy_from_slice(f.path.as_bytes());
        h[100..108].copy_from_slice(b"0000644\0");
        h[108..116].copy_from_slice(b"0000000\0");
        h[116..124].copy_from_slice(b"0000000\0");
        h[124..136].copy_from_slice(format!("{:011o}\0", f.bytes.len()).as_bytes());
        h[136..148].copy_from_slice(b"00000000000\0");
        h[148..156].copy_from_slice(b"        ");
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        tar.extend_from_slice(&h);
        tar.extend_from_slice(&f.bytes);
        tar.resize(tar.len().div_ceil(512) * 512, 0);
    }
    tar.resize(tar.len() + 1024, 0);
    stored_gzip(&tar)
}

fn stored_gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let chunks: Vec<&[u8]> = data.chunks(0xffff).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let len = chunk.len() as u16;
        out.push(u8::from(i + 1 == chunks.len()));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    out.extend_from_slice(&(!crc).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// `stop_all` stops every pipeline of the process, so the tests take turns.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn run(bytes: Vec<u8>, sink: &mut Recorder) -> Result<Loaded, LoadError> {
    Pipeline::start_with(bytes, Limits::default(), 2, || {})
        .unwrap()
        .run(sink)
}

/// A project as the pipeline returns it: once inserted, only sources with metadata are
/// kept, without their text and checksums.
fn as_loaded(project: &Project) -> Project {
    let mut project = project.clone();
    project.sources.retain(|s| s.metadata.is_some());
    for source in &mut project.sources {
        source.content = String::new();
        source.checksum = String::new();
        source.pgmi_checksum = String::new();
    }
    project
}

fn no_threads_left() {
    assert!(stop_all(Duration::from_secs(1)));
}

#[test]
fn loads_like_build_and_inserts_in_order() {
    let _serial = serial();
    let mut files = many(3000);
    // Two files with metadata, which the pipeline keeps (without their text).
    for (i, name) in ["m/00100-meta.sql", "m/02900-meta.sql"].iter().enumerate() {
        files.push(file(
            name,
            &format!("/* <pgmi-meta id=\"8f0e5a5e-0000-4000-8000-00000000000{i}\" idempotent=\"true\"><sortKeys><key>00{i}</key></sortKeys></pgmi-meta> */ SELECT 1;"),
        ));
    }
    let expected = project::build(files.clone()).unwrap();
    let mut sink = Recorder::default();
    let loaded = run(
        bundle::write(&files, &[("k".into(), "v".into())]).unwrap(),
        &mut sink,
    )
    .unwrap();
    assert_eq!(loaded.project, as_loaded(&expected));
    assert_eq!(loaded.project.sources.len(), 2);
    assert_eq!(loaded.sql_files, 3002);
    assert!(loaded.row_error.is_none());
    assert_eq!(
        loaded.source_bytes,
        expected
            .sources
            .iter()
            .map(|s| s.content.len())
            .sum::<usize>()
    );
    assert_eq!(loaded.parameters.len(), 1);
    let paths: Vec<String> = expected
        .sources
        .iter()
        .map(|s| s.path.path.clone())
        .collect();
    assert_eq!(sink.inserted, paths);
    assert_eq!(sink.clears, 0);
    no_threads_left();
}

#[test]
fn an_unsorted_archive_restarts_sorted() {
    let _serial = serial();
    let mut files = many(1500);
    files.reverse();
    let mut sink = Recorder::default();
    let loaded = run(unsorted(&files), &mut sink).unwrap();
    assert_eq!(loaded.project, as_loaded(&project::build(files).unwrap()));
    assert_eq!(sink.inserted.len(), 1500);
    assert!(sink.inserted.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn a_bundle_error_after_a_bad_file_comes_first() {
    let _serial = serial();
    // 600 good files (a run is inserted), a NUL byte, then an archive error at the end.
    let mut files = many(600);
    files.push(file("z/bad.sql", "a\0b"));
    let mut bytes = unsorted(&files);
    // Without its trailer the stream ends in an error after every file was unpacked.
    bytes.truncate(bytes.len() - 8);
    let e = run(bytes, &mut Recorder::default()).unwrap_err();
    assert!(matches!(e, LoadError::Bundle(_)), "{e:?}");

    let e = run(unsorted(&files), &mut Recorder::default()).unwrap_err();
    assert!(
        matches!(e, LoadError::Project(ProjectError::NulByte { .. })),
        "{e:?}"
    );
}

/// Test files only: nothing is inserted until the end, so the consumer only waits.
fn tests_only(megabytes: usize) -> Vec<u8> {
    let text = format!("SELECT 1; -- {}\n", "y".repeat(1000));
    let files: Vec<RawFile> = (0..megabytes)
        .map(|i| file(&format!("__test__/t{i:05}.sql"), &text.repeat(1000)))
        .collect();
    bundle::write(&files, &[]).unwrap()
}

#[test]
fn the_consumer_polls_every_few_milliseconds_while_it_waits() {
    let _serial = serial();
    let mut sink = Recorder::default();
    let started = Instant::now();
    let loaded = Pipeline::start_with(
        tests_only(200),
        Limits::default(),
        2,
        crate::signals::yield_to_backends,
    )
    .unwrap()
    .run(&mut sink)
    .unwrap();
    assert_eq!(loaded.project.test_sources.len(), 200);
    let mut gaps: Vec<Duration> = sink.polls.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort();
    let worst = gaps.last().copied().unwrap_or_default();
    let median = gaps.get(gaps.len() / 2).copied().unwrap_or_default();
    eprintln!(
        "{} polls in {:?}, median gap {median:?}, the longest {worst:?}",
        sink.polls.len(),
        started.elapsed()
    );
    // POLL is 5 ms. The longest gap is the consumer waiting for a core: on this 2-core
    // machine, with three busy helper threads and parallel builds, 17-100 ms was seen.
    assert!(median < Duration::from_millis(10), "{median:?}");
    assert!(worst < Duration::from_millis(250), "{worst:?}");
}

#[test]
fn an_error_in_poll_stops_and_joins_the_threads_at_once() {
    let _serial = serial();
    let bytes = tests_only(400);
    let mut sink = Recorder {
        cancel_at: Some(Instant::now() + Duration::from_millis(30)),
        ..Recorder::default()
    };
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| run(bytes, &mut sink)));
    assert!(outcome.is_err(), "the cancel must propagate");
    let elapsed = sink.cancelled.expect("cancelled").elapsed();
    eprintln!("threads stopped and joined {elapsed:?} after the cancel");
    assert!(elapsed < Duration::from_millis(100), "{elapsed:?}");
    no_threads_left();
}

#[test]
fn stop_all_stops_a_pipeline_that_is_never_dropped() {
    let _serial = serial();
    let pipeline = Pipeline::start_with(tests_only(400), Limits::default(), 2, || {}).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let started = Instant::now();
    assert!(stop_all(EXIT_WAIT));
    eprintln!("threads ended {:?} after stop_all", started.elapsed());
    assert!(started.elapsed() < Duration::from_millis(200));
    // What a FATAL does: the pipeline is never dropped.
    std::mem::forget(pipeline);
    ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).clear();
}
