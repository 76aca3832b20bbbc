//! Command-line surface (reference `pgmi-cli.md` §1.1, §1.2).
//!
//! `-h` is `--host`, as in psql and the reference CLI; help is `--help` only. Values that
//! the reference rejects with exit 10 (port, timeout, parameters) are taken as strings here
//! and validated by the deploy, so clap's own exit 2 stays reserved for usage errors.
//! Environment variables are read by `conninfo.rs`, not by clap, because a flag and the
//! same value from the environment are treated differently (`--connection` conflicts with
//! `-h` but not with `PGHOST`).

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

const DEPLOY_AFTER_HELP: &str = "\
Environment:
  PGHOST, PGPORT, PGUSER, PGDATABASE    defaults for -h, -p, -U, -d
  PGPASSWORD                            the password (there is no password flag)
  PGAPPNAME                             application_name (default: pgmi)
  PGCONNECT_TIMEOUT                     seconds to wait for each connection attempt
  PGSSLMODE                             disable | allow | prefer (TLS is not supported yet)
  PGMI_CONNECTION_STRING, DATABASE_URL  default for --connection, in that order
  PGMI_MAX_FILE_SIZE                    per-file size cap in bytes (default 10485760);
                                        also sets the server's pgmi_loader.max_file_size
  NO_COLOR                              plain `ok` / `FAILED` in the summary line

Exit codes: 0 ok, 1 other error, 2 usage, 10 invalid configuration (nothing touched),
11 connection failed, 13 deploy.sql failed, 14 deploy.sql not found, 15 concurrent deploy,
16 --timeout expired, 130 interrupted.";

#[derive(Debug, Parser)]
#[command(
    name = "pgmi-upload",
    version,
    about = "Deploy a pgmi project: load its files into the session and run its deploy.sql",
    disable_help_flag = true,
    disable_help_subcommand = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Print help
    #[arg(long, action = ArgAction::Help, global = true, display_order = 1000)]
    help: Option<bool>,
}

// One value per process: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load a project into a session on the target database and run its deploy.sql
    #[command(after_help = DEPLOY_AFTER_HELP, disable_help_flag = true)]
    Deploy(DeployArgs),
    /// Write one SQL script that deploys the project with psql alone:
    /// psql -X -v ON_ERROR_STOP=1 -d DB -f SCRIPT
    #[command(disable_help_flag = true)]
    Bundle(BundleArgs),
    /// Print the version
    Version,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Project directory (contains deploy.sql)
    #[arg(value_name = "PATH")]
    pub path: PathBuf,

    /// Server host name, or a Unix socket directory when it starts with `/`
    /// [env: PGHOST] [default: /var/run/postgresql if its socket exists, else localhost]
    #[arg(short = 'h', long, value_name = "HOST")]
    pub host: Option<String>,

    /// Server port [env: PGPORT] [default: 5432]
    #[arg(short = 'p', long, value_name = "PORT")]
    pub port: Option<String>,

    /// User name [env: PGUSER] [default: $USER]
    #[arg(short = 'U', long, value_name = "USER")]
    pub username: Option<String>,

    /// Target database; created when missing [env: PGDATABASE]
    #[arg(short = 'd', long, value_name = "DB")]
    pub database: Option<String>,

    /// Connection URI (postgresql://…); excludes -h, -p, -U
    /// [env: PGMI_CONNECTION_STRING, DATABASE_URL]
    #[arg(long, value_name = "URI")]
    pub connection: Option<String>,

    /// Parameter for deploy.sql, readable as current_setting('pgmi.<key>') (repeatable)
    #[arg(long = "param", value_name = "KEY=VALUE", allow_hyphen_values = true)]
    pub params: Vec<String>,

    /// File of KEY=VALUE lines; later files override earlier ones, --param overrides all
    /// (repeatable)
    #[arg(long = "params-file", value_name = "PATH")]
    pub params_files: Vec<PathBuf>,

    /// Deadline for the whole run: 30s, 5m, 1h30m; 0 disables
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "3m",
        allow_hyphen_values = true
    )]
    pub timeout: String,

    /// After the deploy, write the test results as junit=FILE (JUnit XML) or
    /// tap=FILE (TAP version 13); written even when the deploy fails (repeatable)
    #[arg(long = "test-report", value_name = "FORMAT=FILE")]
    pub test_reports: Vec<String>,

    /// How to build the session: `extension` (the pgmi extension loads the project in
    /// the server), `portable` (pgmi-upload builds it with plain SQL; needs only CONNECT and
    /// TEMPORARY), or `auto`: the extension when it is installed or this role can create it
    #[arg(long, value_enum, value_name = "KIND", default_value_t = SessionChoice::Auto)]
    pub session: SessionChoice,

    /// Print a JSON result on stdout instead of the summary line
    #[arg(long)]
    pub json: bool,

    /// Show progress details, debug notices and elapsed time on each notice
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct BundleArgs {
    /// Project directory (contains deploy.sql)
    #[arg(value_name = "PATH")]
    pub path: PathBuf,

    /// Parameter written into the script (repeatable); keys that look secret (password,
    /// secret, token, key, credential, auth, ...) are refused: use --param-var for them
    #[arg(long = "param", value_name = "KEY=VALUE", allow_hyphen_values = true)]
    pub params: Vec<String>,

    /// File of KEY=VALUE lines; later files override earlier ones, --param overrides all
    /// (repeatable)
    #[arg(long = "params-file", value_name = "PATH")]
    pub params_files: Vec<PathBuf>,

    /// Parameter KEY takes its value from psql variable VAR when the script runs
    /// (psql -v VAR=...), so the value is never written into the file (repeatable)
    #[arg(long = "param-var", value_name = "KEY=VAR")]
    pub param_vars: Vec<String>,

    /// Session the script builds: `portable` (plain SQL, any PostgreSQL 13+) or
    /// `extension` (hands the bundle to the installed pgmi extension)
    #[arg(long, value_enum, value_name = "KIND", default_value_t = BundleSession::Portable)]
    pub session: BundleSession,

    /// Write the script to FILE instead of standard output
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `bundle --session`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BundleSession {
    Extension,
    Portable,
}

/// `--session`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SessionChoice {
    Auto,
    Extension,
    Portable,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn repeatable_test_reports() {
        let cli = Cli::try_parse_from([
            "pgmi-upload",
            "deploy",
            ".",
            "--test-report",
            "junit=r.xml",
            "--test-report",
            "tap=r.tap",
        ])
        .unwrap();
        let Command::Deploy(args) = cli.command else {
            panic!("not deploy")
        };
        assert_eq!(args.test_reports, ["junit=r.xml", "tap=r.tap"]);
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn dash_h_is_host() {
        let cli =
            Cli::try_parse_from(["pgmi-upload", "deploy", ".", "-h", "db1", "-d", "app"]).unwrap();
        let Command::Deploy(args) = cli.command else {
            panic!("not deploy")
        };
        assert_eq!(args.host.as_deref(), Some("db1"));
        assert_eq!(args.timeout, "3m");
    }

    #[test]
    fn repeatable_params() {
        let cli = Cli::try_parse_from([
            "pgmi-upload",
            "deploy",
            ".",
            "--param",
            "a=1",
            "--param",
            "b=2",
            "--params-file",
            "x.env",
        ])
        .unwrap();
        let Command::Deploy(args) = cli.command else {
            panic!("not deploy")
        };
        assert_eq!(args.params, ["a=1", "b=2"]);
        assert!(args.test_reports.is_empty());
        assert_eq!(args.params_files, [PathBuf::from("x.env")]);
    }
}
