//! The session on the target, from the server check to the clean close (steps 3 and 5 of
//! README "`pgmi-upload` reference").
//!
//! Invariants:
//! * Nothing user-supplied is spliced into SQL text: the bundle (files and parameters)
//!   travels as binary COPY data; the only spliced text is identifiers quoted by
//!   `ident.rs` and the integer kB of `PGMI_MAX_FILE_SIZE` (parsed and recomputed, never
//!   the variable's text).
//! * The close is two steps, [`end_transaction`] and [`release_locks`], so the test results
//!   (`testresults/`) are read after the final ROLLBACK and while the deploy lock is held.
//! * The deploy lock is the original pgmi's key (`hashtextextended('pgmi.deploy.' ||
//!   current_database(), 0)`), so this uploader and the original pgmi exclude each other.
//! * On an idle connection the close sends nothing that makes the server warn (a bare
//!   `ROLLBACK` would): it first asks whether a transaction is open.

use postgres::error::SqlState;
use postgres::{Client, SimpleQueryMessage};

use crate::cli::SessionChoice;
use crate::copy_binary;
use crate::exit::{Exit, Failure};
use crate::ident::quote_ident;
use crate::progress::{CountingWriter, Phase, Shape};

/// PostgreSQL 13 is the oldest server the extension is built for (pgrx 0.18 supports
/// 13–18); the original pgmi's floor was 11.
pub const MIN_SERVER_VERSION_NUM: i32 = 130_000;

/// First column of the first row of a simple query, as text.
fn scalar(client: &mut Client, sql: &str) -> Result<Option<String>, postgres::Error> {
    let messages = client.simple_query(sql)?;
    Ok(first_row(&messages)
        .and_then(|row| row.get(0))
        .map(str::to_string))
}

/// Refuse servers older than [`MIN_SERVER_VERSION_NUM`] (exit 10).
pub fn check_server_version(client: &mut Client) -> Result<(), Failure> {
    let text = scalar(
        client,
        "SELECT pg_catalog.current_setting('server_version_num')",
    )
    .map_err(|e| Failure::from_pg(Exit::General, "could not read the server version", &e))?
    .unwrap_or_default();
    check_version_num(&text)
}

/// [`check_server_version`] of a `server_version_num` already read.
fn check_version_num(text: &str) -> Result<(), Failure> {
    let num: i32 = text.trim().parse().map_err(|_| {
        Failure::new(
            Exit::General,
            format!("server reported an unreadable server_version_num {text:?}"),
        )
    })?;
    if num < MIN_SERVER_VERSION_NUM {
        return Err(Failure::config(format!(
            "this server reports PostgreSQL {} (server_version_num {num}), and pgmi requires 13 or newer",
            version_label(num)
        ))
        .with_hint("the pgmi extension is built for PostgreSQL 13 to 18"));
    }
    Ok(())
}

/// `120005` → `12.5`, `90624` → `9.6.24`.
fn version_label(num: i32) -> String {
    if num >= 100_000 {
        format!("{}.{}", num / 10_000, num % 10_000)
    } else {
        format!("{}.{}.{}", num / 10_000, (num / 100) % 100, num % 100)
    }
}

/// The per-database deploy lock's key, as the original pgmi derives it (so this client and
/// the original exclude each other), every operator qualified. A macro so that the statements
/// using it can stay `const` (`concat!`).
macro_rules! deploy_lock_key {
    () => {
        "pg_catalog.hashtextextended('pgmi.deploy.' OPERATOR(pg_catalog.||) pg_catalog.current_database(), 0)"
    };
}
pub(crate) use deploy_lock_key;

/// Refuse an old server ([`check_server_version`]) and take the per-database deploy lock
/// (exit 15 when another deploy holds it), in one round trip: both are asked in one
/// statement. A server too old for the lock's functions fails that statement; the version
/// is then read alone, to say so.
pub fn check_version_and_lock(client: &mut Client, db: &str) -> Result<(), Failure> {
    const SQL: &str = concat!(
        "SELECT pg_catalog.current_setting('server_version_num'), pg_catalog.pg_try_advisory_lock(",
        deploy_lock_key!(),
        ")"
    );
    let messages = match client.simple_query(SQL) {
        Ok(messages) => messages,
        Err(e) => {
            check_server_version(client)?;
            return Err(Failure::from_pg(
                Exit::General,
                "could not take the deploy lock",
                &e,
            ));
        }
    };
    let row = first_row(&messages);
    check_version_num(row.and_then(|r| r.get(0)).unwrap_or_default())?;
    if row.and_then(|r| r.get(1)) != Some("t") {
        return Err(Failure::new(
            Exit::ConcurrentDeploy,
            format!("concurrent deployment in progress: another pgmi deployment is already running against \"{db}\""),
        )
        .with_hint("wait for it to finish, then deploy again"));
    }
    Ok(())
}

/// Which kind of session a deploy builds (`--session`; README, "Managed PostgreSQL").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// The extension's loader; its schema, quoted.
    Extension { schema: String },
    /// Built by the client (`portable.rs`).
    Portable,
}

impl Kind {
    pub fn label(&self) -> &'static str {
        match self {
            Kind::Extension { .. } => "extension",
            Kind::Portable => "portable",
        }
    }
}

/// Whether this role could install the extension, in one round trip (asked only when it
/// is not installed: see [`installed_schema`]).
struct Availability {
    /// Its files are on the server (`pg_available_extensions`).
    available: bool,
    superuser: bool,
    /// Its control file says `trusted`: a role with CREATE on the database may install it.
    trusted: bool,
    /// CREATE on the current database.
    may_create: bool,
}

impl Availability {
    /// This role may run CREATE EXTENSION pgmi in the current database.
    fn creatable(&self) -> bool {
        self.available && (self.superuser || (self.trusted && self.may_create))
    }

    /// ... or in a database it creates now: the creator owns it, so it has CREATE there.
    fn creatable_in_new_database(&self) -> bool {
        self.available && (self.superuser || self.trusted)
    }
}

fn availability(client: &mut Client, rollback_first: bool) -> Result<Availability, Failure> {
    const PROBE: &str =
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions a WHERE a.name OPERATOR(pg_catalog.=) 'pgmi'), \
        (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) current_user), \
        (SELECT v.trusted FROM pg_catalog.pg_available_extension_versions v \
           JOIN pg_catalog.pg_available_extensions a ON a.name OPERATOR(pg_catalog.=) v.name \
                                                  AND a.default_version OPERATOR(pg_catalog.=) v.version \
          WHERE v.name OPERATOR(pg_catalog.=) 'pgmi'), \
        pg_catalog.has_database_privilege(pg_catalog.current_database(), 'CREATE')";
    let rows = if rollback_first {
        client.simple_query(&format!("ROLLBACK; {PROBE}"))
    } else {
        client.simple_query(PROBE)
    }
    .map_err(|e| Failure::from_pg(Exit::General, "could not look up the pgmi extension", &e))?;
    let row = first_row(&rows)
        .ok_or_else(|| Failure::new(Exit::General, "the extension probe returned no row"))?;
    let yes = |i: usize| row.get(i) == Some("t");
    Ok(Availability {
        available: yes(0),
        superuser: yes(1),
        trusted: yes(2),
        may_create: yes(3),
    })
}

/// The extension's schema when it is installed in this database. Cheap, unlike
/// [`availability`]: `pg_available_extensions` reads every control file in the server's
/// extension directory (about 9 ms measured).
fn installed_schema(client: &mut Client) -> Result<Option<String>, Failure> {
    const PROBE: &str = concat!(
        "SELECT n.nspname FROM ",
        pgmi_core::extension_schema_from!()
    );
    let rows = client
        .simple_query(PROBE)
        .map_err(|e| Failure::from_pg(Exit::General, "could not look up the pgmi extension", &e))?;
    Ok(first_row(&rows)
        .and_then(|row| row.get(0))
        .map(str::to_string))
}

/// The first row of a simple query's messages.
pub(crate) fn first_row(messages: &[SimpleQueryMessage]) -> Option<&postgres::SimpleQueryRow> {
    messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => Some(row),
        _ => None,
    })
}

/// `--session extension` and the target database does not exist yet: before creating it,
/// make sure the extension could be installed there, so that exit 10 still means nothing
/// was changed. Runs on the maintenance database.
pub fn check_extension_for_new_database(
    client: &mut Client,
    db: &str,
    user: &str,
) -> Result<(), Failure> {
    if availability(client, false)?.creatable_in_new_database() {
        return Ok(());
    }
    Err(Failure::config(format!(
        "--session extension: the pgmi extension could not be installed in the new database \"{db}\" by role \"{user}\""
    ))
    .with_hint("deploy with --session portable (needs only CONNECT and TEMPORARY), or install the extension's files on the server"))
}

/// Decide the session kind, installing the extension when that is the choice and it is
/// missing. Returns the kind and, for the progress output, why.
///
/// `installed` is the extension's schema as the pooler check found it; `begun`, whether
/// that check also opened the extension load's transaction block ([`BEGIN_UPLOAD`]), which
/// is rolled back here when the session is not an extension one after all.
pub fn choose(
    client: &mut Client,
    choice: SessionChoice,
    installed: Option<&str>,
    begun: bool,
    db: &str,
    user: &str,
) -> Result<(Kind, String), Failure> {
    if choice == SessionChoice::Portable {
        return Ok((Kind::Portable, "--session portable".into()));
    }
    if let Some(schema) = installed {
        let schema = quote_ident(schema).map_err(|e| Failure::new(Exit::General, e))?;
        let why = format!("the pgmi extension is installed in schema {schema}");
        return Ok((Kind::Extension { schema }, why));
    }
    let found = availability(client, begun)?;
    if found.creatable() {
        eprintln!("Installing extension pgmi");
        client
            .batch_execute("CREATE EXTENSION pgmi")
            .map_err(|e| extension_failure(&e, db, user))?;
        let schema = installed_schema(client)?.ok_or_else(|| {
            Failure::new(
                Exit::General,
                "CREATE EXTENSION pgmi succeeded but the extension is not listed in pg_extension",
            )
        })?;
        let schema = quote_ident(&schema).map_err(|e| Failure::new(Exit::General, e))?;
        let why = format!("installed the pgmi extension in schema {schema}");
        return Ok((Kind::Extension { schema }, why));
    }
    let why = if found.available {
        format!(
            "the pgmi extension is not installed in \"{db}\" and role \"{user}\" may not create it"
        )
    } else {
        "the pgmi extension is not available on this server".to_string()
    };
    if choice == SessionChoice::Extension {
        return Err(Failure::config(format!("--session extension: {why}")).with_hint(format!(
            "deploy with --session portable (needs only CONNECT and TEMPORARY), or have a superuser run, in database \"{db}\": CREATE EXTENSION pgmi;"
        )));
    }
    Ok((Kind::Portable, why))
}

fn extension_failure(err: &postgres::Error, db: &str, user: &str) -> Failure {
    let code = err.code();
    let failure = Failure::from_pg(Exit::General, "could not install the pgmi extension", err);
    if code == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
        return Failure { exit: Exit::InvalidConfig, ..failure }.with_hint(format!(
            "a superuser runs once, in database \"{db}\": CREATE EXTENSION pgmi;  or, since the extension is trusted: GRANT CREATE ON DATABASE \"{db}\" TO \"{user}\";"
        ));
    }
    // 3F000 "no schema has been selected to create in": the search_path names no schema
    // that exists (every schema dropped, or a typo in ALTER DATABASE … SET search_path).
    if code == Some(&SqlState::INVALID_SCHEMA_NAME) {
        return Failure { exit: Exit::InvalidConfig, ..failure }.with_hint(format!(
            "the search_path of database \"{db}\" names no schema that exists, so PostgreSQL has nowhere to put the extension: create the schema it names, fix it (ALTER DATABASE \"{db}\" SET search_path = …), or deploy with --session portable"
        ));
    }
    let missing_files = code == Some(&SqlState::FEATURE_NOT_SUPPORTED)
        || code == Some(&SqlState::UNDEFINED_FILE)
        || err.as_db_error().is_some_and(|db| {
            db.message()
                .contains("could not open extension control file")
        });
    if missing_files {
        return Failure { exit: Exit::InvalidConfig, ..failure }.with_hint(
            "the pgmi extension files are not installed on this server; install them (cargo pgrx install, or the package for this PostgreSQL major) on the database host",
        );
    }
    failure
}

/// The least `temp_buffers` a session gets, set before its first temporary table. Session
/// tables are temporary tables: their pages live in these buffers, in the backend's private
/// memory, and beyond them in temporary files (the kernel's page cache). 128 MB (before
/// issue 10) kept a 10,000-file project's rows in memory but made the backend's peak 3-4
/// times the project; measured with `scripts/bench.sh deploy` (median of 5, 15.6 MB
/// project), 16 MB and PostgreSQL's default of 8 MB deploy equally fast (266 and 265 ms),
/// and 8 MB keeps the peak below twice the project (1.8 against 2.4 times).
macro_rules! temp_buffers {
    () => {
        "8MB"
    };
}
pub(crate) use temp_buffers;
pub const TEMP_BUFFERS: &str = temp_buffers!();
/// The query that raises `temp_buffers` to [`TEMP_BUFFERS`] and never lowers it (a role or
/// database that set more keeps it), without its `SELECT`: `psql_script` runs it with
/// `PERFORM`.
macro_rules! raise_temp_buffers {
    () => {
        concat!(
            "pg_catalog.set_config('temp_buffers', '",
            crate::session::temp_buffers!(),
            "', false) WHERE pg_catalog.pg_size_bytes(pg_catalog.current_setting('temp_buffers')) \
             OPERATOR(pg_catalog.<) pg_catalog.pg_size_bytes('",
            crate::session::temp_buffers!(),
            "')"
        )
    };
}
pub(crate) use raise_temp_buffers;

/// The table the bundle is uploaded into. Its column is stored without compression: the
/// bundle is gzip already, and PostgreSQL's pglz gives up on such data only after working
/// through most of it (about 20 ms of a 10,000-file load's backend time, measured).
macro_rules! create_upload_table {
    () => {
        "CREATE TEMP TABLE _pgmi_upload (data bytea NOT NULL) ON COMMIT DROP; \
         ALTER TABLE pg_temp._pgmi_upload ALTER COLUMN data SET STORAGE EXTERNAL"
    };
}
pub const CREATE_UPLOAD_TABLE: &str = create_upload_table!();

/// The start of the extension's load: raise `temp_buffers` ([`raise_temp_buffers`]), begin
/// its transaction, which need not wait for the WAL flush (see `load_in_transaction`), and
/// create the upload table ([`CREATE_UPLOAD_TABLE`]).
pub const BEGIN_UPLOAD: &str = concat!(
    "SELECT ",
    raise_temp_buffers!(),
    "; BEGIN; SET LOCAL synchronous_commit = off; ",
    create_upload_table!()
);

/// What the loader reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadSummary {
    pub files: i64,
    pub sql_files: i64,
    pub test_files: i64,
    pub bytes: i64,
    pub parameters: i64,
    /// The session's settings, read in the load's last message (`None` when they were
    /// not).
    pub settings: Option<crate::locks::budget::Settings>,
}

/// The last row of a simple query's messages.
pub(crate) fn last_row(messages: &[SimpleQueryMessage]) -> Option<&postgres::SimpleQueryRow> {
    messages.iter().rev().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => Some(row),
        _ => None,
    })
}

/// Upload the bundle with binary COPY and load it, in one transaction; `begun`: its block
/// and upload table were opened already ([`BEGIN_UPLOAD`], sent with the pooler check).
#[allow(clippy::too_many_arguments)]
pub fn load_bundle(
    client: &mut Client,
    schema: &str,
    bundle: &[u8],
    max_file_kb: Option<u32>,
    db: &str,
    user: &str,
    verbose: bool,
    begun: bool,
) -> Result<LoadSummary, Failure> {
    let result = load_in_transaction(
        client,
        schema,
        bundle,
        max_file_kb,
        db,
        user,
        verbose,
        begun,
    );
    if result.is_err() {
        // The transaction is aborted (or the COPY was abandoned); end it before anything
        // else runs on the session. A failure here surfaces on the next statement.
        let _ = client.batch_execute("ROLLBACK");
    }
    result
}

#[allow(clippy::too_many_arguments)]
fn load_in_transaction(
    client: &mut Client,
    schema: &str,
    bundle: &[u8],
    max_file_kb: Option<u32>,
    db: &str,
    user: &str,
    verbose: bool,
    begun: bool,
) -> Result<LoadSummary, Failure> {
    let prep = |e: postgres::Error| {
        let failure = Failure::from_pg(Exit::General, "could not prepare the session", &e);
        if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
            // The session tables are temporary tables.
            return failure.with_hint(format!(
                "the role needs the TEMPORARY privilege: GRANT TEMPORARY ON DATABASE \"{db}\" TO \"{user}\";"
            ));
        }
        failure
    };
    // The temp_buffers setting must come before the session's first temporary table,
    // which is why it is here, on a fresh connection. The transaction creates only
    // temporary objects (their catalog rows die with the session, crash or not), so its
    // commit need not wait for the WAL flush: 3-5 ms less per deploy, measured. Both go
    // in one message with the upload table (one round trip instead of three), usually
    // the pooler check's.
    if !begun {
        client.batch_execute(BEGIN_UPLOAD).map_err(prep)?;
    }
    if let Some(kb) = max_file_kb {
        // PGMI_MAX_FILE_SIZE moves the server's per-file limit with the client's, for this
        // load only. `kb` is an integer computed by `prepare::server_max_file_kb`.
        client
            .batch_execute(&format!("SET LOCAL pgmi_loader.max_file_size = '{kb}kB'"))
            .map_err(|e| {
                Failure::from_pg(
                    Exit::General,
                    "could not apply PGMI_MAX_FILE_SIZE to the server",
                    &e,
                )
            })?;
    }
    let upload = |e: &dyn std::fmt::Display| {
        Failure::new(
            Exit::General,
            format!("could not upload the project bundle: {e}"),
        )
    };
    let phase = Phase::start(Shape {
        label: "Uploading",
        files: false,
        total_bytes: Some(bundle.len() as u64),
        rate: true,
    });
    {
        let mut writer = client
            .copy_in("COPY pg_temp._pgmi_upload (data) FROM STDIN (FORMAT binary)")
            .map_err(prep)?;
        let mut counted = CountingWriter {
            inner: &mut writer,
            counters: phase.counters(),
        };
        copy_binary::write_single_bytea(&mut counted, bundle).map_err(|e| upload(&e))?;
        writer.finish().map_err(|e| {
            Failure::from_pg(Exit::General, "could not upload the project bundle", &e)
        })?;
    }
    drop(phase);
    crate::timings::lap("upload");

    // One message: the load, its COMMIT (which does not run if the load fails) and the
    // settings the deploy reads next. With --verbose, pgmi_load's own timing line (DEBUG1)
    // is asked for first.
    let sql = format!(
        "{}SELECT files, sql_files, test_files, bytes, parameters FROM {schema}.pgmi_load((SELECT data FROM pg_temp._pgmi_upload)); COMMIT; {}",
        if verbose {
            "SET LOCAL client_min_messages = 'debug1'; "
        } else {
            ""
        },
        crate::locks::budget::SETTINGS_SQL
    );
    let phase = Phase::start(Shape::SERVER);
    phase.counters().add_bytes(bundle.len() as u64);
    let rows = client.simple_query(&sql).map_err(|e| load_failure(&e))?;
    let row =
        first_row(&rows).ok_or_else(|| Failure::new(Exit::General, "pgmi_load returned no row"))?;
    let int = |i: usize| -> Result<i64, Failure> {
        row.get(i).and_then(|v| v.parse().ok()).ok_or_else(|| {
            Failure::new(
                Exit::General,
                format!("pgmi_load returned an unreadable column {i}"),
            )
        })
    };
    let summary = LoadSummary {
        files: int(0)?,
        sql_files: int(1)?,
        test_files: int(2)?,
        bytes: int(3)?,
        parameters: int(4)?,
        settings: Some(crate::locks::budget::settings_from_row(last_row(&rows))),
    };
    drop(phase);
    Ok(summary)
}

/// Build the portable session (`portable.rs`) from the validated project, in one
/// transaction.
pub fn load_portable(
    client: &mut Client,
    project: &pgmi_core::project::Project,
    parameters: &[(String, String)],
    db: &str,
    user: &str,
    verbose: bool,
) -> Result<LoadSummary, Failure> {
    let started = std::time::Instant::now();
    let phase = Phase::start(Shape::counting("Loading"));
    // temp_buffers as for the extension (load_in_transaction): before the session's first
    // temporary table, in the load's first message.
    let summary = crate::portable::load_counted(client, project, parameters, &phase, true)
        .map_err(|e| portable_failure(&e, db, user))?;
    drop(phase);
    crate::report::verbose(
        verbose,
        &format!(
            "portable session: {} files, {} bytes loaded in {:.1} ms",
            summary.files,
            summary.bytes,
            started.elapsed().as_secs_f64() * 1000.0
        ),
    );
    Ok(summary)
}

fn portable_failure(err: &postgres::Error, db: &str, user: &str) -> Failure {
    if err.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
        return Failure::from_pg(Exit::General, "could not prepare the session", err).with_hint(
            format!(
                "the role needs the TEMPORARY privilege: GRANT TEMPORARY ON DATABASE \"{db}\" TO \"{user}\";"
            ),
        );
    }
    load_failure(err)
}

/// A loader error: bad input (classes 22, 23, 54: a file or parameter the extension
/// refused, or a limit) is a configuration error; anything else is unclassified.
fn load_failure(err: &postgres::Error) -> Failure {
    let exit = match err.code().map(|c| &c.code()[..2]) {
        Some("22" | "23" | "54") => Exit::InvalidConfig,
        _ => Exit::General,
    };
    Failure::from_pg(exit, "loading the project failed", err)
}

/// End whatever deploy.sql left open. Runs on every path once the lock was taken, before
/// the test results are read and [`release_locks`]; its own failures are reported only in
/// verbose mode. Returns whether a transaction block was open (and rolled back).
pub fn end_transaction(client: &mut Client, verbose: bool) -> bool {
    if client.is_closed() {
        return false;
    }
    // statement_timestamp() equals transaction_timestamp() for the first statement of a
    // transaction, so "different" means an explicit transaction block is open; in an
    // aborted block the query itself fails with 25P02.
    let open = match retry_once_if_cancelled(client, |c| {
        scalar(
            c,
            "SELECT pg_catalog.statement_timestamp() OPERATOR(pg_catalog.<>) pg_catalog.transaction_timestamp()",
        )
    }) {
        Ok(value) => value.as_deref() == Some("t"),
        Err(_) => true,
    };
    if open {
        if let Err(e) = retry_once_if_cancelled(client, |c| c.batch_execute("ROLLBACK")) {
            crate::report::verbose(verbose, &format!("ROLLBACK at close failed: {e}"));
        }
    }
    open
}

/// How a deploy's session ended ([`close`]).
pub struct Closing {
    /// deploy.sql ended inside a transaction block, which was rolled back.
    pub left_open: bool,
    /// The test results; `None` when the session was never ready or the connection is gone.
    pub tests: Option<Result<Vec<crate::testresults::TestStep>, String>>,
}

/// [`close`]'s one message: is a transaction block open, the test results, and the
/// release of the advisory locks, which runs only when no block is open (an open block is
/// rolled back first and the locks released after it, so that no other deploy starts while
/// the block's locks are still held). Within one message `statement_timestamp()` is the
/// message's arrival, equal to `transaction_timestamp()` unless an earlier message began a
/// block.
const CLOSE_SQL: &str = concat!(
    "SELECT pg_catalog.statement_timestamp() OPERATOR(pg_catalog.<>) pg_catalog.transaction_timestamp(); ",
    crate::testresults::fetch::results_sql!(),
    "; ",
    "SELECT pg_catalog.pg_advisory_unlock_all() WHERE pg_catalog.statement_timestamp() OPERATOR(pg_catalog.=) pg_catalog.transaction_timestamp()"
);

/// The end of a deploy's session: roll back a transaction block deploy.sql left open,
/// read the test results (they live in backend memory and survive the ROLLBACK; read while
/// the deploy lock is still held, on the same session), release the advisory locks. One
/// round trip when deploy.sql ended outside a block; anything unusual (an aborted block,
/// no results function, a cancel landing here) goes one statement at a time instead.
pub fn close(client: &mut Client, session_ready: bool, verbose: bool) -> Closing {
    if client.is_closed() {
        return Closing {
            left_open: false,
            tests: None,
        };
    }
    if session_ready {
        if let Ok(messages) = client.simple_query(CLOSE_SQL) {
            use crate::testresults::fetch::{parse_rows, text_row, TextRow};
            // The rows of each statement, in order.
            let mut statements: Vec<Vec<TextRow>> = vec![Vec::new()];
            for message in &messages {
                match message {
                    SimpleQueryMessage::Row(row) => {
                        if let Some(rows) = statements.last_mut() {
                            rows.push(text_row(row));
                        }
                    }
                    SimpleQueryMessage::CommandComplete(_) => statements.push(Vec::new()),
                    _ => {}
                }
            }
            let open = statements
                .first()
                .and_then(|rows| rows.first())
                .and_then(|row| row.first().cloned().flatten())
                .as_deref()
                == Some("t");
            let tests = Some(parse_rows(statements.get(1).map_or(&[][..], Vec::as_slice)));
            if open {
                if let Err(e) = retry_once_if_cancelled(client, |c| c.batch_execute("ROLLBACK")) {
                    crate::report::verbose(verbose, &format!("ROLLBACK at close failed: {e}"));
                }
                release_locks(client, verbose);
            }
            return Closing {
                left_open: open,
                tests,
            };
        }
    }
    let left_open = end_transaction(client, verbose);
    let tests = (session_ready && !client.is_closed()).then(|| crate::testresults::fetch(client));
    release_locks(client, verbose);
    Closing { left_open, tests }
}

/// Release every session advisory lock (the deploy lock and any deploy.sql took): the
/// last statement of the session.
pub fn release_locks(client: &mut Client, verbose: bool) {
    if client.is_closed() {
        return;
    }
    if let Err(e) = retry_once_if_cancelled(client, |c| {
        c.batch_execute("SELECT pg_catalog.pg_advisory_unlock_all()")
    }) {
        crate::report::verbose(verbose, &format!("releasing advisory locks failed: {e}"));
    }
}

/// A cancel request sent for the last deploy statement may land on the first clean-up
/// statement instead (PostgreSQL handles cancels asynchronously); one retry covers it.
pub fn retry_once_if_cancelled<T>(
    client: &mut Client,
    mut f: impl FnMut(&mut Client) -> Result<T, postgres::Error>,
) -> Result<T, postgres::Error> {
    match f(client) {
        Err(e) if e.code() == Some(&SqlState::QUERY_CANCELED) => f(client),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::version_label;

    #[test]
    fn version_labels() {
        assert_eq!(version_label(150004), "15.4");
        assert_eq!(version_label(120000), "12.0");
        assert_eq!(version_label(90624), "9.6.24");
    }
}
