//! `info`: what a deploy would load and where it would connect, without connecting
//! (README, "Other commands").
//!
//! The project is read by the deploy's scanner (`metadata::scan`), so `info` fails exactly
//! where a deploy would, with the same exit code (10, or 1 for I/O), naming the file.
//! Parameters are read and validated as a deploy reads them (exit 10 on a bad one). A
//! missing `deploy.sql` is reported (`deploySql: false`), not an error, and neither is a
//! connection that cannot be resolved: `info` is for finding out what is missing.
//!
//! Parameter values and passwords are never printed: a parameter shows its key and where
//! the winning value came from; the connection shows whether a password is set.
//!
//! Text goes to stdout. `--json` prints one object instead, with these keys:
//! * `path`: the project directory, absolute;
//! * `deploySql`, `pgmiYaml`, `envFile`: whether `deploy.sql`, `pgmi.yaml` and `.env`
//!   exist at the project root;
//! * `totalFiles`: files scanned (as a deploy's `filesLoaded`), which is the sum of
//!   `sqlFiles` (non-test SQL files), `nonSqlFiles` (other non-test files; loaded too),
//!   `testFiles` (SQL files under `__test__/`/`__tests__/`, fixtures included) and
//!   `ignoredTestFiles` (other files there: checked, but stored nowhere);
//! * `fixtures`: how many of `testFiles` are `_setup.sql`/`_setup.psql`;
//! * `filesWithMetadata`: files with a `<pgmi-meta>` block;
//! * `testDirectories`: array of `path`, `parentPath` (null at the top), `tests` (count,
//!   fixtures excluded) and `fixtures` (their paths), in the session table's order;
//! * `directories`: object, directory (`./`, `./migrations/`) → number of files a session
//!   stores from it (sources and SQL test files), in byte order;
//! * `parameters`: array of `key` (lower-cased, as stored), `source` (`pgmi.yaml`,
//!   `--params-file <file>` or `--param`) and, when earlier sources gave the key too, `overriddenSources`;
//! * `lockEstimate`: the deploy's locks estimated offline (README, "Lock-safe deploys"):
//!   `relationStatements` (statements of the SQL files and deploy.sql that create or alter
//!   a relation), `locksPerStatement` and `locks`, their product; compare with the server's
//!   `max_locks_per_transaction × (max_connections + max_prepared_transactions)`;
//! * `connection`: `resolved` (bool); when true, `host`, `port`, `user`, `database`,
//!   `authMethod` (`password`, `aws`, `azure` or `google`) and `description` (one line:
//!   also the maintenance database, sslmode, application name, whether a password is set,
//!   and the cloud settings); when false, `error`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use pgmi_core::project::Project;
use serde::Serialize;

use super::metadata::{scan, DuplicateIds};
use crate::cli::InfoArgs;
use crate::conninfo;
use crate::exit::{Exit, Failure};
use crate::prepare;
use crate::redact::redact;
use crate::report;

pub fn run(args: &InfoArgs) -> Exit {
    match info(args) {
        Ok(info) => {
            let text = if args.json {
                let mut text = serde_json::to_string_pretty(&info).unwrap_or_else(|_| "{}".into());
                text.push('\n');
                text
            } else {
                render(&info)
            };
            report::print_stdout(&text);
            Exit::Success
        }
        Err(failure) => {
            eprint!("{}", report::error_block(&failure));
            failure.exit
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Info {
    path: String,
    deploy_sql: bool,
    pgmi_yaml: bool,
    env_file: bool,
    total_files: usize,
    sql_files: usize,
    non_sql_files: usize,
    test_files: usize,
    fixtures: usize,
    ignored_test_files: usize,
    files_with_metadata: usize,
    test_directories: Vec<TestDirectory>,
    directories: BTreeMap<String, usize>,
    parameters: Vec<Parameter>,
    lock_estimate: crate::locks::budget::Estimate,
    connection: Connection,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TestDirectory {
    path: String,
    parent_path: Option<String>,
    tests: usize,
    fixtures: Vec<String>,
}

#[derive(Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
struct Parameter {
    key: String,
    source: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    overridden_sources: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Connection {
    resolved: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<String>,
    /// `password`, or the cloud whose IAM token is the password: `aws`, `azure`, `google`.
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn info(args: &InfoArgs) -> Result<Info, Failure> {
    // A pgmi.yaml that does not parse fails info as it fails a deploy (exit 10).
    let yaml = crate::config::load(&args.path)?;
    let yaml_params = yaml.map(|c| c.params).unwrap_or_default();
    let parameters = parameters(&yaml_params, &args.params_files, &args.params)?;
    let (project, _) = scan(&args.path, DuplicateIds::Refuse)?;
    let root = &args.path;
    let resolved =
        crate::config::resolve_project(&args.conn, &args.path, &conninfo::process_env, &|p| {
            p.exists()
        });
    if let Ok(r) = &resolved {
        for warning in &r.warnings {
            eprintln!("pgmi: warning: {}", redact(warning));
        }
    }
    let connection = match resolved.map(|r| r.info) {
        Ok(c) => Connection {
            resolved: true,
            host: Some(c.host.clone()),
            port: Some(c.port),
            user: Some(c.user.clone()),
            database: Some(c.target_db.clone()),
            auth_method: Some(
                c.cloud
                    .as_ref()
                    .map_or("password", |cloud| cloud.provider.name())
                    .to_string(),
            ),
            description: Some(c.describe()),
            error: None,
        },
        Err(failure) => Connection {
            resolved: false,
            host: None,
            port: None,
            user: None,
            database: None,
            auth_method: None,
            description: None,
            error: Some(redact(&failure.message)),
        },
    };
    let counts = Counts::of(&project);
    let deploy_sql = std::fs::read_to_string(root.join("deploy.sql")).unwrap_or_default();
    let lock_estimate = crate::locks::budget::estimate(&project, &deploy_sql);
    Ok(Info {
        path: std::fs::canonicalize(root)
            .unwrap_or_else(|_| root.clone())
            .display()
            .to_string(),
        deploy_sql: root.join("deploy.sql").is_file(),
        pgmi_yaml: root.join("pgmi.yaml").is_file(),
        env_file: root.join(".env").is_file(),
        total_files: project.files_loaded,
        sql_files: counts.sql,
        non_sql_files: project.sources.len() - counts.sql,
        test_files: project.test_sources.len(),
        fixtures: counts.fixtures,
        ignored_test_files: project
            .files_loaded
            .saturating_sub(project.sources.len() + project.test_sources.len()),
        files_with_metadata: counts.with_metadata,
        test_directories: test_directories(&project),
        directories: directories(&project),
        parameters,
        lock_estimate,
        connection,
    })
}

struct Counts {
    sql: usize,
    fixtures: usize,
    with_metadata: usize,
}

impl Counts {
    fn of(project: &Project) -> Counts {
        Counts {
            sql: project.sql_files(),
            fixtures: project.test_sources.iter().filter(|t| t.is_fixture).count(),
            with_metadata: project
                .sources
                .iter()
                .filter(|s| s.metadata.is_some())
                .count(),
        }
    }
}

fn test_directories(project: &Project) -> Vec<TestDirectory> {
    project
        .test_directories
        .iter()
        .map(|d| {
            let files = project
                .test_sources
                .iter()
                .filter(|t| t.directory == d.path);
            TestDirectory {
                path: d.path.clone(),
                parent_path: d.parent_path.clone(),
                tests: files.clone().filter(|t| !t.is_fixture).count(),
                fixtures: files
                    .filter(|t| t.is_fixture)
                    .map(|t| t.path.clone())
                    .collect(),
            }
        })
        .collect()
}

fn directories(project: &Project) -> BTreeMap<String, usize> {
    let mut dirs: BTreeMap<String, usize> = BTreeMap::new();
    let all = project
        .sources
        .iter()
        .map(|s| &s.path.directory)
        .chain(project.test_sources.iter().map(|t| &t.directory));
    for dir in all {
        *dirs.entry(dir.clone()).or_default() += 1;
    }
    dirs
}

/// The parameters a deploy with the same flags would load: read and validated by the
/// deploy's own functions, each key with the source of its winning value (later sources
/// win: files in order, then `--param`). Values are dropped as soon as they are validated.
fn parameters(
    yaml: &[(String, String)],
    files: &[PathBuf],
    cli: &[String],
) -> Result<Vec<Parameter>, Failure> {
    let mut pairs: Vec<(String, String)> = yaml.to_vec();
    let mut sources: Vec<String> = yaml.iter().map(|_| "pgmi.yaml".to_owned()).collect();
    for file in files {
        let read = prepare::collect_params(std::slice::from_ref(file), &[])?;
        sources.extend(
            read.iter()
                .map(|_| format!("--params-file {}", file.display())),
        );
        pairs.extend(read);
    }
    let read = prepare::collect_params(&[], cli)?;
    sources.extend(read.iter().map(|_| "--param".to_owned()));
    pairs.extend(read);
    let keys: Vec<String> = pairs.iter().map(|(k, _)| k.to_ascii_lowercase()).collect();
    let mut finals: Vec<String> = prepare::finalize_params(pairs)?
        .into_iter()
        .map(|(key, _value)| key)
        .collect();
    finals.sort();
    Ok(finals
        .into_iter()
        .map(|key| {
            let mut given: Vec<String> = keys
                .iter()
                .zip(&sources)
                .filter(|(k, _)| **k == key)
                .map(|(_, s)| s.clone())
                .collect();
            let source = given.pop().unwrap_or_default();
            given.retain(|s| *s != source);
            given.dedup();
            Parameter {
                key,
                source,
                overridden_sources: given,
            }
        })
        .collect())
}

fn yes(present: bool) -> &'static str {
    if present {
        "present"
    } else {
        "absent"
    }
}

/// The text form: labels in a fixed-width column, lists indented below their heading.
fn render(info: &Info) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        out.push_str(&format!("{label:<22}{value}\n"));
    };
    line("Project:", info.path.clone());
    line(
        "deploy.sql:",
        if info.deploy_sql {
            "present".to_owned()
        } else {
            "MISSING (a deploy would exit 14)".to_owned()
        },
    );
    line("pgmi.yaml:", yes(info.pgmi_yaml).to_owned());
    line(".env:", yes(info.env_file).to_owned());
    line("Files scanned:", info.total_files.to_string());
    line("  SQL files:", info.sql_files.to_string());
    line("  other files:", info.non_sql_files.to_string());
    line(
        "  test files:",
        format!("{} ({} fixture(s))", info.test_files, info.fixtures),
    );
    if info.ignored_test_files > 0 {
        line(
            "  ignored in tests:",
            format!("{} (not SQL; checked, not loaded)", info.ignored_test_files),
        );
    }
    line(
        "<pgmi-meta> blocks:",
        format!("{} file(s)", info.files_with_metadata),
    );
    let e = &info.lock_estimate;
    line(
        "Lock estimate:",
        format!(
            "~{} locks ({} relation statement(s) × {}; compare with max_locks_per_transaction × (max_connections + max_prepared_transactions))",
            e.locks, e.relation_statements, e.locks_per_statement
        ),
    );
    let mut list = |heading: &str, items: Vec<(String, String)>, empty: &str| {
        if items.is_empty() {
            out.push_str(&format!("{heading:<22}{empty}\n"));
            return;
        }
        out.push_str(heading);
        out.push('\n');
        let width = items
            .iter()
            .map(|(a, _)| a.chars().count())
            .max()
            .unwrap_or(0);
        for (a, b) in items {
            let pad = width - a.chars().count();
            out.push_str(&format!("  {a}{}  {b}\n", " ".repeat(pad)));
        }
    };
    list(
        "Test directories:",
        info.test_directories
            .iter()
            .map(|d| {
                let fixtures = if d.fixtures.is_empty() {
                    "no fixture".to_owned()
                } else {
                    format!("fixture {}", d.fixtures.join(", "))
                };
                let parent = d
                    .parent_path
                    .as_deref()
                    .map(|p| format!(", parent {p}"))
                    .unwrap_or_default();
                (
                    d.path.clone(),
                    format!("{} test(s), {fixtures}{parent}", d.tests),
                )
            })
            .collect(),
        "none",
    );
    list(
        "Directories:",
        info.directories
            .iter()
            .map(|(d, n)| (d.clone(), format!("{n} file(s)")))
            .collect(),
        "none",
    );
    list(
        "Parameters:",
        info.parameters
            .iter()
            .map(|p| {
                let overrides = if p.overridden_sources.is_empty() {
                    String::new()
                } else {
                    format!(" (overrides {})", p.overridden_sources.join(", "))
                };
                (p.key.clone(), format!("{}{overrides}", p.source))
            })
            .collect(),
        "none",
    );
    let connection = match (&info.connection.description, &info.connection.error) {
        (Some(d), _) => d.clone(),
        (None, Some(e)) => format!("not resolved: {e}"),
        (None, None) => "not resolved".to_owned(),
    };
    out.push_str(&format!("{:<22}{connection}\n", "Connection:"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn write(dir: &Path, rel: &str, content: &str) -> PathBuf {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        path
    }

    #[test]
    fn parameter_sources_follow_later_wins() {
        let dir = tempfile::tempdir().unwrap();
        let base = write(dir.path(), "base.env", "env=dev\nregion=eu\ntoken=s3cret\n");
        let prod = write(dir.path(), "prod.env", "env=prod\n");
        let params = parameters(
            &[],
            &[base.clone(), prod.clone()],
            &["region=us".to_owned(), "extra=x".to_owned()],
        )
        .unwrap();
        let shown: Vec<(String, String, Vec<String>)> = params
            .into_iter()
            .map(|p| (p.key, p.source, p.overridden_sources))
            .collect();
        let b = format!("--params-file {}", base.display());
        let p = format!("--params-file {}", prod.display());
        assert_eq!(
            shown,
            [
                ("env".into(), p.clone(), vec![b.clone()]),
                ("extra".into(), "--param".into(), vec![]),
                ("region".into(), "--param".into(), vec![b.clone()]),
                ("token".into(), b.clone(), vec![]),
            ]
        );
    }

    #[test]
    fn bad_parameters_fail_like_a_deploy() {
        let e = parameters(&[], &[], &["no-equals".to_owned()]).unwrap_err();
        assert_eq!(e.exit, Exit::InvalidConfig);
        let e = parameters(&[], &[], &["A=1".to_owned(), "a=2".to_owned()]).unwrap_err();
        assert_eq!(e.exit, Exit::InvalidConfig);
        assert!(
            !e.message.contains('1') && !e.message.contains('2'),
            "{}",
            e.message
        );
    }

    #[test]
    fn counts_add_up_and_directories_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        for (rel, content) in [
            ("deploy.sql", "SELECT 1;"),
            ("migrations/001.sql", "SELECT 1;"),
            ("data/seed.csv", "a\n"),
            ("__test__/_setup.sql", "SELECT 1;"),
            ("__test__/test_a.sql", "SELECT 1;"),
            ("__test__/notes.md", "x"),
            ("__test__/auth/test_b.sql", "SELECT 1;"),
        ] {
            write(dir.path(), rel, content);
        }
        let (project, _) = scan(dir.path(), DuplicateIds::Refuse).unwrap();
        let counts = Counts::of(&project);
        assert_eq!(project.files_loaded, 6);
        assert_eq!(counts.sql, 1);
        assert_eq!(counts.fixtures, 1);
        let dirs = test_directories(&project);
        assert_eq!(dirs.len(), 2);
        assert_eq!(dirs[0].path, "./__test__/");
        assert_eq!(dirs[0].fixtures, ["./__test__/_setup.sql"]);
        assert_eq!(dirs[0].tests, 1);
        assert_eq!(dirs[1].parent_path.as_deref(), Some("./__test__/"));
        let listed: Vec<(String, usize)> = directories(&project).into_iter().collect();
        assert_eq!(
            listed,
            [
                ("./__test__/".to_owned(), 2),
                ("./__test__/auth/".to_owned(), 1),
                ("./data/".to_owned(), 1),
                ("./migrations/".to_owned(), 1),
            ]
        );
    }
}
