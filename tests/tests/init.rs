//! `init` and `templates` through the real binary: a new user's first commands. `init`
//! writes an embedded template (the same files tests/tests/templates.rs deploys in depth),
//! names it after the directory, keeps an existing pgmi.yaml and .env, refuses anything
//! else in the target, and what it writes deploys as printed.

use pgmi_tests::{pgmi_upload, Run, TestDb};

fn init(dir: &std::path::Path, extra: &[&str]) -> Run {
    let mut args = vec!["init", dir.to_str().expect("utf-8 temp path")];
    args.extend_from_slice(extra);
    pgmi_upload(&args, &[])
}

#[test]
fn init_writes_a_template_that_deploys_as_printed() {
    let scratch = tempfile::tempdir().expect("tempdir");
    for template in ["basic", "advanced"] {
        let db = TestDb::unnamed(&format!("init_{template}"));
        // The project is named after its directory: name it like the database.
        let dir = scratch.path().join(&db.name);
        let run = init(&dir, &["--template", template]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(
            run.stderr
                .contains(&format!("Wrote {} ({template} template).", dir.display())),
            "{}",
            run.stderr
        );
        let root = std::fs::canonicalize(&dir).expect("canonical");
        assert!(
            run.stdout
                .starts_with(&format!("{}\n├── .gitignore\n", root.display())),
            "{}",
            run.stdout
        );
        assert!(run.stdout.contains("└── "), "{}", run.stdout);
        let yaml = std::fs::read_to_string(dir.join("pgmi.yaml")).expect("pgmi.yaml");
        assert!(
            yaml.contains(&format!("database: \"{}\"", db.name)),
            "{yaml}"
        );
        let readme = std::fs::read_to_string(dir.join("README.md")).expect("README.md");
        assert!(!readme.contains("{{PROJECT_NAME}}"), "{readme}");

        // The printed next command, as printed (the target comes from pgmi.yaml too).
        let next = format!("deploy {} -d {}", dir.display(), db.name);
        assert!(run.stderr.contains(&next), "{}", run.stderr);
        let deploy = pgmi_upload(&next.split(' ').collect::<Vec<_>>(), &[]);
        assert_eq!(deploy.code, 0, "{template}:\n{}", deploy.stderr);
        assert!(deploy.stderr.contains(" passed"), "{}", deploy.stderr);
        if template == "advanced" {
            // Its roles are cluster-wide: remove them with the database.
            let mut client = pgmi_tests::connect("postgres");
            drop(db);
            for kind in ["reader", "writer", "owner"] {
                let _ = client.batch_execute(&format!(
                    "DROP ROLE IF EXISTS \"{}_{kind}\"",
                    dir.file_name().unwrap().to_string_lossy()
                ));
            }
        }
    }
}

#[test]
fn init_keeps_pgmi_yaml_and_env_and_refuses_anything_else() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("kept_app");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(dir.join("pgmi.yaml"), "connection:\n  database: mine\n").expect("yaml");
    std::fs::write(dir.join(".env"), "PGHOST=db.example.com\n").expect(".env");
    let run = init(&dir, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("Kept the existing pgmi.yaml."),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("pgmi.yaml")).expect("yaml"),
        "connection:\n  database: mine\n"
    );
    assert!(dir.join("deploy.sql").is_file());

    // Now it holds a project: a second init refuses, names what is in the way, writes
    // nothing.
    let before = std::fs::read_to_string(dir.join("deploy.sql")).expect("deploy.sql");
    let run = init(&dir, &["--template", "advanced"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("is not empty: .gitignore, README.md"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("deploy.sql")).expect("deploy.sql"),
        before
    );

    let run = init(&scratch.path().join("new_app"), &["-t", "intermediate"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("unknown template \"intermediate\"; the templates are: basic, advanced"),
        "{}",
        run.stderr
    );
    assert!(!scratch.path().join("new_app").exists());

    let run = init(&scratch.path().join("my app"), &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("the project name \"my app\""),
        "{}",
        run.stderr
    );
    assert!(!scratch.path().join("my app").exists());
}

#[test]
fn templates_list_and_describe() {
    let run = pgmi_upload(&["templates", "list"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let names: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names, ["basic", "advanced"]);
    assert!(run.stderr.contains("init <path> --template <name>"));

    let run = pgmi_upload(&["templates", "describe", "basic"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for needle in [
        "basic — ",
        "Structure:\n.\n",
        "├── migrations/",
        "Features:\n  - ",
        "For: ",
    ] {
        assert!(
            run.stdout.contains(needle),
            "{needle:?} not in:\n{}",
            run.stdout
        );
    }
    let run = pgmi_upload(&["templates", "describe", "huge"], &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let run = pgmi_upload(&["templates", "describe"], &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
}

#[test]
fn ai_prints_the_documentation_of_this_version() {
    let run = pgmi_upload(&["ai"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let topics: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for topic in ["session-api", "testing", "readme"] {
        assert!(topics.contains(&topic), "{topic} not in {topics:?}");
    }
    // The text is the repository's own file, byte for byte.
    let run = pgmi_upload(&["ai", "session-api"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/session-api.md");
    assert_eq!(
        run.stdout,
        std::fs::read_to_string(file).expect("docs/session-api.md")
    );
    let run = pgmi_upload(&["ai", "flyway-internals"], &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("unknown topic"), "{}", run.stderr);
}
