//! `pgmi.yaml` (README, "Connecting"): the project's committed defaults, the lowest
//! precedence of every setting.
//!
//! Schema, decoded strictly (an unknown key or a value of the wrong type is an error, exit
//! 10, naming the key, the line and the column):
//!
//! ```yaml
//! connection:            # granular-path defaults; with a connection string only the
//!   host: localhost      #   sslcert/sslkey/sslrootcert keys apply
//!   port: 5432           # an integer 1-65535
//!   username: deployer
//!   database: app
//!   maintenance_database: postgres
//!   sslmode: prefer      # one of libpq's six modes
//!   sslcert: client.crt
//!   sslkey: client.key
//!   sslrootcert: ca.pem
//!   auth_method: password # or aws, azure, google: a cloud IAM token is the password
//!   azure_tenant_id: ...  # below --azure-tenant-id and AZURE_TENANT_ID
//!   azure_client_id: ...  # below --azure-client-id and AZURE_CLIENT_ID
//!   aws_region: ...       # below --aws-region, AWS_REGION and AWS_DEFAULT_REGION
//!   google_instance: ...  # project:region:instance, below --google-instance
//! params:                # deployment parameters, below --params-file and --param
//!   env: development
//! timeout: 3m            # used when --timeout is not given
//! lock_timeout: 5s       # used when --lock-timeout is not given; 0 turns it off
//! ```
//!
//! Decisions:
//! * Text fields and parameter values take any YAML scalar as its text (`database: 2024`,
//!   `debug: true`, `version: 1.10` give "2024", "true", "1.10"), as the original pgmi's decoder
//!   does for strings; an empty value (`env:`) is an empty string. Lists and maps are errors.
//! * A parameter key given twice is an error (YAML says keys are unique; a silent
//!   last-wins would hide a typo), and keys must already be valid parameter names here, so
//!   the error can point at the line.
//! * `sslmode`, `port`, `timeout` and `auth_method` are checked when the file is read, even
//!   when a flag or the environment overrides them, so a broken file never waits for the
//!   day it is used.
//! * `auth_method`: empty or `password` is password authentication; `aws`, `azure` and
//!   `google` turn on cloud IAM authentication (`cloud/`) unless a flag chose a provider;
//!   anything else exits 10 (the original pgmi takes any other value as `password`, which
//!   hides a typo such as `auth_method: asw`).
//! * An empty file (or one with only comments) is an empty configuration; no file is none.
//!
//! Errors quote what the YAML decoder saw for scalars of the wrong type; the file is meant to
//! be committed and holds no secrets (there is no password key), but parameter values are
//! never quoted.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::cli::ConnectionArgs;
use crate::conninfo::{self, ConnInfo, EnvLookup, Inputs};
use crate::exit::Failure;

pub const FILE_NAME: &str = "pgmi.yaml";

/// The decoded file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// Where it was read from.
    pub path: PathBuf,
    pub connection: Connection,
    /// In file order.
    pub params: Vec<(String, String)>,
    pub timeout: Option<Timeout>,
    /// `lock_timeout:` as written and as parsed (`None` inside: off).
    pub lock_timeout: Option<Timeout>,
}

/// `connection:`; every key optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    pub host: Option<String>,
    #[serde(default, deserialize_with = "port")]
    pub port: Option<u16>,
    pub username: Option<String>,
    pub database: Option<String>,
    pub maintenance_database: Option<String>,
    #[serde(default, deserialize_with = "sslmode")]
    pub sslmode: Option<String>,
    pub sslcert: Option<String>,
    pub sslkey: Option<String>,
    pub sslrootcert: Option<String>,
    #[serde(default, deserialize_with = "auth_method")]
    pub auth_method: Option<String>,
    pub azure_tenant_id: Option<String>,
    pub azure_client_id: Option<String>,
    pub aws_region: Option<String>,
    pub google_instance: Option<String>,
}

/// `timeout:` as written and as parsed (`None`: no deadline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeout {
    pub text: String,
    pub value: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PgmiYaml {
    connection: Option<Connection>,
    #[serde(default, deserialize_with = "params")]
    params: Vec<(String, String)>,
    #[serde(default, deserialize_with = "timeout")]
    timeout: Option<Timeout>,
    #[serde(default, deserialize_with = "lock_timeout")]
    lock_timeout: Option<Timeout>,
}

/// Read `<project>/pgmi.yaml`; `Ok(None)` when there is no such file.
pub fn load(project: &Path) -> Result<Option<Config>, Failure> {
    let path = project.join(FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        // A project path that is a file is reported by the project checks that follow.
        Err(e) if is_absent(&e) => return Ok(None),
        Err(e) => {
            return Err(Failure::config(format!(
                "could not read {}: {e}",
                path.display()
            )))
        }
    };
    let text = String::from_utf8(bytes).map_err(|e| {
        Failure::config(format!(
            "{} is not valid UTF-8 (first bad byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })?;
    parse(path, &text).map(Some)
}

/// No such file, or the project path is not a directory (which the project checks report).
pub fn is_absent(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}

/// Decode the file's text (pure).
pub fn parse(path: PathBuf, text: &str) -> Result<Config, Failure> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let file: Option<PgmiYaml> = yaml_serde::from_str(text).map_err(|e| yaml_failure(&path, &e))?;
    Ok(match file {
        None => Config {
            path,
            ..Config::default()
        },
        Some(file) => Config {
            path,
            connection: file.connection.unwrap_or_default(),
            params: file.params,
            timeout: file.timeout,
            lock_timeout: file.lock_timeout,
        },
    })
}

/// `<path> line L column C: <key path>: <what is wrong>`.
fn yaml_failure(path: &Path, err: &yaml_serde::Error) -> Failure {
    let mut message = err.to_string();
    let place = match err.location() {
        Some(loc) => {
            // The decoder appends " at line L column C"; we put the place first instead.
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            message = message.replacen(&suffix, "", 1);
            format!(
                "{} line {} column {}",
                path.display(),
                loc.line(),
                loc.column()
            )
        }
        None => path.display().to_string(),
    };
    let failure = Failure::config(format!("{place}: {message}"));
    if message.contains("unknown field") {
        return failure.with_hint(SCHEMA_HINT);
    }
    failure
}

const SCHEMA_HINT: &str = "pgmi.yaml takes connection.{host, port, username, database, maintenance_database, sslmode, sslcert, sslkey, sslrootcert, auth_method, azure_tenant_id, azure_client_id, aws_region, google_instance}, params (a map of names to values), timeout (such as 5m) and lock_timeout (such as 5s); passwords belong in PGPASSWORD, .pgpass or the connection string";

fn port<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    struct PortVisitor;
    const EXPECTED: &str = "a port number from 1 to 65535";
    impl<'de> Visitor<'de> for PortVisitor {
        type Value = Option<u16>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str(EXPECTED)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
            match u16::try_from(n) {
                Ok(p) if p > 0 => Ok(Some(p)),
                _ => Err(E::custom(format!("invalid port {n}: expected {EXPECTED}"))),
            }
        }
        fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
            match u64::try_from(n) {
                Ok(n) => self.visit_u64(n),
                Err(_) => Err(E::custom(format!("invalid port {n}: expected {EXPECTED}"))),
            }
        }
    }
    d.deserialize_any(PortVisitor)
}

/// A scalar's text checked (and converted) by `check` while the decoder still points at
/// it, so an error carries the key's full path and the value's line; null is `None`.
fn checked_text<'de, D, T, F>(d: D, check: F) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    F: Fn(&str) -> Result<Option<T>, String>,
{
    struct Outer<F>(F);
    struct Inner<F>(F);
    impl<'de, T, F: Fn(&str) -> Result<Option<T>, String>> Visitor<'de> for Outer<F> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_str(Inner(self.0))
        }
    }
    impl<'de, T, F: Fn(&str) -> Result<Option<T>, String>> Visitor<'de> for Inner<F> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            (self.0)(text).map_err(E::custom)
        }
    }
    d.deserialize_option(Outer(check))
}

fn sslmode<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked_text(d, |text| match crate::tls::SslMode::parse(text) {
        Some(mode) => Ok(Some(mode.as_str().to_string())),
        None => Err(format!(
            "invalid sslmode {text:?}: expected one of {}",
            crate::tls::SslMode::NAMES.join(", ")
        )),
    })
}

fn auth_method<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked_text(d, |text| {
        let text = text.trim();
        match text.to_ascii_lowercase().as_str() {
            "" => Ok(None),
            "password" => Ok(Some("password".to_string())),
            method @ ("azure" | "aws" | "google") => Ok(Some(method.to_string())),
            _ => Err(format!(
                "unknown auth_method {text:?}: expected password, aws, azure or google"
            )),
        }
    })
}

fn timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timeout>, D::Error> {
    checked_text(d, |text| {
        let text = text.trim();
        match crate::duration::parse_timeout(text) {
            Ok(value) => Ok(Some(Timeout {
                text: text.to_string(),
                value,
            })),
            Err(_) => Err(format!(
                "invalid timeout {text:?}: expected a duration such as 30s, 5m or 1h30m (0 disables the deadline; negative values are not allowed)"
            )),
        }
    })
}

fn lock_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timeout>, D::Error> {
    checked_text(d, |text| {
        let text = text.trim();
        crate::locks::parse_lock_timeout(text).map(|value| {
            Some(Timeout {
                text: text.to_string(),
                value,
            })
        })
    })
}

fn params<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    struct ParamsVisitor;
    impl<'de> Visitor<'de> for ParamsVisitor {
        type Value = Vec<(String, String)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map of parameter names to values")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut pairs: Vec<(String, String)> = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                if let Err(e) = pgmi_core::params::validate_key(&key) {
                    return Err(de::Error::custom(e.to_string()));
                }
                if pairs.iter().any(|(k, _)| *k == key) {
                    return Err(de::Error::custom(format!(
                        "parameter '{key}' is given twice"
                    )));
                }
                let value = map.next_value::<Option<String>>()?.unwrap_or_default();
                pairs.push((key, value));
            }
            Ok(pairs)
        }
    }
    d.deserialize_any(ParamsVisitor)
}

/// A project's configuration and connection, resolved as a deploy resolves them (for
/// `info`).
#[derive(Debug, Clone)]
pub struct Resolved {
    pub info: ConnInfo,
    /// Warnings to print as `pgmi: warning: <text>` (a malformed `.env`, a password file
    /// with loose permissions).
    pub warnings: Vec<String>,
}

/// Resolve a project's connection offline, as `deploy` would: the project's `.env` fills
/// variables missing from `env` (without touching the process environment), `pgmi.yaml`
/// supplies the lowest-precedence defaults. Errors are configuration errors (exit 10).
/// Each field's origin is in `info.sources` ([`ConnInfo::fields`] lists them all).
pub fn resolve_project(
    conn: &ConnectionArgs,
    project: &Path,
    env: EnvLookup<'_>,
    socket_exists: &dyn Fn(&Path) -> bool,
) -> Result<Resolved, Failure> {
    let dotenv = crate::dotenv::read(project);
    let yaml = load(project)?;
    let overlay = |name: &str| {
        env(name).or_else(|| {
            dotenv
                .get(name)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        })
    };
    let from_dotenv = |name: &str| env(name).is_none() && dotenv.get(name).is_some();
    let (info, pgpass_warnings) = conninfo::resolve_with(
        conn,
        &Inputs {
            env: &overlay,
            from_dotenv: &from_dotenv,
            yaml: yaml.as_ref(),
            socket_exists,
        },
    )?;
    Ok(Resolved {
        info,
        warnings: dotenv
            .warning
            .clone()
            .into_iter()
            .chain(pgpass_warnings)
            .collect(),
    })
}

/// The project files a deploy reads before anything else.
#[derive(Debug, Default)]
pub struct ProjectFiles {
    pub yaml: Option<Config>,
    /// The variables `.env` set in the process environment.
    pub dotenv_applied: Vec<String>,
}

impl ProjectFiles {
    /// Load `<project>/.env` into the process environment (a warning on stderr when it is
    /// malformed), then read `<project>/pgmi.yaml`. Call before other threads start.
    pub fn load(project: &Path) -> Result<ProjectFiles, Failure> {
        let dotenv = crate::dotenv::read(project);
        if let Some(warning) = &dotenv.warning {
            eprintln!("pgmi: warning: {warning}");
        }
        let dotenv_applied = dotenv.apply_to_process();
        Ok(ProjectFiles {
            yaml: load(project)?,
            dotenv_applied,
        })
    }

    pub fn timeout(&self) -> Option<&Timeout> {
        self.yaml.as_ref().and_then(|c| c.timeout.as_ref())
    }

    pub fn lock_timeout(&self) -> Option<&Timeout> {
        self.yaml.as_ref().and_then(|c| c.lock_timeout.as_ref())
    }

    /// `pgmi.yaml`'s parameters (lowest precedence), in file order.
    pub fn params(&self) -> Vec<(String, String)> {
        self.yaml
            .as_ref()
            .map(|c| c.params.clone())
            .unwrap_or_default()
    }

    /// Resolve the connection from the flags, the process environment (with `.env`
    /// applied) and `pgmi.yaml`; password-file warnings go to stderr.
    pub fn resolve(&self, conn: &ConnectionArgs) -> Result<ConnInfo, Failure> {
        let from_dotenv = |name: &str| self.dotenv_applied.iter().any(|n| n == name);
        let (info, warnings) = conninfo::resolve_with(
            conn,
            &Inputs {
                env: &conninfo::process_env,
                from_dotenv: &from_dotenv,
                yaml: self.yaml.as_ref(),
                socket_exists: &|p| p.exists(),
            },
        )?;
        for warning in warnings {
            eprintln!("pgmi: warning: {warning}");
        }
        Ok(info)
    }
}

/// Where the deploy's deadline came from, for messages.
pub fn describe_timeout(flag: Option<&str>, yaml: Option<&Timeout>) -> String {
    match (flag, yaml) {
        (Some(text), _) => format!("--timeout {text}"),
        (None, Some(t)) => format!("timeout {} (pgmi.yaml)", t.text),
        (None, None) => format!("the default timeout of {DEFAULT_TIMEOUT}"),
    }
}

/// The deadline when neither `--timeout` nor pgmi.yaml sets one.
pub const DEFAULT_TIMEOUT: &str = "3m";

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Result<Config, Failure> {
        parse(PathBuf::from("proj/pgmi.yaml"), text)
    }

    fn err(text: &str) -> String {
        let failure = cfg(text).unwrap_err();
        assert_eq!(failure.exit, crate::exit::Exit::InvalidConfig);
        failure.message
    }

    #[test]
    fn full_schema() {
        let c = cfg("connection:\n  host: db.example.com\n  port: 6432\n  username: deployer\n  database: app\n  maintenance_database: admin\n  sslmode: Verify-Full\n  sslcert: c.crt\n  sslkey: c.key\n  sslrootcert: ca.pem\n  auth_method: password\n  azure_tenant_id: t\n  azure_client_id: c\n  aws_region: r\n  google_instance: p:r:i\nparams:\n  env: development\n  Retries: 3\n  debug: true\n  version: 1.10\n  empty:\ntimeout: 5m\n").unwrap();
        let conn = &c.connection;
        assert_eq!(conn.host.as_deref(), Some("db.example.com"));
        assert_eq!(conn.port, Some(6432));
        assert_eq!(conn.username.as_deref(), Some("deployer"));
        assert_eq!(conn.database.as_deref(), Some("app"));
        assert_eq!(conn.maintenance_database.as_deref(), Some("admin"));
        assert_eq!(conn.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(conn.sslrootcert.as_deref(), Some("ca.pem"));
        assert_eq!(conn.auth_method.as_deref(), Some("password"));
        let pairs: Vec<(&str, &str)> = c
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("env", "development"),
                ("Retries", "3"),
                ("debug", "true"),
                ("version", "1.10"),
                ("empty", "")
            ]
        );
        let t = c.timeout.unwrap();
        assert_eq!(t.text, "5m");
        assert_eq!(t.value, Some(Duration::from_secs(300)));
    }

    #[test]
    fn empty_files_and_empty_sections() {
        for text in ["", "# nothing\n", "\u{feff}", "connection:\nparams:\n"] {
            let c = cfg(text).unwrap();
            assert_eq!(c.connection, Connection::default());
            assert!(c.params.is_empty());
            assert_eq!(c.timeout, None);
        }
        assert_eq!(cfg("timeout: 0\n").unwrap().timeout.unwrap().value, None);
    }

    #[test]
    fn unknown_keys_name_key_and_line() {
        let m = err("connection:\n  host: h\n  passwrd: x\n");
        assert!(m.starts_with("proj/pgmi.yaml line 3 column 3: "), "{m}");
        assert!(m.contains("connection: unknown field `passwrd`"), "{m}");
        assert!(!m.contains(" at line"), "{m}");
        let m = err("timeout: 5m\nconection:\n  host: h\n");
        assert!(m.contains("line 2 column 1"), "{m}");
        assert!(m.contains("`conection`"), "{m}");
    }

    #[test]
    fn wrong_types_name_key_and_line() {
        let m = err("connection:\n  host: h\n  port: abc\n");
        assert!(m.contains("line 3 column 9"), "{m}");
        assert!(m.contains("connection.port"), "{m}");
        let m = err("connection:\n  port: 70000\n");
        assert!(m.contains("connection.port: invalid port 70000"), "{m}");
        let m = err("connection:\n  port: '5432'\n");
        assert!(m.contains("connection.port"), "{m}");
        let m = err("connection:\n  host: [a, b]\n");
        assert!(m.contains("line 2") && m.contains("connection.host"), "{m}");
        let m = err("connection: 5\n");
        assert!(m.contains("line 1") && m.contains("connection"), "{m}");
        let m = err("params:\n  - a\n");
        assert!(m.contains("params"), "{m}");
        let m = err("params:\n  token: [secretpw]\n");
        assert!(m.contains("params.token") && !m.contains("secretpw"), "{m}");
    }

    #[test]
    fn validated_values() {
        let m = err("timeout: 30\n");
        assert!(m.contains("line 1") && m.contains("invalid timeout"), "{m}");
        assert!(err("timeout: -5s\n").contains("invalid timeout"));
        let m = err("connection:\n  sslmode: required\n");
        assert!(m.contains("connection.sslmode: invalid sslmode"), "{m}");
        let m = err("params:\n  a: 1\n  a: 2\n");
        assert!(m.contains("'a' is given twice"), "{m}");
        let m = err("params:\n  my-key: 1\n");
        assert!(m.contains("invalid parameter key 'my-key'"), "{m}");
    }

    #[test]
    fn lock_timeout_is_a_checked_duration() {
        let c = cfg("lock_timeout: 5s\n").unwrap();
        let t = c.lock_timeout.unwrap();
        assert_eq!(
            (t.text.as_str(), t.value),
            ("5s", Some(Duration::from_secs(5)))
        );
        assert_eq!(
            cfg("lock_timeout: 0\n")
                .unwrap()
                .lock_timeout
                .unwrap()
                .value,
            None
        );
        assert_eq!(cfg("timeout: 1m\n").unwrap().lock_timeout, None);
        let m = err("params:\n  a: 1\nlock_timeout: soon\n");
        assert!(
            m.contains("line 3") && m.contains("invalid lock timeout"),
            "{m}"
        );
        let m = err("lock_timeout: [1s]\n");
        assert!(m.contains("lock_timeout"), "{m}");
    }

    #[test]
    fn auth_methods() {
        for (text, ok) in [("password", true), ("PASSWORD", true), ("''", true)] {
            let c = cfg(&format!("connection:\n  auth_method: {text}\n"));
            assert_eq!(c.is_ok(), ok, "{text}");
        }
        for cloud in ["azure", "aws", "Google"] {
            let c = cfg(&format!("connection:\n  auth_method: {cloud}\n")).unwrap();
            assert_eq!(c.connection.auth_method, Some(cloud.to_ascii_lowercase()));
        }
        let m = err("connection:\n  auth_method: asw\n");
        assert!(
            m.contains("line 2") && m.contains("aws, azure or google"),
            "{m}"
        );
        assert!(err("connection:\n  auth_method: kerberos\n").contains("unknown auth_method"));
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let m = err("connection:\n\thost: x\n");
        assert!(m.contains("line 2"), "{m}");
    }

    #[test]
    fn timeout_origin() {
        let yaml = Timeout {
            text: "5m".into(),
            value: Some(Duration::from_secs(300)),
        };
        assert_eq!(
            describe_timeout(None, Some(&yaml)),
            "timeout 5m (pgmi.yaml)"
        );
        assert_eq!(describe_timeout(Some("1s"), Some(&yaml)), "--timeout 1s");
        assert_eq!(describe_timeout(None, None), "the default timeout of 3m");
    }

    #[test]
    fn resolve_project_layers_env_dotenv_and_yaml() {
        use crate::conninfo::Source;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".env"),
            "PGDATABASE=fromdotenv\nPGHOST=ignored\nPGPASSWORD=dotenvpw\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join(FILE_NAME),
            "connection:\n  host: yamlhost\n  port: 6543\n  maintenance_database: admin\nparams:\n  env: dev\ntimeout: 90s\n",
        )
        .unwrap();
        let env = |k: &str| match k {
            "PGHOST" => Some("envhost".to_string()),
            "USER" => Some("me".to_string()),
            _ => None,
        };
        let args = ConnectionArgs::default();
        let r = resolve_project(&args, dir.path(), &env, &|_| false).unwrap();
        let info = &r.info;
        assert_eq!(info.host, "envhost");
        assert_eq!(
            info.sources.host,
            Source::Env {
                var: "PGHOST",
                dotenv: false
            }
        );
        assert_eq!((info.port, &info.sources.port), (6543, &Source::Yaml));
        assert_eq!(info.target_db, "fromdotenv");
        assert_eq!(
            info.sources.target_db,
            Source::Env {
                var: "PGDATABASE",
                dotenv: true
            }
        );
        assert_eq!(info.maintenance_db, "admin");
        assert_eq!(info.password_for("x").as_deref(), Some("dotenvpw"));
        assert!(info
            .describe()
            .contains("password: set (from PGPASSWORD from .env)"));
        assert!(r.warnings.is_empty());
        // The process environment was not touched.
        assert!(std::env::var_os("PGPASSWORD").is_none_or(|v| v != "dotenvpw"));

        std::fs::write(dir.path().join(".env"), "PGDATABASE fromdotenv\n").unwrap();
        let err = resolve_project(&args, dir.path(), &env, &|_| false).unwrap_err();
        assert!(err.message.contains("database name is required"));
        std::fs::write(dir.path().join(".env"), "PGDATABASE fromdotenv\nX=1\n").unwrap();
        let r = resolve_project(
            &ConnectionArgs {
                database: Some("d".into()),
                ..ConnectionArgs::default()
            },
            dir.path(),
            &env,
            &|_| false,
        )
        .unwrap();
        assert_eq!(r.warnings.len(), 1);
        assert!(r.warnings[0].contains(".env line 1"), "{}", r.warnings[0]);
    }

    #[test]
    fn load_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);
        std::fs::write(dir.path().join(FILE_NAME), "params:\n  env: dev\n").unwrap();
        let c = load(dir.path()).unwrap().unwrap();
        assert_eq!(c.params, [("env".to_string(), "dev".to_string())]);
        std::fs::write(dir.path().join(FILE_NAME), b"params:\n  env: \xff\n").unwrap();
        assert!(load(dir.path()).is_err());
    }
}
