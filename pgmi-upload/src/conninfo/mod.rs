//! Resolving where to connect (README, "Connecting"), offline, and
//! remembering where each setting came from (for `--verbose` and `info`).
//!
//! Sources, strongest first: flags; the environment (which the project's `.env` may have
//! filled); `pgmi.yaml`; defaults. Two paths, as in the original pgmi:
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
//! and `localhost` otherwise; the original pgmi always uses `localhost`.
//!
//! Secrets (the password, the key passphrase) never appear in `Debug` output,
//! [`ConnInfo::describe`] or [`ConnInfo::fields`]: those say "set" and where from.
//!
//! Where things are: this file holds [`ConnInfo`] with its password look-up and its
//! description ([`ConnInfo::describe`], [`ConnInfo::fields`]), the [`Inputs`] resolution
//! reads, [`resolve_with`] (choosing the path, the default host, the password file) and the
//! fallbacks both paths share (user name, connect timeout); `sources.rs` the [`Source`] of
//! each field; `string.rs` the connection-string path; `granular.rs` the granular path;
//! `tls_settings.rs` the TLS settings, resolved the same way on both paths.

mod granular;
mod sources;
mod string;
mod tls_settings;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::ConnectionArgs;
use crate::config::{self, Config};
use crate::exit::Failure;
use crate::pgpass::{self, PassFile};
use crate::uri;

pub use sources::{Source, Sources};

use granular::from_parts;
use string::from_string;

/// Debian's (and libpq's default there) Unix socket directory.
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";
const DEFAULT_PORT: u16 = 5432;
const MAINTENANCE_DB: &str = "postgres";
const DEFAULT_APPLICATION_NAME: &str = "pgmi";

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
    /// Cloud IAM authentication: a token fetched per connection is the password.
    pub cloud: Option<crate::cloud::CloudAuth>,
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
            .map(|found| {
                crate::redact::register_secret(&found.password);
                found.password
            })
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
        let password = match &self.cloud {
            Some(cloud) => Field {
                name: "password",
                value: format!("{} token, fetched per connection", cloud.provider.name()),
                source: Some(cloud.enabled_by.clone()),
                secret: true,
            },
            None => secret("password", self.password_source(&self.target_db)),
        };
        let mut fields = vec![
            plain("host", self.host.clone(), &s.host),
            plain("port", self.port.to_string(), &s.port),
            plain("user", self.user.clone(), &s.user),
            password,
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
        ];
        if let Some(cloud) = &self.cloud {
            fields.extend(cloud.fields());
        }
        fields
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
                (Some(source), true) if self.cloud.is_some() && f.name == "password" => {
                    format!("{}: {} ({source})", f.name, f.value)
                }
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
    let (cloud, mut warnings) = crate::cloud::resolve(args, inputs, &info.sources.user)?;
    if cloud.is_some() {
        // Every cloud needs TLS for its tokens; libpq's `prefer` would fall back to clear
        // text, so an sslmode nobody chose becomes `require`.
        if info.sources.sslmode == Source::Default {
            info.tls.mode = crate::tls::SslMode::Require;
            info.sources.sslmode = Source::Cloud;
        }
        if info.password.is_some() {
            warnings.push(format!(
                "the password from {} is not used: cloud IAM authentication uses a token",
                info.sources.password.clone().unwrap_or(Source::Default)
            ));
        }
        info.cloud = cloud;
        return Ok((info, warnings));
    }
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

#[cfg(test)]
mod cloud_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command, DeployArgs};
    use clap::Parser;
    use std::collections::HashMap;

    pub(super) fn args(extra: &[&str]) -> DeployArgs {
        let argv = ["pgmi-upload", "deploy", "."].iter().chain(extra).copied();
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Deploy(a) => a,
            _ => unreachable!("parsed a deploy command"),
        }
    }

    pub(super) fn yaml(text: &str) -> Config {
        config::parse(PathBuf::from("pgmi.yaml"), text).unwrap()
    }

    pub(super) fn resolve_full(
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

    pub(super) fn resolve_args(extra: &[&str], vars: &[(&str, &str)]) -> Result<ConnInfo, Failure> {
        resolve_full(extra, vars, None)
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
