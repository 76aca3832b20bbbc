//! A throw-away PostgreSQL cluster for tests that must configure the server (TLS).
//!
//! [`Cluster::builder`] collects settings, `pg_hba.conf` lines and files for the data
//! directory; [`Builder::start`] runs `initdb` into a fresh temporary directory and starts
//! the server listening only on 127.0.0.1, on a free port, with its Unix socket in a
//! directory of its own. As root (CI containers), `initdb` and `pg_ctl` run as the
//! `postgres` user through `runuser`, since PostgreSQL refuses to run as root.
//!
//! Invariant: every server started here is stopped and its directory deleted, whatever
//! happens to the test process. Before anything is created a *reaper* is spawned: a shell
//! waiting for end-of-file on a pipe whose write end only this process holds. Dropping the
//! [`Cluster`] closes the pipe — and so does the process ending in any way, panic, abort or
//! SIGKILL included — after which the reaper runs `pg_ctl stop -m immediate` and removes the
//! directory. This is what makes clusters kept in a `static` (where Rust never runs
//! `Drop`) safe to share between the tests of one binary.
//!
//! Cost, measured on a 2-CPU container: `initdb --no-sync` 0.9 s, start 0.1 s, stop 0.1 s.

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Where the server binaries in use are: `PG_BINDIR`, or Debian's layout for `PG_MAJOR`
/// (as the scripts set them).
pub fn bindir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let major = std::env::var("PG_MAJOR").unwrap_or_else(|_| "15".to_string());
    // Debian's and Ubuntu's layout, which the scripts install.
    PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"))
}

/// The major version of the server binaries in use (`postgres --version`).
pub fn server_major() -> u32 {
    static MAJOR: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *MAJOR.get_or_init(|| {
        let out = Command::new(bindir().join("postgres"))
            .arg("--version")
            .output()
            .expect("postgres --version");
        let text = String::from_utf8_lossy(&out.stdout);
        // "postgres (PostgreSQL) 13.23"
        text.rsplit(' ')
            .next()
            .and_then(|v| v.trim().split('.').next())
            .and_then(|m| m.parse().ok())
            .unwrap_or_else(|| panic!("unreadable postgres --version: {text:?}"))
    })
}

/// The user the server runs as, when this process is root: `(name, uid, gid)`.
fn server_user() -> Option<(String, u32, u32)> {
    let me = std::fs::metadata("/proc/self").expect("/proc/self").uid();
    if me != 0 {
        return None;
    }
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("id postgres");
        assert!(
            out.status.success(),
            "running as root needs a `postgres` user to run the server"
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("numeric id")
    };
    Some(("postgres".to_string(), id("-u"), id("-g")))
}

/// Settings, pg_hba.conf lines and data-directory files for a new cluster.
#[derive(Default)]
pub struct Builder {
    settings: Vec<(String, String)>,
    hba: Vec<String>,
    files: Vec<(String, Vec<u8>)>,
}

impl Builder {
    /// A `postgresql.conf` setting; the value is quoted here.
    pub fn setting(mut self, name: &str, value: &str) -> Builder {
        self.settings.push((name.to_string(), value.to_string()));
        self
    }

    /// A `pg_hba.conf` line, after `local all all trust` (which the helper's own
    /// connections use) and in the order given.
    pub fn hba(mut self, line: &str) -> Builder {
        self.hba.push(line.to_string());
        self
    }

    /// A file in the data directory, owned by the server's user with mode 0600 (as
    /// `ssl_key_file` must be); settings name it relative to the data directory.
    pub fn file(mut self, name: &str, contents: impl AsRef<[u8]>) -> Builder {
        self.files
            .push((name.to_string(), contents.as_ref().to_vec()));
        self
    }

    /// Create and start the cluster; panics (with the server log) when it cannot.
    pub fn start(self) -> Cluster {
        let base = tempfile::Builder::new()
            .prefix("pgmi-cluster-")
            .tempdir()
            .expect("temporary directory")
            .keep();
        let data = base.join("data");
        let user = server_user();
        // First of all, so that nothing below can leak a server or a directory.
        let reaper = Reaper::spawn(&base, &data, user.as_ref());
        let cluster = Cluster {
            port: 0,
            socket_dir: base.join("socket"),
            scratch: base.join("scratch"),
            data,
            base,
            user,
            reaper: Some(reaper),
        };
        cluster.create(&self);
        cluster.start_on_free_port()
    }
}

/// A running cluster; dropping it stops the server and deletes its directory.
pub struct Cluster {
    port: u16,
    base: PathBuf,
    data: PathBuf,
    socket_dir: PathBuf,
    scratch: PathBuf,
    user: Option<(String, u32, u32)>,
    reaper: Option<Reaper>,
}

impl Cluster {
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The TCP port (the server listens on 127.0.0.1 only).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// A private directory (mode 0700, owned by the test process) for the test's own files
    /// — client certificates and keys — deleted together with the cluster.
    pub fn scratch(&self) -> &Path {
        &self.scratch
    }

    /// A superuser connection (`postgres`) over the Unix socket.
    pub fn connect(&self, database: &str) -> postgres::Client {
        postgres::Config::new()
            .host_path(&self.socket_dir)
            .port(self.port)
            .user("postgres")
            .dbname(database)
            .connect(postgres::NoTls)
            .unwrap_or_else(|e| panic!("cannot connect to the test cluster: {e}"))
    }

    /// Run SQL as the superuser in the `postgres` database.
    pub fn execute(&self, sql: &str) {
        self.connect("postgres")
            .batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.base.join("server.log")).unwrap_or_default()
    }

    fn create(&self, builder: &Builder) {
        std::fs::set_permissions(&self.base, std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        std::fs::create_dir(&self.socket_dir).expect("socket directory");
        std::fs::create_dir(&self.scratch).expect("scratch directory");
        std::fs::set_permissions(&self.scratch, std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        self.give_to_server(&self.base);
        self.give_to_server(&self.socket_dir);

        let out = self
            .pg_command("initdb")
            .arg("-D")
            .arg(&self.data)
            .args([
                "--no-sync",
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--locale=C",
            ])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );

        let mut conf = String::from("\n# pgmi tests\n");
        let socket = self.socket_dir.to_str().expect("utf-8 path");
        let fixed = [
            ("listen_addresses", "127.0.0.1"),
            ("unix_socket_directories", socket),
            // Durability is worthless in a cluster deleted at the end of the run.
            ("fsync", "off"),
            ("synchronous_commit", "off"),
            ("full_page_writes", "off"),
            ("shared_buffers", "16MB"),
            ("max_connections", "50"),
        ];
        let extra = builder
            .settings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()));
        for (name, value) in fixed.into_iter().chain(extra) {
            conf.push_str(&format!("{name} = '{}'\n", value.replace('\'', "''")));
        }
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data.join("postgresql.conf"))
            .expect("postgresql.conf");
        file.write_all(conf.as_bytes())
            .expect("write postgresql.conf");

        let mut hba = String::from("local all all trust\n");
        for line in &builder.hba {
            hba.push_str(line);
            hba.push('\n');
        }
        std::fs::write(self.data.join("pg_hba.conf"), hba).expect("write pg_hba.conf");

        for (name, contents) in &builder.files {
            let path = self.data.join(name);
            std::fs::write(&path, contents).expect("write data-directory file");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
            self.give_to_server(&path);
        }
    }

    /// Start on a port that was free a moment ago; another process may take it in between,
    /// so a failure to bind is retried with a new port.
    fn start_on_free_port(mut self) -> Cluster {
        for _ in 0..5 {
            self.port = free_port();
            let out = self
                .pg_command("pg_ctl")
                .arg("start")
                .arg("-D")
                .arg(&self.data)
                .arg("-l")
                .arg(self.base.join("server.log"))
                .args(["-w", "-t", "60", "-o"])
                .arg(format!("-p {}", self.port))
                .output()
                .expect("run pg_ctl start");
            if out.status.success() {
                return self;
            }
            if !self.log().contains("could not bind") {
                panic!(
                    "pg_ctl start failed:\n{}\n{}",
                    String::from_utf8_lossy(&out.stderr),
                    self.log()
                );
            }
        }
        panic!("no free port found:\n{}", self.log());
    }

    /// `initdb` / `pg_ctl`, as the server's user when this process is root.
    fn pg_command(&self, program: &str) -> Command {
        let binary = bindir().join(program);
        let mut cmd = match &self.user {
            Some((name, _, _)) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", name, "--"]).arg(binary);
                cmd
            }
            None => Command::new(binary),
        };
        // The server's user may not be allowed into the test's working directory.
        cmd.current_dir(&self.base).stdin(Stdio::null());
        cmd
    }

    fn give_to_server(&self, path: &Path) {
        if let Some((_, uid, gid)) = &self.user {
            std::os::unix::fs::chown(path, Some(*uid), Some(*gid)).expect("chown");
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        drop(self.reaper.take());
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// The process that stops the server and deletes the directory once its stdin closes.
struct Reaper {
    child: Child,
}

/// Waits for end-of-file, then stops the server and deletes the directory. When the test
/// process died in the middle of `initdb` or `pg_ctl start`, those go on for a moment
/// and create files (or a server) after the first pass; hence the few further passes.
const REAPER_SCRIPT: &str = r#"
trap '' INT TERM HUP
cat >/dev/null
data=$1; base=$2; shift 2
for pass in 1 2 3 4 5 6 7 8 9 10; do
    if [ -f "$data/postmaster.pid" ]; then
        "$@" stop -D "$data" -m immediate -w -t 30 >/dev/null 2>&1
    fi
    rm -rf "$base" 2>/dev/null
    [ -e "$base" ] || exit 0
    sleep 1
done
"#;

impl Reaper {
    fn spawn(base: &Path, data: &Path, user: Option<&(String, u32, u32)>) -> Reaper {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(REAPER_SCRIPT)
            .arg("pgmi-cluster-reaper")
            .arg(data)
            .arg(base);
        if let Some((name, _, _)) = user {
            cmd.args(["runuser", "-u", name, "--"]);
        }
        cmd.arg(bindir().join("pg_ctl"))
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: a Ctrl-C at the terminal must not kill the reaper
            // before it has done its job.
            .process_group(0);
        Reaper {
            child: cmd.spawn().expect("spawn the cluster reaper"),
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        // Closing stdin is the signal; waiting makes the stop synchronous for `Drop`.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}
