//! Resolving where to connect (reference `pgmi-cli.md` §2.1–2.4, §2.6, §2.7), offline, and
//! remembering where each setting came from (for `--verbose` and `info`).
//!
//! Sources, strongest first: flags; the environment (which the project's `.env` may have
//! filled); `pgmi.yaml`; defaults. Two paths, as in the reference:
//! * **Connection-string path**: a string from `--connection`, else
//!   `PGMI_CONNECTION_STRING`, else `DATABASE_URL`, in any format `connstr.rs` reads (URI,
//!   ADO.NET, libpq key=value). Host, port, database, sslmode, application name and connect
//!   timeout come from the string or built-in defaults, never from `pgmi.yaml`; user and
//!   password fall back to `PGUSER`/`$USER` and `PGPASSWORD`/`.pgpass` as a driver's would.
//!   `-h/-p/-U/--sslmode` together with a string is an error (exit 10) even when the string
//!   came from the environment; `-d` is allowed and names the target.
//! * **Granular path**: each field is `flag > PG* variable > pgmi.yaml > default`; the
//!   maintenance database is `pgmi.yaml`'s `maintenance_database`, else `postgres`.
//!
//! On both paths the TLS files are `flag > string > PGSSL* variable > pgmi.yaml`, and the
//! key's passphrase is `string > PGSSLPASSWORD`.
//!
//! Passwords: the string's or `PGPASSWORD` (an empty one counts as none, as in libpq); else
//! the `.pgpass` file (`pgpass.rs`), read here and kept, because the maintenance connection
//! looks up its own database: connections ask [`ConnInfo::password_for`].
//!
//! Deliberate difference: when no host is given anywhere, we use the Unix socket directory
//! `/var/run/postgresql` if `/var/run/postgresql/.s.PGSQL.<port>` exists (what libpq and
//! psql do on Debian and Ubuntu, where peer authentication over that socket is the default)
//! and `localhost` otherwise; the reference always uses `localhost`.
//!
//! Secrets (the password, the key passphrase) never appear in `Debug` output,
//! [`ConnInfo::describe`] or [`ConnInfo::fields`]: those say "set" and where from.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::ConnectionArgs;
use crate::config::{self, Config};
use crate::connstr::{self, Format};
use crate::exit::Failure;
use crate::pgpass::{self, PassFile};
use crate::uri;

/// Debian's (and libpq's default there) Unix socket directory.
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";
const DEFAULT_PORT: u16 = 5432;
const MAINTENANCE_DB: &str = "postgres";
const DEFAULT_APPLICATION_NAME: &str = "pgmi";

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A command-line flag, e.g. `--host`.
    Flag(&'static str),
    /// The connection string, and where the string came from (`--connection`,
    /// `PGMI_CONNECTION_STRING`, `DATABASE_URL`).
    ConnectionString {
        origin: &'static str,
        format: Format,
    },
    /// An environment variable; `dotenv`: set from the project's `.env`.
    Env { var: &'static str, dotenv: bool },
    /// `pgmi.yaml`.
    Yaml,
    /// A built-in default.
    Default,
    /// The name of the operating-system user (no `USER`/`USERNAME` variable).
    OsUser,
    /// A line of the password file.
    PgPass { path: PathBuf, line: usize },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(flag) => f.write_str(flag),
            Source::ConnectionString { origin, format } => {
                write!(f, "{} connection string from {origin}", format.label())
            }
            Source::Env { var, dotenv: false } => f.write_str(var),
            Source::Env { var, dotenv: true } => write!(f, "{var} from .env"),
            Source::Yaml => f.write_str(config::FILE_NAME),
            Source::Default => f.write_str("default"),
            Source::OsUser => f.write_str("operating-system user"),
            Source::PgPass { path, line } => {
                write!(f, "password file {} line {line}", path.display())
            }
        }
    }
}

/// Where each resolved field came from; `None` for a field that is not set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    pub host: Source,
    pub port: Source,
    pub user: Source,
    /// The explicit password's; a `.pgpass` password is found per database
    /// ([`ConnInfo::password_source`]).
    pub password: Option<Source>,
    pub target_db: Source,
    pub maintenance_db: Source,
    pub sslmode: Source,
    pub sslrootcert: Option<Source>,
    pub sslcert: Option<Source>,
    pub sslkey: Option<Source>,
    pub sslpassword: Option<Source>,
    pub application_name: Source,
    pub connect_timeout: Option<Source>,
    /// Where the password file's location came from (`passfile`, `PGPASSFILE`, default).
    pub passfile: Option<Source>,
}

/// Everything needed to open the session, resolved and validated.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnInfo {
    /// Host name, IP address, or (starting with `/`) a Unix socket directory.
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Secret: from the connection string or `PGPASSWORD`. When `None`, `passfile` is
    /// searched per database ([`ConnInfo::password_for`]).
    pub password: Option<String>,
    /// The database deployed into.
    pub target_db: String,
    /// The database connected to only to `CREATE DATABASE` the target.
    pub maintenance_db: String,
    pub application_name: String,
    pub connect_timeout: Option<Duration>,
    /// Server start-up options (`-c key=value …`) from the connection string.
    pub options: Option<String>,
    pub tls: crate::tls::TlsSettings,
    /// The password file, read when no explicit password was given (and it exists and is
    /// private).
    pub passfile: Option<PassFile>,
    pub sources: Sources,
}

/// One row of [`ConnInfo::fields`]. Secret fields carry `set`/`unset` as their value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub value: String,
    pub source: Option<Source>,
    pub secret: bool,
}

impl ConnInfo {
    /// The password for a connection to `dbname`: the explicit one, else the first
    /// matching line of the password file.
    pub fn password_for(&self, dbname: &str) -> Option<String> {
        if let Some(password) = &self.password {
            return Some(password.clone());
        }
        self.passfile
            .as_ref()?
            .lookup(&self.host, self.port, dbname, &self.user)
            .map(|found| found.password)
    }

    /// Where [`ConnInfo::password_for`] takes the password for `dbname` from.
    pub fn password_source(&self, dbname: &str) -> Option<Source> {
        if self.password.is_some() {
            return self.sources.password.clone();
        }
        let file = self.passfile.as_ref()?;
        let found = file.lookup(&self.host, self.port, dbname, &self.user)?;
        Some(Source::PgPass {
            path: file.path.clone(),
            line: found.line,
        })
    }

    /// Every setting, its value (secrets as `set`/`unset`) and its source, in a fixed
    /// order; for `info`.
    pub fn fields(&self) -> Vec<Field> {
        let plain = |name, value: String, source: &Source| Field {
            name,
            value,
            source: Some(source.clone()),
            secret: false,
        };
        let optional = |name, value: &Option<String>, source: &Option<Source>| Field {
            name,
            value: value.clone().unwrap_or_default(),
            source: source.clone(),
            secret: false,
        };
        let secret = |name, source: Option<Source>| Field {
            name,
            value: if source.is_some() { "set" } else { "unset" }.to_string(),
            source,
            secret: true,
        };
        let s = &self.sources;
        vec![
            plain("host", self.host.clone(), &s.host),
            plain("port", self.port.to_string(), &s.port),
            plain("user", self.user.clone(), &s.user),
            secret("password", self.password_source(&self.target_db)),
            plain("database", self.target_db.clone(), &s.target_db),
            plain(
                "maintenance_database",
                self.maintenance_db.clone(),
                &s.maintenance_db,
            ),
            plain("sslmode", self.tls.mode.as_str().to_string(), &s.sslmode),
            optional("sslrootcert", &self.tls.rootcert, &s.sslrootcert),
            optional("sslcert", &self.tls.cert, &s.sslcert),
            optional("sslkey", &self.tls.key, &s.sslkey),
            secret(
                "sslpassword",
                self.tls.password.as_ref().and(s.sslpassword.clone()),
            ),
            plain(
                "application_name",
                self.application_name.clone(),
                &s.application_name,
            ),
            optional(
                "connect_timeout",
                &self.connect_timeout.map(|d| d.as_secs().to_string()),
                &s.connect_timeout,
            ),
        ]
    }

    /// One line for `--verbose`: `name=value (source)` for each set field; secrets only
    /// as `set (from SOURCE)`.
    pub fn describe(&self) -> String {
        self.fields()
            .into_iter()
            // The key passphrase only matters when there is one.
            .filter(|f| match f.name {
                "password" => true,
                "sslpassword" => f.source.is_some(),
                _ => !f.value.is_empty(),
            })
            .map(|f| match (&f.source, f.secret) {
                (None, true) => format!("{}: unset", f.name),
                (Some(source), true) => format!("{}: set (from {source})", f.name),
                (Some(source), false) => format!("{}={} ({source})", f.name, f.value),
                (None, false) => format!("{}={}", f.name, f.value),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl fmt::Debug for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnInfo {{ {} }}", self.describe())
    }
}

/// Read one environment variable; empty counts as unset (as in libpq).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// What resolution reads besides the flags.
pub struct Inputs<'a> {
    pub env: EnvLookup<'a>,
    /// Whether a variable's value came from the project's `.env` (for the sources only).
    pub from_dotenv: &'a dyn Fn(&str) -> bool,
    pub yaml: Option<&'a Config>,
    /// Whether a path exists (the default Unix socket test).
    pub socket_exists: &'a dyn Fn(&Path) -> bool,
}

impl Inputs<'_> {
    fn var(&self, var: &'static str) -> Option<(String, Source)> {
        (self.env)(var).map(|value| {
            (
                value,
                Source::Env {
                    var,
                    dotenv: (self.from_dotenv)(var),
                },
            )
        })
    }

    fn yaml_value(
        &self,
        pick: impl Fn(&config::Connection) -> Option<&String>,
    ) -> Option<(String, Source)> {
        self.yaml
            .and_then(|c| pick(&c.connection))
            .filter(|v| !v.is_empty())
            .map(|v| (v.clone(), Source::Yaml))
    }
}

/// The resolution itself; also returns warnings (a password file that was not used).
pub fn resolve_with(
    args: &ConnectionArgs,
    inputs: &Inputs<'_>,
) -> Result<(ConnInfo, Vec<String>), Failure> {
    let string_source = args
        .connection
        .clone()
        .map(|c| ("--connection", c))
        .or_else(|| (inputs.env)("PGMI_CONNECTION_STRING").map(|c| ("PGMI_CONNECTION_STRING", c)))
        .or_else(|| (inputs.env)("DATABASE_URL").map(|c| ("DATABASE_URL", c)));

    let (mut info, passfile_keyword) = match string_source {
        Some((origin, text)) => from_string(args, origin, &text, inputs)?,
        None => (from_parts(args, inputs)?, None),
    };
    if info.host.is_empty() {
        info.host = default_host(info.port, inputs.socket_exists);
        info.sources.host = Source::Default;
    }
    if info.host.contains(',') {
        return Err(Failure::config(format!(
            "several hosts given ({}); pgmi-upload connects to exactly one",
            info.sources.host
        )));
    }
    let mut warnings = Vec::new();
    if info.password.is_none() {
        let (location, source) = match passfile_keyword {
            Some((path, source)) => (Some(PathBuf::from(path)), Some(source)),
            None => match inputs.var("PGPASSFILE") {
                Some((path, source)) => (Some(PathBuf::from(path)), Some(source)),
                None => (pgpass::location(None, inputs.env), Some(Source::Default)),
            },
        };
        if let Some(path) = location {
            match pgpass::load(&path) {
                pgpass::Loaded::File(file) => {
                    info.passfile = Some(file);
                    info.sources.passfile = source;
                }
                pgpass::Loaded::Missing => {}
                pgpass::Loaded::Ignored(warning) => warnings.push(warning),
            }
        }
    }
    Ok((info, warnings))
}

type PassfileKeyword = Option<(String, Source)>;

fn from_string(
    args: &ConnectionArgs,
    origin: &'static str,
    text: &str,
    inputs: &Inputs<'_>,
) -> Result<(ConnInfo, PassfileKeyword), Failure> {
    let granular: Vec<&str> = [
        (args.host.is_some(), "--host"),
        (args.port.is_some(), "--port"),
        (args.username.is_some(), "--username"),
        (args.sslmode.is_some(), "--sslmode"),
    ]
    .into_iter()
    .filter_map(|(given, name)| given.then_some(name))
    .collect();
    if !granular.is_empty() {
        return Err(Failure::config(format!(
            "cannot specify both a connection string ({origin}) and {}",
            granular.join(", ")
        ))
        .with_hint(
            "put host, port, user and sslmode into the connection string, or unset the connection string and use -h/-p/-U/--sslmode",
        ));
    }
    let (format, parts) = connstr::parse(text).map_err(|e| {
        Failure::config(format!("invalid connection string in {origin}: {}", e.message)).with_hint(
            e.hint.unwrap_or_else(|| {
                "formats: postgresql://user@host:port/db?sslmode=require, host=h port=5432 dbname=db user=u, or Host=h;Port=5432;Database=db;Username=u".to_string()
            }),
        )
    })?;
    let src = Source::ConnectionString { origin, format };
    let from = |value: &Option<String>| value.clone().map(|v| (v, src.clone()));

    let (target_db, target_source, maintenance_db, maintenance_source) = {
        let string_db = parts.dbname.clone();
        match (&args.database, string_db) {
            // -d names the target; the string's database (if it names another) is where
            // the target gets created.
            (Some(d), Some(s)) if *d != s => {
                (d.clone(), Source::Flag("--database"), s, src.clone())
            }
            (Some(d), _) => (
                d.clone(),
                Source::Flag("--database"),
                MAINTENANCE_DB.to_string(),
                Source::Default,
            ),
            (None, Some(s)) => (s, src.clone(), MAINTENANCE_DB.to_string(), Source::Default),
            (None, None) => (
                MAINTENANCE_DB.to_string(),
                Source::Default,
                MAINTENANCE_DB.to_string(),
                Source::Default,
            ),
        }
    };
    let (connect_timeout, connect_timeout_source) = match parts.connect_timeout {
        Some(secs) => (Some(secs), Some(src.clone())),
        None => env_connect_timeout(inputs)?,
    };
    let mut options = parts.options.clone();
    if !parts.runtime_params.is_empty() {
        let extra: Vec<String> = parts
            .runtime_params
            .iter()
            .map(|(k, v)| format!("-c {}={}", escape_option(k), escape_option(v)))
            .collect();
        options = Some(
            options
                .into_iter()
                .chain(extra)
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    let (user, user_source) = match from(&parts.user).or_else(|| inputs.var("PGUSER")) {
        Some(found) => found,
        None => default_user(inputs)?,
    };
    let (password, password_source) = from(&parts.password)
        .filter(|(p, _)| !p.is_empty())
        .or_else(|| inputs.var("PGPASSWORD"))
        .unzip();
    // The reference ignores PGAPPNAME on this path: the string decides, else `pgmi`.
    let (application_name, application_name_source) = from(&parts.application_name)
        .or_else(|| from(&parts.fallback_application_name))
        .unwrap_or_else(|| (DEFAULT_APPLICATION_NAME.to_string(), Source::Default));
    let mode = from(&parts.sslmode)
        .or_else(|| inputs.var("PGSSLMODE"))
        .unwrap_or_else(|| ("prefer".to_string(), Source::Default));
    let (tls, tls_sources) = tls_settings(mode, args, Some(&parts), &src, inputs)?;
    let info = ConnInfo {
        host: parts.host.clone().unwrap_or_default(),
        port: parts.port.unwrap_or(DEFAULT_PORT),
        user,
        password,
        target_db,
        maintenance_db,
        application_name,
        connect_timeout: connect_timeout.filter(|s| *s > 0).map(Duration::from_secs),
        options,
        tls,
        passfile: None,
        sources: Sources {
            host: src.clone(),
            port: if parts.port.is_some() {
                src.clone()
            } else {
                Source::Default
            },
            user: user_source,
            password: password_source,
            target_db: target_source,
            maintenance_db: maintenance_source,
            sslmode: tls_sources.mode,
            sslrootcert: tls_sources.rootcert,
            sslcert: tls_sources.cert,
            sslkey: tls_sources.key,
            sslpassword: tls_sources.password,
            application_name: application_name_source,
            connect_timeout: connect_timeout_source,
            passfile: None,
        },
    };
    Ok((info, parts.passfile.clone().map(|p| (p, src))))
}

fn from_parts(args: &ConnectionArgs, inputs: &Inputs<'_>) -> Result<ConnInfo, Failure> {
    let yaml_port = inputs.yaml.and_then(|c| c.connection.port);
    let (port, port_source) = match (&args.port, inputs.var("PGPORT"), yaml_port) {
        (Some(flag), _, _) => (
            uri::parse_port(flag).map_err(|e| Failure::config(format!("--port: {e}")))?,
            Source::Flag("--port"),
        ),
        (None, Some((var, source)), _) => (
            uri::parse_port(&var).map_err(|e| Failure::config(format!("{source}: {e}")))?,
            source,
        ),
        (None, None, Some(port)) => (port, Source::Yaml),
        (None, None, None) => (DEFAULT_PORT, Source::Default),
    };
    let flag =
        |value: &Option<String>, name: &'static str| value.clone().map(|v| (v, Source::Flag(name)));
    let (target_db, target_source) = flag(&args.database, "--database")
        .or_else(|| inputs.var("PGDATABASE"))
        .or_else(|| inputs.yaml_value(|c| c.database.as_ref()))
        .ok_or_else(|| {
            Failure::config("database name is required").with_hint(
                "pass -d <name>, set PGDATABASE, set connection.database in pgmi.yaml, or give a connection string that names the database (--connection, PGMI_CONNECTION_STRING or DATABASE_URL)",
            )
        })?;
    let (host, host_source) = flag(&args.host, "--host")
        .or_else(|| inputs.var("PGHOST"))
        .or_else(|| inputs.yaml_value(|c| c.host.as_ref()))
        .unwrap_or_else(|| (String::new(), Source::Default));
    let (user, user_source) = match flag(&args.username, "--username")
        .or_else(|| inputs.var("PGUSER"))
        .or_else(|| inputs.yaml_value(|c| c.username.as_ref()))
    {
        Some(found) => found,
        None => default_user(inputs)?,
    };
    let (password, password_source) = inputs.var("PGPASSWORD").unzip();
    let (maintenance_db, maintenance_source) = inputs
        .yaml_value(|c| c.maintenance_database.as_ref())
        .unwrap_or_else(|| (MAINTENANCE_DB.to_string(), Source::Default));
    let (application_name, application_name_source) = inputs
        .var("PGAPPNAME")
        .unwrap_or_else(|| (DEFAULT_APPLICATION_NAME.to_string(), Source::Default));
    let (connect_timeout, connect_timeout_source) = env_connect_timeout(inputs)?;
    let mode = flag(&args.sslmode, "--sslmode")
        .or_else(|| inputs.var("PGSSLMODE"))
        .or_else(|| inputs.yaml_value(|c| c.sslmode.as_ref()))
        .unwrap_or_else(|| ("prefer".to_string(), Source::Default));
    let (tls, tls_sources) = tls_settings(mode, args, None, &Source::Default, inputs)?;
    Ok(ConnInfo {
        host,
        port,
        user,
        password,
        target_db,
        maintenance_db,
        application_name,
        connect_timeout: connect_timeout.filter(|s| *s > 0).map(Duration::from_secs),
        options: None,
        tls,
        passfile: None,
        sources: Sources {
            host: host_source,
            port: port_source,
            user: user_source,
            password: password_source,
            target_db: target_source,
            maintenance_db: maintenance_source,
            sslmode: tls_sources.mode,
            sslrootcert: tls_sources.rootcert,
            sslcert: tls_sources.cert,
            sslkey: tls_sources.key,
            sslpassword: tls_sources.password,
            application_name: application_name_source,
            connect_timeout: connect_timeout_source,
            passfile: None,
        },
    })
}

fn env_connect_timeout(inputs: &Inputs<'_>) -> Result<(Option<u64>, Option<Source>), Failure> {
    match inputs.var("PGCONNECT_TIMEOUT") {
        Some((text, source)) => {
            let secs = uri::parse_connect_timeout(&text)
                .map_err(|e| Failure::config(format!("{source}: {e}")))?;
            Ok((Some(secs), Some(source)))
        }
        None => Ok((None, None)),
    }
}

/// The Unix socket directory when its socket for `port` exists, else `localhost`.
pub fn default_host(port: u16, socket_exists: &dyn Fn(&Path) -> bool) -> String {
    let socket = Path::new(DEFAULT_SOCKET_DIR).join(format!(".s.PGSQL.{port}"));
    if socket_exists(&socket) {
        DEFAULT_SOCKET_DIR.to_string()
    } else {
        "localhost".to_string()
    }
}

/// `$USER`, then `$USERNAME`, then the name of the process owner in `/etc/passwd` (CI
/// containers often run as root with neither variable set).
fn default_user(inputs: &Inputs<'_>) -> Result<(String, Source), Failure> {
    inputs
        .var("USER")
        .or_else(|| inputs.var("USERNAME"))
        .or_else(|| passwd_user_name().map(|name| (name, Source::OsUser)))
        .ok_or_else(|| {
            Failure::config("could not determine the user name")
                .with_hint("pass -U <user> or set PGUSER")
        })
}

#[cfg(unix)]
fn passwd_user_name() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let _password = fields.next()?;
        (fields.next()?.parse::<u32>().ok()? == uid).then(|| name.to_string())
    })
}

#[cfg(not(unix))]
fn passwd_user_name() -> Option<String> {
    None
}

struct TlsSources {
    mode: Source,
    rootcert: Option<Source>,
    cert: Option<Source>,
    key: Option<Source>,
    password: Option<Source>,
}

/// The mode as resolved by the caller; each file setting is flag > connection string >
/// `PGSSL*` variable > pgmi.yaml (the string beats the environment, as in libpq, so a stale
/// `PGSSLROOTCERT` cannot swap the trust anchor of a `verify-full` string); the key's
/// passphrase is string > `PGSSLPASSWORD`.
fn tls_settings(
    (mode, mode_source): (String, Source),
    args: &ConnectionArgs,
    string: Option<&uri::UriParts>,
    string_source: &Source,
    inputs: &Inputs<'_>,
) -> Result<(crate::tls::TlsSettings, TlsSources), Failure> {
    let parsed = crate::tls::SslMode::parse(&mode).ok_or_else(|| {
        Failure::config(format!(
            "invalid sslmode {mode:?} (from {mode_source}): expected one of {}",
            crate::tls::SslMode::NAMES.join(", ")
        ))
    })?;
    let pick = |flag: &Option<String>,
                flag_name: &'static str,
                from_string: Option<&String>,
                var: &'static str,
                yaml: fn(&config::Connection) -> Option<&String>| {
        flag.clone()
            .map(|v| (v, Source::Flag(flag_name)))
            .or_else(|| from_string.map(|v| (v.clone(), string_source.clone())))
            .or_else(|| inputs.var(var))
            .or_else(|| inputs.yaml_value(yaml))
            .unzip()
    };
    let (rootcert, rootcert_source) = pick(
        &args.sslrootcert,
        "--sslrootcert",
        string.and_then(|s| s.sslrootcert.as_ref()),
        "PGSSLROOTCERT",
        |c| c.sslrootcert.as_ref(),
    );
    let (cert, cert_source) = pick(
        &args.sslcert,
        "--sslcert",
        string.and_then(|s| s.sslcert.as_ref()),
        "PGSSLCERT",
        |c| c.sslcert.as_ref(),
    );
    let (key, key_source) = pick(
        &args.sslkey,
        "--sslkey",
        string.and_then(|s| s.sslkey.as_ref()),
        "PGSSLKEY",
        |c| c.sslkey.as_ref(),
    );
    // As libpq 16: sslrootcert=system with no sslmode given anywhere means verify-full
    // (a weaker mode given explicitly is refused by tls::prepare).
    let (parsed, mode_source) =
        if rootcert.as_deref() == Some("system") && mode_source == Source::Default {
            (crate::tls::SslMode::VerifyFull, Source::Default)
        } else {
            (parsed, mode_source)
        };
    let (password, password_source) = string
        .and_then(|s| s.sslpassword.clone())
        .map(|p| (p, string_source.clone()))
        .or_else(|| inputs.var("PGSSLPASSWORD"))
        .unzip();
    Ok((
        crate::tls::TlsSettings {
            mode: parsed,
            rootcert,
            cert,
            key,
            password,
        },
        TlsSources {
            mode: mode_source,
            rootcert: rootcert_source,
            cert: cert_source,
            key: key_source,
            password: password_source,
        },
    ))
}

/// Escape a value for the start-up `options` string: backslash before space and backslash.
fn escape_option(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == ' ' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command, DeployArgs};
    use clap::Parser;
    use std::collections::HashMap;

    fn args(extra: &[&str]) -> DeployArgs {
        let argv = ["pgmi-upload", "deploy", "."].iter().chain(extra).copied();
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Deploy(a) => a,
            _ => unreachable!("parsed a deploy command"),
        }
    }

    fn yaml(text: &str) -> Config {
        config::parse(PathBuf::from("pgmi.yaml"), text).unwrap()
    }

    fn resolve_full(
        extra: &[&str],
        vars: &[(&str, &str)],
        yaml: Option<&Config>,
    ) -> Result<ConnInfo, Failure> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = move |k: &str| map.get(k).cloned();
        let (info, _) = resolve_with(
            &args(extra).conn,
            &Inputs {
                env: &env,
                from_dotenv: &|_| false,
                yaml,
                socket_exists: &|_| false,
            },
        )?;
        Ok(info)
    }

    fn resolve_args(extra: &[&str], vars: &[(&str, &str)]) -> Result<ConnInfo, Failure> {
        resolve_full(extra, vars, None)
    }

    #[test]
    fn system_roots_default_to_verify_full() {
        let mode =
            |extra: &[&str], vars: &[(&str, &str)]| resolve_args(extra, vars).unwrap().tls.mode;
        let base = [("USER", "u"), ("PGDATABASE", "d")];
        assert_eq!(
            mode(&["--sslrootcert", "system"], &base),
            crate::tls::SslMode::VerifyFull
        );
        let env = [
            ("USER", "u"),
            ("PGDATABASE", "d"),
            ("PGSSLROOTCERT", "system"),
        ];
        assert_eq!(mode(&[], &env), crate::tls::SslMode::VerifyFull);
        // A mode given explicitly stays (tls::prepare refuses the weak ones).
        assert_eq!(
            mode(&["--sslrootcert", "system", "--sslmode", "require"], &base),
            crate::tls::SslMode::Require
        );
        assert_eq!(mode(&[], &base), crate::tls::SslMode::Prefer);
    }

    #[test]
    fn granular_precedence_flag_over_env_over_default() {
        let info = resolve_args(
            &["-h", "flaghost", "-d", "app"],
            &[
                ("PGHOST", "envhost"),
                ("PGPORT", "6000"),
                ("PGUSER", "u"),
                ("PGPASSWORD", "pw"),
            ],
        )
        .unwrap();
        assert_eq!(info.host, "flaghost");
        assert_eq!(info.sources.host, Source::Flag("--host"));
        assert_eq!(info.port, 6000);
        assert_eq!(
            info.sources.port,
            Source::Env {
                var: "PGPORT",
                dotenv: false
            }
        );
        assert_eq!(info.user, "u");
        assert_eq!(info.password.as_deref(), Some("pw"));
        assert_eq!(info.target_db, "app");
        assert_eq!(info.maintenance_db, "postgres");
        assert_eq!(info.application_name, "pgmi");
        let line = info.describe();
        assert!(!line.contains("pw "), "{line}");
        assert!(line.contains("password: set (from PGPASSWORD)"), "{line}");
        assert!(line.contains("host=flaghost (--host)"), "{line}");
        assert!(!format!("{info:?}").contains("=pw"));
    }

    #[test]
    fn yaml_is_below_flags_and_environment() {
        let y = yaml("connection:\n  host: yhost\n  port: 7000\n  username: yuser\n  database: ydb\n  maintenance_database: admin\n  sslmode: require\n  sslrootcert: y-ca.pem\n");
        let info = resolve_full(&[], &[("USER", "os")], Some(&y)).unwrap();
        assert_eq!(
            (info.host.as_str(), info.port, info.user.as_str()),
            ("yhost", 7000, "yuser")
        );
        assert_eq!(
            (info.target_db.as_str(), info.maintenance_db.as_str()),
            ("ydb", "admin")
        );
        assert_eq!(info.tls.mode.as_str(), "require");
        assert_eq!(info.tls.rootcert.as_deref(), Some("y-ca.pem"));
        assert_eq!(info.sources.host, Source::Yaml);
        assert_eq!(info.sources.maintenance_db, Source::Yaml);

        let info = resolve_full(
            &["-h", "fhost", "--sslmode", "disable"],
            &[
                ("PGPORT", "6000"),
                ("PGUSER", "euser"),
                ("PGDATABASE", "edb"),
                ("PGSSLROOTCERT", "e-ca.pem"),
            ],
            Some(&y),
        )
        .unwrap();
        assert_eq!(
            (info.host.as_str(), info.port, info.user.as_str()),
            ("fhost", 6000, "euser")
        );
        assert_eq!(info.target_db, "edb");
        assert_eq!(info.tls.mode.as_str(), "disable");
        assert_eq!(info.tls.rootcert.as_deref(), Some("e-ca.pem"));
    }

    #[test]
    fn connection_string_ignores_yaml_except_cert_paths() {
        let y = yaml("connection:\n  host: yhost\n  port: 7000\n  username: yuser\n  database: ydb\n  maintenance_database: admin\n  sslmode: require\n  sslcert: y.crt\n  sslkey: y.key\n");
        let info = resolve_full(
            &["--connection", "postgresql://h/app"],
            &[("USER", "os")],
            Some(&y),
        )
        .unwrap();
        assert_eq!((info.host.as_str(), info.port), ("h", 5432));
        assert_eq!(info.user, "os");
        assert_eq!(
            (info.target_db.as_str(), info.maintenance_db.as_str()),
            ("app", "postgres")
        );
        assert_eq!(info.tls.mode.as_str(), "prefer");
        assert_eq!(info.tls.cert.as_deref(), Some("y.crt"));
        assert_eq!(info.sources.sslcert, Some(Source::Yaml));
        assert_eq!(
            info.sources.host,
            Source::ConnectionString {
                origin: "--connection",
                format: Format::Uri
            }
        );
    }

    #[test]
    fn missing_database_is_a_config_error() {
        let err = resolve_args(&[], &[("USER", "me")]).unwrap_err();
        assert_eq!(err.exit, crate::exit::Exit::InvalidConfig);
        assert!(err.message.contains("database name is required"));
        assert!(err.hint.unwrap().contains("PGDATABASE"));
    }

    #[test]
    fn connection_string_excludes_granular_flags_even_from_env() {
        for string in ["postgres://h/db", "Host=h;Database=db", "host=h dbname=db"] {
            let err =
                resolve_args(&["-h", "x", "-d", "a"], &[("DATABASE_URL", string)]).unwrap_err();
            assert!(
                err.message.contains("cannot specify both"),
                "{}",
                err.message
            );
        }
        // Environment PGHOST does not conflict.
        let info = resolve_args(
            &[],
            &[
                ("PGHOST", "x"),
                ("PGMI_CONNECTION_STRING", "postgres://u@h/db"),
            ],
        )
        .unwrap();
        assert_eq!(info.host, "h");
        assert_eq!(info.target_db, "db");
    }

    #[test]
    fn ado_and_key_value_strings() {
        let info = resolve_args(
            &["--connection", "Server=db;Port=6432;Database=app;User Id=u;Password='p;w';SSL Mode=VerifyFull;Timeout=5"],
            &[],
        )
        .unwrap();
        assert_eq!((info.host.as_str(), info.port), ("db", 6432));
        assert_eq!((info.user.as_str(), info.target_db.as_str()), ("u", "app"));
        assert_eq!(info.password.as_deref(), Some("p;w"));
        assert_eq!(info.tls.mode.as_str(), "verify-full");
        assert_eq!(info.connect_timeout, Some(Duration::from_secs(5)));
        assert!(info
            .describe()
            .contains("ADO.NET connection string from --connection"));

        let info = resolve_args(
            &[],
            &[(
                "PGMI_CONNECTION_STRING",
                "host=db dbname=app user=u password='a b' application_name=ci",
            )],
        )
        .unwrap();
        assert_eq!(info.password.as_deref(), Some("a b"));
        assert_eq!(info.application_name, "ci");
        assert_eq!(
            info.sources.user,
            Source::ConnectionString {
                origin: "PGMI_CONNECTION_STRING",
                format: Format::KeyValue
            }
        );
        let err =
            resolve_args(&["--connection", "Host=h;Password=secretpw;Bogus=1"], &[]).unwrap_err();
        assert!(err
            .message
            .contains("invalid connection string in --connection"));
        assert!(!err.message.contains("secretpw"));
    }

    #[test]
    fn uri_database_rules() {
        let info = resolve_args(&["--connection", "postgresql://u@h"], &[]).unwrap();
        assert_eq!(info.target_db, "postgres");
        let info = resolve_args(
            &["--connection", "postgresql://u@h/admin", "-d", "app"],
            &[],
        )
        .unwrap();
        assert_eq!(
            (info.target_db.as_str(), info.maintenance_db.as_str()),
            ("app", "admin")
        );
        let info = resolve_args(&["--connection", "postgresql://u@h/app"], &[]).unwrap();
        assert_eq!(
            (info.target_db.as_str(), info.maintenance_db.as_str()),
            ("app", "postgres")
        );
    }

    #[test]
    fn string_password_falls_back_to_pgpassword() {
        let info = resolve_args(
            &["--connection", "postgres://u@h/d"],
            &[("PGPASSWORD", "envpw")],
        )
        .unwrap();
        assert_eq!(info.password.as_deref(), Some("envpw"));
        let info = resolve_args(
            &["--connection", "postgres://u:uripw@h/d"],
            &[("PGPASSWORD", "envpw")],
        )
        .unwrap();
        assert_eq!(info.password.as_deref(), Some("uripw"));
        // An empty password is no password (libpq), so PGPASSWORD applies.
        let info = resolve_args(
            &["--connection", "postgres://u:@h/d"],
            &[("PGPASSWORD", "envpw")],
        )
        .unwrap();
        assert_eq!(info.password.as_deref(), Some("envpw"));
    }

    #[test]
    fn bad_values_are_config_errors_naming_the_source() {
        assert!(resolve_args(&["-d", "a", "-p", "0"], &[("USER", "u")]).is_err());
        let err = resolve_args(&["-d", "a"], &[("USER", "u"), ("PGPORT", "x")]).unwrap_err();
        assert!(err.message.starts_with("PGPORT: "), "{}", err.message);
        assert!(resolve_args(&["-d", "a"], &[("USER", "u"), ("PGCONNECT_TIMEOUT", "-3")]).is_err());
        let info =
            resolve_args(&["-d", "a"], &[("USER", "u"), ("PGCONNECT_TIMEOUT", "4")]).unwrap();
        assert_eq!(info.connect_timeout, Some(Duration::from_secs(4)));
        let err = resolve_args(&["-d", "a"], &[("USER", "u"), ("PGSSLMODE", "on")]).unwrap_err();
        assert!(err.message.contains("(from PGSSLMODE)"), "{}", err.message);
    }

    #[test]
    fn default_host_prefers_the_debian_socket() {
        assert_eq!(
            default_host(5432, &|p| p
                == Path::new("/var/run/postgresql/.s.PGSQL.5432")),
            "/var/run/postgresql"
        );
        assert_eq!(
            default_host(5433, &|p| p
                == Path::new("/var/run/postgresql/.s.PGSQL.5432")),
            "localhost"
        );
    }

    #[test]
    fn runtime_params_go_into_options() {
        let info = resolve_args(
            &["--connection", "postgres://h/d?search_path=a%20b"],
            &[("USER", "u")],
        )
        .unwrap();
        assert_eq!(info.options.as_deref(), Some("-c search_path=a\\ b"));
    }

    #[cfg(unix)]
    fn private_file(dir: &Path, name: &str, text: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path.to_str().unwrap().to_string()
    }

    #[cfg(unix)]
    #[test]
    fn pgpass_per_database_and_only_without_a_password() {
        let dir = tempfile::tempdir().unwrap();
        let file = private_file(
            dir.path(),
            "pgpass",
            "db:5432:postgres:u:adminpw\ndb:5432:*:u:apppw\n",
        );
        let info = resolve_args(
            &["-h", "db", "-U", "u", "-d", "app"],
            &[("PGPASSFILE", &file)],
        )
        .unwrap();
        assert_eq!(info.password, None);
        assert_eq!(info.password_for("app").as_deref(), Some("apppw"));
        assert_eq!(info.password_for("postgres").as_deref(), Some("adminpw"));
        assert_eq!(
            info.password_source("app"),
            Some(Source::PgPass {
                path: PathBuf::from(&file),
                line: 2
            })
        );
        let line = info.describe();
        assert!(line.contains("password: set (from password file"), "{line}");
        assert!(!line.contains("apppw") && !format!("{info:?}").contains("apppw"));

        // PGPASSWORD wins; the file is not even read.
        let info = resolve_args(
            &["-h", "db", "-U", "u", "-d", "app"],
            &[("PGPASSFILE", &file), ("PGPASSWORD", "envpw")],
        )
        .unwrap();
        assert_eq!(info.password_for("postgres").as_deref(), Some("envpw"));
        assert_eq!(info.passfile, None);

        // `passfile` in the string beats PGPASSFILE.
        let other = private_file(dir.path(), "other", "*:*:*:*:otherpw\n");
        let info = resolve_args(
            &[
                "--connection",
                &format!("host=db user=u dbname=app passfile={other}"),
            ],
            &[("PGPASSFILE", &file)],
        )
        .unwrap();
        assert_eq!(info.password_for("app").as_deref(), Some("otherpw"));
    }

    #[cfg(unix)]
    #[test]
    fn group_readable_pgpass_is_ignored_with_a_warning() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = private_file(dir.path(), "pgpass", "*:*:*:*:pw\n");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let env = |k: &str| match k {
            "PGPASSFILE" => Some(file.clone()),
            "USER" => Some("u".to_string()),
            _ => None,
        };
        let (info, warnings) = resolve_with(
            &args(&["-d", "app"]).conn,
            &Inputs {
                env: &env,
                from_dotenv: &|_| false,
                yaml: None,
                socket_exists: &|_| false,
            },
        )
        .unwrap();
        assert_eq!(info.password_for("app"), None);
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("group or world access"),
            "{}",
            warnings[0]
        );
    }

    #[test]
    fn fields_hide_secrets() {
        let info = resolve_args(
            &[
                "--connection",
                "postgres://u:secretpw@h/d?sslpassword=keypw&sslrootcert=ca.pem",
            ],
            &[],
        )
        .unwrap();
        let fields = info.fields();
        let password = fields.iter().find(|f| f.name == "password").unwrap();
        assert_eq!(password.value, "set");
        assert!(password.secret);
        let line = info.describe();
        assert!(line.contains("sslrootcert=ca.pem"), "{line}");
        assert!(line.contains("sslpassword: set"), "{line}");
        for text in [line, format!("{info:?}"), format!("{fields:?}")] {
            assert!(
                !text.contains("secretpw") && !text.contains("keypw"),
                "{text}"
            );
        }
    }
}
