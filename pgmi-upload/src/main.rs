//! `pgmi-upload`: parse, run, exit. Errors are printed once, in `run.rs`.

use clap::Parser;
use pgmi_upload::{cli, exit, run};

fn main() {
    // Usage errors exit 2 inside `parse`, with clap's message.
    let cli = cli::Cli::parse();
    // A panic has already printed its message and location; exit with the reference's 3.
    let code = std::panic::catch_unwind(|| run::run(cli)).unwrap_or(exit::Exit::Panic.code());
    std::process::exit(code);
}
