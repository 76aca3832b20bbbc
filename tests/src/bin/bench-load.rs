//! Load benchmark (issue: foundation, "Measured"): how long getting a project into a pgmi
//! session takes, as a ratio to a plain binary COPY of the same bytes into a temporary
//! table, measured in the same run on the same server; plus the backend's peak memory.
//!
//! Both session kinds are measured: `extension` (upload the bundle, `pgmi_load` unpacks and
//! parses it in the server) and `portable` (`pgmi_upload::portable::load`: the client sends
//! the session SQL and the rows pgmi-core derived, by binary COPY; the client's parsing is
//! the `pack` column, done before connecting in both kinds).
//!
//! Run through `scripts/bench.sh` (release build of the extension). Prints a table.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgmi_core::project::RawFile;
use pgmi_tests::{Client, TestDb};

const ROUNDS: usize = 5;

/// A realistic ~2 KB migration: DDL, a function with a dollar-quoted body, comments, and a
/// `<pgmi-meta>` block in every fourth file.
fn migration(i: usize) -> String {
    let mut s = String::with_capacity(2200);
    if i.is_multiple_of(4) {
        s.push_str(&format!(
            "/*\n<pgmi-meta id=\"{:08x}-0000-4000-8000-{:012x}\" idempotent=\"false\">\n  <description>Migration {i}</description>\n  <sortKeys><key>{:06}</key></sortKeys>\n</pgmi-meta>\n*/\n",
            i, i, i
        ));
    }
    s.push_str(&format!(
        "-- Migration {i}: accounts and their audit trail\nCREATE TABLE app.account_{i} (\n"
    ));
    for c in 0..12 {
        s.push_str(&format!(
            "    col_{c:02} text NOT NULL DEFAULT 'value {c} of table {i}',\n"
        ));
    }
    s.push_str("    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY\n);\n");
    s.push_str(&format!(
        "CREATE INDEX account_{i}_col_00 ON app.account_{i} (col_00);\n\
         CREATE FUNCTION app.touch_{i}() RETURNS trigger LANGUAGE plpgsql AS $$\n\
         BEGIN\n    -- keep the audit column current\n    NEW.col_11 := now()::text;\n    RETURN NEW;\nEND\n$$;\n"
    ));
    while s.len() < 2048 {
        s.push_str(&format!("COMMENT ON TABLE app.account_{i} IS 'Accounts, part {i}, padded to a realistic size.';\n"));
    }
    s
}

fn project(files: usize) -> Vec<RawFile> {
    (0..files)
        .map(|i| RawFile {
            path: format!("migrations/{:03}/{:06}_account.sql", i / 100, i),
            bytes: migration(i).into_bytes(),
        })
        .collect()
}

/// PostgreSQL binary COPY of (path text, content text) rows.
fn copy_rows(files: &[RawFile]) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        files
            .iter()
            .map(|f| f.bytes.len() + f.path.len() + 16)
            .sum::<usize>()
            + 32,
    );
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    for f in files {
        out.extend_from_slice(&2i16.to_be_bytes());
        for field in [f.path.as_bytes(), f.bytes.as_slice()] {
            out.extend_from_slice(&(field.len() as i32).to_be_bytes());
            out.extend_from_slice(field);
        }
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out
}

fn copy_bundle(bundle: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bundle.len() + 32);
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&1i16.to_be_bytes());
    out.extend_from_slice(&(bundle.len() as i32).to_be_bytes());
    out.extend_from_slice(bundle);
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out
}

fn send_copy(c: &mut Client, statement: &str, data: &[u8]) {
    let mut w = c.copy_in(statement).expect("copy_in");
    for chunk in data.chunks(64 << 10) {
        w.write_all(chunk).expect("copy data");
    }
    w.finish().expect("copy finish");
}

fn baseline(c: &mut Client, files: &[RawFile]) -> Duration {
    let start = Instant::now();
    let data = copy_rows(files);
    c.batch_execute("BEGIN; CREATE TEMP TABLE baseline (path text, content text) ON COMMIT DROP")
        .expect("baseline table");
    send_copy(
        c,
        "COPY pg_temp.baseline (path, content) FROM STDIN (FORMAT binary)",
        &data,
    );
    c.batch_execute("COMMIT").expect("commit");
    start.elapsed()
}

/// The load's own phase timings, from the DEBUG1 line `pgmi_load` emits.
type Phases = Arc<Mutex<Vec<String>>>;

fn load_client(db: &TestDb, phases: &Phases) -> Client {
    let sink = Arc::clone(phases);
    let mut c = pgmi_tests::config(&db.name)
        .notice_callback(move |n| {
            if n.message().starts_with("pgmi_load:") {
                sink.lock().unwrap().push(n.message().to_string());
            }
        })
        .connect(postgres::NoTls)
        .expect("connect");
    c.batch_execute("SET client_min_messages = debug1")
        .expect("client_min_messages");
    c
}

/// Median of each "after N ms" / "in N ms" figure across the captured DEBUG1 lines.
fn phase_medians(lines: &[String]) -> Vec<f64> {
    let figures: Vec<Vec<f64>> = lines
        .iter()
        .map(|l| {
            l.split(" ms")
                .filter_map(|part| part.rsplit(' ').next()?.parse::<f64>().ok())
                .collect()
        })
        .collect();
    let n = figures.iter().map(Vec::len).min().unwrap_or(0);
    (0..n)
        .map(|i| {
            let mut v: Vec<f64> = figures.iter().map(|f| f[i]).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        })
        .collect()
}

fn load(c: &mut Client, bundle: &[u8]) -> Duration {
    let start = Instant::now();
    let data = copy_bundle(bundle);
    c.batch_execute(&format!(
        "BEGIN; {}",
        pgmi_upload::session::CREATE_UPLOAD_TABLE
    ))
    .expect("upload table");
    send_copy(
        c,
        "COPY pg_temp._pgmi_upload (data) FROM STDIN (FORMAT binary)",
        &data,
    );
    c.query(
        "SELECT * FROM pgmi_load((SELECT data FROM pg_temp._pgmi_upload))",
        &[],
    )
    .expect("pgmi_load");
    c.batch_execute("COMMIT").expect("commit");
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Peak resident memory (VmHWM) of the backend serving `c`, in MiB.
fn backend_peak_mib(c: &mut Client) -> f64 {
    let pid: i32 = c
        .query_one("SELECT pg_backend_pid()", &[])
        .expect("pid")
        .get(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let db = TestDb::new("bench_load");
    println!("pgmi load benchmark: median of {ROUNDS} rounds each, same server, same run");
    println!(
        "{:>6} {:>6} {:>8} {:>8} {:>9} {:>6} {:>9} {:>6} {:>9} {:>9} {:>9} {:>9}",
        "files",
        "MB",
        "COPY ms",
        "pack ms",
        "ext ms",
        "ratio",
        "port ms",
        "ratio",
        "ext MiB",
        "port MiB",
        "COPY MiB",
        "bundle KB"
    );
    for files in [1_000usize, 10_000] {
        let raw = project(files);
        let bytes: usize = raw.iter().map(|f| f.bytes.len()).sum();

        // Client side: what pgmi-upload does before connecting (validate, checksum, pack).
        let mut packs = Vec::new();
        let mut bundle = Vec::new();
        let mut built = None;
        for _ in 0..ROUNDS {
            let start = Instant::now();
            built = Some(pgmi_core::project::build(raw.clone()).expect("valid project"));
            bundle = pgmi_core::bundle::write(&raw, &[]).expect("bundle");
            packs.push(start.elapsed());
        }
        let built = built.expect("at least one round");

        let phases: Phases = Arc::default();
        let mut copies = Vec::new();
        let mut loads = Vec::new();
        let mut portables = Vec::new();
        let (mut copy_peak, mut load_peak, mut portable_peak) = (0f64, 0f64, 0f64);
        for _ in 0..ROUNDS {
            // Fresh backends, so VmHWM is this operation's peak.
            // Both sides get the temp_buffers pgmi-upload sets, so neither spills to disk.
            let mut c = db.client();
            c.batch_execute(&format!(
                "SET temp_buffers = '{}'",
                pgmi_upload::session::TEMP_BUFFERS
            ))
            .expect("temp_buffers");
            copies.push(baseline(&mut c, &raw));
            copy_peak = copy_peak.max(backend_peak_mib(&mut c));
            let mut c = load_client(&db, &phases);
            c.batch_execute(&format!(
                "SET temp_buffers = '{}'",
                pgmi_upload::session::TEMP_BUFFERS
            ))
            .expect("temp_buffers");
            loads.push(load(&mut c, &bundle));
            load_peak = load_peak.max(backend_peak_mib(&mut c));
            let mut c = db.client();
            c.batch_execute(&format!(
                "SET temp_buffers = '{}'",
                pgmi_upload::session::TEMP_BUFFERS
            ))
            .expect("temp_buffers");
            let start = Instant::now();
            pgmi_upload::portable::load(&mut c, &built, &[]).expect("portable load");
            portables.push(start.elapsed());
            portable_peak = portable_peak.max(backend_peak_mib(&mut c));
        }
        let (copy, load_time, pack) = (median(copies), median(loads), median(packs));
        let portable = median(portables);
        println!(
            "{:>6} {:>6.1} {:>8.1} {:>8.1} {:>9.1} {:>6.2} {:>9.1} {:>6.2} {:>9.1} {:>9.1} {:>9.1} {:>9}",
            files,
            bytes as f64 / 1e6,
            ms(copy),
            ms(pack),
            ms(load_time),
            ms(load_time) / ms(copy),
            ms(portable),
            ms(portable) / ms(copy),
            load_peak,
            portable_peak,
            copy_peak,
            bundle.len() / 1024
        );
        let medians = phase_medians(&phases.lock().unwrap());
        if let [objects, routed, inserted, done] = medians[..] {
            println!(
                "{:>6} inside pgmi_load (medians, ms since its start): session objects ready {objects:.1}, \
                 unpacked+routed {routed:.1}, sources hashed+inserted {inserted:.1}, done {done:.1}",
                ""
            );
        }
    }
    println!("ratio = load / COPY; ext = upload + unpack + checksums + metadata + inserts + ANALYZE in the server;");
    println!(
        "port = session SQL + binary COPY of the rows + constraints + ANALYZE (portable session)"
    );
    println!("(pack = the client's offline validation and bundling, not part of the ratio)");
    drop(db);
}
