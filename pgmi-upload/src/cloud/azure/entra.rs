//! The Entra token endpoint, for the two sources that are an app registration (service
//! principal): the environment (client secret or certificate) and workload identity
//! (a federated token from a file). Both use the client-credentials grant on
//! `{authority}/{tenant}/oauth2/v2.0/token`.
//!
//! The authority is `https://login.microsoftonline.com` unless `AZURE_AUTHORITY_HOST`
//! (the SDKs' variable, for sovereign clouds) says otherwise; an override must be https
//! (loopback aside), since the request carries the credential.

use serde_json::Value;

use super::{certificate, first_line, parse_token_answer, valid_tenant, Context, Step, SCOPE};
use crate::cloud::{http, Token};
use crate::redact::register_secret;

const PUBLIC_AUTHORITY: &str = "https://login.microsoftonline.com";

const SECRET_HINT: &str = "check AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET: the secret must be the value of a current secret of that app registration (not its ID)";
const CERTIFICATE_HINT: &str = "check AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_CERTIFICATE_PATH: the file must hold the private key and the certificate uploaded to that app registration";
const FEDERATED_HINT: &str = "check AZURE_TENANT_ID and AZURE_CLIENT_ID, and that the app registration (or user-assigned identity) has a federated credential whose issuer, subject and audience match the token in AZURE_FEDERATED_TOKEN_FILE (in GitHub Actions, azure/login with federated credentials sets this up)";

/// A service principal from the environment: `AZURE_CLIENT_SECRET`, else a certificate.
pub(super) fn environment(cx: &Context<'_, '_>) -> Step {
    let secret = cx.env("AZURE_CLIENT_SECRET");
    let certificate_path = cx.env("AZURE_CLIENT_CERTIFICATE_PATH");
    let what = match (&secret, &certificate_path) {
        (Some(_), _) => "AZURE_CLIENT_SECRET",
        (None, Some(_)) => "AZURE_CLIENT_CERTIFICATE_PATH",
        (None, None) if cx.env("AZURE_USERNAME").is_some() => {
            return Step::Skip(
                "AZURE_USERNAME is set, but signing in with a user's password is not supported (use a service principal or `az login`)".to_string(),
            )
        }
        (None, None) => {
            return Step::Skip(
                "not set (AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH)".to_string(),
            )
        }
    };
    let (tenant, client_id) = match cx.principal() {
        Ok(principal) => principal,
        Err(missing) => return Step::Skip(format!("{what} is set but there is {missing}")),
    };
    let hint = if secret.is_some() {
        SECRET_HINT
    } else {
        CERTIFICATE_HINT
    };
    let endpoint = match token_endpoint(cx, tenant) {
        Ok(url) => url,
        Err(why) => return Step::fail(why, hint),
    };
    if let Some(secret) = secret {
        register_secret(&secret);
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret.as_str()),
            ("scope", SCOPE),
        ];
        let source =
            format!("service principal {client_id} with a client secret (AZURE_CLIENT_SECRET)");
        return request_token(cx, &endpoint, &form, source, hint);
    }
    let path = certificate_path.unwrap_or_default();
    let password = cx.env("AZURE_CLIENT_CERTIFICATE_PASSWORD");
    if let Some(password) = &password {
        register_secret(password);
    }
    let assertion = certificate::load(&path, password.as_deref())
        .and_then(|credential| credential.assertion(&endpoint.url, client_id, cx.request.now));
    let assertion = match assertion {
        Ok(assertion) => assertion,
        Err(why) => return Step::fail(format!("AZURE_CLIENT_CERTIFICATE_PATH: {why}"), hint),
    };
    register_secret(&assertion);
    let form = assertion_form(client_id, &assertion);
    let source = format!(
        "service principal {client_id} with a certificate (AZURE_CLIENT_CERTIFICATE_PATH {path})"
    );
    request_token(cx, &endpoint, &form, source, hint)
}

/// A federated token in `AZURE_FEDERATED_TOKEN_FILE`, exchanged for an access token.
pub(super) fn workload_identity(cx: &Context<'_, '_>) -> Step {
    let Some(path) = cx.env("AZURE_FEDERATED_TOKEN_FILE") else {
        return Step::Skip("not set (AZURE_FEDERATED_TOKEN_FILE)".to_string());
    };
    let (tenant, client_id) = match cx.principal() {
        Ok(principal) => principal,
        Err(missing) => {
            return Step::Skip(format!(
                "AZURE_FEDERATED_TOKEN_FILE is set but there is {missing}"
            ))
        }
    };
    // The file is named by its variable only: its path is no secret, but a variable
    // named `*TOKEN*` is one to most log scrubbers.
    let assertion = match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().to_string(),
        Err(e) => {
            return Step::fail(
                format!("cannot read AZURE_FEDERATED_TOKEN_FILE: {e}"),
                FEDERATED_HINT,
            )
        }
    };
    if assertion.is_empty() {
        return Step::fail(
            "AZURE_FEDERATED_TOKEN_FILE is an empty file",
            FEDERATED_HINT,
        );
    }
    register_secret(&assertion);
    let endpoint = match token_endpoint(cx, tenant) {
        Ok(url) => url,
        Err(why) => return Step::fail(why, FEDERATED_HINT),
    };
    let form = assertion_form(client_id, &assertion);
    let source = format!("workload identity {client_id} (AZURE_FEDERATED_TOKEN_FILE)");
    request_token(cx, &endpoint, &form, source, FEDERATED_HINT)
}

/// The client-credentials form that proves the client with a signed JWT.
fn assertion_form<'a>(client_id: &'a str, assertion: &'a str) -> [(&'a str, &'a str); 5] {
    [
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion),
        ("scope", SCOPE),
    ]
}

/// Where tokens are asked for, and how messages name it.
struct Endpoint {
    url: String,
    /// The URL itself, or the variable that set it: overrides are named, not shown (test
    /// harnesses and log scrubbers count variables named like `*AUTH*` as secret).
    label: String,
}

/// `{authority}/{tenant}/oauth2/v2.0/token`.
fn token_endpoint(cx: &Context<'_, '_>, tenant: &str) -> Result<Endpoint, String> {
    valid_tenant(tenant)?;
    let Some(host) = cx.env("AZURE_AUTHORITY_HOST") else {
        let url = format!("{PUBLIC_AUTHORITY}/{tenant}/oauth2/v2.0/token");
        return Ok(Endpoint {
            label: url.clone(),
            url,
        });
    };
    // The SDKs take a bare host name (`login.microsoftonline.us`) as https.
    let host = host.trim();
    let host = if host.contains("://") {
        host.to_string()
    } else {
        format!("https://{host}")
    };
    if http::check_override(&host, "AZURE_AUTHORITY_HOST").is_err() {
        return Err(
            "AZURE_AUTHORITY_HOST must be an https:// URL (plain http is allowed only to localhost)"
                .to_string(),
        );
    }
    Ok(Endpoint {
        url: format!("{}/{tenant}/oauth2/v2.0/token", host.trim_end_matches('/')),
        label: "the token endpoint at AZURE_AUTHORITY_HOST".to_string(),
    })
}

/// POST the form; a token, or why not.
fn request_token(
    cx: &Context<'_, '_>,
    endpoint: &Endpoint,
    form: &[(&str, &str)],
    source: String,
    hint: &str,
) -> Step {
    let response = match cx.request.http.post_form(&endpoint.url, &[], form) {
        Ok(response) => response,
        Err(e) => return Step::fail(format!("{}: {e}", endpoint.label), hint),
    };
    if !response.ok() {
        return Step::fail(refusal(response.status, &response.body), hint);
    }
    let parsed = response
        .json()
        .and_then(|json| parse_token_answer(&json, cx.request.now));
    match parsed {
        Ok((secret, expires_at)) => Step::Got(Token {
            secret,
            expires_at,
            source,
        }),
        Err(why) => Step::fail(format!("{}: {why}", endpoint.label), hint),
    }
}

/// Why the token endpoint said no: the OAuth error and the first line of its description,
/// which starts with the AADSTS code (`AADSTS7000215: Invalid client secret provided.`).
/// A body that is not Entra's JSON is not shown (it is not known what it holds).
pub(super) fn refusal(status: u16, body: &str) -> String {
    let json: Value = match serde_json::from_str(body) {
        Ok(json) => json,
        Err(_) => return format!("HTTP {status} from the token endpoint (not an Entra answer)"),
    };
    let error = json.get("error").and_then(Value::as_str).unwrap_or("");
    let mut description = json
        .get("error_description")
        .and_then(Value::as_str)
        .map(first_line)
        .unwrap_or_default();
    let code = json
        .get("error_codes")
        .and_then(|codes| codes.get(0))
        .and_then(Value::as_u64);
    if let Some(code) = code {
        if !description.starts_with("AADSTS") {
            description = format!("AADSTS{code}: {description}")
                .trim_end()
                .to_string();
        }
    }
    match (error.is_empty(), description.is_empty()) {
        (false, false) => format!("HTTP {status} {error}: {description}"),
        (false, true) => format!("HTTP {status} {error}"),
        (true, false) => format!("HTTP {status}: {description}"),
        (true, true) => format!("HTTP {status} from the token endpoint"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::cloud::http::Http;
    use crate::cloud::Request;

    /// The token endpoint with `AZURE_AUTHORITY_HOST` set to `host`.
    fn endpoint(host: Option<&str>) -> Result<Endpoint, String> {
        let host = host.map(str::to_string);
        let env = move |name: &str| (name == "AZURE_AUTHORITY_HOST").then(|| host.clone())?;
        let http = Http::default();
        let request = Request {
            host: "h",
            port: 5432,
            user: "u",
            env: &env,
            http: &http,
            now: SystemTime::now(),
        };
        let cx = Context {
            request: &request,
            tenant: None,
            client_id: None,
        };
        token_endpoint(&cx, "contoso.onmicrosoft.com")
    }

    #[test]
    fn authority_default_override_and_bare_host() {
        let public = endpoint(None).unwrap();
        assert_eq!(
            public.url,
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert_eq!(public.label, public.url);
        for (host, url) in [
            (
                "https://login.microsoftonline.us/",
                "https://login.microsoftonline.us/contoso.onmicrosoft.com/oauth2/v2.0/token",
            ),
            (
                "login.chinacloudapi.cn",
                "https://login.chinacloudapi.cn/contoso.onmicrosoft.com/oauth2/v2.0/token",
            ),
            (
                "http://127.0.0.1:8080",
                "http://127.0.0.1:8080/contoso.onmicrosoft.com/oauth2/v2.0/token",
            ),
        ] {
            let got = endpoint(Some(host)).unwrap();
            assert_eq!(got.url, url);
            assert_eq!(got.label, "the token endpoint at AZURE_AUTHORITY_HOST");
        }
        let err = endpoint(Some("http://login.example.com")).err().unwrap();
        assert!(err.contains("https://"), "{err}");
        assert!(!err.contains("login.example.com"), "{err}");
    }
}
