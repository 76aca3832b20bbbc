//! AWS RDS IAM authentication (`--aws`) through the real binary, against the local server.
//!
//! An RDS token is a signature over host, port, region, user and the clock, so a test can
//! know it in advance: the cases recorded from botocore (scripts/aws-reference-tokens.py,
//! pgmi-upload/src/cloud/aws/botocore_tokens.json) include tokens for 127.0.0.1:5432.
//! The binary runs under `faketime` frozen at the case's time, the database user is a
//! [`TokenRole`] whose password is the recorded token, and the deploy succeeds exactly
//! when `pgmi-upload` signs the same token botocore did — with keys from the environment,
//! a shared credentials file, or the stand-ins for STS web identity, the container
//! credentials endpoint and the EC2 instance metadata service.
//!
//! Every run starts from an empty environment (its own `HOME`, `PATH` only), so the
//! machine's own AWS settings and `PGPASSWORD` cannot take part; the instance metadata
//! service is disabled except in the test that stands it in. `faketime` gets
//! `FAKETIME_DONT_FAKE_MONOTONIC=1` so that timeouts still measure real time.

use std::process::Command;
use std::sync::Mutex;

use pgmi_tests::stand_in::{Reply, StandIn, TokenRole};
use pgmi_tests::{binary, Project, Run, TestDb};
use serde_json::{json, Value};

/// The recorded botocore tokens.
const FIXTURE: &str = include_str!("../../pgmi-upload/src/cloud/aws/botocore_tokens.json");

/// Says who the deploy ran as, so a success shows the token role was used.
const REPORT_SQL: &str = "DO $$ BEGIN RAISE NOTICE 'aws-who=%', current_user; END $$;\n";

/// The live cases share one role name (it is signed into their tokens): one at a time.
static LIVE: Mutex<()> = Mutex::new(());

/// One recorded case.
struct Case {
    host: String,
    port: u16,
    region: String,
    user: String,
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    /// ISO 8601 UTC, `2026-11-20T09:15:30Z`.
    now: String,
    token: String,
}

fn case(name: &str) -> Case {
    let fixture: Value = serde_json::from_str(FIXTURE).expect("fixture JSON");
    let case = fixture["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no fixture case {name}"));
    let text = |field: &str| case[field].as_str().expect(field).to_string();
    let case = Case {
        host: text("host"),
        port: u16::try_from(case["port"].as_u64().expect("port")).expect("port"),
        region: text("region"),
        user: text("user"),
        access_key_id: text("access_key_id"),
        secret_access_key: text("secret_access_key"),
        session_token: case["session_token"].as_str().map(str::to_string),
        now: text("now"),
        token: text("token"),
    };
    pgmi_tests::register_secret(&case.secret_access_key);
    pgmi_tests::register_secret(&case.token);
    if let Some(token) = &case.session_token {
        pgmi_tests::register_secret(token);
    }
    case
}

/// `pgmi-upload <args>` with only `vars` (plus `PATH`, an empty `HOME`, `NO_COLOR`) in its
/// environment; under `faketime` frozen at `frozen` (ISO 8601 UTC) when given.
fn run(args: &[&str], vars: &[(&str, &str)], frozen: Option<&str>) -> Run {
    let home = tempfile::tempdir().expect("home");
    let mut cmd = match frozen {
        Some(at) => {
            // `faketime -f 'YYYY-MM-DD hh:mm:ss'` freezes the clock (no `@`: it does not
            // run on), read in TZ.
            let mut cmd = Command::new("faketime");
            cmd.arg("-f")
                .arg(at.replace('T', " ").trim_end_matches('Z'))
                .arg(binary());
            cmd
        }
        None => Command::new(binary()),
    };
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("NO_COLOR", "1")
        .env("TZ", "UTC")
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("run {:?} (is faketime installed?): {e}", cmd.get_program()));
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    pgmi_tests::assert_no_secret_in(&run, args, vars);
    run
}

/// A role whose password is the case's token, a database name, and the project.
struct Setup {
    // Dropped in reverse order: the database first, then the role that created it.
    role: TokenRole,
    db: TestDb,
    project: Project,
    case: Case,
}

impl Setup {
    fn new(case_name: &str, label: &str) -> Setup {
        let case = case(case_name);
        assert_eq!(
            (case.host.as_str(), case.port),
            ("127.0.0.1", 5432),
            "a live case must be signed for the test server's address"
        );
        Setup {
            role: TokenRole::new(&case.user, &case.token),
            db: TestDb::unnamed(label),
            project: Project::with_deploy(REPORT_SQL),
            case,
        }
    }

    /// `deploy --aws` as the role over TCP at the case's frozen time, with `vars`.
    fn deploy(&self, vars: &[(&str, &str)]) -> Run {
        let path = self.project.path().to_str().expect("utf-8 temp path");
        let port = self.case.port.to_string();
        let args = [
            "deploy",
            path,
            "--session",
            "portable",
            "-h",
            &self.case.host,
            "-p",
            &port,
            "-U",
            &self.role.name,
            "-d",
            &self.db.name,
            "--aws",
            "--aws-region",
            &self.case.region,
            "--verbose",
        ];
        let mut env = vec![("AWS_EC2_METADATA_DISABLED", "true")];
        env.extend_from_slice(vars);
        run(&args, &env, Some(&self.case.now))
    }

    /// The case's keys as the SDKs' variables.
    fn key_vars(&self) -> Vec<(&'static str, &str)> {
        let mut vars = vec![
            ("AWS_ACCESS_KEY_ID", self.case.access_key_id.as_str()),
            (
                "AWS_SECRET_ACCESS_KEY",
                self.case.secret_access_key.as_str(),
            ),
        ];
        if let Some(token) = &self.case.session_token {
            vars.push(("AWS_SESSION_TOKEN", token));
        }
        vars
    }

    /// The case's keys as a container or instance metadata answer.
    fn key_json(&self) -> Value {
        json!({
            "Code": "Success",
            "Type": "AWS-HMAC",
            "AccessKeyId": self.case.access_key_id,
            "SecretAccessKey": self.case.secret_access_key,
            "Token": self.case.session_token,
            "Expiration": "2026-11-20T15:00:00Z",
            "LastUpdated": "2026-11-20T09:00:00Z",
        })
    }
}

fn live() -> std::sync::MutexGuard<'static, ()> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

#[track_caller]
fn assert_deployed(run: &Run, setup: &Setup, source: &str) {
    assert_eq!(
        run.code, 0,
        "deploy failed:\nstdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let line = format!("aws-who={}", setup.role.name);
    assert!(
        run.stderr.contains(&line),
        "expected {line:?} in:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(source),
        "expected {source:?} in:\n{}",
        run.stderr
    );
}

/// No token of any kind in the output, whatever was signed.
#[track_caller]
fn assert_no_token(run: &Run) {
    for text in [&run.stdout, &run.stderr] {
        for needle in ["X-Amz-Signature", "Action=connect", "X-Amz-Credential"] {
            assert!(!text.contains(needle), "a token leaked:\n{text}");
        }
    }
}

fn xml(status: u16, body: String) -> Reply {
    Reply {
        status,
        content_type: "text/xml",
        body,
    }
}

// ---------------------------------------------------------------------------------------
// Keys in the environment, and a token the server refuses.

#[test]
fn environment_keys_sign_the_token_botocore_signs() {
    let _live = live();
    let setup = Setup::new("live_loopback_session_token", "aws_env");
    let run = setup.deploy(&setup.key_vars());
    assert_deployed(&run, &setup, "environment variables");

    // The wrong secret key: a well-formed token the server does not accept.
    let wrong = "WrongSecretKey/0123456789+abcdefEXAMPLE";
    pgmi_tests::register_secret(wrong);
    let mut vars = setup.key_vars();
    vars[1] = ("AWS_SECRET_ACCESS_KEY", wrong);
    let run = setup.deploy(&vars);
    assert_eq!(run.code, 11, "expected exit 11:\n{}", run.stderr);
    assert!(
        run.stderr.contains("did not accept the IAM token"),
        "the refusal hint is missing:\n{}",
        run.stderr
    );
    assert!(!run.stderr.contains(wrong));
    assert_no_token(&run);
}

// ---------------------------------------------------------------------------------------
// Shared credentials file.

#[test]
fn shared_credentials_file_with_aws_profile() {
    let _live = live();
    let setup = Setup::new("live_loopback_static_keys", "aws_profile");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("credentials");
    let text = format!(
        "# the default profile has other keys: AWS_PROFILE must pick ci-deploy\n[default]\naws_access_key_id = AKIAWRONGWRONGWRONG0\naws_secret_access_key = not-these-keys\n\n[ci-deploy]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
        setup.case.access_key_id, setup.case.secret_access_key
    );
    std::fs::write(&file, text).expect("write credentials");
    let file = file.to_str().expect("utf-8 path");
    let run = setup.deploy(&[
        ("AWS_SHARED_CREDENTIALS_FILE", file),
        ("AWS_PROFILE", "ci-deploy"),
    ]);
    assert_deployed(&run, &setup, "profile ci-deploy");
}

// ---------------------------------------------------------------------------------------
// Web identity through STS.

const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/pgmi-deploy";
const OIDC_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvOm9yZy9hcHAifQ.c2lnbmF0dXJl";

/// A web identity token file; the directory goes with it.
fn oidc_token_file() -> (tempfile::TempDir, String) {
    pgmi_tests::register_secret(OIDC_TOKEN);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("token");
    std::fs::write(&path, format!("{OIDC_TOKEN}\n")).expect("write token");
    let path = path.to_str().expect("utf-8 path").to_string();
    (dir, path)
}

#[test]
fn web_identity_keys_from_sts() {
    let _live = live();
    let setup = Setup::new("live_loopback_session_token", "aws_sts");
    let answer = format!(
        r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <Credentials>
      <SessionToken>{}</SessionToken>
      <SecretAccessKey>{}</SecretAccessKey>
      <Expiration>2026-11-20T10:15:30Z</Expiration>
      <AccessKeyId>{}</AccessKeyId>
    </Credentials>
  </AssumeRoleWithWebIdentityResult>
</AssumeRoleWithWebIdentityResponse>"#,
        setup
            .case
            .session_token
            .as_deref()
            .expect("a case with a session token"),
        setup.case.secret_access_key,
        setup.case.access_key_id
    );
    let sts = StandIn::start(move |_| xml(200, answer.clone()));
    let (_dir, token_file) = oidc_token_file();
    let run = setup.deploy(&[
        ("AWS_WEB_IDENTITY_TOKEN_FILE", &token_file),
        ("AWS_ROLE_ARN", ROLE_ARN),
        ("AWS_ROLE_SESSION_NAME", "pgmi-ci-run-42"),
        ("AWS_ENDPOINT_URL_STS", &sts.url),
    ]);
    assert_deployed(&run, &setup, "web identity");
    let requests = sts.requests();
    assert!(!requests.is_empty(), "STS was not called");
    for request in requests {
        assert_eq!(request.method, "POST");
        assert_eq!(request.path(), "/");
        let expected: Vec<(String, String)> = [
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", ROLE_ARN),
            ("RoleSessionName", "pgmi-ci-run-42"),
            ("WebIdentityToken", OIDC_TOKEN),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(request.form(), expected);
        assert_eq!(
            request.header("authorization"),
            None,
            "the call is unsigned"
        );
    }
}

#[test]
fn web_identity_refused_by_sts() {
    let message = "Not authorized to perform sts:AssumeRoleWithWebIdentity";
    let body = format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>{message}</Message></Error><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ErrorResponse>"
    );
    let sts = StandIn::start(move |_| xml(403, body.clone()));
    let (_dir, token_file) = oidc_token_file();
    let project = Project::with_deploy(REPORT_SQL);
    let path = project.path().to_str().expect("utf-8 temp path");
    let args = [
        "deploy",
        path,
        "-h",
        "127.0.0.1",
        "-p",
        "5432",
        "-U",
        "iam_user",
        "-d",
        "aws_refused",
        "--aws",
        "--aws-region",
        "us-east-1",
    ];
    let run = run(
        &args,
        &[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", &token_file),
            ("AWS_ROLE_ARN", ROLE_ARN),
            ("AWS_ENDPOINT_URL_STS", &sts.url),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
        None,
    );
    assert_eq!(run.code, 11, "expected exit 11:\n{}", run.stderr);
    for needle in ["web identity", "AccessDenied", message, ROLE_ARN] {
        assert!(
            run.stderr.contains(needle),
            "{needle:?} not in:\n{}",
            run.stderr
        );
    }
    assert!(!run.stderr.contains(OIDC_TOKEN));
    // The generated session name is one STS accepts.
    let form = sts.requests()[0].form();
    let name = &form
        .iter()
        .find(|(k, _)| k == "RoleSessionName")
        .expect("name")
        .1;
    assert!(
        name.starts_with("pgmi-upload-") && name.len() <= 64,
        "{name}"
    );
}

// ---------------------------------------------------------------------------------------
// Container credentials and the instance metadata service.

#[test]
fn container_credentials_full_uri_with_authorization() {
    let _live = live();
    let setup = Setup::new("live_loopback_session_token", "aws_container");
    let answer = setup.key_json();
    let endpoint = StandIn::start(move |_| Reply::json(200, answer.clone()));
    let authorization = "container-authorization-6f1d2c";
    pgmi_tests::register_secret(authorization);
    let url = format!("{}/v1/credentials", endpoint.url);
    let run = setup.deploy(&[
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN", authorization),
    ]);
    assert_deployed(&run, &setup, "container credentials");
    let requests = endpoint.requests();
    assert!(!requests.is_empty());
    for request in requests {
        assert_eq!(request.method, "GET");
        assert_eq!(request.target, "/v1/credentials");
        assert_eq!(request.header("authorization"), Some(authorization));
    }
}

#[test]
fn instance_metadata_v2_session_then_role() {
    let _live = live();
    let setup = Setup::new("live_loopback_session_token", "aws_imds");
    let answer = setup.key_json();
    let session = "imds-session-token-93b1";
    pgmi_tests::register_secret(session);
    let imds = StandIn::start(move |request| {
        let authorized = request.header("x-aws-ec2-metadata-token") == Some(session);
        match (request.method.as_str(), request.path()) {
            ("PUT", "/latest/api/token")
                if request
                    .header("x-aws-ec2-metadata-token-ttl-seconds")
                    .is_some() =>
            {
                Reply::text(200, session)
            }
            ("GET", "/latest/meta-data/iam/security-credentials/") if authorized => {
                Reply::text(200, "pgmi-instance-role")
            }
            ("GET", "/latest/meta-data/iam/security-credentials/pgmi-instance-role")
                if authorized =>
            {
                Reply::json(200, answer.clone())
            }
            _ => Reply::text(401, "stand-in: unexpected request"),
        }
    });
    let run = setup.deploy(&[
        ("AWS_EC2_METADATA_DISABLED", ""),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url),
    ]);
    assert_deployed(&run, &setup, "EC2 instance role pgmi-instance-role");
    let requests = imds.requests();
    assert!(requests.len() >= 3, "{requests:?}");
    // Per token: a session first, then the role, then its keys, each with the session.
    for chunk in requests.chunks(3) {
        let seen: Vec<(&str, &str)> = chunk
            .iter()
            .map(|r| (r.method.as_str(), r.path()))
            .collect();
        assert_eq!(
            seen,
            [
                ("PUT", "/latest/api/token"),
                ("GET", "/latest/meta-data/iam/security-credentials/"),
                (
                    "GET",
                    "/latest/meta-data/iam/security-credentials/pgmi-instance-role"
                ),
            ]
        );
        let ttl = chunk[0]
            .header("x-aws-ec2-metadata-token-ttl-seconds")
            .unwrap_or("");
        assert!(ttl.parse::<u32>().is_ok_and(|s| s > 0), "ttl {ttl:?}");
        for get in &chunk[1..] {
            assert_eq!(get.header("x-aws-ec2-metadata-token"), Some(session));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Offline refusals (exit 10, nothing contacted).

#[test]
fn offline_refusals_need_a_region_and_a_user() {
    let project = Project::with_deploy(REPORT_SQL);
    let path = project.path().to_str().expect("utf-8 temp path");
    // An address that cannot answer: a refusal that waited for it would not be exit 10.
    let base = [
        "deploy",
        path,
        "-h",
        "192.0.2.1",
        "-p",
        "5",
        "-d",
        "aws_offline",
    ];
    let mut no_region = base.to_vec();
    no_region.extend(["--aws", "-U", "iam_user"]);
    let run = run(&no_region, &[], None);
    assert_eq!(run.code, 10, "{}", run.stderr);
    assert!(run.stderr.contains("region"), "{}", run.stderr);

    // No -U and no PGUSER: the operating-system user is not a choice of IAM user.
    let mut no_user = base.to_vec();
    no_user.extend(["--aws", "--aws-region", "x"]);
    let run = self::run(&no_user, &[("USER", "someone")], None);
    assert_eq!(run.code, 10, "{}", run.stderr);
    assert!(run.stderr.contains("user"), "{}", run.stderr);
}
