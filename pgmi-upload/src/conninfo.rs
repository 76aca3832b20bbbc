//! Resolving where to connect (reference `pgmi-cli.md` §2.1–2.4, §2.7), offline.
//!
//! Two paths, as in the reference:
//! * **URI path**: a connection URI from `--connection`, else `PGMI_CONNECTION_STRING`,
//!   else `DATABASE_URL`. Host, port, database, sslmode, application name and connect
//!   timeout come from the URI; user and password fall back to `PGUSER`/`$USER` and
//!   `PGPASSWORD` like a driver would. `-h/-p/-U` together with a URI is an error (exit 10)
//!   even when the URI came from the environment; `-d` is allowed and names the target.
//! * **Granular path**: each field is `flag > PG* variable > default`.
//!
//! Deliberate difference: when no host is given anywhere, we use the Unix socket directory
//! `/var/run/postgresql` if `/var/run/postgresql/.s.PGSQL.<port>` exists (what libpq and
//! psql do on Debian and Ubuntu, where peer authentication over that socket is the default)
//! and `localhost` otherwise; the reference always uses `localhost`.
//!
//! `.pgpass` is not read yet (LATER in the parity checklist); `PGPASSWORD` is.

use std::path::Path;
use std::time::Duration;

use crate::cli::ConnectionArgs;
use crate::exit::Failure;
use crate::uri;

/// Debian's (and libpq's default there) Unix socket directory.
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";
const DEFAULT_PORT: u16 = 5432;
const MAINTENANCE_DB: &str = "postgres";
const DEFAULT_APPLICATION_NAME: &str = "pgmi";

/// Everything needed to open the session, resolved and validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    /// Host name, IP address, or (starting with `/`) a Unix socket directory.
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    /// The database deployed into.
    pub target_db: String,
    /// The database connected to only to `CREATE DATABASE` the target.
    pub maintenance_db: String,
    pub application_name: String,
    pub connect_timeout: Option<Duration>,
    /// Server start-up options (`-c key=value …`) from the URI.
    pub options: Option<String>,
    pub tls: crate::tls::TlsSettings,
}

impl ConnInfo {
    /// One line for `--verbose`; never contains the password.
    pub fn describe(&self) -> String {
        format!(
            "host={} port={} user={} database={} maintenance_database={} sslmode={} application_name={} password: {}",
            self.host,
            self.port,
            self.user,
            self.target_db,
            self.maintenance_db,
            self.tls.mode.as_str(),
            self.application_name,
            if self.password.is_some() { "set" } else { "unset" },
        )
    }
}

/// Read one environment variable; empty counts as unset (as in libpq).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

pub fn resolve(
    args: &ConnectionArgs,
    env: EnvLookup<'_>,
    socket_exists: &dyn Fn(&Path) -> bool,
) -> Result<ConnInfo, Failure> {
    let uri_source = args
        .connection
        .clone()
        .map(|c| ("--connection", c))
        .or_else(|| env("PGMI_CONNECTION_STRING").map(|c| ("PGMI_CONNECTION_STRING", c)))
        .or_else(|| env("DATABASE_URL").map(|c| ("DATABASE_URL", c)));

    let mut info = match uri_source {
        Some((origin, text)) => from_uri(args, origin, &text, env)?,
        None => from_parts(args, env)?,
    };
    if info.host.is_empty() {
        info.host = default_host(info.port, socket_exists);
    }
    if info.host.contains(',') {
        return Err(Failure::config(
            "several hosts given; pgmi-upload connects to exactly one",
        ));
    }
    Ok(info)
}

fn from_uri(
    args: &ConnectionArgs,
    origin: &str,
    text: &str,
    env: EnvLookup<'_>,
) -> Result<ConnInfo, Failure> {
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
            "put host, port and user into the connection URI, or unset the connection string and use -h/-p/-U",
        ));
    }
    if !uri::is_uri(text) {
        return Err(Failure::config(format!(
            "unrecognized connection string format in {origin}: expected a URI starting with postgresql:// or postgres://"
        )));
    }
    let parts = uri::parse(text)
        .map_err(|e| Failure::config(format!("invalid connection string in {origin}: {e}")))?;

    let uri_db = parts
        .dbname
        .clone()
        .unwrap_or_else(|| MAINTENANCE_DB.to_string());
    let target_db = args.database.clone().unwrap_or_else(|| uri_db.clone());
    // The URI's database is the maintenance database only when -d names another target.
    let maintenance_db = if args.database.is_some() && uri_db != target_db {
        uri_db
    } else {
        MAINTENANCE_DB.to_string()
    };
    let connect_timeout = match parts.connect_timeout {
        Some(secs) => Some(secs),
        None => env_connect_timeout(env)?,
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
    Ok(ConnInfo {
        host: parts.host.clone().unwrap_or_default(),
        port: parts.port.unwrap_or(DEFAULT_PORT),
        user: match parts.user.clone().or_else(|| env("PGUSER")) {
            Some(user) => user,
            None => default_user(env)?,
        },
        password: parts.password.clone().or_else(|| env("PGPASSWORD")),
        target_db,
        maintenance_db,
        // The reference ignores PGAPPNAME on this path: the URI decides, else `pgmi`.
        application_name: parts
            .application_name
            .clone()
            .unwrap_or_else(|| DEFAULT_APPLICATION_NAME.to_string()),
        connect_timeout: connect_timeout.filter(|s| *s > 0).map(Duration::from_secs),
        options,
        tls: tls_settings(
            &parts
                .sslmode
                .clone()
                .or_else(|| env("PGSSLMODE"))
                .unwrap_or_else(|| "prefer".to_string()),
            args,
            Some(&parts),
            env,
        )?,
    })
}

fn from_parts(args: &ConnectionArgs, env: EnvLookup<'_>) -> Result<ConnInfo, Failure> {
    let port = match (&args.port, env("PGPORT")) {
        (Some(flag), _) => {
            uri::parse_port(flag).map_err(|e| Failure::config(format!("--port: {e}")))?
        }
        (None, Some(var)) => {
            uri::parse_port(&var).map_err(|e| Failure::config(format!("PGPORT: {e}")))?
        }
        (None, None) => DEFAULT_PORT,
    };
    let target_db = args.database.clone().or_else(|| env("PGDATABASE")).ok_or_else(|| {
        Failure::config("database name is required").with_hint(
            "pass -d <name>, set PGDATABASE, or give a connection URI that names the database (--connection, PGMI_CONNECTION_STRING or DATABASE_URL)",
        )
    })?;
    Ok(ConnInfo {
        host: args
            .host
            .clone()
            .or_else(|| env("PGHOST"))
            .unwrap_or_default(),
        port,
        user: match args.username.clone().or_else(|| env("PGUSER")) {
            Some(user) => user,
            None => default_user(env)?,
        },
        password: env("PGPASSWORD"),
        target_db,
        maintenance_db: MAINTENANCE_DB.to_string(),
        application_name: env("PGAPPNAME").unwrap_or_else(|| DEFAULT_APPLICATION_NAME.to_string()),
        connect_timeout: env_connect_timeout(env)?
            .filter(|s| *s > 0)
            .map(Duration::from_secs),
        options: None,
        tls: tls_settings(
            &args
                .sslmode
                .clone()
                .or_else(|| env("PGSSLMODE"))
                .unwrap_or_else(|| "prefer".to_string()),
            args,
            None,
            env,
        )?,
    })
}

fn env_connect_timeout(env: EnvLookup<'_>) -> Result<Option<u64>, Failure> {
    env("PGCONNECT_TIMEOUT")
        .map(|v| {
            uri::parse_connect_timeout(&v)
                .map_err(|e| Failure::config(format!("PGCONNECT_TIMEOUT: {e}")))
        })
        .transpose()
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
fn default_user(env: EnvLookup<'_>) -> Result<String, Failure> {
    env("USER")
        .or_else(|| env("USERNAME"))
        .or_else(passwd_user_name)
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

/// The mode as resolved by the caller; each file setting is flag > connection string >
/// `PGSSL*` variable (the string beats the environment, as in libpq, so a stale
/// `PGSSLROOTCERT` cannot swap the trust anchor of a `verify-full` string); the key's
/// passphrase is string > `PGSSLPASSWORD`.
fn tls_settings(
    mode: &str,
    args: &ConnectionArgs,
    string: Option<&uri::UriParts>,
    env: EnvLookup<'_>,
) -> Result<crate::tls::TlsSettings, Failure> {
    let mode = crate::tls::SslMode::parse(mode).ok_or_else(|| {
        Failure::config(format!(
            "invalid sslmode {mode:?}: expected one of {}",
            crate::tls::SslMode::NAMES.join(", ")
        ))
    })?;
    let pick = |flag: &Option<String>, from_string: Option<&String>, var: &str| {
        flag.clone()
            .or_else(|| from_string.cloned())
            .or_else(|| env(var))
    };
    Ok(crate::tls::TlsSettings {
        mode,
        rootcert: pick(
            &args.sslrootcert,
            string.and_then(|s| s.sslrootcert.as_ref()),
            "PGSSLROOTCERT",
        ),
        cert: pick(
            &args.sslcert,
            string.and_then(|s| s.sslcert.as_ref()),
            "PGSSLCERT",
        ),
        key: pick(
            &args.sslkey,
            string.and_then(|s| s.sslkey.as_ref()),
            "PGSSLKEY",
        ),
        password: string
            .and_then(|s| s.sslpassword.clone())
            .or_else(|| env("PGSSLPASSWORD")),
    })
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

    fn resolve_with(extra: &[&str], vars: &[(&str, &str)]) -> Result<ConnInfo, Failure> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = move |k: &str| map.get(k).cloned();
        resolve(&args(extra).conn, &env, &|_| false)
    }

    #[test]
    fn granular_precedence_flag_over_env_over_default() {
        let info = resolve_with(
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
        assert_eq!(info.port, 6000);
        assert_eq!(info.user, "u");
        assert_eq!(info.password.as_deref(), Some("pw"));
        assert_eq!(info.target_db, "app");
        assert_eq!(info.maintenance_db, "postgres");
        assert_eq!(info.application_name, "pgmi");
        assert!(!info.describe().contains("pw "));
    }

    #[test]
    fn missing_database_is_a_config_error() {
        let err = resolve_with(&[], &[("USER", "me")]).unwrap_err();
        assert_eq!(err.exit, crate::exit::Exit::InvalidConfig);
        assert!(err.message.contains("database name is required"));
        assert!(err.hint.unwrap().contains("PGDATABASE"));
    }

    #[test]
    fn connection_string_excludes_granular_flags_even_from_env() {
        let err = resolve_with(
            &["-h", "x", "-d", "a"],
            &[("DATABASE_URL", "postgres://h/db")],
        )
        .unwrap_err();
        assert!(
            err.message.contains("cannot specify both"),
            "{}",
            err.message
        );
        // Environment PGHOST does not conflict.
        let info = resolve_with(
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
    fn uri_database_rules() {
        let info = resolve_with(&["--connection", "postgresql://u@h"], &[]).unwrap();
        assert_eq!(info.target_db, "postgres");
        let info = resolve_with(
            &["--connection", "postgresql://u@h/admin", "-d", "app"],
            &[],
        )
        .unwrap();
        assert_eq!(
            (info.target_db.as_str(), info.maintenance_db.as_str()),
            ("app", "admin")
        );
        let info = resolve_with(&["--connection", "postgresql://u@h/app"], &[]).unwrap();
        assert_eq!(
            (info.target_db.as_str(), info.maintenance_db.as_str()),
            ("app", "postgres")
        );
    }

    #[test]
    fn uri_password_falls_back_to_pgpassword() {
        let info = resolve_with(
            &["--connection", "postgres://u@h/d"],
            &[("PGPASSWORD", "envpw")],
        )
        .unwrap();
        assert_eq!(info.password.as_deref(), Some("envpw"));
        let info = resolve_with(
            &["--connection", "postgres://u:uripw@h/d"],
            &[("PGPASSWORD", "envpw")],
        )
        .unwrap();
        assert_eq!(info.password.as_deref(), Some("uripw"));
    }

    #[test]
    fn bad_ports_and_timeouts_are_config_errors() {
        assert!(resolve_with(&["-d", "a", "-p", "0"], &[("USER", "u")]).is_err());
        assert!(resolve_with(&["-d", "a"], &[("USER", "u"), ("PGPORT", "x")]).is_err());
        assert!(resolve_with(&["-d", "a"], &[("USER", "u"), ("PGCONNECT_TIMEOUT", "-3")]).is_err());
        let info =
            resolve_with(&["-d", "a"], &[("USER", "u"), ("PGCONNECT_TIMEOUT", "4")]).unwrap();
        assert_eq!(info.connect_timeout, Some(Duration::from_secs(4)));
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
        let info = resolve_with(
            &["--connection", "postgres://h/d?search_path=a%20b"],
            &[("USER", "u")],
        )
        .unwrap();
        assert_eq!(info.options.as_deref(), Some("-c search_path=a\\ b"));
    }
}
