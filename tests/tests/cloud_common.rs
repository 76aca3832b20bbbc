//! Cloud IAM authentication as every provider shares it, through the real binary: the
//! offline refusals (exit 10, nothing contacted), what `info` shows, and that a provider's
//! detail flag alone leaves password authentication on (README, "Cloud IAM
//! authentication"). Each provider's token sources have their own file (cloud_aws.rs,
//! cloud_azure.rs, cloud_google.rs).

use pgmi_tests::{pgmi_upload, Project, Run, TestDb};

fn deploy(project: &Project, extra: &[&str], env: &[(&str, &str)]) -> Run {
    let mut args = vec!["deploy", project.path().to_str().expect("utf-8 temp path")];
    args.extend_from_slice(extra);
    pgmi_upload(&args, env)
}

#[test]
fn offline_refusals_exit_10_before_any_connection() {
    let project = Project::with_deploy("SELECT 1;");
    // A host that cannot be reached: a refusal that waited for it would show as exit 11.
    let unreachable = ["-h", "192.0.2.1", "-p", "5"];
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (
            &["--aws", "--azure", "-U", "u"],
            &[],
            "more than one cloud provider given (--aws, --azure)",
        ),
        (
            &["--aws", "--azure-tenant-id", "t", "-U", "u"],
            &[],
            "more than one cloud provider",
        ),
        (&["--aws", "-U", "u"], &[], "needs a region"),
        (
            &["--aws", "--aws-region", "eu-west-1"],
            &[("PGUSER", "")],
            "needs the database user name",
        ),
        (&["--google", "-U", "sa@p.iam"], &[], "needs the instance"),
        (
            &[
                "--google",
                "--google-instance",
                "nocolons",
                "-U",
                "sa@p.iam",
            ],
            &[],
            "invalid Cloud SQL instance",
        ),
    ];
    for (extra, env, needle) in cases {
        let mut args = unreachable.to_vec();
        args.extend_from_slice(extra);
        args.extend(["-d", "cloud_offline"]);
        let mut env = env.to_vec();
        env.extend([("AWS_REGION", ""), ("AWS_DEFAULT_REGION", "")]);
        let run = deploy(&project, &args, &env);
        assert_eq!(run.code, 10, "{args:?}\n{}", run.stderr);
        assert!(
            run.stderr.contains(needle),
            "{needle:?} not in:\n{}",
            run.stderr
        );
    }

    // The same from pgmi.yaml.
    let project = Project::with_deploy("SELECT 1;").file(
        "pgmi.yaml",
        "connection:\n  auth_method: aws\n  username: iam\n",
    );
    let run = deploy(
        &project,
        &["-h", "192.0.2.1", "-d", "x"],
        &[("AWS_REGION", ""), ("AWS_DEFAULT_REGION", "")],
    );
    assert_eq!(run.code, 10, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("AWS IAM authentication (enabled by pgmi.yaml) needs a region"),
        "{}",
        run.stderr
    );
}

#[test]
fn info_shows_the_cloud_settings_and_never_a_password() {
    let project = Project::with_deploy("SELECT 1;").file(
        "pgmi.yaml",
        "connection:\n  auth_method: google\n  google_instance: proj:europe-west1:db1\n",
    );
    let path = project.path().to_str().expect("utf-8");
    let run = pgmi_upload(
        &["info", path, "--json", "-U", "sa@proj.iam", "-d", "app"],
        &[("PGPASSWORD", "hunter2-not-used")],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v = run.json();
    assert_eq!(v["connection"]["authMethod"], "google");
    let description = v["connection"]["description"]
        .as_str()
        .expect("description");
    for needle in [
        "password: google token, fetched per connection (pgmi.yaml)",
        "google_instance=proj:europe-west1:db1 (pgmi.yaml)",
        "sslmode=require (cloud IAM authentication)",
    ] {
        assert!(
            description.contains(needle),
            "{needle:?} not in {description}"
        );
    }
    assert!(
        run.stderr.contains("PGPASSWORD is not used"),
        "{}",
        run.stderr
    );

    let run = pgmi_upload(&["info", path, "--json", "-d", "app", "--aws"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["connection"]["resolved"], false);
}

#[test]
fn a_detail_flag_alone_keeps_password_authentication_and_warns() {
    let db = TestDb::unnamed("cloud_detail_flag");
    let project = Project::with_deploy("SELECT 1;");
    let run = deploy(
        &project,
        &["-d", &db.name, "--aws-region", "eu-west-1"],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "--aws-region has no effect without --aws (or auth_method: aws in pgmi.yaml)"
        ),
        "{}",
        run.stderr
    );
}
