//! The portable session: the session objects built by the client, for servers where the
//! `pgmi` extension is not installed and cannot be (managed PostgreSQL). Needs only the
//! `CONNECT` and `TEMPORARY` privileges.
//!
//! The client does what `pgmi_load` does in the server, with the same `pgmi-core` code
//! (walk, validation, checksums, `<pgmi-meta>`, test directories, parameters), then creates
//! the same objects from the same `sql/` files (`session.sql`, plus `session_portable.sql`
//! where the extension session runs `session_extension.sql`) and fills them with binary
//! COPY. The rows are [`rows`]; the constraints and statistics are the extension's
//! (`session_constraints.sql`, the same ANALYZE). Everything happens in one transaction, so
//! a failed load leaves the previous session (or none) as it was.
//!
//! Invariants: nothing is created outside `pg_temp`; user data travels only as COPY data;
//! the only SQL text sent is the project's own `sql/` files and fixed statements.

pub mod binary;
pub mod rows;

use std::io::Write;

use pgmi_core::project::Project;
use postgres::Client;

use crate::progress::{Counters, Phase, Shape};
use crate::session::LoadSummary;
use rows::{Table, TABLES};

pub const SESSION_SQL: &str = include_str!("../../../sql/session.sql");
pub const SESSION_PORTABLE_SQL: &str = include_str!("../../../sql/session_portable.sql");
pub const SESSION_CONSTRAINTS_SQL: &str = include_str!("../../../sql/session_constraints.sql");
pub const SESSION_DROP_SQL: &str = include_str!("../../../sql/session_drop.sql");

/// The extension's statistics statement (`pgmi-ext/src/session.rs`): only the columns
/// scripts filter and join on. Run when the project has at least one file.
pub const ANALYZE_SQL: &str =
    "ANALYZE pg_temp._pgmi_source (path, directory, extension, depth, is_sql_file), \
     pg_temp._pgmi_source_metadata (path, id), pg_temp._pgmi_test_directory, \
     pg_temp._pgmi_test_source (path, directory, is_fixture)";

/// Every parameter becomes the session setting `pgmi.<key>` (as with the extension: it
/// survives anything deploy.sql rolls back, yet a failed load reverts it).
pub const SET_PARAMETERS_SQL: &str = "SELECT pg_catalog.set_config('pgmi.' OPERATOR(pg_catalog.||) p.key, p.value, false) FROM pg_temp._pgmi_parameter p";

/// What the load reports, computed as the extension computes it.
pub fn summary(project: &Project, parameters: &[(String, String)]) -> LoadSummary {
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    LoadSummary {
        files: count(project.files_loaded),
        sql_files: count(project.sql_files()),
        test_files: count(project.test_sources.len()),
        bytes: count(project.content_bytes()),
        parameters: count(parameters.len()),
        settings: None,
    }
}

/// Bytes buffered before each write to the COPY stream: large messages, bounded memory.
const FLUSH_BYTES: usize = 1 << 20;

/// Creates the session objects on `client` and fills them with `project` and `parameters`
/// (already validated by `pgmi-core`), in one transaction that this function commits.
pub fn load(
    client: &mut Client,
    project: &Project,
    parameters: &[(String, String)],
) -> Result<LoadSummary, postgres::Error> {
    let phase = Phase::hidden(Shape::counting("Loading"));
    load_counted(client, project, parameters, &phase, false)
}

/// [`load`], counting the `_pgmi_source` rows as files and the COPY data sent as bytes in
/// `phase`, which becomes the server's part once everything is sent. `temp_buffers`: raise
/// the setting first (`session::TEMP_BUFFERS`), which only a connection that has not used
/// a temporary table yet may do.
pub(crate) fn load_counted(
    client: &mut Client,
    project: &Project,
    parameters: &[(String, String)],
    phase: &Phase,
    temp_buffers: bool,
) -> Result<LoadSummary, postgres::Error> {
    // `_pgmi_source_statement` is the one table whose rows cost the client real work (every
    // file scanned by pgmi-core's splitter: ~85 ms for 10,000 files, 20 MB). A second
    // thread encodes its COPY data while the server runs everything before it, which it
    // is filled last for.
    std::thread::scope(|scope| {
        let statements = (rows::row_count(Table::SourceStatement, project, parameters) > 0)
            .then(|| scope.spawn(|| encoded(Table::SourceStatement, project, parameters)));
        let loaded = load_with(client, project, parameters, statements, phase, temp_buffers);
        if loaded.is_err() && !client.is_closed() {
            // End the failed transaction before anything else runs on the session; a
            // failure here surfaces on the next statement.
            let _ = client.batch_execute("ROLLBACK");
        }
        loaded
    })
}

fn load_with(
    client: &mut Client,
    project: &Project,
    parameters: &[(String, String)],
    mut statements: Option<std::thread::ScopedJoinHandle<'_, Vec<u8>>>,
    phase: &Phase,
    temp_buffers: bool,
) -> Result<LoadSummary, postgres::Error> {
    let counters = phase.counters();
    // One transaction, begun and committed here (the caller rolls it back on failure).
    // Only temporary objects change in it (their catalog rows die with the session, crash
    // or not), so the commit need not wait for the WAL flush (session.rs, the same for the
    // extension's load).
    // The functions' bodies are ours and tested: not compiling each one just to check it
    // saves ~10% of creating the objects (as the extension does).
    // Round trips are most of a small deploy's fixed cost, and more so over a network:
    // temp_buffers, BEGIN, the settings and the question of an earlier session go in one
    // message, the session's SQL in another, and the end (constraints, parameters, ANALYZE,
    // COMMIT and the settings the deploy reads next) in a third.
    let answer = client.simple_query(&format!(
        "{}BEGIN; SET LOCAL synchronous_commit = off; SET LOCAL check_function_bodies = off; \
         SELECT pg_catalog.to_regclass('pg_temp._pgmi_source') IS NOT NULL",
        if temp_buffers {
            concat!("SELECT ", crate::session::raise_temp_buffers!(), "; ")
        } else {
            ""
        }
    ))?;
    let exists = crate::session::last_row(&answer).and_then(|row| row.get(0)) == Some("t");
    if exists {
        client.batch_execute(SESSION_DROP_SQL)?;
    }
    client.batch_execute(&format!("{SESSION_SQL}\n{SESSION_PORTABLE_SQL}"))?;
    for table in TABLES {
        if table == Table::SourceStatement {
            if let Some(handle) = statements.take() {
                let data = handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                let mut writer =
                    client.copy_in(table.copy_statement("(FORMAT binary)").as_str())?;
                // as in copy_binary: finish() reports a broken connection
                for chunk in data.chunks(FLUSH_BYTES) {
                    if writer.write_all(chunk).is_err() {
                        break;
                    }
                    counters.add_bytes(chunk.len() as u64);
                }
                writer.finish()?;
            }
        } else if rows::row_count(table, project, parameters) > 0 {
            copy_binary(client, table, project, parameters, counters)?;
        }
    }
    phase.relabel(Shape {
        files: true,
        ..Shape::SERVER
    });
    // The constraints, the parameters' settings and ANALYZE: one message.
    let mut rest = String::from(SESSION_CONSTRAINTS_SQL);
    if !parameters.is_empty() {
        rest.push_str(";\n");
        rest.push_str(SET_PARAMETERS_SQL);
    }
    if project.files_loaded > 0 {
        rest.push_str(";\n");
        rest.push_str(ANALYZE_SQL);
    }
    rest.push_str(";\nCOMMIT; ");
    rest.push_str(crate::locks::budget::SETTINGS_SQL);
    let answer = client.simple_query(&rest)?;
    Ok(LoadSummary {
        settings: Some(crate::locks::budget::settings_from_row(
            crate::session::last_row(&answer),
        )),
        ..summary(project, parameters)
    })
}

/// The whole binary COPY data of `table`.
fn encoded(table: Table, project: &Project, parameters: &[(String, String)]) -> Vec<u8> {
    let mut buf = Vec::new();
    binary::header(&mut buf);
    rows::each_row(table, project, parameters, |values| {
        binary::row(&mut buf, values)
    });
    binary::trailer(&mut buf);
    buf
}

fn copy_binary(
    client: &mut Client,
    table: Table,
    project: &Project,
    parameters: &[(String, String)],
    counters: &Counters,
) -> Result<(), postgres::Error> {
    let files = table == Table::Source;
    let mut writer = client.copy_in(table.copy_statement("(FORMAT binary)").as_str())?;
    let mut buf = Vec::with_capacity(FLUSH_BYTES + (64 << 10));
    binary::header(&mut buf);
    // A write fails only once the connection is gone, and then finish() reports the
    // server's (or the connection's) error; so the first failed write just stops writing.
    let mut broken = false;
    rows::each_row(table, project, parameters, |values| {
        if broken {
            return;
        }
        binary::row(&mut buf, values);
        if files {
            counters.add_files(1);
        }
        if buf.len() >= FLUSH_BYTES {
            broken = writer.write_all(&buf).is_err();
            counters.add_bytes(buf.len() as u64);
            buf.clear();
        }
    });
    binary::trailer(&mut buf);
    if !broken {
        let _ = writer.write_all(&buf);
        counters.add_bytes(buf.len() as u64);
    }
    writer.finish().map(|_| ())
}
