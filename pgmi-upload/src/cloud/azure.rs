//! Azure Entra ID tokens for Azure Database for PostgreSQL (`--azure`).
//!
//! The password is an Entra access token for the database service's scope. Which identity
//! gets it is decided the way the Azure SDKs' default credential decides, so that a
//! pipeline set up for any Azure tool works here unchanged. The sources, in order:
//!
//! 1. environment (`entra.rs`): a service principal with `AZURE_CLIENT_SECRET`, or with a
//!    certificate in `AZURE_CLIENT_CERTIFICATE_PATH` (`certificate.rs`);
//! 2. workload identity (`entra.rs`): a federated token in `AZURE_FEDERATED_TOKEN_FILE`
//!    (AKS workload identity, or any OIDC issuer trusted by the app registration);
//! 3. managed identity (`managed.rs`): App Service / Functions (`IDENTITY_ENDPOINT` and
//!    `IDENTITY_HEADER`), else the virtual machine's instance metadata service;
//! 4. the Azure CLI (`cli.rs`): `az account get-access-token`, which also covers GitHub
//!    Actions' `azure/login`.
//!
//! Tenant and client id come from `AzureSettings` (flag > environment > pgmi.yaml). A
//! source that is not configured, or not there (no metadata service off Azure, no `az`),
//! is noted and the next one tried; a source that is configured but fails stops the
//! chain, as the SDKs do, so that a broken service principal is never quietly replaced by
//! whatever identity the machine happens to have. Every credential read (secret,
//! federated token, identity header, signed assertion) is registered for redaction before
//! it is sent; messages name the variables, never what they hold, and show of a service's
//! refusal only its error code and first line.

mod certificate;
mod cli;
mod entra;
mod managed;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::{AzureSettings, CloudError, Request, Token, Tried};

/// The scope of Azure Database for PostgreSQL (token endpoint, v2 form).
const SCOPE: &str = "https://ossrdbms-aad.database.windows.net/.default";
/// The same, as the resource that managed identity and the CLI take.
const RESOURCE: &str = "https://ossrdbms-aad.database.windows.net";

/// When no source gave a token.
const HINT: &str = "for a service principal set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or AZURE_CLIENT_CERTIFICATE_PATH); in GitHub Actions use azure/login with federated credentials (OIDC) before pgmi-upload; on an Azure resource give it a managed identity (a user-assigned one with --azure-client-id); on a workstation run `az login`";

/// What one source came to.
enum Step {
    Got(Token),
    /// Not configured, or not available here: the next source is tried.
    Skip(String),
    /// Configured but failed: the chain stops here.
    Fail {
        why: String,
        hint: String,
    },
}

impl Step {
    fn fail(why: impl Into<String>, hint: impl Into<String>) -> Step {
        Step::Fail {
            why: why.into(),
            hint: hint.into(),
        }
    }
}

/// What every source reads: the settings and the request's environment.
struct Context<'a, 'r> {
    request: &'a Request<'r>,
    tenant: Option<&'a str>,
    client_id: Option<&'a str>,
}

impl Context<'_, '_> {
    /// A variable of the request's environment; blank counts as unset.
    fn env(&self, name: &str) -> Option<String> {
        (self.request.env)(name).filter(|v| !v.trim().is_empty())
    }

    /// Tenant and client id, both needed by a service principal; else what is missing.
    fn principal(&self) -> Result<(&str, &str), String> {
        match (self.tenant, self.client_id) {
            (Some(tenant), Some(client)) => Ok((tenant, client)),
            (None, _) => Err(
                "no tenant id (--azure-tenant-id, AZURE_TENANT_ID or azure_tenant_id in pgmi.yaml)"
                    .to_string(),
            ),
            (_, None) => Err(
                "no client id (--azure-client-id, AZURE_CLIENT_ID or azure_client_id in pgmi.yaml)"
                    .to_string(),
            ),
        }
    }
}

type Fetch = fn(&Context<'_, '_>) -> Step;

/// The sources in the order they are tried, with the names the error lists them by.
const SOURCES: [(&str, Fetch); 4] = [
    ("environment", entra::environment),
    ("workload identity", entra::workload_identity),
    ("managed identity", managed::token),
    ("Azure CLI", cli::token),
];

/// An access token for Azure Database for PostgreSQL from the first source that has one.
pub fn token(settings: &AzureSettings, request: &Request<'_>) -> Result<Token, CloudError> {
    let context = Context {
        request,
        tenant: settings.tenant_id.as_ref().map(|(v, _)| v.as_str()),
        client_id: settings.client_id.as_ref().map(|(v, _)| v.as_str()),
    };
    let mut tried = Vec::new();
    for (source, fetch) in SOURCES {
        let (why, hint) = match fetch(&context) {
            Step::Got(token) => return Ok(token),
            Step::Skip(why) => (why, None),
            Step::Fail { why, hint } => (why, Some(hint)),
        };
        tried.push(Tried {
            source: source.to_string(),
            why,
        });
        if let Some(hint) = hint {
            return Err(CloudError { tried, hint });
        }
    }
    Err(CloudError {
        tried,
        hint: HINT.to_string(),
    })
}

/// A tenant is a GUID or a domain name; anything else would change the token URL's path.
fn valid_tenant(tenant: &str) -> Result<(), String> {
    let ok = !tenant.is_empty()
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid tenant id {tenant:?}: expected a GUID or a domain name"
        ))
    }
}

/// `base` with `pairs` appended as a query string, each value percent-encoded.
fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let mut url = base.to_string();
    let mut separator = if base.contains('?') { '&' } else { '?' };
    for (name, value) in pairs {
        url.push(separator);
        url.push_str(&percent_encode(name));
        url.push('=');
        url.push_str(&percent_encode(value));
        separator = '&';
    }
    url
}

/// Everything but the unreserved characters of RFC 3986 as `%XX`.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A whole number of seconds, written as a JSON number or as a string of digits (the
/// token services use both).
fn seconds(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The token and its expiry from a token answer: `access_token`, with `expires_on`
/// (seconds since the epoch) or else `expires_in` (seconds from `now`).
fn parse_token_answer(
    json: &Value,
    now: SystemTime,
) -> Result<(String, Option<SystemTime>), String> {
    let token = json
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or("the answer has no access_token")?;
    let expires_at = json
        .get("expires_on")
        .and_then(seconds)
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
        .or_else(|| {
            json.get("expires_in")
                .and_then(seconds)
                .map(|s| now + Duration::from_secs(s))
        });
    Ok((token.to_string(), expires_at))
}

/// The first line of a service's message, shortened: enough to say what went wrong
/// (descriptions go on with trace and correlation ids).
fn first_line(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty());
    let line = line.unwrap_or("");
    if line.chars().count() > 300 {
        format!("{}…", line.chars().take(300).collect::<String>())
    } else {
        line.to_string()
    }
}

#[cfg(test)]
mod tests;
