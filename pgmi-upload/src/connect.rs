//! Opening connections: the session on the target, and, only when the target is missing,
//! a short-lived one to the maintenance database (`postgres`, same credentials) that creates
//! it (README "Connecting"; docs/cli.md, connection resolution).
//!
//! * Every connection gets the notice callback, the resolved `application_name`, and TLS
//!   as its `sslmode` says (`tls.rs`, which also turns TLS failures into hints).
//! * Connection establishment is retried on transient failures, as the original pgmi does:
//!   first attempt plus up to [`RETRIES`] more, 100 ms × 2ⁿ apart, never past the deadline.
//!   SQL is never retried.
//! * Failures are rewritten into short messages that say what to do (exit 11); the
//!   server's own text follows after `: `.

use std::io;
use std::time::{Duration, Instant};

use postgres::error::SqlState;
use postgres::Client;

use crate::conninfo::ConnInfo;
use crate::exit::{error_chain, Exit, Failure};
use crate::ident::quote_ident;

/// The original pgmi's retry policy, kept: 3 retries, about 100, 200, 400 ms apart.
const RETRIES: u32 = 3;
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);

/// What every connection shares.
pub struct Connector<'a> {
    pub info: &'a ConnInfo,
    pub start: Instant,
    pub verbose: bool,
    pub deadline: Option<Instant>,
    pub tls: &'a crate::tls::Tls,
}

/// Why a connection could not be opened: the server or network said no, or (cloud IAM
/// authentication) no token could be had.
#[derive(Debug)]
pub enum ConnectError {
    Pg(postgres::Error),
    Token(Failure),
}

impl ConnectError {
    pub fn code(&self) -> Option<&SqlState> {
        match self {
            ConnectError::Pg(err) => err.code(),
            ConnectError::Token(_) => None,
        }
    }
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Pg(err) => write!(f, "{}", error_chain(err)),
            ConnectError::Token(failure) => f.write_str(&failure.message),
        }
    }
}

impl Connector<'_> {
    fn config(&self, dbname: &str, token: Option<&str>) -> postgres::Config {
        let info = self.info;
        let mut config = postgres::Config::new();
        config
            .host(&info.host)
            .port(info.port)
            .user(&info.user)
            .dbname(dbname)
            .application_name(&info.application_name)
            .notice_callback(crate::notice::callback(self.start, self.verbose));
        if let Some(token) = token {
            config.password(token);
        } else if let Some(password) = info.password_for(dbname) {
            config.password(password);
        }
        if let Some(options) = &info.options {
            config.options(options);
        }
        // The connect timeout never runs past the --timeout deadline.
        let remaining = self
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()));
        let timeout = match (info.connect_timeout, remaining) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(timeout) = timeout {
            config.connect_timeout(timeout.max(Duration::from_millis(1)));
        }
        config
    }

    /// A cloud IAM token for one new connection, when cloud authentication is on.
    fn token(&self) -> Result<Option<String>, Failure> {
        let Some(cloud) = &self.info.cloud else {
            return Ok(None);
        };
        let token = cloud.token(
            &self.info.host,
            self.info.port,
            &self.info.user,
            &crate::conninfo::process_env,
        )?;
        crate::report::verbose(
            self.verbose,
            &format!("{} token from {}", cloud.provider.title(), token.source),
        );
        Ok(Some(token.secret))
    }

    /// Connect to `dbname`, retrying transient failures. With cloud authentication a
    /// token is fetched first (retries reuse it).
    pub fn connect(&self, dbname: &str) -> Result<Client, ConnectError> {
        let token = self.token().map_err(ConnectError::Token)?;
        let mut delay = FIRST_RETRY_DELAY;
        let mut attempt = 0;
        loop {
            let is_socket = self.info.host.starts_with('/');
            let config = self.config(dbname, token.as_deref());
            match crate::tls::connect(&config, self.tls, is_socket) {
                Ok(client) => return Ok(client),
                Err(err) if attempt < RETRIES && is_retryable(&err) && self.time_left(delay) => {
                    crate::report::verbose(
                        self.verbose,
                        &format!(
                            "connection attempt {} failed, retrying in {delay:?}",
                            attempt + 1
                        ),
                    );
                    std::thread::sleep(delay);
                    delay *= 2;
                    attempt += 1;
                }
                Err(err) => return Err(ConnectError::Pg(err)),
            }
        }
    }

    fn time_left(&self, wait: Duration) -> bool {
        self.deadline.is_none_or(|d| Instant::now() + wait < d)
    }

    /// Connect to the target; when it does not exist (3D000), create it through the
    /// maintenance database first. `check_server` runs on the maintenance connection
    /// before `CREATE DATABASE`, so an unsupported server is refused with nothing created.
    pub fn connect_target(
        &self,
        check_server: &dyn Fn(&mut Client) -> Result<(), Failure>,
    ) -> Result<Client, Failure> {
        let target = &self.info.target_db;
        match self.connect(target) {
            Ok(client) => return Ok(client),
            Err(err) if err.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {}
            Err(err) => return Err(connect_failure(&err, self.info, self.tls, target)),
        }
        crate::report::verbose(
            self.verbose,
            &format!(
                "database {target:?} not found; connecting to maintenance database {:?} to create it",
                self.info.maintenance_db
            ),
        );
        let mut admin = self.connect_maintenance().map_err(|f| {
            f.context(&format!(
                "database \"{target}\" does not exist and the maintenance database is unreachable"
            ))
        })?;
        check_server(&mut admin)?;
        self.create_database(&mut admin)?;
        drop(admin);
        self.connect(target)
            .map_err(|err| connect_failure(&err, self.info, self.tls, target))
    }

    /// A connection to the maintenance database (exit 11 when it fails). Only pgmi-upload's
    /// own SQL runs there, so its search path is pinned to `pg_catalog` first: operators
    /// in its queries (`=`, `||`, and those `IN` and `IS DISTINCT FROM` look up, which no
    /// syntax can qualify) resolve to the built-in ones whatever other roles created.
    pub fn connect_maintenance(&self) -> Result<Client, Failure> {
        let maintenance = &self.info.maintenance_db;
        let mut client = self
            .connect(maintenance)
            .map_err(|err| connect_failure(&err, self.info, self.tls, maintenance))?;
        client
            .batch_execute("SET search_path = pg_catalog, pg_temp")
            .map_err(|err| {
                Failure::from_pg(
                    Exit::ConnectionFailed,
                    &format!("could not set up the connection to \"{maintenance}\""),
                    &err,
                )
            })?;
        Ok(client)
    }

    /// `CREATE DATABASE <target>` with the server's defaults, on the maintenance connection.
    pub fn create_database(&self, admin: &mut Client) -> Result<(), Failure> {
        let target = &self.info.target_db;
        eprintln!("Database \"{target}\" does not exist; creating");
        let quoted = quote_ident(target).map_err(Failure::config)?;
        admin
            .batch_execute(&format!("CREATE DATABASE {quoted}"))
            .map_err(|err| create_failure(&err, target))
    }
}

fn create_failure(err: &postgres::Error, target: &str) -> Failure {
    let code = err.code();
    if code == Some(&SqlState::DUPLICATE_DATABASE) || code == Some(&SqlState::UNIQUE_VIOLATION) {
        return Failure::from_pg(
            Exit::ConcurrentDeploy,
            &format!("database \"{target}\" was created concurrently by another session"),
            err,
        )
        .with_hint("another deployment is creating the same database; retry when it has finished");
    }
    let failure = Failure::from_pg(
        Exit::General,
        &format!("could not create database \"{target}\""),
        err,
    );
    if code == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
        return failure.with_hint(format!(
            "create it as a role with CREATEDB (createdb \"{target}\"), or grant CREATEDB to this role"
        ));
    }
    failure
}

/// Transient failures worth another attempt (the original pgmi's list): SQLSTATE classes 08, 53 and
/// 57 (but not 57014 query_canceled or 57P04 database_dropped), 40001, 40P01, 55P03, and
/// network errors such as a refused or reset connection.
fn is_retryable(err: &postgres::Error) -> bool {
    if let Some(code) = err.code() {
        let code = code.code();
        return match &code[..2] {
            "08" | "53" => true,
            "57" => code != "57014" && code != "57P04",
            _ => matches!(code, "40001" | "40P01" | "55P03"),
        };
    }
    match io_error_kind(err) {
        Some(kind) => matches!(
            kind,
            io::ErrorKind::ConnectionRefused
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof
        ),
        None => false,
    }
}

fn io_error_kind(err: &postgres::Error) -> Option<io::ErrorKind> {
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<io::Error>() {
            return Some(io.kind());
        }
        source = inner.source();
    }
    None
}

/// A connect failure as a short actionable message (exit 11).
pub fn connect_failure(
    err: &ConnectError,
    info: &ConnInfo,
    tls: &crate::tls::Tls,
    dbname: &str,
) -> Failure {
    let err = match err {
        ConnectError::Pg(err) => err,
        ConnectError::Token(failure) => return failure.clone(),
    };
    let server = if info.host.starts_with('/') {
        format!("socket {}/.s.PGSQL.{}", info.host, info.port)
    } else {
        format!("{}:{}", info.host, info.port)
    };
    let what = format!(
        "connection to {server} (database \"{dbname}\", user \"{}\") failed",
        info.user
    );
    let mut failure = Failure::from_pg(Exit::ConnectionFailed, &what, err);
    let hint = match err.code().map(SqlState::code) {
        Some("28P01" | "28000") if info.cloud.is_some() => {
            info.cloud.as_ref().map(|cloud| cloud.refused_hint(&info.user))
        }
        Some("28P01") => Some(match info.password_source(dbname) {
            Some(source) => format!("the password from {source} was not accepted; check it, or the user name"),
            None => "no password was given: set PGPASSWORD, add a line to ~/.pgpass (PGPASSFILE), or put it in the connection string".to_string(),
        }),
        Some("28000") if crate::tls::failure_hint(err, tls).is_some() => crate::tls::failure_hint(err, tls),
        Some("28000") => Some(format!(
            "the server's pg_hba.conf has no entry allowing user \"{}\" to reach database \"{dbname}\" from here",
            info.user
        )),
        Some("3D000") => Some(format!("create the database first (createdb \"{dbname}\")")),
        Some("42501") => Some(format!(
            "the role lacks CONNECT on the database: GRANT CONNECT ON DATABASE \"{dbname}\" TO \"{}\";",
            info.user
        )),
        Some("53300") => Some("the server has too many connections; retry later or raise max_connections".to_string()),
        Some("57P03") => Some("the server is starting up or shutting down; retry in a moment".to_string()),
        Some(_) => None,
        None if info.sources.host == crate::conninfo::Source::Cloud
            && error_chain(err).contains("certificate verify failed") =>
        {
            Some(format!(
                "the server at {} did not present a certificate signed by the instance's CA that the Cloud SQL Admin API returned: check the instance name, or connect elsewhere with -h and --sslrootcert",
                info.host
            ))
        }
        None => crate::tls::failure_hint(err, tls).or_else(|| transport_hint(err, info)),
    };
    if let Some(hint) = hint {
        failure = failure.with_hint(hint);
    }
    failure
}

fn transport_hint(err: &postgres::Error, info: &ConnInfo) -> Option<String> {
    let text = error_chain(err).to_ascii_lowercase();
    let target = if info.host.starts_with('/') {
        format!("-h {}", info.host)
    } else {
        format!("-h {} -p {}", info.host, info.port)
    };
    match io_error_kind(err) {
        Some(io::ErrorKind::ConnectionRefused) | Some(io::ErrorKind::NotFound) => Some(format!(
            "is the server running and accepting connections there? try: pg_isready {target}"
        )),
        Some(io::ErrorKind::TimedOut) => Some(
            "the server did not answer in time; check host and port, or raise PGCONNECT_TIMEOUT / --timeout".to_string(),
        ),
        _ if text.contains("password missing") => Some(format!(
            "the server asks user \"{}\" for a password and none was given: set PGPASSWORD, add a line to ~/.pgpass (or the file PGPASSFILE names), or put it in the connection string",
            info.user
        )),
        _ if text.contains("failed to lookup address")
            || text.contains("name or service not known") =>
        {
            Some(format!("unknown host {:?}: check -h / PGHOST / the connection URI", info.host))
        }
        _ if text.contains("timeout") || text.contains("timed out") => Some(
            "the server did not answer in time; check host and port, or raise PGCONNECT_TIMEOUT / --timeout".to_string(),
        ),
        _ => None,
    }
}
