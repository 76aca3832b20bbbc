//! `info`: what a deploy would load and where it would connect, offline. STUB.

use crate::cli::InfoArgs;
use crate::exit::Exit;

pub fn run(args: &InfoArgs) -> Exit {
    let _ = args;
    eprintln!("pgmi: error: info is not implemented yet");
    Exit::General
}
