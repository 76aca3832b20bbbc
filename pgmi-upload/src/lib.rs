//! `pgmi-upload`: the thin pgmi client. It packs a project, hands it to the server in one of
//! two session kinds — the `pgmi` extension's loader (one binary `COPY` of a bundle) or the
//! portable session it builds itself (`portable`) — runs the project's `deploy.sql` unit by
//! unit like psql, streams the server's notices, and exits with the original pgmi's exit codes.
//!
//! The program is `main.rs`; this library exists so that the live-server tests build
//! portable sessions and TLS connections with the very code the program uses
//! (`portable::load`, `tls::connect`).

// Only the extension needs unsafe code (the PostgreSQL interface); nothing here does.
#![forbid(unsafe_code)]
// `Failure` carries the server's diagnostics (about 200 bytes). A deploy produces at most
// one, at the end of the process, so boxing it would buy nothing measurable.
#![allow(clippy::result_large_err)]

mod approve;
pub mod cli;
mod cloud;
mod commands;
mod config;
mod connect;
mod conninfo;
mod connstr;
mod copy_binary;
mod dotenv;
mod duration;
mod execute;
pub mod exit;
mod ident;
mod locks;
mod notice;
mod overwrite;
mod pgpass;
mod pooler;
pub mod portable;
mod prepare;
mod progress;
mod psql_script;
mod redact;
mod report;
pub mod run;
pub mod session;
mod testreport;
mod testresults;
mod timings;
pub mod tls;
mod uri;
mod watchdog;

/// `--version` and the first two lines of `version`.
pub const VERSION_TEXT: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (compat 1)\nCommit: ",
    env!("PGMI_COMMIT"),
    ", Platform: ",
    env!("PGMI_PLATFORM")
);

/// Both binaries: parse, run, exit. Errors are printed once, in `run.rs`.
pub fn main() {
    use clap::{CommandFactory, FromArgMatches};
    // Named as started (`pgmi` or `pgmi-upload`), for --version and usage lines. Usage
    // errors exit 2 inside `get_matches`, with clap's message.
    let mut command = cli::Cli::command().name(commands::program_name());
    // No arguments at all: the help, successfully (as the original does), so that a
    // first try shows what there is.
    if std::env::args_os().len() <= 1 {
        let _ = command.print_help();
        std::process::exit(exit::Exit::Success.code());
    }
    let matches = command.get_matches();
    let cli = cli::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // A panic has already printed its message and location; exit with the original pgmi's 3.
    let code = std::panic::catch_unwind(|| run::run(cli)).unwrap_or(exit::Exit::Panic.code());
    std::process::exit(code);
}
