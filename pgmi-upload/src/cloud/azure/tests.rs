//! The chain's order and stopping rule with made-up environments, and the parsers. Nothing
//! here reaches a network: the metadata service is pointed at a closed loopback port and
//! `PATH` at an empty directory.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use super::*;
use crate::cloud::http::Http;
use crate::conninfo::Source;

/// Runs the chain with `vars` as the whole environment, plus a metadata service and a
/// `PATH` that are not there unless `vars` says otherwise.
fn chain(settings: &AzureSettings, vars: &[(&str, &str)]) -> Result<Token, CloudError> {
    let empty = tempfile::tempdir().unwrap();
    let mut map: HashMap<String, String> = HashMap::from([
        (
            "AZURE_POD_IDENTITY_AUTHORITY_HOST".to_string(),
            "http://127.0.0.1:1".to_string(),
        ),
        ("PATH".to_string(), empty.path().display().to_string()),
    ]);
    for (k, v) in vars {
        map.insert(k.to_string(), v.to_string());
    }
    let env = move |name: &str| map.get(name).cloned();
    let http = Http::default();
    let request = Request {
        host: "server.postgres.database.azure.com",
        port: 5432,
        user: "app",
        env: &env,
        http: &http,
        now: SystemTime::now(),
    };
    token(settings, &request)
}

fn settings(tenant: Option<&str>, client: Option<&str>) -> AzureSettings {
    let given = |v: Option<&str>| {
        v.map(|v| {
            (
                v.to_string(),
                Source::Env {
                    var: "X",
                    dotenv: false,
                },
            )
        })
    };
    AzureSettings {
        tenant_id: given(tenant),
        client_id: given(client),
    }
}

fn sources(err: &CloudError) -> Vec<&str> {
    err.tried.iter().map(|t| t.source.as_str()).collect()
}

#[test]
fn nothing_configured_tries_every_source_in_order() {
    let err = chain(&settings(None, None), &[]).unwrap_err();
    assert_eq!(
        sources(&err),
        [
            "environment",
            "workload identity",
            "managed identity",
            "Azure CLI"
        ]
    );
    assert!(err.tried[0].why.contains("not set"), "{err:?}");
    assert!(
        err.tried[1].why.contains("AZURE_FEDERATED_TOKEN_FILE"),
        "{err:?}"
    );
    assert!(
        err.tried[2].why.contains("no instance metadata service"),
        "{err:?}"
    );
    assert_eq!(err.tried[3].why, "az not found on PATH");
    for needle in ["AZURE_CLIENT_SECRET", "azure/login", "az login"] {
        assert!(err.hint.contains(needle), "{}", err.hint);
    }
}

#[test]
fn a_secret_without_tenant_or_client_is_passed_over() {
    let err = chain(
        &settings(None, Some("c")),
        &[("AZURE_CLIENT_SECRET", "s3cr3t-value")],
    )
    .unwrap_err();
    assert_eq!(err.tried.len(), 4);
    assert!(err.tried[0].why.contains("no tenant id"), "{err:?}");
    let err = chain(
        &settings(Some("t"), None),
        &[("AZURE_CLIENT_SECRET", "s3cr3t-value")],
    )
    .unwrap_err();
    assert!(err.tried[0].why.contains("no client id"), "{err:?}");
    assert!(!format!("{err:?}").contains("s3cr3t-value"));
}

#[test]
fn a_user_password_is_noted_not_used() {
    let err = chain(
        &settings(Some("t"), Some("c")),
        &[
            ("AZURE_USERNAME", "me@example.com"),
            ("AZURE_PASSWORD", "pw-value"),
        ],
    )
    .unwrap_err();
    assert_eq!(err.tried.len(), 4);
    assert!(err.tried[0].why.contains("not supported"), "{err:?}");
    assert!(!format!("{err:?}").contains("pw-value"));
}

#[test]
fn a_configured_source_that_fails_stops_the_chain() {
    // The authority override must be https off loopback.
    let err = chain(
        &settings(Some("t"), Some("c")),
        &[
            ("AZURE_CLIENT_SECRET", "s3cr3t-value"),
            ("AZURE_AUTHORITY_HOST", "http://login.example.com"),
        ],
    )
    .unwrap_err();
    assert_eq!(sources(&err), ["environment"]);
    assert!(err.tried[0].why.contains("AZURE_AUTHORITY_HOST"), "{err:?}");
    assert!(err.hint.contains("AZURE_CLIENT_SECRET"), "{}", err.hint);
    // An unreadable federated token file.
    let err = chain(
        &settings(Some("t"), Some("c")),
        &[("AZURE_FEDERATED_TOKEN_FILE", "/nonexistent/token")],
    )
    .unwrap_err();
    assert_eq!(sources(&err), ["environment", "workload identity"]);
    assert!(err.tried[1].why.contains("cannot read"), "{err:?}");
    assert!(err.hint.contains("federated credential"), "{}", err.hint);
    // The token endpoint is not there.
    let err = chain(
        &settings(Some("t"), Some("c")),
        &[
            ("AZURE_CLIENT_SECRET", "s3cr3t-value"),
            ("AZURE_AUTHORITY_HOST", "http://127.0.0.1:1/"),
        ],
    )
    .unwrap_err();
    assert_eq!(sources(&err), ["environment"]);
    assert!(
        err.tried[0]
            .why
            .starts_with("the token endpoint at AZURE_AUTHORITY_HOST: "),
        "{err:?}"
    );
    assert!(!err.tried[0].why.contains("127.0.0.1"), "{err:?}");
    // An App Service endpoint in clear text elsewhere than loopback.
    let err = chain(
        &settings(None, None),
        &[
            ("IDENTITY_ENDPOINT", "http://10.0.0.1/msi/token"),
            ("IDENTITY_HEADER", "header-secret"),
        ],
    )
    .unwrap_err();
    assert_eq!(
        sources(&err),
        ["environment", "workload identity", "managed identity"]
    );
    assert!(err.tried[2].why.contains("IDENTITY_ENDPOINT"), "{err:?}");
}

#[test]
fn tenants_cannot_change_the_path() {
    assert_eq!(valid_tenant("72f988bf-86f1-41af-91ab-2d7cd011db47"), Ok(()));
    assert_eq!(valid_tenant("contoso.onmicrosoft.com"), Ok(()));
    for bad in ["", "a/b", "../x", "t?x=1", "t#", "t x"] {
        assert!(valid_tenant(bad).is_err(), "{bad}");
    }
    let err = chain(
        &settings(Some("a/../b"), Some("c")),
        &[("AZURE_CLIENT_SECRET", "s3cr3t-value")],
    )
    .unwrap_err();
    assert_eq!(sources(&err), ["environment"]);
    assert!(err.tried[0].why.contains("invalid tenant id"), "{err:?}");
}

#[test]
fn expiry_as_number_string_or_relative() {
    let now = UNIX_EPOCH + Duration::from_secs(1_000);
    let at = |s| Some(UNIX_EPOCH + Duration::from_secs(s));
    for (answer, expected) in [
        (json!({"access_token": "t", "expires_on": 5000}), at(5000)),
        (json!({"access_token": "t", "expires_on": "5000"}), at(5000)),
        (
            json!({"access_token": "t", "expires_on": "5000", "expires_in": "60"}),
            at(5000),
        ),
        (json!({"access_token": "t", "expires_in": 3599}), at(4599)),
        (json!({"access_token": "t", "expires_in": "3599"}), at(4599)),
        (
            json!({"access_token": "t", "expires_on": "12/20/2019 12:00:00 AM +00:00"}),
            None,
        ),
        (json!({"access_token": "t"}), None),
    ] {
        assert_eq!(
            parse_token_answer(&answer, now),
            Ok(("t".to_string(), expected)),
            "{answer}"
        );
    }
    assert!(parse_token_answer(&json!({"access_token": ""}), now).is_err());
    assert!(parse_token_answer(&json!({"token": "t"}), now).is_err());
}

#[test]
fn token_endpoint_refusals_show_the_aadsts_line() {
    let body = json!({
        "error": "invalid_client",
        "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value.\r\nTrace ID: 1\r\nCorrelation ID: 2",
        "error_codes": [7000215],
    })
    .to_string();
    assert_eq!(
        entra::refusal(401, &body),
        "HTTP 401 invalid_client: AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value."
    );
    let body = json!({"error": "invalid_request", "error_description": "Bad tenant", "error_codes": [90002]}).to_string();
    assert_eq!(
        entra::refusal(400, &body),
        "HTTP 400 invalid_request: AADSTS90002: Bad tenant"
    );
    assert_eq!(
        entra::refusal(400, r#"{"error":"unauthorized_client"}"#),
        "HTTP 400 unauthorized_client"
    );
    // A body that is not Entra's is not echoed: it could be anything.
    assert_eq!(
        entra::refusal(502, "client_secret=s3cr3t-value"),
        "HTTP 502 from the token endpoint (not an Entra answer)"
    );
}

#[test]
fn query_values_are_percent_encoded() {
    assert_eq!(percent_encode("a b/c:d~e"), "a%20b%2Fc%3Ad~e");
    assert_eq!(with_query("http://h/p", &[("a", "1")]), "http://h/p?a=1");
    assert_eq!(
        with_query("http://h/p?x=y", &[("a", "1"), ("b", "&")]),
        "http://h/p?x=y&a=1&b=%26"
    );
}

#[test]
fn first_lines_are_bounded() {
    assert_eq!(first_line("\n  one \r\ntwo"), "one");
    assert_eq!(first_line(&"x".repeat(400)).chars().count(), 301);
}

mod certificates {
    use openssl::asn1::Asn1Time;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::sign::Verifier;
    use openssl::x509::{X509NameBuilder, X509};

    use super::super::certificate::{base64url, load};
    use super::*;

    fn self_signed() -> (Vec<u8>, X509) {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "pgmi-test").unwrap();
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
        (pem, cert)
    }

    fn decode(part: &str) -> serde_json::Value {
        serde_json::from_slice(&unbase64url(part)).unwrap()
    }

    fn unbase64url(text: &str) -> Vec<u8> {
        let mut standard = text.replace('-', "+").replace('_', "/");
        while !standard.len().is_multiple_of(4) {
            standard.push('=');
        }
        openssl::base64::decode_block(&standard).unwrap()
    }

    #[test]
    fn assertion_is_signed_and_names_the_certificate() {
        let (pem, cert) = self_signed();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sp.pem");
        std::fs::write(&path, &pem).unwrap();
        let credential = load(path.to_str().unwrap(), None).unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let audience = "https://login.example/t/oauth2/v2.0/token";
        let jwt = credential.assertion(audience, "client-1", now).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header = decode(parts[0]);
        assert_eq!(header["alg"], "RS256");
        assert_eq!(
            header["x5t"],
            base64url(&cert.digest(MessageDigest::sha1()).unwrap())
        );
        let claims = decode(parts[1]);
        assert_eq!(claims["aud"], audience);
        assert_eq!(claims["iss"], "client-1");
        assert_eq!(claims["sub"], "client-1");
        assert_eq!(claims["nbf"], 1_700_000_000u64);
        assert_eq!(claims["exp"], 1_700_000_600u64);
        assert_eq!(claims["jti"].as_str().unwrap().len(), 32);
        let public = cert.public_key().unwrap();
        let mut verifier = Verifier::new(MessageDigest::sha256(), &public).unwrap();
        verifier
            .update(format!("{}.{}", parts[0], parts[1]).as_bytes())
            .unwrap();
        assert!(verifier.verify(&unbase64url(parts[2])).unwrap());
    }

    #[test]
    fn unusable_files_are_named_not_shown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.pem");
        std::fs::write(&path, "-----BEGIN CERTIFICATE-----\nnope\n").unwrap();
        let path = path.to_str().unwrap();
        let why = load(path, None).err().unwrap();
        assert!(why.starts_with(path), "{why}");
        assert!(!why.contains("nope"), "{why}");
        let why = load("/nonexistent/sp.pem", None).err().unwrap();
        assert!(why.contains("cannot read"), "{why}");
    }
}
