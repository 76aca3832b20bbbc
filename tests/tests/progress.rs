//! Progress output (README "Output"): on a terminal, a phase that runs longer than a second
//! shows a line that is redrawn in place and erased at its end; through a pipe, and with
//! `--json`, nothing.
//!
//! The load is made slow on the server, not in the client: an event trigger in the test
//! database sleeps once per deploy, at the first `ALTER TABLE` after `_pgmi_source` has
//! rows (the constraints both session kinds add after the bulk load), so the phase lasts
//! well over a second whatever the machine's speed.

use pgmi_tests::*;

const SLOW_LOAD: &str = "
CREATE FUNCTION public.slow_load() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_catalog.to_regclass('pg_temp._pgmi_source') IS NOT NULL
       AND pg_catalog.current_setting('pgmi_test.slept', true) IS DISTINCT FROM 'on' THEN
        IF EXISTS (SELECT 1 FROM pg_temp._pgmi_source) THEN
            PERFORM pg_catalog.set_config('pgmi_test.slept', 'on', true);
            PERFORM pg_catalog.pg_sleep(1.6);
        END IF;
    END IF;
END
$$;
CREATE EVENT TRIGGER slow_load ON ddl_command_end WHEN TAG IN ('ALTER TABLE')
    EXECUTE FUNCTION public.slow_load();
";

fn project() -> Project {
    let mut project = Project::with_deploy("SELECT 1;\n");
    for i in 0..50 {
        project = project.file(
            &format!("schema/f{i:02}.sql"),
            format!("SELECT {i};\n").repeat(40),
        );
    }
    project
}

fn args<'a>(kind: Kind, project: &'a Project, db: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "deploy",
        project.path().to_str().expect("utf-8 temp path"),
        "-d",
        db,
        "--session",
        kind.flag(),
    ];
    args.extend_from_slice(extra);
    args
}

fn shows_progress(kind: Kind) {
    let db = kind.db("progress");
    db.client().batch_execute(SLOW_LOAD).expect("event trigger");
    let project = project();
    // The slow part is the server's: both kinds show its time; the portable session,
    // which sent the rows itself, also the files it sent.
    let label = match kind {
        Kind::Portable => "Loading on the server: 50 files, ",
        Kind::Extension => "Loading on the server: ",
    };

    let run = pgmi_upload_tty(&args(kind, &project, &db.name, &[]), &[], "");
    assert_eq!(run.code, 0, "{}", run.stdout);
    let at = run.stdout.find(&format!("\r{label}")).unwrap_or_else(|| {
        panic!(
            "no progress line {label:?} on the terminal:\n{:?}",
            run.stdout
        )
    });
    let line_end = run.stdout[at + 1..]
        .find('\r')
        .map(|i| at + 1 + i)
        .expect("the line is redrawn or erased");
    let line = &run.stdout[at + 1..line_end];
    assert!(line.trim_end().ends_with('s'), "{line:?}");
    // Erased at the end of the phase: the next output starts on a clean line.
    let tail = &run.stdout[at..];
    let loaded = tail.find("Loaded 50 files").expect("loaded line");
    assert!(
        tail[..loaded].ends_with('\r'),
        "the progress line is erased before the next output: {tail:?}"
    );
    assert!(run.stdout.contains("ok "), "{}", run.stdout);

    // Through a pipe: nothing.
    let run = pgmi_upload(&args(kind, &project, &db.name, &[]), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains('\r'), "{:?}", run.stderr);
    assert!(!run.stderr.contains("Loading"), "{:?}", run.stderr);

    // --json on a terminal: nothing either, on stdout or stderr.
    let run = pgmi_upload_tty(&args(kind, &project, &db.name, &["--json"]), &[], "");
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(!run.stdout.contains('\r'), "{:?}", run.stdout);
    assert!(!run.stdout.contains("Loading"), "{:?}", run.stdout);
}

both_kinds!(shows_progress);
