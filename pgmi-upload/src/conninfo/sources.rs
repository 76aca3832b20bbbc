//! Where each setting came from, kept next to the value for `--verbose` and `info`: a
//! flag, the connection string (and where the string came from), an environment variable
//! (possibly set by the project's `.env`), `pgmi.yaml`, a default, the operating-system
//! user, or a line of the password file.

use std::fmt;
use std::path::PathBuf;

use crate::config;
use crate::connstr::Format;

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
    /// Chosen because cloud IAM authentication is on (`sslmode` becomes `require`).
    Cloud,
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
            Source::Cloud => f.write_str("cloud IAM authentication"),
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
    /// ([`super::ConnInfo::password_source`]).
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
