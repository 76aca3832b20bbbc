//! Google Cloud SQL IAM database authentication (`--google`): the password is an OAuth 2.0
//! access token of the deployment's Google identity, found the way Google's client
//! libraries find it ("Application Default Credentials"), and the instance's address can
//! come from the Cloud SQL Admin API.
//!
//! The credential sources, in order:
//!
//! 1. the file `GOOGLE_APPLICATION_CREDENTIALS` names;
//! 2. gcloud's file, `$CLOUDSDK_CONFIG/application_default_credentials.json`, else
//!    `$HOME/.config/gcloud/application_default_credentials.json` (written by
//!    `gcloud auth application-default login`);
//! 3. the metadata server of the Compute Engine VM, GKE pod, Cloud Run service or
//!    function we run on (`GCE_METADATA_HOST` overrides its address).
//!
//! A file holds one of three kinds of credentials: a service account key (a JWT signed
//! with its RSA key is exchanged for a token), a user's refresh token, or a workload
//! identity federation configuration (`external_account`, what google-github-actions/auth
//! writes: a token from another identity provider is exchanged at Google's Security Token
//! Service, then optionally for a service account's token). A source that is not there is
//! noted and the next one tried; a source that is there but fails stops the search, so
//! a broken key file is reported rather than silently replaced by another identity.
//!
//! Scopes: the login token asks for `sqlservice.login`, the narrowest scope Cloud SQL
//! accepts as a database password, so the password (which the server and anything between
//! sees) cannot also manage instances; the Admin API call asks for `sqlservice.admin`.
//! A user's refresh token is refreshed without a scope: it keeps the scopes granted at
//! `gcloud auth application-default login` (cloud-platform among them), and asking for
//! one not granted then would be refused.
//!
//! Nothing secret (private key, assertion, refresh token, subject token, access token)
//! is put in a message; the intermediate ones are registered with the redactor anyway.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use serde_json::{json, Value};

use super::http::{check_override, Response};
use super::{CloudError, GoogleSettings, Instance, Request, Token, Tried};
use crate::redact::register_secret;

/// The scope of the token used as the database password.
pub const LOGIN_SCOPE: &str = "https://www.googleapis.com/auth/sqlservice.login";
/// The scope of the token for the Cloud SQL Admin API.
pub const ADMIN_SCOPE: &str = "https://www.googleapis.com/auth/sqlservice.admin";
/// What the Security Token Service token must carry when it is only used to impersonate
/// a service account (the impersonation call then asks for the real scope).
const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
const DEFAULT_STS_URL: &str = "https://sts.googleapis.com/v1/token";
const DEFAULT_ADMIN_BASE: &str = "https://sqladmin.googleapis.com";
/// gcloud's variable for another Cloud SQL Admin API endpoint.
const ADMIN_OVERRIDE_VAR: &str = "CLOUDSDK_API_ENDPOINT_OVERRIDES_SQL";
const ADMIN_API_PATH: &str = "sql/v1beta4";

const METADATA_HOST: &str = "metadata.google.internal";
/// The metadata server answers in milliseconds where it exists; elsewhere it is absent and
/// should not delay the error.
const METADATA_TIMEOUT: Duration = Duration::from_secs(1);

const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// Lifetime asked for in a service account assertion and an impersonated token.
const LIFETIME_SECS: u64 = 3600;

const HINT: &str = "set GOOGLE_APPLICATION_CREDENTIALS to a service account key or workload identity federation file, run `gcloud auth application-default login`, or in GitHub Actions run google-github-actions/auth before pgmi-upload";

/// Where to connect to a Cloud SQL instance, from the Cloud SQL Admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// The IP address to connect to.
    pub host: String,
    /// The instance's server CA certificate(s), PEM, to verify the server with.
    pub server_ca_pem: Option<String>,
}

/// An access token for Cloud SQL IAM database authentication (the instance plays no part
/// in the token; it is the same for every instance the identity may log in to).
pub fn token(_settings: &GoogleSettings, request: &Request<'_>) -> Result<Token, CloudError> {
    access_token(request, LOGIN_SCOPE)
}

/// The instance's address (`host`/`port`/`user` of `request` are not used).
pub fn resolve_instance(
    settings: &GoogleSettings,
    request: &Request<'_>,
) -> Result<Address, CloudError> {
    let instance = &settings.instance;
    let base = admin_base((request.env)(ADMIN_OVERRIDE_VAR).as_deref()).map_err(|why| {
        CloudError::one(
            ADMIN_OVERRIDE_VAR,
            why,
            "unset it to use https://sqladmin.googleapis.com",
        )
    })?;
    let token = access_token(request, ADMIN_SCOPE)?;
    register_secret(&token.secret);
    let url = connect_settings_url(&base, instance);
    let source = format!("Cloud SQL Admin API ({url})");
    let bearer = format!("Bearer {}", token.secret);
    let response = request
        .http
        .get(&url, &[("Authorization", &bearer)], None)
        .map_err(|e| CloudError::one(&source, e, admin_hint(0, instance)))?;
    if !response.ok() {
        return Err(CloudError::one(
            &source,
            format!(
                "{} (credentials: {})",
                describe_refusal(&response),
                token.source
            ),
            admin_hint(response.status, instance),
        ));
    }
    let settings_json = response
        .json()
        .map_err(|e| CloudError::one(&source, e, admin_hint(0, instance)))?;
    parse_connect_settings(&settings_json, instance).map_err(|why| {
        CloudError::one(
            &source,
            why,
            "pass -h with the address to connect to, or fix --google-instance",
        )
    })
}

// ---------------------------------------------------------------------------------------
// The credential chain

/// Why one source gave no token.
enum Miss {
    /// Not configured here: the next source is tried.
    Absent(Tried),
    /// Configured but unusable or refused: the search stops.
    Failed(Tried),
}

fn absent(source: &str, why: impl Into<String>) -> Miss {
    Miss::Absent(Tried {
        source: source.to_string(),
        why: why.into(),
    })
}

fn failed(source: &str, why: impl Into<String>) -> Miss {
    Miss::Failed(Tried {
        source: source.to_string(),
        why: why.into(),
    })
}

type Source = fn(&Request<'_>, &str) -> Result<Token, Miss>;

/// The sources in order, each with what to do when it is configured but fails.
const SOURCES: [(Source, &str); 3] = [
    (
        from_env_file,
        "fix the file GOOGLE_APPLICATION_CREDENTIALS names, or unset the variable to use gcloud's credentials or the metadata server",
    ),
    (
        from_gcloud_file,
        "run `gcloud auth application-default login` again (or `gcloud auth application-default revoke` to stop using these credentials), or set GOOGLE_APPLICATION_CREDENTIALS",
    ),
    (
        from_metadata,
        "the VM or service needs a service account (and, on Compute Engine, the cloud-platform access scope); or set GOOGLE_APPLICATION_CREDENTIALS",
    ),
];

/// A token with `scope` from the first source that is configured.
fn access_token(request: &Request<'_>, scope: &str) -> Result<Token, CloudError> {
    let mut tried = Vec::new();
    for (source, hint) in SOURCES {
        match source(request, scope) {
            Ok(token) => return Ok(token),
            Err(Miss::Absent(t)) => tried.push(t),
            Err(Miss::Failed(t)) => {
                tried.push(t);
                return Err(CloudError {
                    tried,
                    hint: hint.to_string(),
                });
            }
        }
    }
    Err(CloudError {
        tried,
        hint: HINT.to_string(),
    })
}

/// 1. `GOOGLE_APPLICATION_CREDENTIALS`: once set, its file must work.
fn from_env_file(request: &Request<'_>, scope: &str) -> Result<Token, Miss> {
    let var = "GOOGLE_APPLICATION_CREDENTIALS";
    let Some(path) = (request.env)(var) else {
        return Err(absent(var, "not set"));
    };
    let label = format!("{var} ({path})");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| failed(&label, format!("cannot read the file: {e}")))?;
    from_credentials_text(request, scope, &label, &text)
}

/// 2. gcloud's application default credentials: absent unless the file exists.
fn from_gcloud_file(request: &Request<'_>, scope: &str) -> Result<Token, Miss> {
    let what = "gcloud application default credentials";
    let Some(path) = gcloud_file(request) else {
        return Err(absent(what, "neither CLOUDSDK_CONFIG nor HOME is set"));
    };
    let label = format!("{what} ({})", path.display());
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(absent(&label, "no such file"))
        }
        Err(e) => return Err(failed(&label, format!("cannot read the file: {e}"))),
    };
    from_credentials_text(request, scope, &label, &text)
}

fn gcloud_file(request: &Request<'_>) -> Option<PathBuf> {
    let dir = match (request.env)("CLOUDSDK_CONFIG") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from((request.env)("HOME")?)
            .join(".config")
            .join("gcloud"),
    };
    Some(dir.join("application_default_credentials.json"))
}

/// 3. The metadata server: absent when nothing answers (not on Google Cloud).
fn from_metadata(request: &Request<'_>, scope: &str) -> Result<Token, Miss> {
    let host = (request.env)("GCE_METADATA_HOST").unwrap_or_else(|| METADATA_HOST.to_string());
    let label = format!("metadata server ({host})");
    let base = format!("http://{host}/computeMetadata/v1/instance/service-accounts/default");
    let url = format!("{base}/token?scopes={}", query_escape(scope));
    let flavor = [("Metadata-Flavor", "Google")];
    let response = request
        .http
        .get(&url, &flavor, Some(METADATA_TIMEOUT))
        .map_err(|e| absent(&label, format!("no answer ({e}); not on Google Cloud")))?;
    let (secret, expires_at) =
        oauth_token(&response, request.now).map_err(|why| failed(&label, why))?;
    // The e-mail only names the identity in --verbose; its absence is no error.
    let email = request
        .http
        .get(&format!("{base}/email"), &flavor, Some(METADATA_TIMEOUT))
        .ok()
        .filter(|r| r.ok() && !r.body.trim().is_empty() && r.body.len() < 256)
        .map(|r| r.body.trim().to_string());
    let source = match email {
        Some(email) => format!("{label}: service account {email}"),
        None => format!("{label}: default service account"),
    };
    Ok(Token {
        secret,
        expires_at,
        source,
    })
}

/// A credentials file's contents, of any supported type, to a token.
fn from_credentials_text(
    request: &Request<'_>,
    scope: &str,
    label: &str,
    text: &str,
) -> Result<Token, Miss> {
    match parse_credentials(text).map_err(|why| failed(label, why))? {
        Credentials::ServiceAccount(sa) => service_account_token(request, scope, label, &sa),
        Credentials::AuthorizedUser(user) => authorized_user_token(request, label, &user),
        Credentials::ExternalAccount(ext) => external_account_token(request, scope, label, &ext),
    }
}

// ---------------------------------------------------------------------------------------
// Credential files

/// The three kinds of credentials file (no `Debug`: they hold secrets).
enum Credentials {
    ServiceAccount(ServiceAccount),
    AuthorizedUser(AuthorizedUser),
    ExternalAccount(ExternalAccount),
}

struct ServiceAccount {
    client_email: String,
    private_key: String,
    private_key_id: Option<String>,
    token_uri: String,
}

struct AuthorizedUser {
    client_id: String,
    client_secret: String,
    refresh_token: String,
    token_uri: String,
}

struct ExternalAccount {
    audience: String,
    subject_token_type: String,
    token_url: String,
    impersonation_url: Option<String>,
    /// Workforce pools (people, not workloads) bill the exchange to this project.
    workforce_pool_user_project: Option<String>,
    subject: SubjectSource,
}

/// Where the other identity provider's token is read from.
#[derive(Debug, PartialEq, Eq)]
enum SubjectSource {
    File {
        path: String,
        format: SubjectFormat,
    },
    Url {
        url: String,
        headers: Vec<(String, String)>,
        format: SubjectFormat,
    },
}

#[derive(Debug, PartialEq, Eq)]
enum SubjectFormat {
    /// The whole content is the token.
    Text,
    /// A JSON object; the token is this field.
    Json(String),
}

fn parse_credentials(text: &str) -> Result<Credentials, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("the file is not JSON ({e})"))?;
    let kind = string_field(&value, "type")?;
    match kind.as_str() {
        "service_account" => Ok(Credentials::ServiceAccount(ServiceAccount {
            client_email: string_field(&value, "client_email")?,
            private_key: string_field(&value, "private_key")?,
            private_key_id: optional_field(&value, "private_key_id"),
            token_uri: optional_field(&value, "token_uri")
                .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_string()),
        })),
        "authorized_user" => Ok(Credentials::AuthorizedUser(AuthorizedUser {
            client_id: string_field(&value, "client_id")?,
            client_secret: string_field(&value, "client_secret")?,
            refresh_token: string_field(&value, "refresh_token")?,
            token_uri: optional_field(&value, "token_uri")
                .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_string()),
        })),
        "external_account" => Ok(Credentials::ExternalAccount(ExternalAccount {
            audience: string_field(&value, "audience")?,
            subject_token_type: string_field(&value, "subject_token_type")?,
            token_url: optional_field(&value, "token_url")
                .unwrap_or_else(|| DEFAULT_STS_URL.to_string()),
            impersonation_url: optional_field(&value, "service_account_impersonation_url"),
            workforce_pool_user_project: optional_field(&value, "workforce_pool_user_project"),
            subject: parse_subject_source(value.get("credential_source"))?,
        })),
        other => Err(format!(
            "credentials of type {other:?} are not supported (service_account, authorized_user and external_account are)"
        )),
    }
}

fn parse_subject_source(source: Option<&Value>) -> Result<SubjectSource, String> {
    let Some(source) = source.filter(|s| s.is_object()) else {
        return Err("no \"credential_source\" object".to_string());
    };
    let format = parse_subject_format(source.get("format"))?;
    if let Some(path) = optional_field(source, "file") {
        return Ok(SubjectSource::File { path, format });
    }
    if let Some(url) = optional_field(source, "url") {
        let headers = match source.get("headers") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(name, value)| match value.as_str() {
                    Some(v) => Ok((name.clone(), v.to_string())),
                    None => Err(format!("credential_source.headers.{name} is not a string")),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("credential_source.headers is not an object".to_string()),
        };
        return Ok(SubjectSource::Url {
            url,
            headers,
            format,
        });
    }
    let kind = if source.get("executable").is_some() {
        "credential_source.executable"
    } else if source.get("environment_id").is_some() {
        "credential_source.environment_id (AWS)"
    } else {
        "this credential_source"
    };
    Err(format!(
        "{kind} is not supported: pgmi-upload reads the subject token from credential_source.file or credential_source.url"
    ))
}

fn parse_subject_format(format: Option<&Value>) -> Result<SubjectFormat, String> {
    let Some(format) = format.filter(|f| !f.is_null()) else {
        return Ok(SubjectFormat::Text);
    };
    match optional_field(format, "type").as_deref() {
        None | Some("text") => Ok(SubjectFormat::Text),
        Some("json") => optional_field(format, "subject_token_field_name")
            .map(SubjectFormat::Json)
            .ok_or_else(|| {
                "credential_source.format is json but has no subject_token_field_name".to_string()
            }),
        Some(other) => Err(format!(
            "credential_source.format.type {other:?} is not supported (text or json)"
        )),
    }
}

/// A required, non-empty string field.
fn string_field(value: &Value, name: &str) -> Result<String, String> {
    optional_field(value, name).ok_or_else(|| format!("no {name:?} field"))
}

fn optional_field(value: &Value, name: &str) -> Option<String> {
    value
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

// ---------------------------------------------------------------------------------------
// The exchanges

/// A service account key: a signed assertion for an access token.
fn service_account_token(
    request: &Request<'_>,
    scope: &str,
    label: &str,
    sa: &ServiceAccount,
) -> Result<Token, Miss> {
    check_override(&sa.token_uri, "the key file's token_uri").map_err(|e| failed(label, e))?;
    let assertion =
        signed_assertion(sa, scope, unix_seconds(request.now)).map_err(|e| failed(label, e))?;
    register_secret(&assertion);
    let form = [("grant_type", JWT_BEARER_GRANT), ("assertion", &assertion)];
    let (secret, expires_at) = grant(request, label, &sa.token_uri, &form, "the key")?;
    Ok(Token {
        secret,
        expires_at,
        source: format!("{label}: service account {}", sa.client_email),
    })
}

/// A user's refresh token (gcloud's login) for an access token.
fn authorized_user_token(
    request: &Request<'_>,
    label: &str,
    user: &AuthorizedUser,
) -> Result<Token, Miss> {
    check_override(&user.token_uri, "the credentials file's token_uri")
        .map_err(|e| failed(label, e))?;
    register_secret(&user.refresh_token);
    register_secret(&user.client_secret);
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", user.client_id.as_str()),
        ("client_secret", user.client_secret.as_str()),
        ("refresh_token", user.refresh_token.as_str()),
    ];
    let (secret, expires_at) = grant(request, label, &user.token_uri, &form, "the refresh token")?;
    Ok(Token {
        secret,
        expires_at,
        source: format!("{label}: authorized user (gcloud login)"),
    })
}

/// Workload identity federation: the other provider's token for a Google one, then, if
/// configured, that for a service account's.
fn external_account_token(
    request: &Request<'_>,
    scope: &str,
    label: &str,
    ext: &ExternalAccount,
) -> Result<Token, Miss> {
    check_override(&ext.token_url, "the credentials file's token_url")
        .map_err(|e| failed(label, e))?;
    if let Some(url) = &ext.impersonation_url {
        check_override(
            url,
            "the credentials file's service_account_impersonation_url",
        )
        .map_err(|e| failed(label, e))?;
    }
    let subject = subject_token(request, &ext.subject).map_err(|e| failed(label, e))?;
    register_secret(&subject);
    let sts_scope = match ext.impersonation_url {
        Some(_) => CLOUD_PLATFORM_SCOPE,
        None => scope,
    };
    let options = ext
        .workforce_pool_user_project
        .as_ref()
        .filter(|_| ext.impersonation_url.is_none())
        .map(|project| json!({ "userProject": project }).to_string());
    let mut form = vec![
        ("grant_type", TOKEN_EXCHANGE_GRANT),
        ("audience", ext.audience.as_str()),
        ("scope", sts_scope),
        ("requested_token_type", ACCESS_TOKEN_TYPE),
        ("subject_token_type", ext.subject_token_type.as_str()),
        ("subject_token", subject.as_str()),
    ];
    if let Some(options) = &options {
        form.push(("options", options));
    }
    let (federated, expires_at) =
        grant(request, label, &ext.token_url, &form, "the subject token")?;
    let federation = format!("{label}: workload identity federation ({})", ext.audience);
    let Some(url) = &ext.impersonation_url else {
        return Ok(Token {
            secret: federated,
            expires_at,
            source: federation,
        });
    };
    register_secret(&federated);
    let (secret, expires_at) =
        impersonate(request, url, &federated, scope).map_err(|e| failed(label, e))?;
    let who = impersonated_email(url).unwrap_or_else(|| url.clone());
    Ok(Token {
        secret,
        expires_at,
        source: format!("{federation}, impersonating {who}"),
    })
}

/// The other provider's token, from a file or a URL.
fn subject_token(request: &Request<'_>, source: &SubjectSource) -> Result<String, String> {
    let (text, format, whence) = match source {
        SubjectSource::File { path, format } => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read credential_source.file {path}: {e}"))?;
            (text, format, format!("credential_source.file {path}"))
        }
        SubjectSource::Url {
            url,
            headers,
            format,
        } => {
            // Not held to `check_override`: nothing of ours is sent there but the headers
            // the file names, and identity providers' metadata endpoints (Azure's) are
            // plain http on a link-local address.
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let response = request
                .http
                .get(url, &headers, None)
                .map_err(|e| format!("credential_source.url {url}: {e}"))?;
            if !response.ok() {
                return Err(format!(
                    "credential_source.url {url} answered HTTP {}",
                    response.status
                ));
            }
            (
                response.body,
                format,
                format!("credential_source.url {url}"),
            )
        }
    };
    let token = match format {
        SubjectFormat::Text => text.trim().to_string(),
        SubjectFormat::Json(field) => {
            let value: Value =
                serde_json::from_str(&text).map_err(|e| format!("{whence} is not JSON ({e})"))?;
            optional_field(&value, field)
                .ok_or_else(|| format!("{whence} has no string field {field:?}"))?
        }
    };
    if token.is_empty() {
        return Err(format!("{whence} is empty"));
    }
    Ok(token)
}

/// A service account's token through the IAM Credentials API's generateAccessToken.
fn impersonate(
    request: &Request<'_>,
    url: &str,
    federated: &str,
    scope: &str,
) -> Result<(String, Option<SystemTime>), String> {
    let bearer = format!("Bearer {federated}");
    let body = json!({ "scope": [scope], "lifetime": format!("{LIFETIME_SECS}s") });
    let response = request
        .http
        .post_json(url, &[("Authorization", &bearer)], &body)
        .map_err(|e| format!("{url}: {e}"))?;
    if !response.ok() {
        return Err(format!(
            "service account impersonation refused: {} (the federated identity needs the Workload Identity User role on the service account)",
            describe_refusal(&response)
        ));
    }
    let value = response
        .json()
        .map_err(|e| format!("service account impersonation: {e}"))?;
    let secret = optional_field(&value, "accessToken")
        .ok_or("service account impersonation: the answer has no accessToken")?;
    let expires_at = match optional_field(&value, "expireTime") {
        Some(text) => Some(parse_rfc3339(&text).ok_or_else(|| {
            format!("service account impersonation: expireTime {text:?} is not an RFC 3339 time")
        })?),
        None => None,
    };
    Ok((secret, expires_at))
}

/// `…/projects/-/serviceAccounts/NAME@PROJECT.iam.gserviceaccount.com:generateAccessToken`
/// → the e-mail address.
fn impersonated_email(url: &str) -> Option<String> {
    let (_, tail) = url.rsplit_once("/serviceAccounts/")?;
    let email = tail.split(':').next()?;
    email.contains('@').then(|| email.to_string())
}

/// A token endpoint's answer: the access token and when it expires, or why not.
/// POST an OAuth grant to a token endpoint and read the access token it answers with;
/// `what` names the credential in a refusal ("the key", "the refresh token", …).
fn grant(
    request: &Request<'_>,
    label: &str,
    url: &str,
    form: &[(&str, &str)],
    what: &str,
) -> Result<(String, Option<SystemTime>), Miss> {
    let response = request
        .http
        .post_form(url, &[], form)
        .map_err(|e| failed(label, format!("{url}: {e}")))?;
    oauth_token(&response, request.now)
        .map_err(|e| failed(label, format!("{url} refused {what}: {e}")))
}

fn oauth_token(
    response: &Response,
    now: SystemTime,
) -> Result<(String, Option<SystemTime>), String> {
    if !response.ok() {
        return Err(describe_refusal(response));
    }
    let value = response.json()?;
    let secret = optional_field(&value, "access_token").ok_or("the answer has no access_token")?;
    let lifetime = match value.get("expires_in") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    Ok((secret, lifetime.map(|secs| now + Duration::from_secs(secs))))
}

/// An error answer in words: OAuth's `error` and `error_description`, or a Google API's
/// `error.status` and `error.message`. The rest of the body is not shown.
fn describe_refusal(response: &Response) -> String {
    let mut text = format!("HTTP {}", response.status);
    let Ok(value) = serde_json::from_str::<Value>(&response.body) else {
        return text;
    };
    let details: Vec<String> = match value.get("error") {
        Some(Value::String(error)) => std::iter::once(error.clone())
            .chain(optional_field(&value, "error_description"))
            .collect(),
        Some(error @ Value::Object(_)) => optional_field(error, "status")
            .into_iter()
            .chain(optional_field(error, "message"))
            .collect(),
        _ => Vec::new(),
    };
    for detail in details {
        text.push_str(": ");
        text.push_str(&detail);
    }
    text
}

// ---------------------------------------------------------------------------------------
// The service account assertion (a JWT, RFC 7523)

/// The assertion for `scope`, issued at `now` (seconds since the epoch), valid one hour.
fn signed_assertion(sa: &ServiceAccount, scope: &str, now: u64) -> Result<String, String> {
    let mut header = json!({ "alg": "RS256", "typ": "JWT" });
    if let Some(kid) = &sa.private_key_id {
        header["kid"] = json!(kid);
    }
    let claims = json!({
        "iss": sa.client_email,
        "scope": scope,
        "aud": sa.token_uri,
        "iat": now,
        "exp": now + LIFETIME_SECS,
    });
    let signing_input = format!(
        "{}.{}",
        base64url(header.to_string().as_bytes()),
        base64url(claims.to_string().as_bytes())
    );
    let signature = rs256(&sa.private_key, signing_input.as_bytes())?;
    Ok(format!("{signing_input}.{}", base64url(&signature)))
}

/// An RSASSA-PKCS1-v1_5 SHA-256 signature with a PEM private key. OpenSSL's own error
/// text is left out: it says nothing the user can act on beyond "not a key".
fn rs256(private_key_pem: &str, data: &[u8]) -> Result<Vec<u8>, String> {
    let key = PKey::private_key_from_pem(private_key_pem.as_bytes())
        .map_err(|_| "private_key is not a PEM private key".to_string())?;
    if key.rsa().is_err() {
        return Err("private_key is not an RSA key".to_string());
    }
    let mut signer = Signer::new(MessageDigest::sha256(), &key)
        .map_err(|_| "cannot sign with private_key".to_string())?;
    signer
        .update(data)
        .and_then(|()| signer.sign_to_vec())
        .map_err(|_| "cannot sign with private_key".to_string())
}

/// Base64 with the URL alphabet and no padding, as JWTs are written.
fn base64url(bytes: &[u8]) -> String {
    openssl::base64::encode_block(bytes)
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect()
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `2026-12-04T18:00:00Z`, with optional fractional seconds and a `±hh:mm` offset
/// instead of `Z` (the IAM Credentials API's `expireTime`).
fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let number = |s: &str| -> Option<i64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (date, rest) = text.split_once(['T', 't'])?;
    let mut ymd = date.splitn(3, '-');
    let (year, month, day) = (
        number(ymd.next()?)?,
        number(ymd.next()?)?,
        number(ymd.next()?)?,
    );
    let (clock, offset) = if let Some(clock) = rest.strip_suffix(['Z', 'z']) {
        (clock, 0)
    } else {
        let at = rest.rfind(['+', '-'])?;
        let (clock, zone) = rest.split_at(at);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (hours, minutes) = zone[1..].split_once(':')?;
        (
            clock,
            sign * (number(hours)? * 3600 + number(minutes)? * 60),
        )
    };
    let (whole, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut hms = whole.splitn(3, ':');
    let (hour, minute, second) = (
        number(hms.next()?)?,
        number(hms.next()?)?,
        number(hms.next()?)?,
    );
    let valid = (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && hour < 24
        && minute < 60
        && second < 61;
    if !valid {
        return None;
    }
    let seconds =
        days_since_epoch(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
    let nanos = fraction
        .get(..fraction.len().min(9))
        .map(|digits| format!("{digits:0<9}").parse::<u32>().unwrap_or(0))
        .unwrap_or(0);
    let whole = u64::try_from(seconds).ok()?;
    Some(UNIX_EPOCH + Duration::new(whole, nanos))
}

/// Days from 1970-01-01 to a proleptic Gregorian date: count from 1 March so the leap
/// day is the last of the year, in 400-year eras of 146,097 days.
fn days_since_epoch(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Percent-encoding for a query value (RFC 3986 unreserved characters kept).
fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The Cloud SQL Admin API

/// The API's root: the override (gcloud writes it with the version path,
/// `https://host/sql/v1beta4/`), else Google's.
fn admin_base(override_url: Option<&str>) -> Result<String, String> {
    let Some(url) = override_url else {
        return Ok(DEFAULT_ADMIN_BASE.to_string());
    };
    check_override(url, ADMIN_OVERRIDE_VAR)?;
    let trimmed = url.trim_end_matches('/');
    let trimmed = trimmed
        .strip_suffix(ADMIN_API_PATH)
        .unwrap_or(trimmed)
        .trim_end_matches('/');
    Ok(trimmed.to_string())
}

fn connect_settings_url(base: &str, instance: &Instance) -> String {
    format!(
        "{base}/{ADMIN_API_PATH}/projects/{}/instances/{}/connectSettings",
        instance.project, instance.name
    )
}

/// The address and CA from a `connectSettings` answer: the public IP address, else the
/// private one; the region must be the one in the instance connection name.
fn parse_connect_settings(value: &Value, instance: &Instance) -> Result<Address, String> {
    if let Some(region) = optional_field(value, "region") {
        if region != instance.region {
            return Err(format!(
                "instance {instance} is in region {region}, not {}: correct the region in --google-instance",
                instance.region
            ));
        }
    }
    if let Some(version) = optional_field(value, "databaseVersion") {
        if !version.starts_with("POSTGRES") {
            return Err(format!(
                "instance {instance} runs {version}, not PostgreSQL"
            ));
        }
    }
    let addresses = value
        .get("ipAddresses")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let of_type = |kind: &str| {
        addresses
            .iter()
            .filter(|a| a.get("type").and_then(Value::as_str) == Some(kind))
            .find_map(|a| optional_field(a, "ipAddress"))
    };
    let host = of_type("PRIMARY").or_else(|| of_type("PRIVATE")).ok_or_else(|| {
        format!("instance {instance} has no public or private IP address (Private Service Connect only?)")
    })?;
    let server_ca_pem = value
        .get("serverCaCert")
        .and_then(|c| optional_field(c, "cert"));
    Ok(Address {
        host,
        server_ca_pem,
    })
}

/// What to check when the Admin API said no.
fn admin_hint(status: u16, instance: &Instance) -> String {
    let Instance { project, name, .. } = instance;
    match status {
        401 | 403 => format!(
            "the Cloud SQL Admin API must be enabled in project {project} (gcloud services enable sqladmin.googleapis.com --project {project}) and the identity needs the Cloud SQL Client role (cloudsql.instances.get); or pass -h with the instance's IP address"
        ),
        404 => format!(
            "check the instance connection name {instance} (gcloud sql instances describe {name} --project {project}); or pass -h with the instance's IP address"
        ),
        _ => "pass -h with the instance's IP address to connect without the Cloud SQL Admin API"
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::http::Http;
    use openssl::rsa::Rsa;
    use openssl::sign::Verifier;

    fn base64url_decode(text: &str) -> Vec<u8> {
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
        openssl::base64::decode_block(&standard).expect("base64url")
    }

    fn key_pair() -> (String, PKey<openssl::pkey::Public>) {
        let rsa = Rsa::generate(2048).unwrap();
        let key = PKey::from_rsa(rsa).unwrap();
        let pem = String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        let public = PKey::public_key_from_pem(&key.public_key_to_pem().unwrap()).unwrap();
        (pem, public)
    }

    fn instance() -> Instance {
        Instance::parse("proj:europe-west1:db1").unwrap()
    }

    #[test]
    fn assertion_is_a_verifiable_rs256_jwt() {
        let (pem, public) = key_pair();
        let sa = ServiceAccount {
            client_email: "deployer@proj.iam.gserviceaccount.com".into(),
            private_key: pem,
            private_key_id: Some("abc123".into()),
            token_uri: "https://oauth2.googleapis.com/token".into(),
        };
        let jwt = signed_assertion(&sa, LOGIN_SCOPE, 1_700_000_000).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert!(!jwt.contains('=') && !jwt.contains('+') && !jwt.contains('/'));
        let header: Value = serde_json::from_slice(&base64url_decode(parts[0])).unwrap();
        assert_eq!(
            header,
            json!({"alg": "RS256", "typ": "JWT", "kid": "abc123"})
        );
        let claims: Value = serde_json::from_slice(&base64url_decode(parts[1])).unwrap();
        assert_eq!(
            claims,
            json!({
                "iss": "deployer@proj.iam.gserviceaccount.com",
                "scope": LOGIN_SCOPE,
                "aud": "https://oauth2.googleapis.com/token",
                "iat": 1_700_000_000u64,
                "exp": 1_700_003_600u64,
            })
        );
        let mut verifier = Verifier::new(MessageDigest::sha256(), &public).unwrap();
        verifier
            .update(format!("{}.{}", parts[0], parts[1]).as_bytes())
            .unwrap();
        assert!(verifier.verify(&base64url_decode(parts[2])).unwrap());
    }

    #[test]
    fn a_bad_private_key_is_reported_without_its_text() {
        let sa = ServiceAccount {
            client_email: "a@b".into(),
            private_key: "-----BEGIN PRIVATE KEY-----\nSECRETSTUFF\n-----END PRIVATE KEY-----\n"
                .into(),
            private_key_id: None,
            token_uri: DEFAULT_TOKEN_URI.into(),
        };
        let err = signed_assertion(&sa, LOGIN_SCOPE, 0).unwrap_err();
        assert_eq!(err, "private_key is not a PEM private key");
        // An EC key is a key, but not one Google signs service account assertions with.
        let ec = openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap();
        let sa = ServiceAccount {
            private_key: String::from_utf8(
                PKey::from_ec_key(ec)
                    .unwrap()
                    .private_key_to_pem_pkcs8()
                    .unwrap(),
            )
            .unwrap(),
            ..sa
        };
        assert_eq!(
            signed_assertion(&sa, LOGIN_SCOPE, 0).unwrap_err(),
            "private_key is not an RSA key"
        );
    }

    #[test]
    fn service_account_file() {
        let text = json!({
            "type": "service_account",
            "project_id": "proj",
            "private_key_id": "kid1",
            "private_key": "-----BEGIN PRIVATE KEY-----\n...\n",
            "client_email": "sa@proj.iam.gserviceaccount.com",
            "client_id": "123",
            "token_uri": "https://oauth2.googleapis.com/token",
        })
        .to_string();
        let Ok(Credentials::ServiceAccount(sa)) = parse_credentials(&text) else {
            panic!("not parsed as a service account");
        };
        assert_eq!(sa.client_email, "sa@proj.iam.gserviceaccount.com");
        assert_eq!(sa.private_key_id.as_deref(), Some("kid1"));
        assert_eq!(sa.token_uri, "https://oauth2.googleapis.com/token");
        assert!(sa.private_key.starts_with("-----BEGIN PRIVATE KEY-----"));
        // token_uri defaults; a missing field is named.
        let text = json!({"type": "service_account", "client_email": "x@y", "private_key": "k"});
        let Ok(Credentials::ServiceAccount(sa)) = parse_credentials(&text.to_string()) else {
            panic!("not parsed as a service account");
        };
        assert_eq!(sa.token_uri, DEFAULT_TOKEN_URI);
        assert_eq!(sa.private_key_id, None);
        let text = json!({"type": "service_account", "client_email": "x@y"}).to_string();
        assert_eq!(
            parse_credentials(&text).err().as_deref(),
            Some("no \"private_key\" field")
        );
    }

    #[test]
    fn authorized_user_file() {
        let text = json!({
            "type": "authorized_user",
            "client_id": "cid.apps.googleusercontent.com",
            "client_secret": "csecret",
            "refresh_token": "1//refresh",
            "quota_project_id": "proj",
        })
        .to_string();
        let Ok(Credentials::AuthorizedUser(user)) = parse_credentials(&text) else {
            panic!("not parsed as an authorized user");
        };
        assert_eq!(user.client_id, "cid.apps.googleusercontent.com");
        assert_eq!(user.client_secret, "csecret");
        assert_eq!(user.refresh_token, "1//refresh");
        assert_eq!(user.token_uri, DEFAULT_TOKEN_URI);
    }

    #[test]
    fn external_account_files() {
        // As google-github-actions/auth writes it.
        let text = json!({
            "type": "external_account",
            "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/gh",
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": "https://sts.googleapis.com/v1/token",
            "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/ci@proj.iam.gserviceaccount.com:generateAccessToken",
            "credential_source": {
                "file": "/tmp/oidc-token",
                "format": {"type": "json", "subject_token_field_name": "value"}
            }
        })
        .to_string();
        let Ok(Credentials::ExternalAccount(ext)) = parse_credentials(&text) else {
            panic!("not parsed as an external account");
        };
        assert!(ext.audience.ends_with("/providers/gh"));
        assert_eq!(ext.token_url, "https://sts.googleapis.com/v1/token");
        assert_eq!(
            ext.subject,
            SubjectSource::File {
                path: "/tmp/oidc-token".into(),
                format: SubjectFormat::Json("value".into())
            }
        );
        assert_eq!(
            impersonated_email(ext.impersonation_url.as_deref().unwrap()).as_deref(),
            Some("ci@proj.iam.gserviceaccount.com")
        );
        // A URL source with headers, text format by default, no impersonation.
        let text = json!({
            "type": "external_account",
            "audience": "aud",
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "credential_source": {
                "url": "http://169.254.169.254/token",
                "headers": {"Metadata": "True"}
            }
        })
        .to_string();
        let Ok(Credentials::ExternalAccount(ext)) = parse_credentials(&text) else {
            panic!("not parsed as an external account");
        };
        assert_eq!(ext.token_url, DEFAULT_STS_URL);
        assert!(ext.impersonation_url.is_none());
        assert_eq!(
            ext.subject,
            SubjectSource::Url {
                url: "http://169.254.169.254/token".into(),
                headers: vec![("Metadata".into(), "True".into())],
                format: SubjectFormat::Text
            }
        );
        // Executable and AWS sources are refused by name.
        for (source, named) in [
            (
                json!({"executable": {"command": "x"}}),
                "credential_source.executable",
            ),
            (json!({"environment_id": "aws1"}), "environment_id (AWS)"),
            (
                json!({"file": "/f", "format": {"type": "json"}}),
                "subject_token_field_name",
            ),
        ] {
            let text = json!({
                "type": "external_account", "audience": "a", "subject_token_type": "t",
                "credential_source": source,
            })
            .to_string();
            let err = parse_credentials(&text).err().unwrap();
            assert!(err.contains(named), "{err}");
        }
    }

    #[test]
    fn unsupported_and_malformed_files() {
        let err = parse_credentials(r#"{"type":"impersonated_service_account"}"#)
            .err()
            .unwrap();
        assert!(
            err.contains("\"impersonated_service_account\" are not supported"),
            "{err}"
        );
        assert!(parse_credentials("not json")
            .err()
            .unwrap()
            .starts_with("the file is not JSON"));
        assert_eq!(
            parse_credentials("{}").err().as_deref(),
            Some("no \"type\" field")
        );
    }

    #[test]
    fn expire_time_parsing() {
        let at = |s| parse_rfc3339(s).map(unix_seconds);
        assert_eq!(at("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(at("2014-10-02T15:01:23Z"), Some(1_412_262_083));
        assert_eq!(at("2014-10-02T15:01:23.045123456Z"), Some(1_412_262_083));
        assert_eq!(at("2014-10-02T17:01:23+02:00"), Some(1_412_262_083));
        assert_eq!(at("2014-10-02T10:01:23-05:00"), Some(1_412_262_083));
        assert_eq!(at("2024-02-29T00:00:00Z"), Some(1_709_164_800));
        assert_eq!(at("2000-03-01T00:00:00Z"), Some(951_868_800));
        let nanos = parse_rfc3339("2014-10-02T15:01:23.5Z")
            .unwrap()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        assert_eq!(nanos, 500_000_000);
        for bad in [
            "",
            "2014-10-02",
            "2014-10-02T15:01:23",
            "2014-13-02T15:01:23Z",
            "2014-10-02T25:01:23Z",
            "2014-10-02T15:01:23.x1Z",
            "yesterday",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn token_answers_and_refusals() {
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        let ok = Response {
            status: 200,
            body: r#"{"access_token":"ya29.x","expires_in":3599,"token_type":"Bearer"}"#.into(),
        };
        let (secret, expires) = oauth_token(&ok, now).unwrap();
        assert_eq!(secret, "ya29.x");
        assert_eq!(expires, Some(now + Duration::from_secs(3599)));
        let refused = Response {
            status: 400,
            body: r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#
                .into(),
        };
        assert_eq!(
            oauth_token(&refused, now).unwrap_err(),
            "HTTP 400: invalid_grant: Invalid JWT Signature."
        );
        let api = Response {
            status: 403,
            body: r#"{"error":{"code":403,"message":"Cloud SQL Admin API has not been used","status":"PERMISSION_DENIED"}}"#.into(),
        };
        assert_eq!(
            describe_refusal(&api),
            "HTTP 403: PERMISSION_DENIED: Cloud SQL Admin API has not been used"
        );
        let html = Response {
            status: 502,
            body: "<html>secret-ish</html>".into(),
        };
        assert_eq!(describe_refusal(&html), "HTTP 502");
    }

    #[test]
    fn instance_answers() {
        let answer = |addresses: Value, region: &str| {
            json!({
                "kind": "sql#connectSettings",
                "serverCaCert": {"cert": "-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n"},
                "ipAddresses": addresses,
                "region": region,
                "databaseVersion": "POSTGRES_16",
            })
        };
        let both = json!([
            {"type": "PRIVATE", "ipAddress": "10.0.0.3"},
            {"type": "PRIMARY", "ipAddress": "34.1.2.3"},
            {"type": "OUTGOING", "ipAddress": "34.9.9.9"},
        ]);
        let address = parse_connect_settings(&answer(both, "europe-west1"), &instance()).unwrap();
        assert_eq!(address.host, "34.1.2.3");
        assert!(address
            .server_ca_pem
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----"));
        let private = json!([{"type": "PRIVATE", "ipAddress": "10.0.0.3"}]);
        let address =
            parse_connect_settings(&answer(private.clone(), "europe-west1"), &instance()).unwrap();
        assert_eq!(address.host, "10.0.0.3");
        let err = parse_connect_settings(&answer(private, "us-central1"), &instance()).unwrap_err();
        assert!(
            err.contains("in region us-central1, not europe-west1"),
            "{err}"
        );
        let err = parse_connect_settings(
            &answer(
                json!([{"type": "OUTGOING", "ipAddress": "1.1.1.1"}]),
                "europe-west1",
            ),
            &instance(),
        )
        .unwrap_err();
        assert!(err.contains("no public or private IP address"), "{err}");
        let mut mysql = answer(json!([]), "europe-west1");
        mysql["databaseVersion"] = json!("MYSQL_8_0");
        let err = parse_connect_settings(&mysql, &instance()).unwrap_err();
        assert!(err.contains("MYSQL_8_0, not PostgreSQL"), "{err}");
    }

    #[test]
    fn admin_api_base() {
        let url = |o: Option<&str>| admin_base(o).map(|b| connect_settings_url(&b, &instance()));
        let expected = "https://sqladmin.googleapis.com/sql/v1beta4/projects/proj/instances/db1/connectSettings";
        assert_eq!(url(None).unwrap(), expected);
        for given in [
            "https://sqladmin.googleapis.com",
            "https://sqladmin.googleapis.com/",
            "https://sqladmin.googleapis.com/sql/v1beta4/",
            "https://sqladmin.googleapis.com/sql/v1beta4",
        ] {
            assert_eq!(url(Some(given)).unwrap(), expected, "{given}");
        }
        assert_eq!(
            url(Some("http://127.0.0.1:8080/sql/v1beta4/")).unwrap(),
            "http://127.0.0.1:8080/sql/v1beta4/projects/proj/instances/db1/connectSettings"
        );
        let err = admin_base(Some("http://sqladmin.example.com/")).unwrap_err();
        assert!(err.contains(ADMIN_OVERRIDE_VAR), "{err}");
        // A domain-scoped project stays as the API spells it.
        let scoped = Instance::parse("example.com:proj:us-east1:db").unwrap();
        assert_eq!(
            connect_settings_url(DEFAULT_ADMIN_BASE, &scoped),
            "https://sqladmin.googleapis.com/sql/v1beta4/projects/example.com:proj/instances/db/connectSettings"
        );
    }

    #[test]
    fn scopes_are_escaped_in_the_metadata_query() {
        assert_eq!(
            query_escape(LOGIN_SCOPE),
            "https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fsqlservice.login"
        );
    }

    /// A configured source that fails ends the search with its own reason and hint; the
    /// metadata server after it is not asked.
    #[test]
    fn a_broken_gcloud_file_stops_the_chain() {
        let dir = std::env::temp_dir().join(format!("pgmi-google-broken-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("application_default_credentials.json"),
            r#"{"type": "authorized_user", "client_id": "x"}"#,
        )
        .unwrap();
        let dir_text = dir.display().to_string();
        let env = |name: &str| match name {
            "CLOUDSDK_CONFIG" => Some(dir_text.clone()),
            // Never asked (it would add a third entry, after a one-second wait).
            "GCE_METADATA_HOST" => Some("192.0.2.1".to_string()),
            _ => None,
        };
        let http = Http::default();
        let request = Request {
            host: "h",
            port: 5432,
            user: "u",
            env: &env,
            http: &http,
            now: SystemTime::now(),
        };
        let err = access_token(&request, LOGIN_SCOPE).unwrap_err();
        assert_eq!(err.tried.len(), 2, "{err:?}");
        assert_eq!(err.tried[1].why, "no \"client_secret\" field");
        assert!(err.tried[1].source.contains(&dir_text), "{err:?}");
        assert!(err.hint.contains("gcloud auth application-default login"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// With nothing configured, every source is listed and the hint says what to do.
    #[test]
    fn nothing_configured_lists_every_source() {
        let home = std::env::temp_dir().join(format!("pgmi-google-empty-{}", std::process::id()));
        std::fs::create_dir_all(&home).unwrap();
        // A loopback port nothing listens on: bind one and let it go.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let home_text = home.display().to_string();
        let closed_text = closed.to_string();
        let env = |name: &str| match name {
            "HOME" => Some(home_text.clone()),
            "GCE_METADATA_HOST" => Some(closed_text.clone()),
            _ => None,
        };
        let http = Http::default();
        let request = Request {
            host: "h",
            port: 5432,
            user: "u",
            env: &env,
            http: &http,
            now: SystemTime::now(),
        };
        let settings = GoogleSettings {
            instance: instance(),
            instance_source: crate::conninfo::Source::Flag("--google-instance"),
        };
        let err = token(&settings, &request).unwrap_err();
        let sources: Vec<&str> = err.tried.iter().map(|t| t.source.as_str()).collect();
        assert_eq!(sources.len(), 3, "{err:?}");
        assert_eq!(sources[0], "GOOGLE_APPLICATION_CREDENTIALS");
        assert!(sources[1].starts_with("gcloud application default credentials ("));
        assert_eq!(sources[2], format!("metadata server ({closed})"));
        assert!(err.hint.contains("gcloud auth application-default login"));
        assert!(err.hint.contains("google-github-actions/auth"));
        // The Admin API call needs a token first, and says so the same way.
        let err = resolve_instance(&settings, &request).unwrap_err();
        assert_eq!(err.tried.len(), 3, "{err:?}");
        let _ = std::fs::remove_dir_all(&home);
    }
}
