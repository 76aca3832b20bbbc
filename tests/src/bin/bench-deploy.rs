//! Whole-deploy benchmark (issue 10): what a user pays for `pgmi-upload deploy`, process
//! start to exit, as ratios to floors measured in the same run, alternating, median of N:
//!
//! * a no-op deploy (`deploy.sql` is `SELECT 1;`) of a many-file project ÷ `psql -X` in its
//!   own process creating a temporary `(path text primary key, content text)` table and
//!   `\copy`-ing the same paths and contents from a TSV file;
//! * a one-file deploy (`deploy.sql` is a migration) ÷ `psql -X -f` of the same file;
//! * the deploying backend's peak private memory (`RssAnon`, sampled from /proc every
//!   millisecond, in runs of their own after the timed ones) ÷ the project's size;
//! * the one-file deploy and `psql -X -f` again through a link that adds `LINK_DELAY_MS`
//!   (default 5) each way, with the round trips each made.
//!
//! Two more baselines put the floors in context, as ratios to them: `tar` reading the
//! many-file project one file at a time (what any tool deploying a directory pays and the
//! `\copy` floor does not: it reads one TSV file), and `psql` creating the session
//! objects before the one-file SQL (what any tool keeping the session API pays).
//!
//! Both session kinds are measured side by side, and the phases come from the deploy's own
//! `--json` (`phasesMs`) and, for the extension, `pgmi_load`'s DEBUG1 timing line.
//!
//! Usage: `bench-deploy [FILES [BYTES_PER_FILE [ROUNDS]]]` (default 10000 1560 5). Run
//! through `scripts/bench.sh deploy` (release builds; PostgreSQL's own psql, not a wrapper).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgmi_tests::TestDb;

/// One migration of about `size` bytes: a `CREATE TABLE` and 8–24 `COMMENT ON` lines (more
/// when `size` asks for it), so sizes vary from file to file as in a real project.
fn migration(i: usize, size: usize) -> String {
    let mut s = format!(
        "-- migration {i}\nCREATE TABLE app.t_{i:06} (\n    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n    name text NOT NULL,\n    created timestamptz NOT NULL DEFAULT now()\n);\n"
    );
    let lines = 8 + (i * 7919) % 17;
    let target = size.saturating_sub(s.len()) / lines.max(1);
    for l in 0..lines {
        let mut line = format!("COMMENT ON COLUMN app.t_{i:06}.name IS 'line {l}: ");
        while line.len() + 4 < target {
            line.push_str("pad ");
        }
        line.push_str("';\n");
        s.push_str(&line);
    }
    s
}

struct Project {
    dir: tempfile::TempDir,
    files: Vec<(String, String)>,
    bytes: usize,
}

fn write_project(files: usize, size: usize, deploy: &str) -> Project {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("deploy.sql"), deploy).expect("deploy.sql");
    let mut out = Vec::with_capacity(files);
    let mut bytes = deploy.len();
    for i in 0..files {
        let rel = format!("migrations/{:03}/{i:06}_table.sql", i / 100);
        let text = migration(i, size);
        let path = dir.path().join(&rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, &text).expect("write");
        bytes += text.len();
        out.push((rel, text));
    }
    out.push(("deploy.sql".to_string(), deploy.to_string()));
    Project {
        dir,
        files: out,
        bytes,
    }
}

/// `\copy` text format: backslash, tab, newline and carriage return escaped.
fn tsv(files: &[(String, String)]) -> String {
    let escape = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('\t', "\\t")
            .replace('\n', "\\n")
            .replace('\r', "\\r")
    };
    let mut out = String::new();
    for (path, text) in files {
        out.push_str(&escape(path));
        out.push('\t');
        out.push_str(&escape(text));
        out.push('\n');
    }
    out
}

fn psql_binary() -> PathBuf {
    let out = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .expect("pg_config --bindir");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("psql")
}

fn pgmi_upload_binary() -> PathBuf {
    std::env::var_os("PGMI_UPLOAD_BIN").map_or_else(
        || {
            std::env::current_exe()
                .expect("current_exe")
                .with_file_name("pgmi-upload")
        },
        PathBuf::from,
    )
}

/// Samples the private memory of every backend of one database while a command runs.
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<u64>,
}

fn postmaster_pid(db: &TestDb) -> u32 {
    let data = db.text("SHOW data_directory").expect("data_directory");
    let pid = std::fs::read_to_string(Path::new(&data).join("postmaster.pid"))
        .expect("postmaster.pid (run the benchmark as the server's OS user or root)");
    pid.lines()
        .next()
        .expect("pid line")
        .trim()
        .parse()
        .expect("pid")
}

fn rss_anon_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The server's processes (the postmaster's children), by pid.
fn server_processes(postmaster: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{postmaster}/task/{postmaster}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Whether the process title of `pid` names `database` (a backend connected to it).
fn serves(pid: u32, database: &str) -> bool {
    let needle = format!(" {database} ");
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
}

impl Sampler {
    /// Peak `RssAnon` (kB) of any backend whose process title names `database`.
    fn start(postmaster: u32, database: &str) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let database = database.to_string();
        let handle = std::thread::spawn(move || {
            let mut peak = 0;
            let mut ours: HashMap<u32, bool> = HashMap::new();
            loop {
                let done = flag.load(Ordering::Relaxed);
                for pid in server_processes(postmaster) {
                    // Only a yes is remembered: a new backend sets its title after
                    // authentication, so an early look may not show the database yet.
                    let mine = ours.contains_key(&pid) || serves(pid, &database);
                    if mine {
                        ours.insert(pid, true);
                        peak = peak.max(rss_anon_kb(pid).unwrap_or(0));
                    }
                }
                if done {
                    return peak;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        Sampler { stop, handle }
    }

    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("sampler")
    }
}

struct Outcome {
    time: Duration,
    peak_kb: u64,
    stdout: String,
    stderr: String,
}

/// Waits until no server process of `database` is left. A backend goes on after its
/// client has gone: it drops the session's temporary objects (about 30 for a pgmi session,
/// a 10,000-row table for the floor) before it exits. Measured back to back, that clean-up
/// ran on one of the two cores during the next command and was charged to it; a user runs
/// one deploy at a time. Every command, floors included, starts after this.
fn settle(postmaster: u32, database: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if !server_processes(postmaster)
            .into_iter()
            .any(|pid| serves(pid, database))
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("server processes of {database} were still running after ten seconds");
}

/// Runs `cmd` once the database's server processes have gone ([`settle`]); `sample`: watch
/// the backends' memory (a thread that reads /proc every millisecond, which costs the
/// measured processes a little CPU).
fn run(cmd: &mut Command, postmaster: u32, database: &str, sample: bool) -> Outcome {
    settle(postmaster, database);
    let sampler = sample.then(|| Sampler::start(postmaster, database));
    let start = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let time = start.elapsed();
    let peak_kb = sampler.map_or(0, Sampler::finish);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    Outcome {
        time,
        peak_kb,
        stdout,
        stderr,
    }
}

fn psql(database: &str) -> Command {
    let mut cmd = Command::new(psql_binary());
    cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", database]);
    cmd
}

/// Reads every file of `project`, one after another, as a tool that walks a directory must:
/// `tar -c` to a pipe (GNU tar skips reading the files when its archive is /dev/null).
fn read_files(project: &Path) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("tar -cf - -C \"$1\" . | wc -c")
        .arg("sh")
        .arg(project);
    cmd
}

/// `--json` with the load's DEBUG1 timing line on stderr; stderr is a pipe, so no progress.
fn deploy(project: &Path, database: &str, session: &str) -> Command {
    let mut cmd = Command::new(pgmi_upload_binary());
    cmd.arg("deploy")
        .arg(project)
        .args(["-d", database, "--session", session, "--json"])
        .env("PGOPTIONS", "-c client_min_messages=debug1")
        .env("NO_COLOR", "1");
    cmd
}

/// One line of a results table: the floor, each kind, and each kind's ratio to the floor.
fn row(label: &str, floor: f64, ext: f64, port: f64, unit: &str) {
    println!(
        "{:<34} {:>8.1}{unit} {:>8.1}{unit} {:>7.2} {:>8.1}{unit} {:>7.2}",
        label,
        floor,
        ext,
        ext / floor,
        port,
        port / floor
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Per-measure samples across rounds.
#[derive(Default)]
struct Samples {
    ms: BTreeMap<&'static str, Vec<f64>>,
    peak_kb: BTreeMap<&'static str, Vec<f64>>,
    phases: BTreeMap<(&'static str, String), Vec<f64>>,
}

impl Samples {
    fn add(&mut self, name: &'static str, o: &Outcome) {
        self.ms.entry(name).or_default().push(ms(o.time));
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&o.stdout) {
            if let Some(map) = v["phasesMs"].as_object() {
                for (phase, value) in map {
                    if let Some(x) = value.as_f64() {
                        self.phases
                            .entry((name, phase.clone()))
                            .or_default()
                            .push(x);
                    }
                }
            }
        }
        // pgmi_load: … bundle copied after X ms, session objects after Y ms, routed after
        // Z ms, all sources inserted after W ms, done in V ms
        if let Some(line) = o.stderr.lines().find(|l| l.contains("pgmi_load:")) {
            let labels = [
                "server: bundle copied",
                "server: session objects",
                "server: unpacked+routed",
                "server: hashed+inserted",
                "server: load done",
            ];
            let figures: Vec<f64> = line
                .split(" ms")
                .filter_map(|part| part.rsplit(' ').next()?.parse::<f64>().ok())
                .collect();
            for (label, x) in labels.iter().zip(figures) {
                self.phases
                    .entry((name, (*label).to_string()))
                    .or_default()
                    .push(x);
            }
        }
    }

    /// A run of its own for the memory: its peak, not its time.
    fn add_peak(&mut self, name: &'static str, o: &Outcome) {
        self.peak_kb.entry(name).or_default().push(o.peak_kb as f64);
    }

    fn print_phases(&self, names: &[&str]) {
        for name in names {
            let line: Vec<String> = self
                .phases
                .iter()
                .filter(|((n, _), _)| n == name)
                .map(|((_, phase), v)| format!("{phase} {:.1}", median(v.clone())))
                .collect();
            println!("  {name:<7} {}", line.join(", "));
        }
    }

    fn median_ms(&self, name: &str) -> f64 {
        median(self.ms[name].clone())
    }

    fn peak_mib(&self, name: &str) -> f64 {
        self.peak_kb[name].iter().copied().fold(0.0, f64::max) / 1024.0
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let files: usize = args.next().map_or(10_000, |a| a.parse().expect("FILES"));
    let size: usize = args
        .next()
        .map_or(1_560, |a| a.parse().expect("BYTES_PER_FILE"));
    let rounds: usize = args.next().map_or(5, |a| a.parse().expect("ROUNDS"));

    let db = TestDb::new("bench_deploy");
    db.client()
        .batch_execute("CREATE SCHEMA app")
        .expect("schema");
    let postmaster = postmaster_pid(&db);

    let many = write_project(files, size, "SELECT 1;\n");
    let floor_tsv = many.dir.path().join("floor.tsv");
    std::fs::write(&floor_tsv, tsv(&many.files)).expect("tsv");
    // Outside the project, so the deploy does not load it.
    let floor_dir = tempfile::tempdir().expect("tempdir");
    let floor_sql = floor_dir.path().join("floor.sql");
    let moved = floor_dir.path().join("floor.tsv");
    std::fs::rename(&floor_tsv, &moved).expect("move tsv");
    std::fs::write(
        &floor_sql,
        format!(
            "CREATE TEMPORARY TABLE floor (path text PRIMARY KEY, content text);\n\\copy floor FROM '{}'\n",
            moved.display()
        ),
    )
    .expect("floor.sql");

    // The smallest real deploy: one statement that changes the catalog (a temporary table,
    // so that every round starts alike).
    let one_sql = "CREATE TEMPORARY TABLE one_file (id bigint PRIMARY KEY, name text NOT NULL);\n"
        .to_string();
    let one = write_project(0, size, &one_sql);
    let one_file = floor_dir.path().join("one.sql");
    std::fs::write(&one_file, &one_sql).expect("one.sql");
    // The least any tool honouring the session API pays: creating its objects (the portable
    // kind's SQL, as pgmi-upload sends it, in one transaction), then the same SQL.
    let session_file = floor_dir.path().join("session.sql");
    std::fs::write(
        &session_file,
        format!(
            "BEGIN;\nSET LOCAL synchronous_commit = off;\nSET LOCAL check_function_bodies = off;\n{}\n{}\n{}\nCOMMIT;\n{one_sql}",
            pgmi_upload::portable::SESSION_SQL,
            pgmi_upload::portable::SESSION_PORTABLE_SQL,
            pgmi_upload::portable::SESSION_CONSTRAINTS_SQL,
        ),
    )
    .expect("session.sql");

    println!(
        "pgmi whole-deploy benchmark: {files} files, {:.1} MB; median of {rounds} alternating rounds; same server, same run",
        many.bytes as f64 / 1e6
    );
    let mut s = Samples::default();
    // Timed without the memory sampler (its thread reads /proc every millisecond, CPU the
    // measured processes then lack: 20 ms of a one-file deploy through the link, measured);
    // the memory comes from runs of its own afterwards.
    let mut measure =
        |name: &'static str, cmd: &mut Command| s.add(name, &run(cmd, postmaster, &db.name, false));
    for _ in 0..rounds {
        measure("floor", psql(&db.name).arg("-f").arg(&floor_sql));
        measure("ext", &mut deploy(many.dir.path(), &db.name, "extension"));
        measure("port", &mut deploy(many.dir.path(), &db.name, "portable"));
        measure("psql -f", psql(&db.name).arg("-f").arg(&one_file));
        measure("psql session", psql(&db.name).arg("-f").arg(&session_file));
        measure("tar", &mut read_files(many.dir.path()));
        measure("ext 1", &mut deploy(one.dir.path(), &db.name, "extension"));
        measure("port 1", &mut deploy(one.dir.path(), &db.name, "portable"));
    }
    for _ in 0..rounds.min(3) {
        let mut peak = |name: &'static str, cmd: &mut Command| {
            s.add_peak(name, &run(cmd, postmaster, &db.name, true))
        };
        peak("floor", psql(&db.name).arg("-f").arg(&floor_sql));
        peak("ext", &mut deploy(many.dir.path(), &db.name, "extension"));
        peak("port", &mut deploy(many.dir.path(), &db.name, "portable"));
    }

    let project_mib = many.bytes as f64 / (1024.0 * 1024.0);
    println!();
    println!(
        "{:<34} {:>10} {:>10} {:>7} {:>10} {:>7}",
        "measure", "floor", "extension", "ratio", "portable", "ratio"
    );
    row(
        &format!("no-op deploy, {files} files (ms)"),
        s.median_ms("floor"),
        s.median_ms("ext"),
        s.median_ms("port"),
        "  ",
    );
    row(
        "one-file deploy (ms)",
        s.median_ms("psql -f"),
        s.median_ms("ext 1"),
        s.median_ms("port 1"),
        "  ",
    );
    row(
        "one-file ÷ psql making the session",
        s.median_ms("psql session"),
        s.median_ms("ext 1"),
        s.median_ms("port 1"),
        "  ",
    );
    println!(
        "{:<34} {:>8.1}MB {:>8.1}Mi {:>7.2} {:>8.1}Mi {:>7.2}",
        "backend peak RssAnon ÷ project",
        project_mib,
        s.peak_mib("ext"),
        s.peak_mib("ext") / project_mib,
        s.peak_mib("port"),
        s.peak_mib("port") / project_mib,
    );
    println!(
        "{:<34} {:>8.1}Mi",
        "(psql \\copy floor's backend peak)",
        s.peak_mib("floor")
    );
    println!(
        "{:<34} {:>8.1}ms {:>8.2}× the \\copy floor",
        format!("reading the {files} files (tar)"),
        s.median_ms("tar"),
        s.median_ms("tar") / s.median_ms("floor"),
    );
    println!(
        "{:<34} {:>8.1}ms {:>8.2}× psql -f",
        "psql making the session",
        s.median_ms("psql session"),
        s.median_ms("psql session") / s.median_ms("psql -f"),
    );
    println!();
    println!("phases (median ms; client phases from --json phasesMs, server ones from pgmi_load's DEBUG1 line, since its start)");
    s.print_phases(&["ext", "port", "ext 1", "port 1"]);
    println!("floor = psql -X: CREATE TEMPORARY TABLE (path text PRIMARY KEY, content text) + \\copy of a TSV of the same files;");
    println!(
        "psql -f = psql -X -f of the one-file project's deploy.sql; psql making the session = the same after"
    );
    println!(
        "creating the session objects (sql/session*.sql, one transaction); whole processes, wall clock;"
    );
    println!(
        "each command starts once the previous one's server process has exited (its clean-up is not charged to the next);"
    );
    println!(
        "tar = tar -c of the project directory, one file after another, piped to wc -c (not to /dev/null, which GNU tar would not read)."
    );
    over_a_link(&s, &db.name, postmaster, one.dir.path(), &one_file, rounds);
    drop(db);
}

/// The one-file deploy again, through a link that delays every chunk by `LINK_DELAY_MS` in
/// each direction (`pgmi_tests::latency`), as when the server is in another data centre
/// than the CI runner: what the deploy's round trips cost a user. Each command's round
/// trips are counted at the link, connection set-up included.
fn over_a_link(
    local: &Samples,
    database: &str,
    postmaster: u32,
    project: &Path,
    one_file: &Path,
    rounds: usize,
) {
    let delay_ms: u64 = std::env::var("LINK_DELAY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let link = pgmi_tests::latency::Link::start(Duration::from_millis(delay_ms));
    let port = link.port.to_string();
    let mut s = Samples::default();
    let mut trips: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut measure = |name: &'static str, cmd: &mut Command| {
        let before = link.round_trips();
        s.add(
            name,
            &run(
                cmd.env("PGHOST", "127.0.0.1").env("PGPORT", &port),
                postmaster,
                database,
                false,
            ),
        );
        trips.insert(name, link.round_trips() - before);
    };
    for _ in 0..rounds {
        measure("psql -f", psql(database).arg("-f").arg(one_file));
        measure("ext 1", &mut deploy(project, database, "extension"));
        measure("port 1", &mut deploy(project, database, "portable"));
    }
    println!();
    println!(
        "one-file deploy over a link with {} ms round trips (median ms; round trips counted at the link)",
        2 * delay_ms
    );
    println!(
        "{:<34} {:>10} {:>10} {:>7} {:>10} {:>7}",
        "measure", "psql -f", "extension", "ratio", "portable", "ratio"
    );
    let (f, e, p) = (
        s.median_ms("psql -f"),
        s.median_ms("ext 1"),
        s.median_ms("port 1"),
    );
    row("one-file deploy (ms)", f, e, p, "  ");
    println!(
        "{:<34} {:>10} {:>10} {:>7} {:>10}",
        "round trips", trips["psql -f"], trips["ext 1"], "", trips["port 1"]
    );
    println!(
        "{:<34} {:>8.1}  {:>8.1}  {:>7} {:>8.1}",
        "added by the link (ms)",
        f - local.median_ms("psql -f"),
        e - local.median_ms("ext 1"),
        "",
        p - local.median_ms("port 1")
    );
    s.print_phases(&["ext 1", "port 1"]);
}
