//! Google Cloud SQL IAM authentication (`--google`) through the real binary: each kind of
//! Application Default Credentials against a stand-in for Google's endpoint that checks
//! the request as Google would and then issues a random token; a login role on the test
//! server has that token as its password, so a deploy succeeds exactly when the token
//! arrived as the password. Then the refusals (exit 11) and the offline checks (exit 10).
//!
//! Every run gets a cleared environment with an empty `HOME` (no real gcloud files) and
//! `GCE_METADATA_HOST` on a closed loopback port (no real metadata server is asked).
//! The server is reached over TCP on 127.0.0.1, where it asks for a password.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Public};
use openssl::rsa::Rsa;
use openssl::sign::Verifier;
use pgmi_tests::stand_in::{Reply, Request, StandIn, TokenRole};
use pgmi_tests::{binary, Project, Run, TestDb};
use serde_json::{json, Value};

const LOGIN_SCOPE: &str = "https://www.googleapis.com/auth/sqlservice.login";
const ADMIN_SCOPE: &str = "https://www.googleapis.com/auth/sqlservice.admin";
const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
const INSTANCE: &str = "proj:region1:inst";
const CLIENT_EMAIL: &str = "deployer@proj.iam.gserviceaccount.com";
const DEPLOY_SQL: &str =
    "DO $$ BEGIN RAISE NOTICE 'who=% db=%', current_user, current_database(); END $$;\n";

// ---------------------------------------------------------------------------------------
// Running the binary

/// The test server's TCP port.
fn server_port() -> String {
    pgmi_tests::config("postgres").get_ports()[0].to_string()
}

/// A loopback address nothing listens on.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").to_string()
}

/// `pgmi-upload <args>` with only `env` in its environment, plus `HOME` (`home`),
/// `NO_COLOR` and a `GCE_METADATA_HOST` that does not answer (`env` may override both).
fn run_in(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(binary());
    cmd.args(args)
        .env_clear()
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .env("GCE_METADATA_HOST", closed_port());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run pgmi-upload");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    // The harness takes GOOGLE_APPLICATION_CREDENTIALS for a secret by its name, but its
    // value is a path, which messages name on purpose; what the file holds (key, refresh
    // token, subject token) is registered as secret by the tests that write it.
    let checked: Vec<(&str, &str)> = env
        .iter()
        .copied()
        .filter(|(k, _)| *k != "GOOGLE_APPLICATION_CREDENTIALS")
        .collect();
    pgmi_tests::assert_no_secret_in(&run, args, &checked);
    run
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Run {
    let home = tempfile::tempdir().expect("home");
    run_in(home.path(), args, env)
}

/// The deploy command line for `role` into `db` with Google IAM, verbose (so the token's
/// source is printed).
fn deploy_args(project: &Project, role: &str, db: &str, host: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> = [
        "deploy",
        project.path().to_str().expect("utf-8 path"),
        "--session",
        "portable",
        "-p",
        &server_port(),
        "-U",
        role,
        "-d",
        db,
        "--google",
        "--google-instance",
        INSTANCE,
        "--verbose",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(host) = host {
        args.extend(["-h".to_string(), host.to_string()]);
    }
    args
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[track_caller]
fn assert_deployed_as(run: &Run, role: &str, db: &str) {
    assert_eq!(
        run.code, 0,
        "deploy failed:\nstdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let line = format!("who={role} db={db}");
    assert!(
        run.stderr.contains(&line),
        "no {line:?} in:\n{}",
        run.stderr
    );
}

static NAMES: AtomicUsize = AtomicUsize::new(0);

/// A unique role name (the IAM database user stand-in).
fn role_name(label: &str) -> String {
    format!(
        "pgmi_t_gcp_{label}_{}_{}",
        std::process::id(),
        NAMES.fetch_add(1, Ordering::SeqCst)
    )
}

/// A random string for tokens and secrets, registered so no output may contain it.
fn random_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 24];
    openssl::rand::rand_bytes(&mut bytes).expect("random bytes");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let secret = format!("{prefix}{hex}");
    pgmi_tests::register_secret(&secret);
    secret
}

// ---------------------------------------------------------------------------------------
// Checking requests as Google would

/// What a stand-in found wrong in a request: the answer is then an OAuth error, so the
/// deploy fails with the reason in its output.
fn mismatch(what: String) -> Reply {
    Reply::json(
        400,
        json!({"error": "test_mismatch", "error_description": what}),
    )
}

fn form_value<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The form's field names, sorted.
fn form_names(form: &[(String, String)]) -> Vec<String> {
    let mut names: Vec<String> = form.iter().map(|(k, _)| k.clone()).collect();
    names.sort();
    names
}

fn is_form(request: &Request) -> bool {
    request
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"))
}

fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    if text.contains(['=', '+', '/']) {
        return None;
    }
    let mut standard: String = text
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !standard.len().is_multiple_of(4) {
        standard.push('=');
    }
    openssl::base64::decode_block(&standard).ok()
}

/// A service account key pair and its key file's fields.
struct Key {
    private_pem: String,
    public: PKey<Public>,
    id: String,
}

impl Key {
    fn new() -> Key {
        let key = PKey::from_rsa(Rsa::generate(2048).expect("RSA key")).expect("pkey");
        let private_pem = String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        let public = PKey::public_key_from_pem(&key.public_key_to_pem().unwrap()).unwrap();
        pgmi_tests::register_secret(&private_pem);
        Key {
            private_pem,
            public,
            id: random_secret("kid"),
        }
    }

    /// The key file, as the Cloud console downloads it, with `token_uri`.
    fn file(&self, token_uri: &str) -> String {
        json!({
            "type": "service_account",
            "project_id": "proj",
            "private_key_id": self.id,
            "private_key": self.private_pem,
            "client_email": CLIENT_EMAIL,
            "client_id": "1234567890",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
        })
        .to_string()
    }

    /// Checks a jwt-bearer token request as Google's token endpoint would; the scope on
    /// success.
    fn check(&self, request: &Request, token_uri: &str) -> Result<String, String> {
        if request.method != "POST" || !is_form(request) {
            return Err(format!("not a form POST: {}", request.method));
        }
        let form = request.form();
        if form_names(&form) != ["assertion", "grant_type"] {
            return Err(format!("form fields {:?}", form_names(&form)));
        }
        if form_value(&form, "grant_type") != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
            return Err("grant_type".into());
        }
        let jwt = form_value(&form, "assertion").unwrap_or("");
        let parts: Vec<&str> = jwt.split('.').collect();
        let [header, claims, signature] = parts.as_slice() else {
            return Err("the assertion is not a JWT".into());
        };
        let decode = |part: &str| -> Result<Value, String> {
            let bytes = base64url_decode(part).ok_or("not base64url")?;
            serde_json::from_slice(&bytes).map_err(|e| e.to_string())
        };
        let header = decode(header)?;
        if header != json!({"alg": "RS256", "typ": "JWT", "kid": self.id}) {
            return Err(format!("JWT header {header}"));
        }
        let signature = base64url_decode(signature).ok_or("signature not base64url")?;
        let mut verifier = Verifier::new(MessageDigest::sha256(), &self.public).unwrap();
        verifier
            .update(format!("{}.{}", parts[0], parts[1]).as_bytes())
            .unwrap();
        if !verifier.verify(&signature).unwrap_or(false) {
            return Err("Invalid JWT Signature.".into());
        }
        let claims = decode(claims)?;
        let (iat, exp) = (claims["iat"].as_u64(), claims["exp"].as_u64());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let checks = [
            (claims["iss"] == CLIENT_EMAIL, "iss"),
            (claims["aud"] == token_uri, "aud"),
            (claims["scope"].is_string(), "scope"),
            (
                iat.is_some_and(|iat| iat.abs_diff(now) < 300),
                "iat (not now)",
            ),
            (
                matches!((iat, exp), (Some(i), Some(e)) if e == i + 3600),
                "exp - iat = 3600",
            ),
            (claims.as_object().is_some_and(|o| o.len() == 5), "claims"),
        ];
        for (ok, what) in checks {
            if !ok {
                return Err(format!("JWT claim {what}: {claims}"));
            }
        }
        Ok(claims["scope"].as_str().unwrap_or("").to_string())
    }
}

/// An OAuth token answer.
fn issued(token: &str) -> Reply {
    Reply::json(
        200,
        json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}),
    )
}

/// A stand-in token endpoint at `/token` for a service account key: checks each request
/// and issues `login` for the login scope and `admin` for the Admin API scope. Its URL is
/// known only once it runs, so the handler reads it from `url`.
fn key_endpoint(key: Arc<Key>, login: String, admin: String) -> (StandIn, String) {
    let url: Arc<Mutex<String>> = Arc::default();
    let seen = Arc::clone(&url);
    let stand_in = StandIn::start(move |request| {
        let token_uri = seen.lock().unwrap().clone();
        if request.path() != "/token" {
            return Reply::text(404, "not found");
        }
        match key.check(request, &token_uri) {
            Ok(scope) if scope == LOGIN_SCOPE => issued(&login),
            Ok(scope) if scope == ADMIN_SCOPE => issued(&admin),
            Ok(scope) => mismatch(format!("scope {scope}")),
            Err(why) => mismatch(why),
        }
    });
    let token_uri = format!("{}/token", stand_in.url);
    *url.lock().unwrap() = token_uri.clone();
    (stand_in, token_uri)
}

/// Writes `text` to `dir/name`; the path as text.
fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

// ---------------------------------------------------------------------------------------
// Tokens from each source

#[test]
fn service_account_key_logs_in() {
    let key = Arc::new(Key::new());
    let token = random_secret("ya29.sa-");
    let (endpoint, token_uri) = key_endpoint(Arc::clone(&key), token.clone(), "-".into());
    let files = tempfile::tempdir().unwrap();
    let key_file = write(files.path(), "key.json", &key.file(&token_uri));
    let role = TokenRole::new(&role_name("sa"), &token);
    let db = TestDb::unnamed("gcp_sa");
    let project = Project::with_deploy(DEPLOY_SQL);
    let args = deploy_args(&project, &role.name, &db.name, Some("127.0.0.1"));
    let run = run(
        &strs(&args),
        &[("GOOGLE_APPLICATION_CREDENTIALS", key_file.as_str())],
    );
    assert_deployed_as(&run, &role.name, &db.name);
    assert!(
        run.stderr.contains(&format!(
            "Google Cloud SQL IAM token from GOOGLE_APPLICATION_CREDENTIALS ({key_file}): service account {CLIENT_EMAIL}"
        )),
        "{}",
        run.stderr
    );
    let requests = endpoint.requests();
    assert!(!requests.is_empty());
    for request in &requests {
        assert_eq!(key.check(request, &token_uri).as_deref(), Ok(LOGIN_SCOPE));
    }
}

#[test]
fn gcloud_user_credentials_log_in() {
    let token = random_secret("ya29.user-");
    let refresh = random_secret("1//refresh-");
    let client_secret = random_secret("csecret-");
    let expected = vec![
        (
            "client_id".to_string(),
            "cid.apps.googleusercontent.com".to_string(),
        ),
        ("client_secret".to_string(), client_secret.clone()),
        ("grant_type".to_string(), "refresh_token".to_string()),
        ("refresh_token".to_string(), refresh.clone()),
    ];
    let endpoint = {
        let (token, expected) = (token.clone(), expected.clone());
        StandIn::start(move |request| {
            let mut form = request.form();
            form.sort();
            if request.method != "POST" || request.path() != "/token" || !is_form(request) {
                return mismatch(format!("{} {}", request.method, request.target));
            }
            if form != expected {
                return mismatch(format!("form fields {:?}", form_names(&form)));
            }
            issued(&token)
        })
    };
    // gcloud's file under $HOME/.config/gcloud, as `gcloud auth application-default login`
    // leaves it (plus token_uri, pointing at the stand-in).
    let home = tempfile::tempdir().unwrap();
    let file = json!({
        "type": "authorized_user",
        "client_id": "cid.apps.googleusercontent.com",
        "client_secret": client_secret,
        "refresh_token": refresh,
        "quota_project_id": "proj",
        "token_uri": format!("{}/token", endpoint.url),
    });
    let path = write(
        home.path(),
        ".config/gcloud/application_default_credentials.json",
        &file.to_string(),
    );
    let role = TokenRole::new(&role_name("user"), &token);
    let db = TestDb::unnamed("gcp_user");
    let project = Project::with_deploy(DEPLOY_SQL);
    let args = deploy_args(&project, &role.name, &db.name, Some("127.0.0.1"));
    let run = run_in(home.path(), &strs(&args), &[]);
    assert_deployed_as(&run, &role.name, &db.name);
    assert!(
        run.stderr.contains(&format!(
            "token from gcloud application default credentials ({path}): authorized user"
        )),
        "{}",
        run.stderr
    );
    let requests = endpoint.requests();
    assert!(!requests.is_empty());
    for request in requests {
        let mut form = request.form();
        form.sort();
        assert_eq!(form, expected);
    }
}

/// The Security Token Service's form for a token exchange, checked field by field.
fn check_exchange(request: &Request, subject: &str, scope: &str) -> Result<(), String> {
    if request.method != "POST" || request.path() != "/v1/token" || !is_form(request) {
        return Err(format!("{} {}", request.method, request.target));
    }
    let form = request.form();
    let expected = [
        ("audience", AUDIENCE),
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        (
            "requested_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        ),
        ("scope", scope),
        ("subject_token", subject),
        ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
    ];
    if form_names(&form) != expected.iter().map(|(k, _)| *k).collect::<Vec<_>>() {
        return Err(format!("form fields {:?}", form_names(&form)));
    }
    for (name, value) in expected {
        if form_value(&form, name) != Some(value) {
            return Err(format!("form field {name}"));
        }
    }
    Ok(())
}

const AUDIENCE: &str =
    "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/ci/providers/github";

/// A workload identity federation file as google-github-actions/auth writes it.
fn external_account_file(
    base: &str,
    subject_path: &str,
    json_format: bool,
    impersonate: bool,
) -> String {
    let mut file = json!({
        "type": "external_account",
        "audience": AUDIENCE,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": format!("{base}/v1/token"),
        "credential_source": {"file": subject_path},
    });
    if json_format {
        file["credential_source"]["format"] =
            json!({"type": "json", "subject_token_field_name": "value"});
    }
    if impersonate {
        file["service_account_impersonation_url"] = json!(format!(
            "{base}/v1/projects/-/serviceAccounts/{CLIENT_EMAIL}:generateAccessToken"
        ));
    }
    file.to_string()
}

#[test]
fn workload_identity_federation_logs_in() {
    let token = random_secret("ya29.sts-");
    let subject = random_secret("eyJ.github-oidc-");
    let endpoint = {
        let (token, subject) = (token.clone(), subject.clone());
        StandIn::start(
            move |request| match check_exchange(request, &subject, LOGIN_SCOPE) {
                Ok(()) => Reply::json(
                    200,
                    json!({
                        "access_token": token,
                        "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                        "token_type": "Bearer",
                        "expires_in": 3600,
                    }),
                ),
                Err(why) => mismatch(why),
            },
        )
    };
    let files = tempfile::tempdir().unwrap();
    // A text subject token, with the newline an editor would leave.
    let subject_path = write(files.path(), "oidc-token", &format!("{subject}\n"));
    let config = write(
        files.path(),
        "wif.json",
        &external_account_file(&endpoint.url, &subject_path, false, false),
    );
    let role = TokenRole::new(&role_name("wif"), &token);
    let db = TestDb::unnamed("gcp_wif");
    let project = Project::with_deploy(DEPLOY_SQL);
    let args = deploy_args(&project, &role.name, &db.name, Some("127.0.0.1"));
    let run = run(
        &strs(&args),
        &[("GOOGLE_APPLICATION_CREDENTIALS", config.as_str())],
    );
    assert_deployed_as(&run, &role.name, &db.name);
    assert!(
        run.stderr
            .contains(&format!("workload identity federation ({AUDIENCE})")),
        "{}",
        run.stderr
    );
    let requests = endpoint.requests();
    assert!(!requests.is_empty());
    for request in &requests {
        assert_eq!(check_exchange(request, &subject, LOGIN_SCOPE), Ok(()));
    }
}

#[test]
fn workload_identity_federation_with_impersonation_logs_in() {
    let federated = random_secret("ya29.federated-");
    let token = random_secret("ya29.impersonated-");
    let subject = random_secret("eyJ.github-oidc-");
    let impersonation_path =
        format!("/v1/projects/-/serviceAccounts/{CLIENT_EMAIL}:generateAccessToken");
    let check_impersonation = {
        let (federated, path) = (federated.clone(), impersonation_path.clone());
        move |request: &Request| -> Result<(), String> {
            if request.method != "POST" || request.path() != path {
                return Err(format!("{} {}", request.method, request.target));
            }
            if request.header("authorization") != Some(&format!("Bearer {federated}")) {
                return Err("Authorization is not the federated token".into());
            }
            if !request
                .header("content-type")
                .is_some_and(|t| t.starts_with("application/json"))
            {
                return Err("not JSON".into());
            }
            let body: Value = serde_json::from_str(&request.body).map_err(|e| e.to_string())?;
            if body != json!({"scope": [LOGIN_SCOPE], "lifetime": "3600s"}) {
                return Err(format!("body {body}"));
            }
            Ok(())
        }
    };
    let endpoint = {
        let (token, federated, subject) = (token.clone(), federated.clone(), subject.clone());
        let check_impersonation = check_impersonation.clone();
        StandIn::start(move |request| {
            if request.path() == "/v1/token" {
                // The exchanged token only impersonates: it is asked for cloud-platform.
                return match check_exchange(request, &subject, CLOUD_PLATFORM) {
                    Ok(()) => issued(&federated),
                    Err(why) => mismatch(why),
                };
            }
            match check_impersonation(request) {
                Ok(()) => Reply::json(
                    200,
                    json!({"accessToken": token, "expireTime": "2099-01-01T00:00:00Z"}),
                ),
                Err(why) => Reply::json(
                    400,
                    json!({"error": {"code": 400, "message": why, "status": "INVALID_ARGUMENT"}}),
                ),
            }
        })
    };
    let files = tempfile::tempdir().unwrap();
    // The JSON subject token file google-github-actions/auth writes.
    let subject_path = write(
        files.path(),
        "oidc.json",
        &json!({"count": 1, "value": subject}).to_string(),
    );
    let config = write(
        files.path(),
        "wif.json",
        &external_account_file(&endpoint.url, &subject_path, true, true),
    );
    let role = TokenRole::new(&role_name("wifsa"), &token);
    let db = TestDb::unnamed("gcp_wif_sa");
    let project = Project::with_deploy(DEPLOY_SQL);
    let args = deploy_args(&project, &role.name, &db.name, Some("127.0.0.1"));
    let run = run(
        &strs(&args),
        &[("GOOGLE_APPLICATION_CREDENTIALS", config.as_str())],
    );
    assert_deployed_as(&run, &role.name, &db.name);
    assert!(
        run.stderr
            .contains(&format!("impersonating {CLIENT_EMAIL}")),
        "{}",
        run.stderr
    );
    let requests = endpoint.requests();
    assert!(
        requests.len() >= 2 && requests.len() % 2 == 0,
        "{requests:?}"
    );
    for pair in requests.chunks(2) {
        assert_eq!(check_exchange(&pair[0], &subject, CLOUD_PLATFORM), Ok(()));
        assert_eq!(check_impersonation(&pair[1]), Ok(()));
    }
}

#[test]
fn metadata_server_logs_in() {
    let token = random_secret("ya29.gce-");
    let metadata = {
        let token = token.clone();
        StandIn::start(move |request| {
            let base = "/computeMetadata/v1/instance/service-accounts/default";
            if request.method != "GET" || request.header("metadata-flavor") != Some("Google") {
                return Reply::text(403, "Missing Metadata-Flavor:Google header.");
            }
            if request.path() == format!("{base}/email") {
                return Reply::text(200, CLIENT_EMAIL);
            }
            if request.path() != format!("{base}/token") {
                return Reply::text(404, "not found");
            }
            let scopes = request.query();
            if scopes != [("scopes".to_string(), LOGIN_SCOPE.to_string())] {
                return Reply::text(400, format!("query {scopes:?}"));
            }
            issued(&token)
        })
    };
    let host = metadata.url.trim_start_matches("http://").to_string();
    let role = TokenRole::new(&role_name("gce"), &token);
    let db = TestDb::unnamed("gcp_gce");
    let project = Project::with_deploy(DEPLOY_SQL);
    let args = deploy_args(&project, &role.name, &db.name, Some("127.0.0.1"));
    let run = run(&strs(&args), &[("GCE_METADATA_HOST", host.as_str())]);
    assert_deployed_as(&run, &role.name, &db.name);
    assert!(
        run.stderr.contains(&format!(
            "token from metadata server ({host}): service account {CLIENT_EMAIL}"
        )),
        "{}",
        run.stderr
    );
}

// ---------------------------------------------------------------------------------------
// Refusals (exit 11)

#[test]
fn a_refused_key_says_why_without_key_material() {
    let key = Key::new();
    let endpoint = StandIn::start(|_| {
        Reply::json(
            400,
            json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}),
        )
    });
    let files = tempfile::tempdir().unwrap();
    let key_file = write(
        files.path(),
        "key.json",
        &key.file(&format!("{}/token", endpoint.url)),
    );
    let project = Project::with_deploy(DEPLOY_SQL);
    let args = deploy_args(&project, "nobody@proj.iam", "postgres", Some("127.0.0.1"));
    let run = run(
        &strs(&args),
        &[("GOOGLE_APPLICATION_CREDENTIALS", key_file.as_str())],
    );
    assert_eq!(run.code, 11, "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("GOOGLE_APPLICATION_CREDENTIALS ({key_file})")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("invalid_grant: Invalid JWT Signature."),
        "{}",
        run.stderr
    );
    // Neither the key (any line of it) nor the assertion sent appears.
    assert!(!run.stderr.contains("PRIVATE KEY"), "{}", run.stderr);
    for line in key.private_pem.lines().filter(|l| l.len() > 16) {
        assert!(!run.stderr.contains(line), "{}", run.stderr);
    }
    for request in endpoint.requests() {
        let assertion = form_value(&request.form(), "assertion")
            .unwrap_or("-")
            .to_string();
        assert!(!run.stderr.contains(&assertion), "{}", run.stderr);
        let signature = assertion.rsplit('.').next().unwrap_or("-");
        assert!(!run.stderr.contains(signature), "{}", run.stderr);
    }
}

#[test]
fn a_broken_key_file_stops_the_search() {
    // The metadata server would answer, but a configured file that fails is not passed
    // over for another identity.
    let metadata = StandIn::start(|_| issued("ya29.never-used"));
    let host = metadata.url.trim_start_matches("http://").to_string();
    let files = tempfile::tempdir().unwrap();
    let missing = files.path().join("missing.json");
    let missing = missing.to_str().unwrap();
    let project = Project::with_deploy(DEPLOY_SQL);
    let args = deploy_args(&project, "nobody@proj.iam", "postgres", Some("127.0.0.1"));
    let run = run(
        &strs(&args),
        &[
            ("GOOGLE_APPLICATION_CREDENTIALS", missing),
            ("GCE_METADATA_HOST", host.as_str()),
        ],
    );
    assert_eq!(run.code, 11, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "GOOGLE_APPLICATION_CREDENTIALS ({missing}): cannot read the file"
        )),
        "{}",
        run.stderr
    );
    assert!(metadata.requests().is_empty());
}

#[test]
fn no_credentials_lists_every_source() {
    let project = Project::with_deploy(DEPLOY_SQL);
    let args = deploy_args(&project, "nobody@proj.iam", "postgres", Some("127.0.0.1"));
    let run = run(&strs(&args), &[]);
    assert_eq!(run.code, 11, "{}", run.stderr);
    for named in [
        "GOOGLE_APPLICATION_CREDENTIALS: not set",
        "gcloud application default credentials (",
        "metadata server (127.0.0.1:",
        "gcloud auth application-default login",
        "google-github-actions/auth",
    ] {
        assert!(
            run.stderr.contains(named),
            "no {named:?} in:\n{}",
            run.stderr
        );
    }
}

// ---------------------------------------------------------------------------------------
// Offline (exit 10)

#[test]
fn the_instance_and_the_user_are_required() {
    let project = Project::with_deploy(DEPLOY_SQL);
    let dir = project.path().to_str().unwrap();
    let base = ["deploy", dir, "-h", "127.0.0.1", "-d", "postgres"];
    let cases: [(&[&str], &str); 3] = [
        (&["-U", "u@proj.iam", "--google"], "needs the instance"),
        (
            &[
                "-U",
                "u@proj.iam",
                "--google",
                "--google-instance",
                "proj:inst",
            ],
            "expected project:region:instance",
        ),
        (
            &["--google", "--google-instance", INSTANCE],
            "needs the database user name",
        ),
    ];
    for (extra, expected) in cases {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        // No PGUSER: the user would be the operating system's.
        let run = run(&args, &[]);
        assert_eq!(run.code, 10, "{extra:?}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{extra:?}: {}", run.stderr);
    }
}

// ---------------------------------------------------------------------------------------
// The instance's address from the Cloud SQL Admin API

/// The test server's certificate, as the instance's server CA.
fn server_certificate() -> String {
    let file: String = pgmi_tests::connect("postgres")
        .query_one("SHOW ssl_cert_file", &[])
        .expect("SHOW ssl_cert_file")
        .get(0);
    let file = if Path::new(&file).is_absolute() {
        file
    } else {
        let data: String = pgmi_tests::connect("postgres")
            .query_one("SHOW data_directory", &[])
            .expect("SHOW data_directory")
            .get(0);
        format!("{data}/{file}")
    };
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// A `connectSettings` answer: the instance at 127.0.0.1 in `region`, with `ca`.
fn connect_settings(region: &str, ca: &str) -> Reply {
    Reply::json(
        200,
        json!({
            "kind": "sql#connectSettings",
            "serverCaCert": {"kind": "sql#sslCert", "cert": ca},
            "ipAddresses": [
                {"type": "OUTGOING", "ipAddress": "192.0.2.1"},
                {"type": "PRIMARY", "ipAddress": "127.0.0.1"},
            ],
            "region": region,
            "databaseVersion": "POSTGRES_15",
            "backendType": "SECOND_GEN",
        }),
    )
}

/// A stand-in serving both the key's token endpoint and the Admin API's connectSettings
/// for `proj:region1:inst`, which it answers with `answer` once the request is right.
fn admin_stand_in(key: Arc<Key>, login: String, admin: String, answer: Reply) -> StandIn {
    let url: Arc<Mutex<String>> = Arc::default();
    let seen = Arc::clone(&url);
    let stand_in = StandIn::start(move |request| {
        let token_uri = format!("{}/token", seen.lock().unwrap());
        if request.path() == "/token" {
            return match key.check(request, &token_uri) {
                Ok(scope) if scope == LOGIN_SCOPE => issued(&login),
                Ok(scope) if scope == ADMIN_SCOPE => issued(&admin),
                Ok(scope) => mismatch(format!("scope {scope}")),
                Err(why) => mismatch(why),
            };
        }
        let bearer = format!("Bearer {admin}");
        if request.method != "GET"
            || request.path() != "/sql/v1beta4/projects/proj/instances/inst/connectSettings"
        {
            return Reply::json(
                404,
                json!({"error": {"code": 404, "message": "The Cloud SQL instance does not exist.", "status": "NOT_FOUND"}}),
            );
        }
        if request.header("authorization") != Some(bearer.as_str()) {
            return Reply::json(
                401,
                json!({"error": {"code": 401, "message": "not the admin token", "status": "UNAUTHENTICATED"}}),
            );
        }
        answer.clone()
    });
    *url.lock().unwrap() = stand_in.url.clone();
    stand_in
}

/// A deploy without -h: the Admin API stand-in answers `answer`; the login token is the
/// password of `role` (when given). The run, and the paths the stand-in was asked.
fn deploy_located(role: Option<&TokenRole>, db: &str, answer: Reply) -> (Run, Vec<String>) {
    let key = Arc::new(Key::new());
    let login = random_secret("ya29.login-");
    let admin = random_secret("ya29.admin-");
    if let Some(role) = role {
        role_password(&role.name, &login);
    }
    let api = admin_stand_in(Arc::clone(&key), login, admin, answer);
    let files = tempfile::tempdir().unwrap();
    let key_file = write(
        files.path(),
        "key.json",
        &key.file(&format!("{}/token", api.url)),
    );
    let project = Project::with_deploy(DEPLOY_SQL);
    let user = role.map_or("nobody@proj.iam", |r| r.name.as_str());
    let args = deploy_args(&project, user, db, None);
    // gcloud's form of the override, with the API version path.
    let endpoint = format!("{}/sql/v1beta4/", api.url);
    let run = run(
        &strs(&args),
        &[
            ("GOOGLE_APPLICATION_CREDENTIALS", key_file.as_str()),
            ("CLOUDSDK_API_ENDPOINT_OVERRIDES_SQL", endpoint.as_str()),
        ],
    );
    let paths = api
        .requests()
        .iter()
        .map(|r| r.path().to_string())
        .collect();
    (run, paths)
}

/// Sets a role's password (the token is only known once the stand-in's key exists).
fn role_password(role: &str, password: &str) {
    pgmi_tests::connect("postgres")
        .batch_execute(&format!(
            "ALTER ROLE \"{role}\" PASSWORD '{}'",
            password.replace('\'', "''")
        ))
        .expect("ALTER ROLE");
}

/// Without -h the address comes from the Admin API, and the server is verified against
/// the CA it gives (verify-ca).
#[test]
fn the_address_comes_from_the_admin_api() {
    let role = TokenRole::new(&role_name("api"), &random_secret("placeholder-"));
    let db = TestDb::unnamed("gcp_api");
    let answer = connect_settings("region1", &server_certificate());
    let (run, paths) = deploy_located(Some(&role), &db.name, answer);
    assert_deployed_as(&run, &role.name, &db.name);
    assert!(
        run.stderr
            .contains(&format!("Cloud SQL instance {INSTANCE} is at 127.0.0.1")),
        "{}",
        run.stderr
    );
    assert_eq!(
        paths
            .iter()
            .filter(|p| p.ends_with("/connectSettings"))
            .count(),
        1,
        "{paths:?}"
    );
}

/// A self-signed certificate that did not sign the test server's.
fn unrelated_ca() -> String {
    use openssl::x509::{X509Builder, X509NameBuilder};
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "Some other CA").unwrap();
    let name = name.build();
    let mut cert = X509Builder::new().unwrap();
    cert.set_version(2).unwrap();
    cert.set_subject_name(&name).unwrap();
    cert.set_issuer_name(&name).unwrap();
    cert.set_pubkey(&key).unwrap();
    cert.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    cert.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    cert.sign(&key, MessageDigest::sha256()).unwrap();
    String::from_utf8(cert.build().to_pem().unwrap()).unwrap()
}

/// The instance's CA is used: a server it did not sign is not connected to.
#[test]
fn a_server_the_instance_ca_did_not_sign_is_refused() {
    let role = TokenRole::new(&role_name("apica"), &random_secret("placeholder-"));
    let db = TestDb::unnamed("gcp_api_ca");
    let (run, _) = deploy_located(
        Some(&role),
        &db.name,
        connect_settings("region1", &unrelated_ca()),
    );
    assert_eq!(run.code, 11, "{}", run.stderr);
    for needle in [
        "certificate verify failed",
        "signed by the instance's CA that the Cloud SQL Admin API returned",
    ] {
        assert!(
            run.stderr.contains(needle),
            "{needle:?} not in:\n{}",
            run.stderr
        );
    }
    assert!(!run.stderr.contains("pgmi-cloudsql-ca"), "{}", run.stderr);
}

#[test]
fn an_instance_in_another_region_is_refused() {
    let answer = connect_settings("region2", &server_certificate());
    let (run, paths) = deploy_located(None, "postgres", answer);
    assert_eq!(run.code, 11, "{}", run.stderr);
    assert!(
        run.stderr.contains("in region region2, not region1"),
        "{}",
        run.stderr
    );
    assert!(paths.iter().any(|p| p.ends_with("/connectSettings")));
}

#[test]
fn an_admin_api_refusal_says_what_to_check() {
    let answer = Reply::json(
        403,
        json!({"error": {
            "code": 403,
            "message": "Cloud SQL Admin API has not been used in project 123 before or it is disabled.",
            "status": "PERMISSION_DENIED",
        }}),
    );
    let (run, _) = deploy_located(None, "postgres", answer);
    assert_eq!(run.code, 11, "{}", run.stderr);
    for expected in [
        "could not look up Cloud SQL instance",
        "HTTP 403: PERMISSION_DENIED: Cloud SQL Admin API has not been used",
        "gcloud services enable sqladmin.googleapis.com",
        "Cloud SQL Client role",
    ] {
        assert!(
            run.stderr.contains(expected),
            "no {expected:?} in:\n{}",
            run.stderr
        );
    }
}
