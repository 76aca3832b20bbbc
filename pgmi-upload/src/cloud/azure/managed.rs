//! Managed identity: the token comes from a local endpoint of the Azure resource we run
//! on, with no credential of our own.
//!
//! * App Service, Functions, Container Apps: `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`
//!   (a per-process secret the endpoint expects back as `X-IDENTITY-HEADER`). These are
//!   set only there, so a failure stops the chain.
//! * Virtual machines, scale sets, AKS nodes: the instance metadata service at
//!   169.254.169.254 (or `AZURE_POD_IDENTITY_AUTHORITY_HOST`). Off Azure it is simply not
//!   there, so it is first probed with a short timeout (once per run: an absent service
//!   stays absent), and "not there" or "no identity assigned" moves on to the next source. It is plain HTTP by design and is sent no
//!   credential, so the override is not held to https.
//!
//! A user-assigned identity is chosen by its client id (`--azure-client-id`,
//! `AZURE_CLIENT_ID`); without one the system-assigned identity answers.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use super::{first_line, parse_token_answer, with_query, Context, Step, RESOURCE};
use crate::cloud::{http, Token};
use crate::redact::register_secret;

const IMDS: &str = "http://169.254.169.254";
/// How long the metadata service may take to show it exists.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

const HINT: &str = "check that the Azure resource has a managed identity (system-assigned, or the user-assigned one whose client id is given with --azure-client-id / AZURE_CLIENT_ID) and that it is an Entra administrator or principal of the database server";

pub(super) fn token(cx: &Context<'_, '_>) -> Step {
    match (cx.env("IDENTITY_ENDPOINT"), cx.env("IDENTITY_HEADER")) {
        (Some(endpoint), Some(header)) => app_service(cx, &endpoint, &header),
        (Some(_), None) if cx.env("IMDS_ENDPOINT").is_some() => Step::Skip(
            "IDENTITY_ENDPOINT and IMDS_ENDPOINT are set (Azure Arc), whose challenge flow is not supported"
                .to_string(),
        ),
        _ => instance_metadata(cx),
    }
}

/// The query both endpoints take, besides their API version.
fn query<'a>(version: &'a str, client_id: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut pairs = vec![("api-version", version), ("resource", RESOURCE)];
    if let Some(client_id) = client_id {
        pairs.push(("client_id", client_id));
    }
    pairs
}

/// The App Service form of the URL.
fn app_service_url(endpoint: &str, client_id: Option<&str>) -> String {
    with_query(endpoint, &query("2019-08-01", client_id))
}

/// The instance metadata form of the URL, at `base` (no trailing slash needed).
fn imds_url(base: &str, client_id: Option<&str>) -> String {
    let path = format!(
        "{}/metadata/identity/oauth2/token",
        base.trim().trim_end_matches('/')
    );
    with_query(&path, &query("2018-02-01", client_id))
}

fn app_service(cx: &Context<'_, '_>, endpoint: &str, header: &str) -> Step {
    if let Err(why) = http::check_override(endpoint.trim(), "IDENTITY_ENDPOINT") {
        return Step::fail(why, HINT);
    }
    register_secret(header);
    let url = app_service_url(endpoint.trim(), cx.client_id);
    let response = match cx
        .request
        .http
        .get(&url, &[("X-IDENTITY-HEADER", header)], None)
    {
        Ok(response) => response,
        Err(e) => return Step::fail(format!("IDENTITY_ENDPOINT {endpoint}: {e}"), HINT),
    };
    if !response.ok() {
        return Step::fail(
            format!(
                "IDENTITY_ENDPOINT {endpoint}: {}",
                refusal(response.status, &response.body)
            ),
            HINT,
        );
    }
    answer(
        cx,
        &response,
        format!("managed identity{} (IDENTITY_ENDPOINT)", which(cx)),
    )
}

fn instance_metadata(cx: &Context<'_, '_>) -> Step {
    // An override is named rather than shown, as the token endpoint's is.
    let (base, label) = match cx.env("AZURE_POD_IDENTITY_AUTHORITY_HOST") {
        Some(base) => (base, "at AZURE_POD_IDENTITY_AUTHORITY_HOST"),
        None => (IMDS.to_string(), "at 169.254.169.254"),
    };
    if let Some(why) = known_absent(&base) {
        return Step::Skip(why);
    }
    let url = imds_url(&base, cx.client_id);
    // Without the Metadata header the service answers at once with an error: any answer
    // at all says it is there.
    if let Err(e) = cx.request.http.get(&url, &[], Some(PROBE_TIMEOUT)) {
        let why = format!("no instance metadata service {label} ({e})");
        remember_absent(&base, &why);
        return Step::Skip(why);
    }
    let response = match cx.request.http.get(&url, &[("Metadata", "true")], None) {
        Ok(response) => response,
        Err(e) => return Step::fail(format!("instance metadata service {label}: {e}"), HINT),
    };
    if !response.ok() {
        // No identity assigned, or not Azure's metadata service (other clouds use the
        // same address): not there, as far as we are concerned.
        return Step::Skip(format!(
            "instance metadata service {label}: {}",
            refusal(response.status, &response.body)
        ));
    }
    answer(
        cx,
        &response,
        format!("managed identity{} (instance metadata service)", which(cx)),
    )
}

/// Metadata services found absent in this run, with why. A deploy opens several
/// connections, each asking for a token; off Azure the probe would cost its timeout every
/// time (an `az login` user would wait for it on each connection).
static ABSENT: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

fn known_absent(base: &str) -> Option<String> {
    let absent = ABSENT.lock().unwrap_or_else(|e| e.into_inner());
    absent
        .iter()
        .find(|(b, _)| b == base)
        .map(|(_, why)| why.clone())
}

fn remember_absent(base: &str, why: &str) {
    let mut absent = ABSENT.lock().unwrap_or_else(|e| e.into_inner());
    if !absent.iter().any(|(b, _)| b == base) {
        absent.push((base.to_string(), why.to_string()));
    }
}

/// " <client id>" for a user-assigned identity, else "".
fn which(cx: &Context<'_, '_>) -> String {
    cx.client_id.map(|id| format!(" {id}")).unwrap_or_default()
}

fn answer(cx: &Context<'_, '_>, response: &http::Response, source: String) -> Step {
    match response
        .json()
        .and_then(|json| parse_token_answer(&json, cx.request.now))
    {
        Ok((secret, expires_at)) => Step::Got(Token {
            secret,
            expires_at,
            source,
        }),
        Err(why) => Step::fail(format!("{source}: {why}"), HINT),
    }
}

/// The error of a managed identity endpoint: its message, as each variant writes it
/// (`{"error":"invalid_request","error_description":"…"}`, `{"error":{"code","message"}}`,
/// `{"statusCode":400,"message":"…"}`).
pub(super) fn refusal(status: u16, body: &str) -> String {
    let json: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(first_line);
    let message = text(json.get("error_description"))
        .or_else(|| text(json.pointer("/error/message")))
        .or_else(|| text(json.get("message")))
        .or_else(|| text(json.get("error")));
    match message.filter(|m| !m.is_empty()) {
        Some(message) => format!("HTTP {status}: {message}"),
        None => format!("HTTP {status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_version_resource_and_client() {
        assert_eq!(
            app_service_url("http://127.0.0.1:41234/msi/token/", None),
            "http://127.0.0.1:41234/msi/token/?api-version=2019-08-01&resource=https%3A%2F%2Fossrdbms-aad.database.windows.net"
        );
        assert_eq!(
            app_service_url("http://localhost/t?x=1", Some("abc-1")),
            "http://localhost/t?x=1&api-version=2019-08-01&resource=https%3A%2F%2Fossrdbms-aad.database.windows.net&client_id=abc-1"
        );
        assert_eq!(
            imds_url("http://169.254.169.254/", Some("c")),
            "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fossrdbms-aad.database.windows.net&client_id=c"
        );
    }

    #[test]
    fn endpoint_errors_in_their_several_shapes() {
        assert_eq!(
            refusal(
                400,
                r#"{"error":"invalid_request","error_description":"Identity not found"}"#
            ),
            "HTTP 400: Identity not found"
        );
        assert_eq!(
            refusal(
                400,
                r#"{"statusCode":400,"message":"No MSI found for specified ClientId\r\nmore"}"#
            ),
            "HTTP 400: No MSI found for specified ClientId"
        );
        assert_eq!(
            refusal(500, r#"{"error":{"code":"x","message":"boom"}}"#),
            "HTTP 500: boom"
        );
        assert_eq!(refusal(404, "<html>not here</html>"), "HTTP 404");
    }
}
