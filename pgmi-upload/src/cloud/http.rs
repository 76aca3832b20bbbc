//! The small HTTP client the token sources use: blocking, on OpenSSL with the system's
//! trust store (the same TLS library as the database connection), bounded in time, and
//! never following a redirect (a token endpoint that redirects is misconfigured, and a
//! redirect must not carry a credential elsewhere).
//!
//! A URL from configuration (an endpoint override in the environment, a key file's
//! `token_uri`) must be `https`, except on the loopback interface, where the test
//! stand-ins run; [`check_override`] says so before anything is sent. The metadata
//! endpoints of the clouds are plain HTTP by design and are called as they are.

use std::time::Duration;

use ureq::tls::{RootCerts, TlsConfig, TlsProvider};

/// The longest any one request may take, including connecting.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Bodies larger than this are refused (a token response is a few KB).
const MAX_BODY: u64 = 1 << 20;

/// A response: status and body, whatever the status.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

impl Response {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON, or a short reason.
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_str(&self.body).map_err(|e| format!("the answer is not JSON ({e})"))
    }
}

/// One client per token fetch.
pub struct Http {
    agent: ureq::Agent,
}

impl Default for Http {
    fn default() -> Self {
        Http::new(REQUEST_TIMEOUT)
    }
}

impl Http {
    /// A client whose requests each end after `timeout`.
    pub fn new(timeout: Duration) -> Http {
        let tls = TlsConfig::builder()
            .provider(TlsProvider::NativeTls)
            .root_certs(RootCerts::PlatformVerifier)
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("pgmi-upload/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Http { agent }
    }

    /// `GET url` with `headers`; `timeout` shortens this request (metadata endpoints,
    /// which are probed and are absent off the cloud).
    pub fn get(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        timeout: Option<Duration>,
    ) -> Result<Response, String> {
        finish(prepare(self.agent.get(url), headers, timeout).call())
    }

    /// `PUT url` with `headers` and an empty body (the AWS instance metadata session).
    pub fn put(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        timeout: Option<Duration>,
    ) -> Result<Response, String> {
        finish(prepare(self.agent.put(url), headers, timeout).send_empty())
    }

    /// `POST url` with an `application/x-www-form-urlencoded` body.
    pub fn post_form(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        form: &[(&str, &str)],
    ) -> Result<Response, String> {
        finish(prepare(self.agent.post(url), headers, None).send_form(form.iter().copied()))
    }

    /// `POST url` with a JSON body.
    pub fn post_json(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &serde_json::Value,
    ) -> Result<Response, String> {
        finish(prepare(self.agent.post(url), headers, None).send_json(body))
    }
}

/// `headers` on the request, and `timeout` in place of the client's when given.
fn prepare<B>(
    mut request: ureq::RequestBuilder<B>,
    headers: &[(&str, &str)],
    timeout: Option<Duration>,
) -> ureq::RequestBuilder<B> {
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    match timeout {
        Some(timeout) => request.config().timeout_global(Some(timeout)).build(),
        None => request,
    }
}

fn finish(
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Response, String> {
    let mut response = result.map_err(describe)?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_string()
        .map_err(describe)?;
    Ok(Response { status, body })
}

fn describe(err: ureq::Error) -> String {
    match err {
        ureq::Error::Timeout(_) => "no answer in time".to_string(),
        ureq::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}

/// Refuse a configured endpoint that would send a credential in clear text: it must be
/// `https`, or `http` to the loopback interface. `what` names the setting in the error.
pub fn check_override(url: &str, what: &str) -> Result<(), String> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Ok(());
    }
    if let Some(rest) = lower.strip_prefix("http://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => authority.split(':').next().unwrap_or(""),
        };
        let loopback = host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
        if loopback || host == "localhost" {
            return Ok(());
        }
    }
    Err(format!(
        "{what} ({url}) must be an https:// URL (plain http is allowed only to localhost)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_must_be_https_off_loopback() {
        for ok in [
            "https://login.example.com/x",
            "http://127.0.0.1:8080/token",
            "http://localhost/token",
            "http://[::1]:99/t",
        ] {
            assert_eq!(check_override(ok, "X"), Ok(()), "{ok}");
        }
        for bad in [
            "http://login.example.com/x",
            "http://127.0.0.1.example.com/x",
            "ftp://127.0.0.1/",
            "file:///etc/passwd",
        ] {
            let err = check_override(bad, "AZURE_AUTHORITY_HOST").unwrap_err();
            assert!(err.contains("AZURE_AUTHORITY_HOST"), "{err}");
        }
    }
}
