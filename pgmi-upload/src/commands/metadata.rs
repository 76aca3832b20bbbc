//! `metadata validate|plan|scaffold`, offline. STUB.

use crate::cli::MetadataCommand;
use crate::exit::Exit;

pub fn run(command: &MetadataCommand) -> Exit {
    let _ = command;
    eprintln!("pgmi: error: metadata is not implemented yet");
    Exit::General
}
