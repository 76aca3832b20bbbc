//! The commands that never connect: `info`, `init`, `templates`, `metadata`, `ai`,
//! `completion`, `man`.

pub mod info;
pub mod init;
pub mod metadata;

use clap::CommandFactory;

use crate::cli::{Cli, Shell};
use crate::exit::Exit;

/// The name this program was started as (`pgmi` or `pgmi-upload`), for messages.
pub fn program_name() -> String {
    std::env::args_os()
        .next()
        .and_then(|arg0| {
            std::path::Path::new(&arg0)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .filter(|n| n == "pgmi" || n == "pgmi-upload")
        .unwrap_or_else(|| "pgmi-upload".to_string())
}

/// `completion <shell>`: the script on stdout, for the name the program was started as.
pub fn completion(shell: Shell) -> Exit {
    let mut command = Cli::command();
    let name = program_name();
    let mut out = Vec::new();
    match shell {
        Shell::Bash => {
            clap_complete::generate(clap_complete::Shell::Bash, &mut command, &name, &mut out)
        }
        Shell::Zsh => {
            clap_complete::generate(clap_complete::Shell::Zsh, &mut command, &name, &mut out)
        }
        Shell::Fish => {
            clap_complete::generate(clap_complete::Shell::Fish, &mut command, &name, &mut out)
        }
        Shell::Powershell => clap_complete::generate(
            clap_complete::Shell::PowerShell,
            &mut command,
            &name,
            &mut out,
        ),
    }
    crate::report::print_stdout(&String::from_utf8_lossy(&out));
    Exit::Success
}

/// `man`: the manual page, generated from the command-line definition: the main page on
/// stdout, or with `--dir` one page per command (`pgmi-upload-deploy.1`, as git does).
pub fn man(dir: Option<&std::path::Path>) -> Exit {
    let name = program_name();
    let command = Cli::command().name(name.clone()).bin_name(name.clone());
    let mut pages = vec![(format!("{name}.1"), command.clone())];
    if dir.is_some() {
        for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
            let full = format!("{name}-{}", sub.get_name());
            let page = sub
                .clone()
                .name(full.clone())
                .bin_name(format!("{name} {}", sub.get_name()));
            pages.push((format!("{full}.1"), page));
        }
    }
    for (file, page) in pages {
        let mut out = Vec::new();
        if let Err(e) = clap_mangen::Man::new(page).render(&mut out) {
            eprintln!("pgmi: error: could not render the manual page: {e}");
            return Exit::General;
        }
        match dir {
            None => crate::report::print_stdout(&String::from_utf8_lossy(&out)),
            Some(dir) => {
                let path = dir.join(&file);
                if let Err(e) = std::fs::write(&path, out) {
                    eprintln!("pgmi: error: could not write {}: {e}", path.display());
                    return Exit::General;
                }
            }
        }
    }
    Exit::Success
}

mod docs {
    include!(concat!(env!("OUT_DIR"), "/docs.rs"));
}

/// `ai [TOPIC]`: the documentation of `docs/` and the README, embedded at build time, so a
/// coding assistant (or anyone offline) reads the text of the version it runs. Without a
/// topic: one line per topic, its first heading. Unknown topic: exit 2.
pub fn ai(topic: Option<&str>) -> Exit {
    let title = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("# "))
            .unwrap_or("")
            .to_string()
    };
    match topic {
        None => {
            let mut out = String::new();
            for (name, text) in docs::DOCS {
                out.push_str(&format!("{name:<16}{}\n", title(text)));
            }
            crate::report::print_stdout(&out);
            eprintln!("Print one with: {} ai <topic>", program_name());
            Exit::Success
        }
        Some(wanted) => match docs::DOCS.iter().find(|(name, _)| *name == wanted) {
            Some((_, text)) => {
                crate::report::print_stdout(text);
                Exit::Success
            }
            None => {
                let names: Vec<&str> = docs::DOCS.iter().map(|(n, _)| *n).collect();
                eprintln!(
                    "pgmi: error: unknown topic {wanted:?}; the topics are: {}",
                    names.join(", ")
                );
                Exit::Usage
            }
        },
    }
}
