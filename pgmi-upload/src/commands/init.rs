//! `init` and `templates`: start a project from one of the templates in `templates/`, which
//! the build embeds in the binary (build.rs), so `init` works offline and the files are
//! exactly those the test suite deploys.
//!
//! `init [PATH] --template NAME` writes the template into PATH (created when missing). The
//! target must be empty or hold only `pgmi.yaml` and `.env`, which are kept as they are: a
//! project's connection settings may exist before its code. `{{PROJECT_NAME}}` in the
//! files becomes the target directory's name, which is therefore limited to letters,
//! digits, `_`, `-` and `.` (it lands in YAML, JSON, SQL comments and a database name
//! without any quoting to get wrong). Usage problems exit 2, as clap's own do; I/O errors
//! exit 1. Files are created with `create_new`, so nothing is ever overwritten, even by a
//! race.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::cli::{InitArgs, TemplatesCommand};
use crate::exit::Exit;
use crate::report::print_stdout;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/templates.rs"));
}

const PLACEHOLDER: &str = "{{PROJECT_NAME}}";
/// What may already be in the target: kept, never overwritten.
const KEPT: &[&str] = &["pgmi.yaml", ".env"];

struct Template {
    name: &'static str,
    summary: &'static str,
    description: &'static str,
    features: &'static [&'static str],
    audience: &'static str,
    /// Printed after `init`: what the server must allow.
    needs: Option<&'static str>,
}

/// In the order we recommend them.
const TEMPLATES: &[Template] = &[
    Template {
        name: "basic",
        summary: "migrations, seeds and tests in one transaction",
        description: "A deploy.sql you can read in five minutes: it applies ./migrations/ in order \
inside one transaction, records each applied file with its checksum in a small ledger table (and \
stops when an applied file was edited), seeds demo data unless env is production, reads \
project.json through the session views, and runs the tests before it commits.",
        features: &[
            "per-file error attribution: Failed in <path>, with the original SQLSTATE, DETAIL and HINT",
            "an apply-once ledger written in a few lines of your own SQL",
            "environment-aware seeding from the env parameter (pgmi.yaml, --param env=...)",
            "tests with a fixture under __test__/, gating the COMMIT",
        ],
        audience: "learning pgmi, prototypes and small systems",
        needs: None,
    },
    Template {
        name: "advanced",
        summary: "schemas, roles, phases, a ledger by id, and a lock-safe tail",
        description: "A production layout: several schemas owned by a NOLOGIN owner role; a role \
hierarchy named after the database, created idempotently by a role with CREATEROLE (no superuser); \
files ordered by <pgmi-meta> sort keys in phases, one file running in two of them; a ledger keyed \
by metadata id that re-runs idempotent files and warns when an applied one-time file changed; \
lock_timeout and an advisory lock in the head; tests at several directory levels with nested \
fixtures; and a tail after the COMMIT that builds an index CONCURRENTLY, dropping an INVALID \
leftover of an earlier failed run first.",
        features: &[
            "schemas app, api and internal, grants converged on every deploy",
            "roles <db>_owner, <db>_writer, <db>_reader, safe to re-run on managed PostgreSQL",
            "phases from <pgmi-meta> sort keys; a ledger by metadata id",
            "SET LOCAL lock_timeout and pg_advisory_xact_lock in the head",
            "CREATE INDEX CONCURRENTLY in the non-transactional tail",
        ],
        audience: "production systems, teams, managed PostgreSQL",
        needs: Some(
            "the deploying role needs CREATEROLE and must own the database (or be able to grant CREATE on it); no superuser",
        ),
    },
];

fn find(name: &str) -> Result<&'static Template, Exit> {
    TEMPLATES.iter().find(|t| t.name == name).ok_or_else(|| {
        let names: Vec<&str> = TEMPLATES.iter().map(|t| t.name).collect();
        eprintln!(
            "pgmi: error: unknown template {name:?}; the templates are: {}",
            names.join(", ")
        );
        eprintln!("HINT: {} templates list", super::program_name());
        Exit::Usage
    })
}

/// The template's files: (path inside the template, bytes), in path order.
fn files_of(name: &str) -> Vec<(&'static str, &'static [u8])> {
    embedded::TEMPLATE_FILES
        .iter()
        .filter(|(template, _, _)| *template == name)
        .map(|(_, path, bytes)| (*path, *bytes))
        .collect()
}

/// `templates list` and `templates describe NAME`.
pub fn templates(command: &TemplatesCommand) -> Exit {
    let program = super::program_name();
    match command {
        TemplatesCommand::List => {
            let mut out = String::new();
            for t in TEMPLATES {
                out.push_str(&format!(
                    "{:<12}{}\n{:<12}for: {}\n",
                    t.name, t.summary, "", t.audience
                ));
            }
            print_stdout(&out);
            eprintln!("Start one with: {program} init <path> --template <name>");
            Exit::Success
        }
        TemplatesCommand::Describe { name } => {
            let template = match find(name) {
                Ok(t) => t,
                Err(exit) => return exit,
            };
            let paths: Vec<&str> = files_of(template.name).iter().map(|(p, _)| *p).collect();
            let mut out = format!(
                "{} — {}\n\n{}\n\nStructure:\n{}\nFeatures:\n",
                template.name,
                template.summary,
                wrap(template.description, 88),
                tree(".", &paths)
            );
            for feature in template.features {
                out.push_str(&format!("  - {feature}\n"));
            }
            out.push_str(&format!("\nFor: {}\n", template.audience));
            if let Some(needs) = template.needs {
                out.push_str(&format!("Needs: {needs}\n"));
            }
            print_stdout(&out);
            eprintln!(
                "Start one with: {program} init <path> --template {}",
                template.name
            );
            Exit::Success
        }
    }
}

/// `init [PATH] --template NAME`.
pub fn init(args: &InitArgs) -> Exit {
    let template = match find(&args.template) {
        Ok(t) => t,
        Err(exit) => return exit,
    };
    match write_project(&args.path, template) {
        Ok(exit) => exit,
        Err(message) => {
            eprintln!("pgmi: error: {message}");
            Exit::General
        }
    }
}

fn usage(message: String, hint: &str) -> Result<Exit, String> {
    eprintln!("pgmi: error: {message}");
    eprintln!("HINT: {hint}");
    Ok(Exit::Usage)
}

fn write_project(target: &Path, template: &Template) -> Result<Exit, String> {
    let shown = target.display();
    if target.exists() && !target.is_dir() {
        return usage(
            format!("{shown} exists and is not a directory"),
            "give a new or empty directory",
        );
    }
    let mut kept = Vec::new();
    if target.is_dir() {
        let mut blocking = Vec::new();
        let entries = std::fs::read_dir(target).map_err(|e| format!("cannot read {shown}: {e}"))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot read {shown}: {e}"))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if KEPT.contains(&name.as_str()) && entry.path().is_file() {
                kept.push(name);
            } else {
                blocking.push(name);
            }
        }
        if !blocking.is_empty() {
            blocking.sort();
            return usage(
                format!("{shown} is not empty: {}", blocking.join(", ")),
                "init writes into a new or empty directory (pgmi.yaml and .env may already be there, and are kept)",
            );
        }
    }
    let name = match project_name(target) {
        Ok(name) => name,
        Err(message) => {
            return usage(
                message,
                "name the directory with letters, digits, '_', '-' or '.', e.g. pgmi-upload init my_app",
            )
        }
    };
    std::fs::create_dir_all(target).map_err(|e| format!("cannot create {shown}: {e}"))?;
    let files = files_of(template.name);
    for (rel, bytes) in &files {
        if kept.iter().any(|k| k == rel) {
            continue;
        }
        let path = target.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        let content = substitute(bytes, &name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        file.write_all(&content)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let root = std::fs::canonicalize(target).unwrap_or_else(|_| target.to_path_buf());
    let paths: Vec<&str> = files.iter().map(|(p, _)| *p).collect();
    print_stdout(&tree(&root.display().to_string(), &paths));
    eprintln!("Wrote {shown} ({} template).", template.name);
    for k in &kept {
        eprintln!("Kept the existing {k}.");
    }
    if let Some(needs) = template.needs {
        eprintln!("Note: {needs}.");
    }
    let program = super::program_name();
    eprintln!("Next:");
    eprintln!("  read {}", target.join("README.md").display());
    eprintln!("  {program} deploy {shown} -d {name}");
    Ok(Exit::Success)
}

/// The project name: the target directory's own name (of the absolute path, so `.` works).
fn project_name(target: &Path) -> Result<String, String> {
    let absolute = if target.is_absolute() {
        target.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| format!("cannot find the current directory: {e}"))?
            .join(target)
    };
    let normal: PathBuf = absolute.components().fold(PathBuf::new(), |mut path, c| {
        match c {
            std::path::Component::ParentDir => {
                path.pop();
            }
            std::path::Component::CurDir => {}
            other => path.push(other),
        }
        path
    });
    let name = normal
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| {
            format!(
                "{} has no directory name to use as the project name",
                target.display()
            )
        })?;
    let valid = name.len() <= 63
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if valid {
        Ok(name)
    } else {
        Err(format!(
            "the project name {name:?} (the directory's name) must be 1-63 letters, digits, '_', '-' or '.', starting with a letter, digit or '_'"
        ))
    }
}

/// `{{PROJECT_NAME}}` replaced by `name` (which needs no escaping anywhere, see above).
fn substitute(bytes: &[u8], name: &str) -> Vec<u8> {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.replace(PLACEHOLDER, name).into_bytes(),
        Err(_) => bytes.to_vec(),
    }
}

/// An ASCII tree of `paths` (relative, `/`-separated) under `root`.
fn tree(root: &str, paths: &[&str]) -> String {
    #[derive(Default)]
    struct Node(BTreeMap<String, Node>);
    let mut top = Node::default();
    for path in paths {
        let mut node = &mut top;
        for part in path.split('/') {
            node = node.0.entry(part.to_string()).or_default();
        }
    }
    fn render(node: &Node, prefix: &str, out: &mut String) {
        let count = node.0.len();
        for (i, (name, child)) in node.0.iter().enumerate() {
            let last = i + 1 == count;
            let slash = if child.0.is_empty() { "" } else { "/" };
            out.push_str(&format!(
                "{prefix}{}{name}{slash}\n",
                if last { "└── " } else { "├── " }
            ));
            render(
                child,
                &format!("{prefix}{}", if last { "    " } else { "│   " }),
                out,
            );
        }
    }
    let mut out = format!("{root}\n");
    render(&top, "", &mut out);
    out
}

/// Words of `text` on lines of at most `width` characters.
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&line);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_is_embedded_with_its_deploy_sql() {
        for t in TEMPLATES {
            let files = files_of(t.name);
            assert!(files.iter().any(|(p, _)| *p == "deploy.sql"), "{}", t.name);
            assert!(files.iter().any(|(p, _)| *p == "pgmi.yaml"), "{}", t.name);
            assert!(files.iter().any(|(p, _)| *p == ".gitignore"), "{}", t.name);
        }
        // Nothing embedded belongs to no template.
        for (template, _, _) in embedded::TEMPLATE_FILES {
            assert!(TEMPLATES.iter().any(|t| t.name == *template), "{template}");
        }
    }

    #[test]
    fn project_names() {
        assert_eq!(project_name(Path::new("/x/my_app")).unwrap(), "my_app");
        assert_eq!(
            project_name(Path::new("/x/my-app.v2/")).unwrap(),
            "my-app.v2"
        );
        assert_eq!(project_name(Path::new("/x/app/sub/..")).unwrap(), "app");
        for bad in ["/x/my app", "/x/-app", "/x/a\"b", "/x/ä", "/"] {
            assert!(project_name(Path::new(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn tree_draws_branches() {
        assert_eq!(
            tree("/p", &["a.sql", "d/b.sql", "d/e/c.sql", "z"]),
            "/p\n├── a.sql\n├── d/\n│   ├── b.sql\n│   └── e/\n│       └── c.sql\n└── z\n"
        );
    }
}
