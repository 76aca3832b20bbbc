//! Azure Entra ID authentication (`--azure`) through the real binary: each credential
//! source hands `pgmi-upload` a token, and the deploy succeeds only if that token reaches
//! the server as the password.
//!
//! Entra, the App Service identity endpoint and the instance metadata service are
//! stand-ins on the loopback interface (`AZURE_AUTHORITY_HOST`, `IDENTITY_ENDPOINT`,
//! `AZURE_POD_IDENTITY_AUTHORITY_HOST`) that check each request as the real service
//! would and issue a random token; the Azure CLI is a shell script named `az` first on
//! `PATH`. The database user is a [`TokenRole`] whose password is the token the stand-in
//! issues. Every run starts with all Azure variables blanked, the metadata service
//! pointed at a closed port and no `az` on `PATH`, so the machine's own identity cannot
//! take part.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Verifier;
use openssl::x509::X509;
use pgmi_tests::stand_in::{Reply, Request, StandIn, TokenRole};
use pgmi_tests::{pgmi_upload, Project, Run, TestDb};
use serde_json::json;

const TENANT: &str = "3f1c0a52-7d4e-4b8a-9c61-0e2d5b7a9f10";
const CLIENT: &str = "a8d2e4c6-1b3f-4a5d-8e7c-9f0b1c2d3e4f";
const RESOURCE: &str = "https://ossrdbms-aad.database.windows.net";
const SCOPE: &str = "https://ossrdbms-aad.database.windows.net/.default";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Says who the deploy ran as, so a success shows the token role was used.
const REPORT_SQL: &str = "DO $$ BEGIN RAISE NOTICE 'azure-who=%', current_user; END $$;\n";

/// Every variable a credential source reads, blanked (an empty value counts as unset).
const AZURE_VARIABLES: &[&str] = &[
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IMDS_ENDPOINT",
    "PGPASSWORD",
];

static NAMES: AtomicUsize = AtomicUsize::new(0);

/// A random value of 32 hex digits, registered as a secret no output may contain.
fn random_secret() -> String {
    let mut bytes = [0u8; 16];
    openssl::rand::rand_bytes(&mut bytes).expect("random bytes");
    let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    pgmi_tests::register_secret(&text);
    text
}

/// A role name of this process.
fn role_name(label: &str) -> String {
    format!(
        "pgmi_t_azure_{label}_{}_{}",
        std::process::id(),
        NAMES.fetch_add(1, Ordering::SeqCst)
    )
}

/// A deploy in its own environment: `empty_path` is a directory with no `az`.
struct Setup {
    // Fields drop in this order: the database, then the role.
    db: TestDb,
    role: TokenRole,
    project: Project,
    empty_path: tempfile::TempDir,
}

impl Setup {
    /// A role whose password is `token`, and a database name for the deploy to create.
    fn new(label: &str, token: &str) -> Setup {
        let role = TokenRole::new(&role_name(label), token);
        let db = TestDb::unnamed(label);
        Setup {
            db,
            role,
            project: Project::with_deploy(REPORT_SQL),
            empty_path: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// `deploy --azure <extra>` as the role over TCP, with every Azure variable blanked,
    /// then `vars`.
    fn deploy(&self, extra: &[&str], vars: &[(&str, &str)]) -> Run {
        let config = pgmi_tests::config("postgres");
        let port = config.get_ports()[0].to_string();
        let path = self.project.path().to_str().expect("utf-8 temp path");
        let mut args = vec![
            "deploy",
            path,
            "--session",
            "portable",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            &self.role.name,
            "-d",
            &self.db.name,
            "--azure",
            "--verbose",
        ];
        args.extend_from_slice(extra);
        let empty_path = self.empty_path.path().display().to_string();
        let mut env: Vec<(&str, &str)> = AZURE_VARIABLES.iter().map(|v| (*v, "")).collect();
        env.push(("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:1"));
        env.push(("PATH", &empty_path));
        env.extend_from_slice(vars);
        pgmi_upload(&args, &env)
    }
}

#[track_caller]
fn assert_deployed(run: &Run, setup: &Setup) {
    assert_eq!(
        run.code, 0,
        "deploy failed:\nstdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let line = format!("azure-who={}", setup.role.name);
    assert!(
        run.stderr.contains(&line),
        "expected {line:?} in:\n{}",
        run.stderr
    );
}

#[track_caller]
fn assert_failed(run: &Run, needles: &[&str]) {
    assert_eq!(run.code, 11, "expected exit 11:\n{}", run.stderr);
    for needle in needles {
        assert!(
            run.stderr.contains(needle),
            "expected {needle:?} in:\n{}",
            run.stderr
        );
    }
}

/// A form field's value.
fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

// ---------------------------------------------------------------------------------------
// Entra's token endpoint.

/// How the client must prove itself to the stand-in Entra.
#[derive(Clone)]
enum Proof {
    Secret(String),
    /// A federated token, sent back as it was read.
    Assertion(String),
    /// A JWT signed by the key of this certificate (DER).
    Certificate(Vec<u8>),
}

/// A stand-in Entra for `tenant` and `client`, issuing `token` to a request that is
/// right in every detail, and a 400 naming what is wrong otherwise.
fn entra(tenant: &str, client: &str, proof: Proof, token: &str) -> StandIn {
    let (tenant, client, token) = (tenant.to_string(), client.to_string(), token.to_string());
    StandIn::start(
        move |request| match check_token_request(request, &tenant, &client, &proof) {
            Ok(()) => Reply::json(
                200,
                json!({
                    "token_type": "Bearer",
                    "expires_in": 3599,
                    "ext_expires_in": 3599,
                    "access_token": token,
                }),
            ),
            Err(why) => Reply::json(
                400,
                json!({"error": "invalid_request", "error_description": format!("stand-in: {why}")}),
            ),
        },
    )
}

fn check_token_request(
    request: &Request,
    tenant: &str,
    client: &str,
    proof: &Proof,
) -> Result<(), String> {
    let path = format!("/{tenant}/oauth2/v2.0/token");
    if request.method != "POST" || request.target != path {
        return Err(format!(
            "expected POST {path}, got {} {}",
            request.method, request.target
        ));
    }
    let content_type = request.header("content-type").unwrap_or("");
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return Err(format!("content type {content_type:?}"));
    }
    let form = request.form();
    let mut expected = vec![
        ("grant_type", "client_credentials".to_string()),
        ("client_id", client.to_string()),
        ("scope", SCOPE.to_string()),
    ];
    match proof {
        Proof::Secret(secret) => expected.push(("client_secret", secret.clone())),
        Proof::Assertion(assertion) => {
            expected.push(("client_assertion_type", JWT_BEARER.to_string()));
            expected.push(("client_assertion", assertion.clone()));
        }
        Proof::Certificate(der) => {
            expected.push(("client_assertion_type", JWT_BEARER.to_string()));
            let jwt = field(&form, "client_assertion").ok_or("no client_assertion")?;
            // The audience is the token endpoint's URL, as the client addressed it.
            let host = request.header("host").unwrap_or("");
            let audience = format!("http://{host}{path}");
            check_signed_assertion(jwt, der, client, &audience)?;
            expected.push(("client_assertion", jwt.to_string()));
        }
    }
    let mut got: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut want: Vec<(&str, &str)> = expected.iter().map(|(k, v)| (*k, v.as_str())).collect();
    got.sort();
    want.sort();
    if got != want {
        let names: Vec<&str> = got.iter().map(|(k, _)| *k).collect();
        return Err(format!(
            "the form's fields or values are not as expected (fields {names:?})"
        ));
    }
    Ok(())
}

fn unbase64url(text: &str) -> Result<Vec<u8>, String> {
    let mut standard = text.replace('-', "+").replace('_', "/");
    while !standard.len().is_multiple_of(4) {
        standard.push('=');
    }
    openssl::base64::decode_block(&standard).map_err(|e| e.to_string())
}

/// An RS256 JWT signed by the certificate's key, naming it by `x5t`, for `client` and
/// `audience`, valid now.
fn check_signed_assertion(
    jwt: &str,
    der: &[u8],
    client: &str,
    audience: &str,
) -> Result<(), String> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return Err("the assertion is not a JWT".to_string());
    };
    let cert = X509::from_der(der).map_err(|e| e.to_string())?;
    let decode = |part: &str| -> Result<serde_json::Value, String> {
        serde_json::from_slice(&unbase64url(part)?).map_err(|e| e.to_string())
    };
    let (head, body) = (decode(header)?, decode(claims)?);
    let thumbprint = openssl::base64::encode_block(&cert.digest(MessageDigest::sha1()).unwrap())
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_");
    if head["alg"] != "RS256" || head["x5t"] != thumbprint.as_str() {
        return Err(format!("header {head}"));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let in_time = body["nbf"].as_u64().is_some_and(|t| t <= now + 60)
        && body["exp"].as_u64().is_some_and(|t| t > now);
    if body["aud"] != audience || body["iss"] != client || body["sub"] != client || !in_time {
        return Err(format!("claims {body}"));
    }
    let public: PKey<_> = cert.public_key().map_err(|e| e.to_string())?;
    let mut verifier =
        Verifier::new(MessageDigest::sha256(), &public).map_err(|e| e.to_string())?;
    verifier
        .update(format!("{header}.{claims}").as_bytes())
        .map_err(|e| e.to_string())?;
    match verifier.verify(&unbase64url(signature)?) {
        Ok(true) => Ok(()),
        _ => Err("the assertion's signature does not verify".to_string()),
    }
}

#[test]
fn client_secret_from_the_environment() {
    let (token, secret) = (random_secret(), random_secret());
    let setup = Setup::new("az_secret", &token);
    let entra = entra(TENANT, CLIENT, Proof::Secret(secret.clone()), &token);
    let run = setup.deploy(
        &[],
        &[
            ("AZURE_AUTHORITY_HOST", &format!("{}/", entra.url)),
            ("AZURE_TENANT_ID", TENANT),
            ("AZURE_CLIENT_ID", CLIENT),
            ("AZURE_CLIENT_SECRET", &secret),
        ],
    );
    assert_deployed(&run, &setup);
    assert!(run.stderr.contains("client secret"), "{}", run.stderr);
    let requests = entra.requests();
    assert!(!requests.is_empty());
    assert_eq!(
        field(&requests[0].form(), "client_secret"),
        Some(secret.as_str())
    );
}

#[test]
fn flags_win_over_the_environment() {
    let (token, secret) = (random_secret(), random_secret());
    let setup = Setup::new("az_flags", &token);
    let (tenant, client) = (
        "contoso.onmicrosoft.com",
        "0f0f0f0f-1111-4222-8333-444455556666",
    );
    let entra = entra(tenant, client, Proof::Secret(secret.clone()), &token);
    let run = setup.deploy(
        &["--azure-tenant-id", tenant, "--azure-client-id", client],
        &[
            ("AZURE_AUTHORITY_HOST", &entra.url),
            ("AZURE_TENANT_ID", TENANT),
            ("AZURE_CLIENT_ID", CLIENT),
            ("AZURE_CLIENT_SECRET", &secret),
        ],
    );
    assert_deployed(&run, &setup);
    let request = &entra.requests()[0];
    assert_eq!(request.path(), format!("/{tenant}/oauth2/v2.0/token"));
    assert_eq!(field(&request.form(), "client_id"), Some(client));
}

#[test]
fn client_certificate_from_the_environment() {
    let token = random_secret();
    let setup = Setup::new("az_cert", &token);
    let (pem, der) = certificate();
    let dir = tempfile::tempdir().expect("tempdir");
    let pem_path = dir.path().join("sp.pem");
    std::fs::write(&pem_path, pem).expect("write the PEM file");
    let entra = entra(TENANT, CLIENT, Proof::Certificate(der), &token);
    let run = setup.deploy(
        &[],
        &[
            ("AZURE_AUTHORITY_HOST", &entra.url),
            ("AZURE_TENANT_ID", TENANT),
            ("AZURE_CLIENT_ID", CLIENT),
            ("AZURE_CLIENT_CERTIFICATE_PATH", pem_path.to_str().unwrap()),
        ],
    );
    assert_deployed(&run, &setup);
    assert!(run.stderr.contains("certificate"), "{}", run.stderr);
}

/// A self-signed RSA certificate: the PEM of key and certificate, and the certificate's DER.
fn certificate() -> (Vec<u8>, Vec<u8>) {
    use openssl::asn1::Asn1Time;
    use openssl::rsa::Rsa;
    use openssl::x509::X509NameBuilder;
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "pgmi-azure-test").unwrap();
    let name = name.build();
    let mut cert = X509::builder().unwrap();
    cert.set_subject_name(&name).unwrap();
    cert.set_issuer_name(&name).unwrap();
    cert.set_pubkey(&key).unwrap();
    cert.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    cert.set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    cert.sign(&key, MessageDigest::sha256()).unwrap();
    let cert = cert.build();
    let mut pem = key.private_key_to_pem_pkcs8().unwrap();
    pem.extend(cert.to_pem().unwrap());
    (pem, cert.to_der().unwrap())
}

#[test]
fn workload_identity_sends_the_federated_token() {
    let (token, federated) = (random_secret(), random_secret());
    let setup = Setup::new("az_wi", &token);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("azure-identity-token");
    std::fs::write(&file, format!("{federated}\n")).expect("write the token file");
    let entra = entra(TENANT, CLIENT, Proof::Assertion(federated.clone()), &token);
    let run = setup.deploy(
        &[],
        &[
            ("AZURE_AUTHORITY_HOST", &entra.url),
            ("AZURE_TENANT_ID", TENANT),
            ("AZURE_CLIENT_ID", CLIENT),
            ("AZURE_FEDERATED_TOKEN_FILE", file.to_str().unwrap()),
        ],
    );
    assert_deployed(&run, &setup);
    assert!(run.stderr.contains("workload identity"), "{}", run.stderr);
    let form = entra.requests()[0].form();
    assert_eq!(field(&form, "client_assertion"), Some(federated.as_str()));
    assert_eq!(field(&form, "client_assertion_type"), Some(JWT_BEARER));
}

#[test]
fn an_unreadable_federated_token_file_stops_the_chain() {
    let token = random_secret();
    let setup = Setup::new("az_wi_missing", &token);
    let run = setup.deploy(
        &[],
        &[
            ("AZURE_TENANT_ID", TENANT),
            ("AZURE_CLIENT_ID", CLIENT),
            (
                "AZURE_FEDERATED_TOKEN_FILE",
                "/nonexistent/azure-identity-token",
            ),
        ],
    );
    assert_failed(
        &run,
        &["workload identity: cannot read AZURE_FEDERATED_TOKEN_FILE"],
    );
    assert!(!run.stderr.contains("Azure CLI"), "{}", run.stderr);
}

// ---------------------------------------------------------------------------------------
// Managed identity.

#[test]
fn managed_identity_of_app_service() {
    let (token, header) = (random_secret(), random_secret());
    let setup = Setup::new("az_mi_app", &token);
    let expires_on = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600)
        .to_string();
    let endpoint = StandIn::start({
        let (token, header) = (token.clone(), header.clone());
        move |request| {
            if request.method == "GET"
                && request.path() == "/msi/token"
                && request.header("x-identity-header") == Some(header.as_str())
            {
                Reply::json(
                    200,
                    json!({"access_token": token, "expires_on": expires_on, "resource": RESOURCE, "token_type": "Bearer"}),
                )
            } else {
                Reply::json(
                    400,
                    json!({"statusCode": 400, "message": "stand-in: unexpected request"}),
                )
            }
        }
    });
    let run = setup.deploy(
        &["--azure-client-id", CLIENT],
        &[
            ("IDENTITY_ENDPOINT", &format!("{}/msi/token", endpoint.url)),
            ("IDENTITY_HEADER", &header),
        ],
    );
    assert_deployed(&run, &setup);
    assert!(run.stderr.contains("managed identity"), "{}", run.stderr);
    let request = &endpoint.requests()[0];
    assert_eq!(request.header("x-identity-header"), Some(header.as_str()));
    let query = request.query();
    let pairs: Vec<(&str, &str)> = query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("api-version", "2019-08-01"),
            ("resource", RESOURCE),
            ("client_id", CLIENT)
        ]
    );
}

#[test]
fn managed_identity_from_the_instance_metadata_service() {
    let token = random_secret();
    let setup = Setup::new("az_mi_imds", &token);
    let imds = StandIn::start({
        let token = token.clone();
        move |request| {
            let right =
                request.method == "GET" && request.path() == "/metadata/identity/oauth2/token";
            match request.header("metadata") {
                Some("true") if right => Reply::json(
                    200,
                    json!({"access_token": token, "expires_in": "86399", "expires_on": "4102444800", "token_type": "Bearer"}),
                ),
                _ => Reply::json(
                    400,
                    json!({"error": "invalid_request", "error_description": "Required metadata header not specified"}),
                ),
            }
        }
    });
    let run = setup.deploy(&[], &[("AZURE_POD_IDENTITY_AUTHORITY_HOST", &imds.url)]);
    assert_deployed(&run, &setup);
    let requests = imds.requests();
    let last = requests.last().expect("a request");
    assert_eq!(last.header("metadata"), Some("true"));
    let query = last.query();
    let pairs: Vec<(&str, &str)> = query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [("api-version", "2018-02-01"), ("resource", RESOURCE)]
    );
}

// ---------------------------------------------------------------------------------------
// The Azure CLI.

/// A directory with an executable `az` running `body` (a shell script).
fn fake_az(body: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("az");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write az");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod az");
    dir
}

fn path_with(dir: &Path) -> String {
    format!("{}:/usr/bin:/bin", dir.display())
}

#[test]
fn azure_cli_login() {
    let token = random_secret();
    let setup = Setup::new("az_cli", &token);
    let expected =
        format!("account get-access-token --output json --resource {RESOURCE} --tenant {TENANT}");
    let az = fake_az(&format!(
        r#"if [ "$*" != "{expected}" ]; then echo "ERROR: unexpected arguments: $*" >&2; exit 2; fi
echo '{{"accessToken": "{token}", "expiresOn": "2030-01-01 00:00:00.000000", "expires_on": 1893456000, "subscription": "s", "tenant": "{TENANT}", "tokenType": "Bearer"}}'"#
    ));
    let path = path_with(az.path());
    let run = setup.deploy(&[], &[("PATH", &path), ("AZURE_TENANT_ID", TENANT)]);
    assert_deployed(&run, &setup);
    assert!(run.stderr.contains("Azure CLI"), "{}", run.stderr);
}

#[test]
fn azure_cli_not_logged_in() {
    let token = random_secret();
    let setup = Setup::new("az_cli_out", &token);
    let az = fake_az("echo \"ERROR: Please run 'az login' to setup account.\" >&2; exit 1");
    let path = path_with(az.path());
    let run = setup.deploy(&[], &[("PATH", &path)]);
    assert_failed(
        &run,
        &[
            "environment: not set",
            "workload identity: not set",
            "managed identity: no instance metadata service",
            "Azure CLI: az: Please run 'az login' to setup account.",
            "azure/login",
        ],
    );
}

#[test]
fn no_source_at_all() {
    let token = random_secret();
    let setup = Setup::new("az_none", &token);
    let run = setup.deploy(&[], &[]);
    assert_failed(
        &run,
        &[
            "Azure Entra ID",
            "Azure CLI: az not found on PATH",
            "AZURE_CLIENT_SECRET",
        ],
    );
}

// ---------------------------------------------------------------------------------------
// Refusals.

#[test]
fn entra_refuses_the_client_secret() {
    let token = random_secret();
    let secret = random_secret();
    let setup = Setup::new("az_bad_secret", &token);
    let entra = StandIn::start(|_| {
        Reply::json(
            401,
            json!({
                "error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.\r\nTrace ID: 0\r\nCorrelation ID: 0\r\nTimestamp: 2026-12-04 00:00:00Z",
                "error_codes": [7000215],
            }),
        )
    });
    let run = setup.deploy(
        &[],
        &[
            ("AZURE_AUTHORITY_HOST", &entra.url),
            ("AZURE_TENANT_ID", TENANT),
            ("AZURE_CLIENT_ID", CLIENT),
            ("AZURE_CLIENT_SECRET", &secret),
        ],
    );
    assert_failed(
        &run,
        &[
            "environment",
            "AADSTS7000215: Invalid client secret provided",
        ],
    );
    assert!(!run.stderr.contains(&secret));
    assert!(!run.stderr.contains("Trace ID"), "{}", run.stderr);
    // The chain stopped there: no other identity was tried in its place.
    assert!(!run.stderr.contains("Azure CLI"), "{}", run.stderr);
    assert_eq!(entra.requests().len(), 1);
}

#[test]
fn the_server_refuses_the_token() {
    let (password, issued, secret) = (random_secret(), random_secret(), random_secret());
    let setup = Setup::new("az_refused", &password);
    let entra = entra(TENANT, CLIENT, Proof::Secret(secret.clone()), &issued);
    let run = setup.deploy(
        &[],
        &[
            ("AZURE_AUTHORITY_HOST", &entra.url),
            ("AZURE_TENANT_ID", TENANT),
            ("AZURE_CLIENT_ID", CLIENT),
            ("AZURE_CLIENT_SECRET", &secret),
        ],
    );
    assert_failed(&run, &["did not accept the Entra ID token"]);
    assert!(!run.stderr.contains(&issued));
}
