//! The `deploy` command from start to exit code (the steps are listed in README
//! "`pgmi-upload` reference").
//!
//! Order: offline checks and packing (`prepare.rs`, `conninfo.rs`) → connect, creating the
//! target when missing (`connect.rs`) → server check, deploy lock, extension, upload and
//! load (`session.rs`) → deploy.sql (`execute.rs`) → clean close, reading the test results
//! between the final ROLLBACK and the unlock (`testresults/`) → `--test-report` files
//! (`testreport/`) → test summary, then the summary line or `--json` (`report.rs`). Once the
//! lock is held, the close runs on every path.
//!
//! Exit-code precedence (as in the original pgmi): interrupted (130) beats everything; the deadline
//! (16) beats "execution failed" (13) and unclassified errors (1), but not the
//! configuration, connection or concurrency classes, which are decided before it.

use std::time::Instant;

use postgres::Client;

use crate::cli::{BundleArgs, BundleSession, Cli, Command, DeployArgs, SessionChoice};
use crate::connect::Connector;
use crate::conninfo::{self, ConnInfo};
use crate::duration;
use crate::execute::{self, Progress};
use crate::exit::{Exit, Failure};
use crate::prepare::{self, Packed};
use crate::psql_script;
use crate::redact::redact;
use crate::report::{self, DeployReport, Style};
use crate::session::{self, Kind};
use crate::testreport::{self, ReportSpec};
use crate::testresults;
use crate::watchdog::Watchdog;

/// Run a parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Version => {
            report::print_stdout(&format!(
                "{} {}\n{}\n",
                crate::commands::program_name(),
                crate::VERSION_TEXT,
                "Source and documentation: the README of the pgmi repository"
            ));
            Exit::Success.code()
        }
        Command::Deploy(args) => deploy_command(&args).code(),
        Command::Bundle(args) => bundle_command(&args).code(),
        Command::Info(args) => crate::commands::info::run(&args).code(),
        Command::Init(args) => crate::commands::init::init(&args).code(),
        Command::Templates(command) => crate::commands::init::templates(&command).code(),
        Command::Metadata(command) => crate::commands::metadata::run(&command).code(),
        Command::Ai { topic } => crate::commands::ai(topic.as_deref()).code(),
        Command::Completion { shell } => crate::commands::completion(shell).code(),
        Command::Man { dir } => crate::commands::man(dir.as_deref()).code(),
    }
}

fn deploy_command(args: &DeployArgs) -> Exit {
    let start = Instant::now();
    crate::timings::start(start);
    // Progress lines for long phases: on a terminal, never with --json (progress.rs).
    crate::progress::enable(!args.json);
    // A bad --test-report or --compat value is a configuration error, found before
    // anything else.
    let specs = match testreport::parse_specs(&args.test_reports) {
        Ok(specs) => specs,
        Err(failure) => return finish(args, None, Err(failure)),
    };
    if let Err(failure) = check_compat(args.compat.as_deref()) {
        return finish(args, None, Err(failure));
    }
    let (report, result) = deploy(args, start);
    if let Some(report) = &report {
        eprint!("{}", testresults::summary(&report.tests, args.verbose));
    }
    let result = write_reports(&specs, report.as_ref(), result);
    finish(args, report.as_ref(), result)
}

/// `bundle`: the offline half of `deploy` (the same checks, exit codes and rewrite), written
/// as a psql script instead of sent.
fn bundle_command(args: &BundleArgs) -> Exit {
    match write_bundle(args) {
        Ok(()) => Exit::Success,
        Err(failure) => {
            eprint!("{}", report::error_block(&failure));
            failure.exit
        }
    }
}

fn write_bundle(args: &BundleArgs) -> Result<(), Failure> {
    let env = conninfo::process_env;
    // pgmi.yaml's params and lock_timeout are the lowest-precedence source, as for deploy.
    let yaml = crate::config::load(&args.path)?;
    let lock_timeout = match &args.lock_timeout {
        Some(text) => crate::locks::parse_lock_timeout(text)
            .map_err(|e| Failure::config(format!("--lock-timeout: {e}")))
            .map(Some)?,
        None => yaml
            .as_ref()
            .and_then(|c| c.lock_timeout.as_ref())
            .map(|t| t.value),
    };
    let mut pairs = yaml.map(|c| c.params).unwrap_or_default();
    pairs.extend(prepare::collect_params(&args.params_files, &args.params)?);
    let params = prepare::finalize_params(pairs)?;
    if let Some((key, _)) = params
        .iter()
        .find(|(k, _)| pgmi_core::params::looks_secret(k))
    {
        return Err(Failure::config(format!(
            "parameter \"{key}\" looks secret; pgmi-upload bundle does not write such values into a script in clear"
        ))
        .with_hint(format!(
            // Not `{key}=VAR`: the redaction of `password=…` would hide the example.
            "pass it when the script runs: --param-var KEY=VAR, with KEY {key} and VAR the name of a psql variable, then psql -v VAR=<value> -f <script>"
        )));
    }
    let param_vars = prepare::param_vars(&args.param_vars, &params)?;
    let script = prepare::read_script(&args.path)?;
    let limits = prepare::limits(&env)?;
    let mut packed = prepare::pack(
        &args.path,
        &limits,
        params,
        args.session == BundleSession::Extension,
    )?;
    let rewritten = pgmi_core::macros::rewrite(&script);
    let units = pgmi_core::split::split(&rewritten.text);
    let project_name = args
        .path
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| args.path.display().to_string());
    let text = {
        let bundle = match args.session {
            BundleSession::Extension => Some(packed.bundle()?.to_vec()),
            BundleSession::Portable => {
                packed.hashed_project();
                None
            }
        };
        let session = match &bundle {
            Some(bundle) => psql_script::Session::Extension { bundle },
            None => psql_script::Session::Portable {
                project: &packed.project,
            },
        };
        psql_script::write(&psql_script::Parts {
            session,
            params: &packed.params,
            param_vars: &param_vars,
            units: &units,
            lock_timeout,
            files: packed.files,
            project_name: &project_name,
        })
    };
    match &args.output {
        Some(path) => std::fs::write(path, text).map_err(|e| {
            Failure::new(
                Exit::General,
                format!("could not write {}: {e}", path.display()),
            )
        })?,
        None => report::print_stdout(&text),
    }
    eprintln!(
        "pgmi: wrote a deploy script ({} session): {} file(s), {} execution unit(s), {} test macro(s) rewritten",
        match args.session {
            BundleSession::Extension => "extension",
            BundleSession::Portable => "portable",
        },
        packed.files,
        units.len(),
        rewritten.count
    );
    Ok(())
}

/// `--compat`: the session-API contract version. Only 1 exists.
fn check_compat(compat: Option<&str>) -> Result<(), Failure> {
    match compat.map(str::trim) {
        None | Some("1") => Ok(()),
        Some(other) => Err(Failure::config(format!(
            "unsupported --compat {other:?}: this version of pgmi-upload provides session-API contract 1 only"
        ))
        .with_hint("omit --compat, or pass --compat 1")),
    }
}

/// The summary line or the `--json` envelope, then the error block; the exit code.
fn finish(args: &DeployArgs, report: Option<&DeployReport>, result: Result<(), Failure>) -> Exit {
    let exit = match &result {
        Ok(()) => Exit::Success,
        Err(failure) => failure.exit,
    };
    if args.json {
        report::print_stdout(&report::json_envelope(report, result.as_ref().err(), exit));
    } else if let Some(report) = report {
        eprintln!(
            "{}",
            report::summary_line(report, result.as_ref().err(), Style::detect())
        );
    }
    if let Err(failure) = &result {
        eprint!("{}", report::error_block(failure));
    }
    exit
}

/// Write the `--test-report` files once the deploy ran, whatever its outcome (with no
/// test results they are empty reports). A write failure fails a successful deploy (exit
/// 1); after a failed deploy it is printed as a warning, and the deploy's own failure keeps
/// deciding the exit code.
fn write_reports(
    specs: &[ReportSpec],
    report: Option<&DeployReport>,
    result: Result<(), Failure>,
) -> Result<(), Failure> {
    if specs.is_empty() {
        return result;
    }
    let steps = report.map_or(&[][..], |r| r.tests.as_slice());
    match (testreport::write_all(specs, steps), result) {
        (Ok(()), result) => result,
        (Err(write), Ok(())) => Err(write),
        (Err(write), Err(deploy)) => {
            eprintln!("pgmi: warning: {}", redact(&write.message));
            Err(deploy)
        }
    }
}

/// Everything offline, then the session. The report exists once the offline part passed
/// (the original pgmi's "deploy workflow entered").
fn deploy(args: &DeployArgs, start: Instant) -> (Option<DeployReport>, Result<(), Failure>) {
    // The project's .env (into the environment) and pgmi.yaml come first, .env before
    // pgmi.yaml, as in the original pgmi: pgmi.yaml may hold the timeout the watchdog needs.
    let files = match crate::config::ProjectFiles::load(&args.path) {
        Ok(files) => files,
        Err(failure) => return (None, Err(failure)),
    };
    // --timeout > pgmi.yaml `timeout` (already validated when read) > 3m.
    let timeout_text = args
        .timeout
        .as_deref()
        .or(files.timeout().map(|t| t.text.as_str()))
        .unwrap_or(crate::config::DEFAULT_TIMEOUT);
    let timeout = match duration::parse_timeout(timeout_text) {
        Ok(timeout) => timeout,
        Err(message) => return (None, Err(Failure::config(message))),
    };
    // --lock-timeout > pgmi.yaml `lock_timeout` (validated when read) > the server's.
    let lock_timeout = match args.lock_timeout.as_deref() {
        // An explicit 0 is kept as zero: it turns off a timeout the role or database sets.
        Some(text) => match crate::locks::parse_lock_timeout(text) {
            Ok(value) => Some(value.unwrap_or_default()),
            Err(message) => {
                return (
                    None,
                    Err(Failure::config(format!("--lock-timeout: {message}"))),
                )
            }
        },
        None => files.lock_timeout().map(|t| t.value.unwrap_or_default()),
    };
    let lock_options = crate::locks::LockOptions {
        lock_timeout,
        retries: args.retries,
    };
    let watchdog = Watchdog::start(timeout.map(|t| start + t));
    let offline = prepare_offline(args, &files);
    let (mut info, mut packed, script, mut tls) = match offline {
        Ok(parts) => parts,
        Err(failure) => return (None, Err(classify(failure, &watchdog, args))),
    };
    // Google Cloud SQL without a host: the Admin API says where the instance is.
    match crate::cloud::locate_instance(&mut info, args.verbose) {
        Ok(Some((located, described))) => {
            report::verbose(args.verbose, &described);
            tls = located;
        }
        Ok(None) => {}
        Err(failure) => return (None, Err(classify(failure, &watchdog, args))),
    }
    if args.overwrite {
        if let Err(failure) =
            crate::overwrite::refuse_protected(&info.target_db, &info.maintenance_db)
        {
            return (None, Err(failure));
        }
    }
    // The original pgmi's `CALL pgmi_test(...)` macro forms become calls of the procedure
    // every session has, pg_temp.pgmi_test (README, "Tests inside the deploy"); line
    // numbers are kept.
    let rewritten = pgmi_core::macros::rewrite(&script);
    if rewritten.count > 0 {
        report::verbose(
            args.verbose,
            &format!(
                "{} CALL pgmi_test(...) statement(s) rewritten as CALL pg_temp.pgmi_test(...)",
                rewritten.count
            ),
        );
    }
    let units = pgmi_core::split::split(&rewritten.text);
    report::verbose(
        args.verbose,
        &format!("{} execution unit(s) in deploy.sql", units.len()),
    );

    let mut report = DeployReport {
        database: info.target_db.clone(),
        test_macros: rewritten.count,
        ..DeployReport::default()
    };
    let mut progress = Progress::default();
    let connector = Connector {
        info: &info,
        start,
        verbose: args.verbose,
        deadline: timeout.map(|t| start + t),
        tls: &tls,
    };
    let result = check_flags(&watchdog, args).and_then(|()| {
        online(
            &connector,
            args.overwrite.then_some(args.force),
            &mut packed,
            args.session,
            &rewritten.text,
            &units,
            &watchdog,
            &mut report,
            &mut progress,
            args.verbose,
            &lock_options,
        )
    });
    watchdog.stop();
    report.units = progress.units;
    report.units_committed = progress.committed;
    report.outcome_unknown = progress.outcome_unknown;
    report.elapsed = start.elapsed();
    report.phases = crate::timings::phases();
    report::verbose(
        args.verbose,
        &format!("phases: {}", crate::timings::describe(&report.phases)),
    );
    let result = match result {
        Ok(()) if watchdog.interrupted() => Err(Failure::new(Exit::Interrupted, "interrupted")),
        Ok(()) => Ok(()),
        Err(failure) => Err(classify(failure, &watchdog, args)),
    };
    (Some(report), result)
}

/// Offline steps, in the original pgmi's order (so the same first error is reported):
/// parameters (format), connection and target, parameters (keys and values), deploy.sql,
/// project scan and bundle.
fn prepare_offline(
    args: &DeployArgs,
    files: &crate::config::ProjectFiles,
) -> Result<(ConnInfo, Packed, String, crate::tls::Tls), Failure> {
    let env = conninfo::process_env;
    if !files.dotenv_applied.is_empty() {
        report::verbose(
            args.verbose,
            &format!(
                "set from the project's .env: {}",
                files.dotenv_applied.join(", ")
            ),
        );
    }
    // Later wins: pgmi.yaml's params < --params-file (in order) < --param, as in the original
    // pgmi.
    let mut pairs = files.params();
    let yaml_count = pairs.len();
    pairs.extend(prepare::collect_params(&args.params_files, &args.params)?);
    let info = files.resolve(&args.conn)?;
    for secret in [&info.password, &info.tls.password].into_iter().flatten() {
        crate::redact::register_secret(secret);
    }
    report::verbose(args.verbose, &format!("connection: {}", info.describe()));
    let params = prepare::finalize_params(pairs)?;
    let param_count = params.len();
    report::verbose(
        args.verbose,
        &format!(
            "{} parameter(s) from pgmi.yaml ({} key(s)), {} parameters file(s) and {} --param flag(s)",
            param_count,
            yaml_count,
            args.params_files.len(),
            args.params.len()
        ),
    );
    // The TLS context (about 35 ms: OpenSSL parses the system root store) is built on a
    // thread of its own while the project is read; its errors still come after the
    // project's, as before. A Unix socket never uses TLS (tls::connect), so nothing is
    // built for one. Not a scoped thread: an early error must not wait for it.
    let tls = {
        let settings = info.tls.clone();
        let sockets_only = info.host.starts_with('/');
        std::thread::spawn(move || crate::tls::prepare(&settings, sockets_only))
    };
    let script = prepare::read_script(&args.path)?;
    let limits = prepare::limits(&env)?;
    crate::timings::lap("config");
    let mut packed = prepare::pack(
        &args.path,
        &limits,
        params,
        args.session != SessionChoice::Portable,
    )?;
    if env("PGMI_MAX_FILE_SIZE").is_some() {
        // The extension enforces its own per-file limit; raise (or lower) it to match.
        packed.server_max_file_kb = Some(prepare::server_max_file_kb(limits.max_file_bytes));
    }
    report::verbose(args.verbose, &format!("scanned {} file(s)", packed.files));
    if args.session == SessionChoice::Extension {
        // Known to be needed: pack it now, so an oversized bundle fails before connecting.
        let bytes = packed.bundle()?.len();
        crate::timings::lap("pack");
        report::verbose(args.verbose, &format!("bundle is {bytes} bytes"));
    }
    let tls = tls
        .join()
        .map_err(|_| Failure::new(Exit::General, "preparing TLS failed unexpectedly"))??;
    report::verbose(args.verbose, &crate::tls::describe(&tls));
    crate::timings::lap("config");
    Ok((info, packed, script, tls))
}

/// Connect, prepare the session, run deploy.sql, close.
#[allow(clippy::too_many_arguments)]
fn online(
    connector: &Connector<'_>,
    overwrite: Option<bool>,
    packed: &mut Packed,
    choice: SessionChoice,
    script: &str,
    units: &[pgmi_core::split::Unit],
    watchdog: &Watchdog,
    report: &mut DeployReport,
    progress: &mut Progress,
    verbose: bool,
    lock_options: &crate::locks::LockOptions,
) -> Result<(), Failure> {
    let info = connector.info;
    // Run on the maintenance database before a missing target is created.
    let before_create = |c: &mut Client| -> Result<(), Failure> {
        session::check_server_version(c)?;
        if choice == SessionChoice::Extension {
            session::check_extension_for_new_database(c, &info.target_db, &info.user)?;
        }
        Ok(())
    };
    if let Some(force) = overwrite {
        let interactive = crate::approve::interactive(&conninfo::process_env);
        crate::overwrite::run(connector, force, interactive, watchdog, &before_create)?;
    }
    let mut client = connector.connect_target(&before_create)?;
    crate::timings::lap("connect");
    watchdog.set_client(&client, crate::tls::Canceller::new(connector.tls));
    eprintln!("Preparing session: scanning files, loading parameters");
    let db = &connector.info.target_db;
    session::check_version_and_lock(&mut client, db)?;
    if verbose {
        // LOG lines (statement logging, say) from here on; DEBUG lines once the session is
        // ready, so the upload's housekeeping does not bury the output. Not in the check's
        // message: a block begun there may be rolled back, and the setting with it.
        client
            .batch_execute("SET client_min_messages = 'log'")
            .map_err(|e| Failure::from_pg(Exit::General, "could not enable debug notices", &e))?;
    }
    // A transaction-mode pooler is refused before anything is loaded (pooler.rs); the
    // check also yields the backend pid the lock watcher looks at, and whether the
    // extension is installed. The extension's load most likely follows: its transaction
    // and upload table start in the check's message.
    let then = (choice != SessionChoice::Portable).then_some(session::BEGIN_UPLOAD);
    let probe = match crate::pooler::check(&mut client, verbose, then) {
        Ok(probe) => probe,
        Err(failure) => {
            watchdog.stop();
            session::release_locks(&mut client, verbose);
            return Err(failure);
        }
    };
    let watcher = crate::locks::Watcher::new(connector, probe.pid, lock_options.lock_timeout);
    let mut session_ready = false;
    let result = locked(
        &mut client,
        connector,
        probe.extension_schema.as_deref(),
        probe.begun,
        packed,
        choice,
        script,
        units,
        watchdog,
        report,
        progress,
        verbose,
        &mut session_ready,
        lock_options,
        &watcher,
    );
    // Stop cancelling before the clean-up statements run.
    watchdog.stop();
    let closing = session::close(&mut client, session_ready, verbose);
    // A deploy.sql that ends inside a transaction block did not commit its last part: say
    // so and fail, rather than report success for work that was rolled back (a deliberate
    // difference from the original, which rolls back silently).
    let result = match result {
        Ok(()) if closing.left_open => Err(Failure::new(
            Exit::ExecutionFailed,
            "deploy.sql ended inside an open transaction; it was rolled back, so the statements since its BEGIN were not committed",
        )
        .with_hint("end deploy.sql with COMMIT (or an explicit ROLLBACK if not committing is intended)")),
        other => other,
    };
    match closing.tests {
        Some(Ok(steps)) => {
            report::verbose(verbose, &format!("{} test result row(s)", steps.len()));
            report.tests = steps;
        }
        Some(Err(e)) => report::verbose(verbose, &format!("could not read the test results: {e}")),
        None => {}
    }
    crate::timings::lap("close");
    result
}

#[allow(clippy::too_many_arguments)]
fn locked(
    client: &mut Client,
    connector: &Connector<'_>,
    installed: Option<&str>,
    begun: bool,
    packed: &mut Packed,
    choice: SessionChoice,
    script: &str,
    units: &[pgmi_core::split::Unit],
    watchdog: &Watchdog,
    report: &mut DeployReport,
    progress: &mut Progress,
    verbose: bool,
    session_ready: &mut bool,
    lock_options: &crate::locks::LockOptions,
    watcher: &crate::locks::Watcher,
) -> Result<(), Failure> {
    let info = connector.info;
    let (kind, why) = session::choose(
        client,
        choice,
        installed,
        begun,
        &info.target_db,
        &info.user,
    )?;
    eprintln!("Session: {} ({why})", kind.label());
    report.session = Some(kind.label());
    crate::timings::lap("session");
    match &kind {
        Kind::Extension { .. } => {
            let bytes = packed.bundle()?.len();
            report::verbose(verbose, &format!("bundle is {bytes} bytes"));
        }
        Kind::Portable => {
            packed.hashed_project();
        }
    }
    // The lock estimate lexes every SQL file (tens of milliseconds for a large project):
    // it runs on a thread of its own while the server loads, when this one only waits.
    let packed: &Packed = packed;
    let (loaded, estimate) = std::thread::scope(|scope| {
        let estimate = scope.spawn(|| crate::locks::budget::estimate(&packed.project, script));
        let loaded = match &kind {
            Kind::Extension { schema } => session::load_bundle(
                client,
                schema,
                packed.built_bundle(),
                packed.server_max_file_kb,
                &info.target_db,
                &info.user,
                verbose,
                // the block choose() did not roll back
                begun && installed.is_some(),
            ),
            Kind::Portable => session::load_portable(
                client,
                &packed.project,
                &packed.params,
                &info.target_db,
                &info.user,
                verbose,
            ),
        };
        (loaded, estimate.join().ok())
    });
    let loaded = loaded?;
    *session_ready = true;
    crate::timings::lap("load");
    // Debug notices from here on: deploy.sql's own. (The load shows only its DEBUG1
    // timing line, not the upload table's housekeeping.)
    if verbose {
        client
            .batch_execute("SET client_min_messages = 'debug'")
            .map_err(|e| Failure::from_pg(Exit::General, "could not enable debug notices", &e))?;
    }
    report.files_loaded = loaded.files;
    eprintln!("Loaded {} files", loaded.files);
    if loaded.parameters > 0 {
        eprintln!("Loaded {} parameters", loaded.parameters);
    }
    report::verbose(
        verbose,
        &format!(
            "loaded {} SQL file(s), {} test file(s), {} bytes",
            loaded.sql_files, loaded.test_files, loaded.bytes
        ),
    );
    crate::locks::apply(client, lock_options)?;
    if let Some(timeout) = lock_options.lock_timeout {
        report::verbose(
            verbose,
            &format!(
                "lock_timeout = {} ms, up to {} retry(ies) per unit",
                timeout.as_millis(),
                lock_options.retries
            ),
        );
    }
    // The split assumed PostgreSQL's default standard_conforming_strings = on; a server
    // (or database, or role) that turns it off reads backslashes in '' strings differently,
    // so split again the way this session will scan the script. The setting and the
    // lock-table settings were read in the load's last message.
    let (scs_off, budget) = match loaded.settings {
        Some(settings) => settings,
        None => crate::locks::budget::read_settings(client).map_err(|e| {
            Failure::from_pg(
                Exit::General,
                "could not read standard_conforming_strings",
                &e,
            )
        })?,
    };
    let resplit;
    let units = if scs_off {
        resplit = pgmi_core::split::split_with(
            script,
            pgmi_core::split::Options {
                standard_conforming_strings: false,
            },
        );
        report::verbose(
            verbose,
            &format!(
                "standard_conforming_strings is off here: deploy.sql split again ({} execution unit(s))",
                resplit.len()
            ),
        );
        &resplit[..]
    } else {
        units
    };
    let budget = lock_budget(budget, estimate, report, verbose);
    crate::timings::lap("estimate");
    eprintln!("Executing deploy.sql");
    let result = execute::run_units(
        client,
        units,
        watchdog,
        progress,
        &mut execute::Locking {
            options: *lock_options,
            watcher: Some(watcher),
            report: &mut report.locks,
            budget,
        },
    );
    crate::timings::lap("deploy.sql");
    result
}

/// The settings that size the shared lock table (`None` when they could not be read), and
/// a warning when the project's estimated locks come near it (`locks/budget.rs`).
fn lock_budget(
    budget: Option<crate::locks::budget::Budget>,
    estimate: Option<crate::locks::budget::Estimate>,
    report: &mut DeployReport,
    verbose: bool,
) -> Option<crate::locks::budget::Budget> {
    use crate::locks::budget;
    let Some(budget) = budget else {
        report::verbose(verbose, "could not read the lock-table settings");
        return None;
    };
    // None only if the estimating thread panicked: the estimate is advice, the deploy goes on.
    let Some(estimate) = estimate else {
        return Some(budget);
    };
    report::verbose(
        verbose,
        &format!(
            "lock estimate: {} relation statement(s) × {} = {} lock(s); lock table {}",
            estimate.relation_statements,
            estimate.locks_per_statement,
            estimate.locks,
            budget.formula()
        ),
    );
    if budget::over_budget(&estimate, &budget) {
        eprintln!("pgmi: warning: {}", budget::warning(&estimate, &budget));
        report.lock_estimate = Some(budget::Report {
            estimate,
            budget,
            lock_table: budget.capacity(),
        });
    }
    Some(budget)
}

/// Before the session starts work: a Ctrl-C or deadline during the offline part.
fn check_flags(watchdog: &Watchdog, args: &DeployArgs) -> Result<(), Failure> {
    if watchdog.interrupted() {
        return Err(Failure::new(Exit::Interrupted, "interrupted"));
    }
    if watchdog.timed_out() {
        return Err(timeout_failure(
            Failure::new(Exit::Timeout, "preparing the project took too long"),
            args,
        ));
    }
    Ok(())
}

/// Apply the precedence of Ctrl-C and the deadline to a failure.
fn classify(failure: Failure, watchdog: &Watchdog, args: &DeployArgs) -> Failure {
    if watchdog.interrupted() {
        if failure.exit == Exit::Interrupted {
            return failure;
        }
        return Failure {
            exit: Exit::Interrupted,
            ..failure
        }
        .context("interrupted");
    }
    if watchdog.timed_out() && matches!(failure.exit, Exit::ExecutionFailed | Exit::General) {
        return timeout_failure(failure, args);
    }
    failure
}

fn timeout_failure(failure: Failure, args: &DeployArgs) -> Failure {
    let mut failure = Failure {
        exit: Exit::Timeout,
        ..failure
    }
    .context(&format!(
        "deadline exceeded: {} expired",
        // pgmi.yaml is read again only to name it; it was valid when the deploy started.
        crate::config::describe_timeout(
            args.timeout.as_deref(),
            match args.timeout {
                Some(_) => None,
                None => crate::config::load(&args.path).ok().flatten(),
            }
            .and_then(|c| c.timeout)
            .as_ref(),
        )
    ));
    failure.hint = Some(
        "raise --timeout or `timeout:` in pgmi.yaml (0 disables the deadline); to bound single statements use statement_timeout or lock_timeout in deploy.sql".into(),
    );
    failure
}
