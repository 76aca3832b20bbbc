//! Command-line surface (every command and flag is described in docs/cli.md).
//!
//! `-h` is `--host`, as in psql and the original pgmi; help is `--help` only. Values that
//! the original pgmi rejects with exit 10 (port, timeout, parameters) are taken as strings here
//! and validated by the deploy, so clap's own exit 2 stays reserved for usage errors.
//! Environment variables are read by `conninfo.rs`, not by clap, because a flag and the
//! same value from the environment are treated differently (`--connection` conflicts with
//! `-h` but not with `PGHOST`).

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

const DEPLOY_AFTER_HELP: &str = "\
Examples:
  pgmi-upload deploy . -d myapp                          local server, database myapp
  pgmi-upload deploy ./db --connection \"$DATABASE_URL\"   from CI, URI in a secret
  pgmi-upload deploy . -h db.example.com -U deployer -d app --sslmode verify-full \\
      --sslrootcert ca.pem --param env=production
  pgmi-upload deploy . -d \"ci_$JOB_ID\" --overwrite --force   throw-away database per job
  pgmi-upload deploy . -d app --json --test-report junit=tests.xml
  pgmi-upload deploy . -d app --lock-timeout 5s --retries 3   never queue the app behind a lock
  pgmi-upload deploy . --aws -h mydb.abc.eu-west-1.rds.amazonaws.com -U deployer -d app

Connection sources, strongest first: flags; the environment (also filled from the
project's .env, which never overrides a variable already set); pgmi.yaml; defaults.
A connection string (--connection, PGMI_CONNECTION_STRING, DATABASE_URL) replaces
the granular settings and cannot be combined with -h, -p, -U or --sslmode.
Passwords: the connection string, PGPASSWORD, or ~/.pgpass (PGPASSFILE). There is no
password flag. --aws, --azure or --google use the cloud's IAM token instead, from the
usual credential chain of each cloud (AWS_*, AZURE_*, GOOGLE_APPLICATION_CREDENTIALS,
workload identity, the CLI's login, the metadata services).

Environment:
  PGHOST, PGPORT, PGUSER, PGDATABASE    defaults for -h, -p, -U, -d
  PGPASSWORD, PGPASSFILE                the password, or the password file to search
  PGSSLMODE, PGSSLROOTCERT, PGSSLCERT, PGSSLKEY, PGSSLPASSWORD
                                        TLS, as in libpq
  PGAPPNAME                             application_name (default: pgmi)
  PGCONNECT_TIMEOUT                     seconds to wait for each connection attempt
  PGMI_CONNECTION_STRING, DATABASE_URL  default for --connection, in that order
  PGMI_MAX_FILE_SIZE                    per-file size cap in bytes (default 10485760);
                                        also sets the server's pgmi_loader.max_file_size
  PGMI_NON_INTERACTIVE=1, CI            never prompt (as without a terminal)
  NO_COLOR                              plain `ok` / `FAILED` in the summary line

Exit codes: 0 ok, 1 other error, 2 usage, 10 invalid configuration (nothing touched),
11 connection failed, 12 approval denied, 13 deploy.sql failed, 14 deploy.sql not found,
15 concurrent deploy, 16 --timeout expired, 130 interrupted.";

const BUNDLE_AFTER_HELP: &str = "\
Examples:
  pgmi-upload bundle . -o deploy-bundle.sql --param env=production
  psql -X -v ON_ERROR_STOP=1 -d app -f deploy-bundle.sql
  pgmi-upload bundle . --param-var api_token=TOKEN -o b.sql
  psql -X -v ON_ERROR_STOP=1 -v TOKEN=\"$API_TOKEN\" -d app -f b.sql";

const INFO_AFTER_HELP: &str = "\
Examples:
  pgmi-upload info                 the project in the current directory
  pgmi-upload info ./db --json     machine-readable
  pgmi-upload info . -d staging    also resolve the connection for database staging";

const METADATA_VALIDATE_HELP: &str = "\
Examples:
  pgmi-upload metadata validate .
  pgmi-upload metadata validate ./db --json

Exit codes: 0 valid, 1 duplicate ids, 10 a malformed block (the file and line are named).";

const METADATA_PLAN_HELP: &str = "\
Examples:
  pgmi-upload metadata plan .
  pgmi-upload metadata plan ./db --json | jq -r '.plan[].path'";

const METADATA_SCAFFOLD_HELP: &str = "\
Examples:
  pgmi-upload metadata scaffold .                         show the blocks it would add
  pgmi-upload metadata scaffold . --write                 add them
  pgmi-upload metadata scaffold . --write --idempotent false";

const INIT_AFTER_HELP: &str = "\
Examples:
  pgmi-upload init myapp                      basic template into ./myapp
  pgmi-upload init . --template advanced      into the current directory
  pgmi-upload templates list

The target must be empty, or hold only pgmi.yaml and .env (which are kept). The project
name is the target directory's name; it must be letters, digits, '_', '-' or '.'.
Exit codes: 0 written, 2 unknown template, non-empty target or unusable name, 1 I/O error.";

const COMPLETION_AFTER_HELP: &str = "\
Examples:
  pgmi-upload completion bash > /etc/bash_completion.d/pgmi-upload
  pgmi-upload completion zsh > \"${fpath[1]}/_pgmi-upload\"
  pgmi-upload completion fish > ~/.config/fish/completions/pgmi-upload.fish";

#[derive(Debug, Parser)]
#[command(
    name = "pgmi-upload",
    version = crate::VERSION_TEXT,
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
    #[command(after_help = BUNDLE_AFTER_HELP, disable_help_flag = true)]
    Bundle(BundleArgs),
    /// Show what a deploy would load and where it would connect, without connecting
    #[command(after_help = INFO_AFTER_HELP, disable_help_flag = true)]
    Info(InfoArgs),
    /// Start a project from a template: pgmi-upload init myapp [--template advanced]
    #[command(after_help = INIT_AFTER_HELP)]
    Init(InitArgs),
    /// List the project templates, or describe one
    #[command(subcommand)]
    Templates(TemplatesCommand),
    /// Check, order and scaffold <pgmi-meta> blocks, without connecting
    #[command(subcommand)]
    Metadata(MetadataCommand),
    /// The user documentation, offline: the topics, or one topic's text (for reading and
    /// for coding assistants)
    Ai {
        /// A topic from the list `ai` prints (session-api, testing, cookbook, cli, …)
        #[arg(value_name = "TOPIC")]
        topic: Option<String>,
    },
    /// Print a shell completion script
    #[command(after_help = COMPLETION_AFTER_HELP)]
    Completion {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the manual page (roff) on stdout, or write one page per command into DIR
    #[command(hide = true)]
    Man {
        /// Write <program>.1 and <program>-<command>.1 here instead
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Print the version, the session-API compat level, the commit and the platform
    Version,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Project directory (contains deploy.sql)
    #[arg(value_name = "PATH")]
    pub path: PathBuf,

    #[command(flatten)]
    pub conn: ConnectionArgs,

    /// Drop and re-create the target database before deploying. Asks you to type the
    /// database name on a terminal; needs --force without one. Never the maintenance
    /// database or a template database
    #[arg(long)]
    pub overwrite: bool,

    /// Never wait for a prompt: with --overwrite, a 5-second countdown on a terminal and
    /// a single log line without one
    #[arg(long)]
    pub force: bool,

    /// Session-API contract version; only 1 exists
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub compat: Option<String>,

    /// Parameter for deploy.sql, readable as current_setting('pgmi.<key>') (repeatable)
    #[arg(long = "param", value_name = "KEY=VALUE", allow_hyphen_values = true)]
    pub params: Vec<String>,

    /// File of KEY=VALUE lines; later files override earlier ones, --param overrides all
    /// (repeatable)
    #[arg(long = "params-file", value_name = "PATH")]
    pub params_files: Vec<PathBuf>,

    /// Deadline for the whole run: 30s, 5m, 1h30m; 0 disables
    /// [default: `timeout` in pgmi.yaml, else 3m]
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub timeout: Option<String>,

    /// lock_timeout for deploy.sql's statements: 200ms, 5s, 1m; 0 turns it off
    /// [default: `lock_timeout` in pgmi.yaml, else the server's setting]
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub lock_timeout: Option<String>,

    /// Run a unit again, up to N times, when it failed only because of locking (lock
    /// timeout, deadlock, serialization failure): the whole atomic head, or a single tail
    /// statement that ran in its own transaction
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub retries: u32,

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

/// Where and how to connect; shared by `deploy` and `info`. Every field is optional: the
/// environment, the project's `.env` and `pgmi.yaml` fill the gaps (`conninfo.rs`).
#[derive(Debug, Clone, Default, Args)]
pub struct ConnectionArgs {
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

    /// Connection string: a URI (postgresql://…), libpq key=value pairs, or an ADO.NET
    /// string (Host=…;Database=…); excludes -h, -p, -U, --sslmode
    /// [env: PGMI_CONNECTION_STRING, DATABASE_URL]
    #[arg(long, value_name = "STRING")]
    pub connection: Option<String>,

    /// disable, allow, prefer, require, verify-ca or verify-full, as in libpq
    /// [env: PGSSLMODE] [default: prefer]
    #[arg(long, value_name = "MODE")]
    pub sslmode: Option<String>,

    /// Certificate authorities to trust, or `system` for the operating system's store
    /// [env: PGSSLROOTCERT] [default: ~/.postgresql/root.crt if it exists]
    #[arg(long, value_name = "FILE")]
    pub sslrootcert: Option<String>,

    /// Client certificate [env: PGSSLCERT] [default: ~/.postgresql/postgresql.crt if it
    /// exists]
    #[arg(long, value_name = "FILE")]
    pub sslcert: Option<String>,

    /// Client private key; an encrypted key takes its passphrase from PGSSLPASSWORD or
    /// the connection string's sslpassword [env: PGSSLKEY]
    /// [default: ~/.postgresql/postgresql.key if it exists]
    #[arg(long, value_name = "FILE")]
    pub sslkey: Option<String>,

    /// Use an AWS RDS IAM token as the password (credentials from the AWS chain:
    /// environment, ~/.aws files and AWS_PROFILE, web identity, container and instance
    /// roles) [pgmi.yaml: auth_method: aws]
    #[arg(long, help_heading = "Cloud IAM authentication")]
    pub aws: bool,

    /// AWS region of the instance; does not turn on --aws by itself
    /// [env: AWS_REGION, AWS_DEFAULT_REGION] [pgmi.yaml: aws_region]
    #[arg(long, value_name = "REGION", help_heading = "Cloud IAM authentication")]
    pub aws_region: Option<String>,

    /// Use an Azure Entra ID token as the password (service principal, workload
    /// identity, managed identity or the Azure CLI's login) [pgmi.yaml: auth_method: azure]
    #[arg(long, help_heading = "Cloud IAM authentication")]
    pub azure: bool,

    /// Entra tenant; does not turn on --azure by itself [env: AZURE_TENANT_ID]
    #[arg(long, value_name = "ID", help_heading = "Cloud IAM authentication")]
    pub azure_tenant_id: Option<String>,

    /// Application (client) id of the service principal or user-assigned managed
    /// identity; does not turn on --azure by itself [env: AZURE_CLIENT_ID]
    #[arg(long, value_name = "ID", help_heading = "Cloud IAM authentication")]
    pub azure_client_id: Option<String>,

    /// Use a Google Cloud SQL IAM token as the password (Application Default
    /// Credentials); needs --google-instance [pgmi.yaml: auth_method: google]
    #[arg(long, help_heading = "Cloud IAM authentication")]
    pub google: bool,

    /// Cloud SQL instance as project:region:instance; its address is looked up unless a
    /// host is given; does not turn on --google by itself [pgmi.yaml: google_instance]
    #[arg(
        long,
        value_name = "PROJECT:REGION:INSTANCE",
        help_heading = "Cloud IAM authentication"
    )]
    pub google_instance: Option<String>,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Project directory
    #[arg(value_name = "PATH", default_value = ".")]
    pub path: PathBuf,

    #[command(flatten)]
    pub conn: ConnectionArgs,

    /// Parameter, as for deploy (repeatable)
    #[arg(long = "param", value_name = "KEY=VALUE", allow_hyphen_values = true)]
    pub params: Vec<String>,

    /// File of KEY=VALUE lines, as for deploy (repeatable)
    #[arg(long = "params-file", value_name = "PATH")]
    pub params_files: Vec<PathBuf>,

    /// Print JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory to create the project in (created when missing)
    #[arg(value_name = "PATH", default_value = ".")]
    pub path: PathBuf,

    /// basic (learning, small systems) or advanced (production)
    #[arg(short = 't', long, value_name = "NAME", default_value = "basic")]
    pub template: String,
}

#[derive(Debug, Subcommand)]
pub enum TemplatesCommand {
    /// One line per template, the recommended first
    List,
    /// What a template holds and what it is for
    Describe {
        /// basic or advanced
        #[arg(value_name = "NAME")]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum MetadataCommand {
    /// Check every <pgmi-meta> block and that no id is used twice
    #[command(after_help = METADATA_VALIDATE_HELP)]
    Validate {
        /// Project directory
        #[arg(value_name = "PATH", default_value = ".")]
        path: PathBuf,
        /// Print JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Print pgmi_plan_view as a session would have it: every project file once per sort
    /// key, in execution order (the original CLI lists each SQL file once)
    #[command(after_help = METADATA_PLAN_HELP)]
    Plan {
        /// Project directory
        #[arg(value_name = "PATH", default_value = ".")]
        path: PathBuf,
        /// Print JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Show (or with --write, add) a <pgmi-meta> block for every SQL file that has none
    #[command(after_help = METADATA_SCAFFOLD_HELP)]
    Scaffold {
        /// Project directory
        #[arg(value_name = "PATH", default_value = ".")]
        path: PathBuf,
        /// Write the blocks into the files (default: only show them)
        #[arg(long)]
        write: bool,
        /// The idempotent attribute of the new blocks
        #[arg(long, value_name = "BOOL", default_value_t = true, action = ArgAction::Set)]
        idempotent: bool,
    },
}

/// `completion <shell>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Powershell,
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

    /// lock_timeout for deploy.sql's statements, written into the script: 200ms, 5s, 1m;
    /// 0 turns it off [default: `lock_timeout` in pgmi.yaml, else the server's setting].
    /// (Retries need pgmi-upload deploy: psql cannot repeat the head.)
    #[arg(
        long = "lock-timeout",
        value_name = "DURATION",
        allow_hyphen_values = true
    )]
    pub lock_timeout: Option<String>,

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
        assert_eq!(args.conn.host.as_deref(), Some("db1"));
        assert_eq!(args.timeout, None);
        assert_eq!((args.lock_timeout, args.retries), (None, 0));
    }

    #[test]
    fn lock_flags() {
        let cli = Cli::try_parse_from([
            "pgmi-upload",
            "deploy",
            ".",
            "--lock-timeout",
            "200ms",
            "--retries",
            "3",
        ])
        .unwrap();
        let Command::Deploy(args) = cli.command else {
            panic!("not deploy")
        };
        assert_eq!(args.lock_timeout.as_deref(), Some("200ms"));
        assert_eq!(args.retries, 3);
        assert!(Cli::try_parse_from(["pgmi-upload", "deploy", ".", "--retries", "-1"]).is_err());
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
