//! `pgmi-upload`: the thin pgmi client. It packs a project, streams it to the `pgmi`
//! extension in one `COPY`, runs the project's `deploy.sql` statement by statement like
//! psql, streams the server's notices, and exits with the reference's exit codes.
//!
//! `main` only parses, runs and exits; errors are printed once, in `run.rs`.

// `Failure` carries the server's diagnostics (about 200 bytes). A deploy produces at most
// one, at the end of the process, so boxing it would buy nothing measurable.
#![allow(clippy::result_large_err)]

mod cli;
mod connect;
mod conninfo;
mod copy_binary;
mod duration;
mod execute;
mod exit;
mod ident;
mod notice;
mod prepare;
mod redact;
mod report;
mod run;
mod session;
mod testreport;
mod testresults;
mod uri;
mod watchdog;

use clap::Parser;

fn main() {
    // Usage errors exit 2 inside `parse`, with clap's message.
    let cli = cli::Cli::parse();
    // A panic has already printed its message and location; exit with the reference's 3.
    let code = std::panic::catch_unwind(|| run::run(cli)).unwrap_or(exit::Exit::Panic.code());
    std::process::exit(code);
}
