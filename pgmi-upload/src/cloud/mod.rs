//! Passwordless connections to managed PostgreSQL: a short-lived token from the
//! deployment's cloud identity is the password (README, "Cloud IAM authentication").
//!
//! * AWS RDS / Aurora IAM (`--aws`, `aws.rs`): a SigV4-presigned `connect` request for
//!   host, port, region and user.
//! * Azure Entra ID (`--azure`, `azure.rs`): an access token for the Azure Database for
//!   PostgreSQL scope.
//! * Google Cloud SQL IAM (`--google`, `google.rs`): an OAuth access token from
//!   Application Default Credentials; the instance's address comes from the Cloud SQL
//!   Admin API unless a host is given.
//!
//! Resolution is offline (this file): which provider (a flag, else `auth_method` in
//! pgmi.yaml), its inputs with their sources, and the exit-10 cases (two providers, no
//! region, no user, no instance). A token is fetched for every new connection
//! (`connect.rs`), registered as a secret before anything could print it, and never kept
//! on disk. A failure says which credential sources were tried and why each did not give
//! a token (exit 11).

pub mod aws;
pub mod azure;
pub mod google;
pub mod http;

use std::fmt;
use std::time::{Duration, SystemTime};

use crate::cli::ConnectionArgs;
use crate::conninfo::{EnvLookup, Field, Inputs, Source};
use crate::exit::{Exit, Failure};

/// The cloud, and what its token needs besides host, port and user.
#[derive(Clone, PartialEq, Eq)]
pub enum Provider {
    Aws(AwsSettings),
    Azure(AzureSettings),
    Google(GoogleSettings),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    pub region: String,
    pub region_source: Source,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AzureSettings {
    /// `--azure-tenant-id` > `AZURE_TENANT_ID` > pgmi.yaml.
    pub tenant_id: Option<(String, Source)>,
    /// `--azure-client-id` > `AZURE_CLIENT_ID` > pgmi.yaml.
    pub client_id: Option<(String, Source)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoogleSettings {
    pub instance: Instance,
    pub instance_source: Source,
}

/// A Cloud SQL instance connection name, `project:region:instance` (the project may be
/// domain-scoped: `example.com:project`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub project: String,
    pub region: String,
    pub name: String,
}

impl Instance {
    pub fn parse(text: &str) -> Result<Instance, String> {
        let parts: Vec<&str> = text.split(':').collect();
        let (project, region, name) = match parts.as_slice() {
            [project, region, name] => (project.to_string(), *region, *name),
            [domain, project, region, name] => (format!("{domain}:{project}"), *region, *name),
            _ => {
                return Err(format!(
                    "invalid Cloud SQL instance {text:?}: expected project:region:instance"
                ))
            }
        };
        let valid = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        };
        if !valid(&project) || !valid(region) || !valid(name) {
            return Err(format!(
                "invalid Cloud SQL instance {text:?}: expected project:region:instance, each part letters, digits, '-' or '.'"
            ));
        }
        Ok(Instance {
            project,
            region: region.to_string(),
            name: name.to_string(),
        })
    }
}

impl fmt::Display for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.project, self.region, self.name)
    }
}

/// Cloud authentication as resolved: the provider and what turned it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudAuth {
    pub provider: Provider,
    /// `--aws`, `--azure`, `--google`, or pgmi.yaml's `auth_method`.
    pub enabled_by: Source,
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Provider::Aws(s) => write!(f, "Aws({s:?})"),
            Provider::Azure(s) => write!(f, "Azure({s:?})"),
            Provider::Google(s) => write!(f, "Google({s:?})"),
        }
    }
}

impl Provider {
    /// `aws`, `azure` or `google`, as `auth_method` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Provider::Aws(_) => "aws",
            Provider::Azure(_) => "azure",
            Provider::Google(_) => "google",
        }
    }

    /// For messages: "AWS RDS IAM", "Azure Entra ID", "Google Cloud SQL IAM".
    pub fn title(&self) -> &'static str {
        match self {
            Provider::Aws(_) => "AWS RDS IAM",
            Provider::Azure(_) => "Azure Entra ID",
            Provider::Google(_) => "Google Cloud SQL IAM",
        }
    }
}

/// What a token is for, and the environment to read credentials from.
pub struct Request<'a> {
    /// The host and port connected to (for AWS, part of what is signed).
    pub host: &'a str,
    pub port: u16,
    /// The database user the token is for.
    pub user: &'a str,
    pub env: EnvLookup<'a>,
    pub http: &'a http::Http,
    pub now: SystemTime,
}

/// A token to use as the password.
pub struct Token {
    pub secret: String,
    /// When the provider says it stops being valid.
    pub expires_at: Option<SystemTime>,
    /// The credential source that gave it, for `--verbose` ("web identity (AWS_ROLE_ARN
    /// arn:aws:iam::…)"); never a secret.
    pub source: String,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Token {{ source: {:?}, expires_at: {:?} }}",
            self.source, self.expires_at
        )
    }
}

/// One credential source that did not give a token, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tried {
    pub source: String,
    pub why: String,
}

/// No token: every source tried, in order, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudError {
    pub tried: Vec<Tried>,
    pub hint: String,
}

impl CloudError {
    /// A single source failed and the chain stops there (a source that was configured but
    /// is broken is not skipped in favour of the next one, as the SDKs do).
    pub fn one(source: impl Into<String>, why: impl Into<String>, hint: impl Into<String>) -> Self {
        CloudError {
            tried: vec![Tried {
                source: source.into(),
                why: why.into(),
            }],
            hint: hint.into(),
        }
    }
}

/// Tokens that expire sooner than this get a warning.
const EXPIRY_WARNING: Duration = Duration::from_secs(5 * 60);

impl CloudAuth {
    /// A token for one new connection; registered as a secret before it is returned.
    pub fn token(
        &self,
        host: &str,
        port: u16,
        user: &str,
        env: EnvLookup<'_>,
    ) -> Result<Token, Failure> {
        let http = http::Http::default();
        let request = Request {
            host,
            port,
            user,
            env,
            http: &http,
            now: SystemTime::now(),
        };
        let result = match &self.provider {
            Provider::Aws(settings) => aws::token(settings, &request),
            Provider::Azure(settings) => azure::token(settings, &request),
            Provider::Google(settings) => google::token(settings, &request),
        };
        let token = result.map_err(|err| self.failure(&err))?;
        crate::redact::register_secret(&token.secret);
        if let Some(left) = token
            .expires_at
            .and_then(|at| at.duration_since(SystemTime::now()).ok())
            .filter(|left| *left < EXPIRY_WARNING)
        {
            eprintln!(
                "pgmi: warning: the {} token expires in {}s",
                self.provider.title(),
                left.as_secs()
            );
        }
        Ok(token)
    }

    /// Exit 11: no token, with every source tried.
    pub fn failure(&self, err: &CloudError) -> Failure {
        self.failure_as(
            err,
            &format!(
                "could not get an IAM token for {} (enabled by {})",
                self.provider.title(),
                self.enabled_by
            ),
        )
    }

    fn failure_as(&self, err: &CloudError, what: &str) -> Failure {
        let tried = err
            .tried
            .iter()
            .map(|t| format!("{}: {}", t.source, t.why))
            .collect::<Vec<_>>()
            .join("; ");
        Failure::new(Exit::ConnectionFailed, format!("{what}: {tried}")).with_hint(err.hint.clone())
    }

    /// The hint when the server refused the token (28P01, 28000).
    pub fn refused_hint(&self, user: &str) -> String {
        match &self.provider {
            Provider::Aws(s) => format!(
                "the server did not accept the IAM token for user \"{user}\": the database user needs `GRANT rds_iam TO \"{user}\"`, and the identity an IAM policy allowing rds-db:connect on this instance and user; the token is signed for region {} and this host name, so connect to the instance endpoint (not an IP address or alias)",
                s.region
            ),
            Provider::Azure(_) => format!(
                "the server did not accept the Entra ID token for user \"{user}\": the user name must be the Entra principal's name as created with pgaadauth_create_principal (for a service principal or managed identity, its display name), and Entra authentication must be enabled on the server"
            ),
            Provider::Google(_) => format!(
                "the server did not accept the IAM token for user \"{user}\": the user must be an IAM database user of the instance (a service account without .gserviceaccount.com, e.g. name@project.iam), the instance needs the cloudsql.iam_authentication flag, and the identity the Cloud SQL Instance User role"
            ),
        }
    }

    /// The settings for `--verbose` and `info` (none is secret).
    pub fn fields(&self) -> Vec<Field> {
        let field = |name, value: String, source: &Source| Field {
            name,
            value,
            source: Some(source.clone()),
            secret: false,
        };
        let mut fields = vec![field(
            "auth_method",
            self.provider.name().to_string(),
            &self.enabled_by,
        )];
        match &self.provider {
            Provider::Aws(s) => {
                fields.push(field("aws_region", s.region.clone(), &s.region_source))
            }
            Provider::Azure(s) => {
                for (name, value) in [
                    ("azure_tenant_id", &s.tenant_id),
                    ("azure_client_id", &s.client_id),
                ] {
                    if let Some((value, source)) = value {
                        fields.push(field(name, value.clone(), source));
                    }
                }
            }
            Provider::Google(s) => fields.push(field(
                "google_instance",
                s.instance.to_string(),
                &s.instance_source,
            )),
        }
        fields
    }
}

/// Resolve cloud authentication, offline. `user_source` is where the user name came from:
/// AWS and Google need one given on purpose (not the operating-system user).
/// Also returns warnings (a provider's detail flag without its provider turned on).
pub fn resolve(
    args: &ConnectionArgs,
    inputs: &Inputs<'_>,
    user_source: &Source,
) -> Result<(Option<CloudAuth>, Vec<String>), Failure> {
    let mut given: Vec<(&str, &'static str)> = Vec::new();
    if args.aws || args.aws_region.is_some() {
        given.push(("aws", if args.aws { "--aws" } else { "--aws-region" }));
    }
    if args.azure || args.azure_tenant_id.is_some() || args.azure_client_id.is_some() {
        let flag = if args.azure {
            "--azure"
        } else if args.azure_tenant_id.is_some() {
            "--azure-tenant-id"
        } else {
            "--azure-client-id"
        };
        given.push(("azure", flag));
    }
    if args.google || args.google_instance.is_some() {
        given.push((
            "google",
            if args.google {
                "--google"
            } else {
                "--google-instance"
            },
        ));
    }
    if given.len() > 1 {
        let flags: Vec<&str> = given.iter().map(|(_, flag)| *flag).collect();
        return Err(Failure::config(format!(
            "more than one cloud provider given ({}); choose one of --aws, --azure, --google",
            flags.join(", ")
        )));
    }
    let yaml = inputs.yaml.map(|c| &c.connection);
    let yaml_method = yaml.and_then(|c| c.auth_method.as_deref());
    let enabled = if args.aws {
        Some(("aws", Source::Flag("--aws")))
    } else if args.azure {
        Some(("azure", Source::Flag("--azure")))
    } else if args.google {
        Some(("google", Source::Flag("--google")))
    } else {
        match yaml_method {
            Some(method @ ("aws" | "azure" | "google")) => Some((method, Source::Yaml)),
            _ => None,
        }
    };
    let mut warnings = Vec::new();
    // A detail flag of a provider that is not on (the original pgmi ignores it silently;
    // someone who wrote it expected cloud authentication).
    if let Some((name, flag)) = given.first() {
        if enabled.as_ref().is_none_or(|(on, _)| on != name) {
            warnings.push(format!(
                "{flag} has no effect without --{name} (or auth_method: {name} in pgmi.yaml)"
            ));
        }
    }
    let Some((method, enabled_by)) = enabled else {
        return Ok((None, warnings));
    };
    let explicit_user = !matches!(
        user_source,
        Source::OsUser
            | Source::Default
            | Source::Env {
                var: "USER" | "USERNAME",
                ..
            }
    );
    let yaml_value = |pick: fn(&crate::config::Connection) -> Option<&String>| {
        yaml.and_then(pick)
            .filter(|v| !v.is_empty())
            .map(|v| (v.clone(), Source::Yaml))
    };
    let var = |name: &'static str| {
        (inputs.env)(name).map(|v| {
            (
                v,
                Source::Env {
                    var: name,
                    dotenv: (inputs.from_dotenv)(name),
                },
            )
        })
    };
    let provider = match method {
        "aws" => {
            let (region, region_source) = args
                .aws_region
                .clone()
                .filter(|r| !r.is_empty())
                .map(|r| (r, Source::Flag("--aws-region")))
                .or_else(|| var("AWS_REGION"))
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .or_else(|| yaml_value(|c| c.aws_region.as_ref()))
                .ok_or_else(|| {
                    Failure::config(format!("AWS IAM authentication (enabled by {enabled_by}) needs a region"))
                        .with_hint("pass --aws-region us-east-1, set AWS_REGION, or add aws_region to pgmi.yaml's connection block")
                })?;
            if !explicit_user {
                return Err(Failure::config(format!(
                    "AWS IAM authentication (enabled by {enabled_by}) needs the database user name"
                ))
                .with_hint("pass -U <user>, set PGUSER, add username to pgmi.yaml, or put the user in the connection string: the user granted rds_iam"));
            }
            Provider::Aws(AwsSettings {
                region,
                region_source,
            })
        }
        "azure" => Provider::Azure(AzureSettings {
            tenant_id: args
                .azure_tenant_id
                .clone()
                .filter(|v| !v.is_empty())
                .map(|v| (v, Source::Flag("--azure-tenant-id")))
                .or_else(|| var("AZURE_TENANT_ID"))
                .or_else(|| yaml_value(|c| c.azure_tenant_id.as_ref())),
            client_id: args
                .azure_client_id
                .clone()
                .filter(|v| !v.is_empty())
                .map(|v| (v, Source::Flag("--azure-client-id")))
                .or_else(|| var("AZURE_CLIENT_ID"))
                .or_else(|| yaml_value(|c| c.azure_client_id.as_ref())),
        }),
        _ => {
            let (text, instance_source) = args
                .google_instance
                .clone()
                .filter(|v| !v.is_empty())
                .map(|v| (v, Source::Flag("--google-instance")))
                .or_else(|| yaml_value(|c| c.google_instance.as_ref()))
                .ok_or_else(|| {
                    Failure::config(format!(
                        "Google Cloud SQL IAM authentication (enabled by {enabled_by}) needs the instance"
                    ))
                    .with_hint("pass --google-instance project:region:instance, or add google_instance to pgmi.yaml's connection block")
                })?;
            let instance = Instance::parse(&text)
                .map_err(|e| Failure::config(format!("{instance_source}: {e}")))?;
            if !explicit_user {
                return Err(Failure::config(format!(
                    "Google Cloud SQL IAM authentication (enabled by {enabled_by}) needs the database user name"
                ))
                .with_hint("pass -U with the IAM database user: a service account without .gserviceaccount.com (name@project.iam) or a user's e-mail address"));
            }
            Provider::Google(GoogleSettings {
                instance,
                instance_source,
            })
        }
    };
    Ok((
        Some(CloudAuth {
            provider,
            enabled_by,
        }),
        warnings,
    ))
}

/// Google Cloud SQL without a host given on purpose: ask the Cloud SQL Admin API where
/// the instance is, connect to its address, and verify the server with the instance's
/// own CA (`verify-ca`: Cloud SQL server certificates name the instance, not a host).
/// Returns the TLS set-up to use instead of the one built from the settings, with its
/// description for `--verbose`, or `None` when nothing changed (not Google, or a host was
/// given).
pub fn locate_instance(
    info: &mut crate::conninfo::ConnInfo,
    verbose: bool,
) -> Result<Option<(crate::tls::Tls, String)>, Failure> {
    let Some(cloud) = &info.cloud else {
        return Ok(None);
    };
    let Provider::Google(settings) = &cloud.provider else {
        return Ok(None);
    };
    if info.sources.host != Source::Default {
        return Ok(None);
    }
    let http = http::Http::default();
    let request = Request {
        host: &info.host,
        port: info.port,
        user: &info.user,
        env: &crate::conninfo::process_env,
        http: &http,
        now: SystemTime::now(),
    };
    let address = google::resolve_instance(settings, &request).map_err(|err| {
        cloud.failure_as(
            &err,
            &format!(
                "could not look up Cloud SQL instance {} (enabled by {})",
                settings.instance, cloud.enabled_by
            ),
        )
    })?;
    crate::report::verbose(
        verbose,
        &format!(
            "Cloud SQL instance {} is at {}",
            settings.instance, address.host
        ),
    );
    info.host = address.host;
    info.sources.host = Source::Cloud;
    let pem = match address.server_ca_pem {
        // The user's own trust settings stand.
        Some(pem) if info.tls.rootcert.is_none() => pem,
        _ => {
            let tls = crate::tls::prepare(&info.tls, false)?;
            let described = crate::tls::describe(&tls);
            return Ok(Some((tls, described)));
        }
    };
    if matches!(
        info.tls.mode,
        crate::tls::SslMode::Prefer | crate::tls::SslMode::Require
    ) || info.sources.sslmode == Source::Cloud
    {
        info.tls.mode = crate::tls::SslMode::VerifyCa;
        info.sources.sslmode = Source::Cloud;
    }
    // The TLS context reads its files once, here; the CA file lives only that long.
    let file = PrivateFile::write("pgmi-cloudsql-ca", pem.as_bytes()).map_err(|e| {
        Failure::new(
            Exit::General,
            format!("could not write the instance's CA certificate to a temporary file: {e}"),
        )
    })?;
    let mut settings = info.tls.clone();
    settings.rootcert = Some(file.path.display().to_string());
    let tls = crate::tls::prepare(&settings, false);
    drop(file);
    let described = format!(
        "TLS: sslmode {}, server certificate verified against the instance's CA from the Cloud SQL Admin API",
        info.tls.mode.as_str()
    );
    tls.map(|tls| Some((tls, described)))
}

/// A file only this user can read, removed when dropped.
struct PrivateFile {
    path: std::path::PathBuf,
}

impl PrivateFile {
    fn write(prefix: &str, bytes: &[u8]) -> std::io::Result<PrivateFile> {
        use std::io::Write;
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path =
            std::env::temp_dir().join(format!("{prefix}-{}-{nanos}.pem", std::process::id()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&path)?;
        file.write_all(bytes)?;
        Ok(PrivateFile { path })
    }
}

impl Drop for PrivateFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
