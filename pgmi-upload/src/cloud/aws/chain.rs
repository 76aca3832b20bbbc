//! Where the AWS keys come from: the SDKs' default chain, in their order, as far as a
//! command-line tool needs it.
//!
//! 1. `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`);
//! 2. the shared files (`~/.aws/credentials`, `~/.aws/config`, profile `AWS_PROFILE` or
//!    `default`): static keys, or `web_identity_token_file` + `role_arn`;
//! 3. web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`): STS
//!    AssumeRoleWithWebIdentity — what GitHub Actions OIDC and EKS service accounts use;
//! 4. container credentials (ECS task role, EKS Pod Identity);
//! 5. the EC2 instance role, through IMDSv2.
//!
//! A source that is not configured is noted and the next one tried. A source that is
//! configured but broken stops the chain, as in the SDKs: silently falling through to
//! another identity (say, an instance role) would connect as someone else.
//!
//! Not built, on purpose: IAM Identity Center (SSO) and `credential_process` profiles,
//! `source_profile` role chaining (these stop with a hint to export the keys, e.g.
//! `aws configure export-credentials --format env`), and the IMDSv1 fallback (IMDSv2
//! only, as current instances default to).

use super::{metadata, profile, sts, Keys};
use crate::cloud::{CloudError, Request, Tried};

/// Keys and the source that gave them (for `--verbose`; never a secret).
#[derive(Debug)]
pub(crate) struct Found {
    pub keys: Keys,
    pub source: String,
}

/// What one source says.
pub(crate) enum Step {
    Found(Found),
    /// Not configured here; the chain goes on.
    Skip(String),
    /// Configured but broken: the chain stops, with this reason and a hint of its own.
    Stop {
        why: String,
        hint: Option<String>,
    },
}

impl Step {
    pub fn stop(why: impl Into<String>) -> Step {
        Step::Stop {
            why: why.into(),
            hint: None,
        }
    }

    pub fn stop_with(why: impl Into<String>, hint: impl Into<String>) -> Step {
        Step::Stop {
            why: why.into(),
            hint: Some(hint.into()),
        }
    }
}

/// How to give credentials, when none gave any.
pub(crate) const HINT: &str = "give pgmi-upload AWS credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary keys); a profile with keys in ~/.aws/credentials (AWS_PROFILE to pick it); web identity (AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN; on GitHub Actions, aws-actions/configure-aws-credentials with role-to-assume and `permissions: id-token: write`); or an instance, task or pod role on EC2, ECS or EKS";

type Source = fn(&str, &Request<'_>) -> Step;

/// The sources, in the SDKs' order, with the name each has in messages.
const SOURCES: [(&str, Source); 5] = [
    ("environment variables", environment),
    ("shared config files", profile::credentials),
    ("web identity", web_identity),
    ("container credentials", metadata::container),
    ("EC2 instance metadata", metadata::instance),
];

/// The first source that gives keys, or every source tried and why each did not.
pub(crate) fn credentials(region: &str, request: &Request<'_>) -> Result<Found, CloudError> {
    run(&SOURCES, region, request)
}

fn run(
    sources: &[(&str, Source)],
    region: &str,
    request: &Request<'_>,
) -> Result<Found, CloudError> {
    let mut tried = Vec::new();
    for (name, source) in sources {
        match source(region, request) {
            Step::Found(found) => return Ok(found),
            Step::Skip(why) => tried.push(Tried {
                source: name.to_string(),
                why,
            }),
            Step::Stop { why, hint } => {
                tried.push(Tried {
                    source: name.to_string(),
                    why,
                });
                return Err(CloudError {
                    tried,
                    hint: hint.unwrap_or_else(|| HINT.to_string()),
                });
            }
        }
    }
    Err(CloudError {
        tried,
        hint: HINT.to_string(),
    })
}

/// A variable, `None` when unset or empty.
pub(crate) fn var(request: &Request<'_>, name: &str) -> Option<String> {
    (request.env)(name).filter(|v| !v.is_empty())
}

/// 1. `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, both or neither.
fn environment(_region: &str, request: &Request<'_>) -> Step {
    let id = var(request, "AWS_ACCESS_KEY_ID");
    let secret = var(request, "AWS_SECRET_ACCESS_KEY");
    match (id, secret) {
        (Some(id), Some(secret)) => Step::Found(Found {
            keys: Keys::new(id, secret, var(request, "AWS_SESSION_TOKEN")),
            source: "environment variables (AWS_ACCESS_KEY_ID)".to_string(),
        }),
        (None, None) => Step::Skip("AWS_ACCESS_KEY_ID not set".to_string()),
        (Some(_), None) => Step::stop_with(
            "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not",
            "set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither",
        ),
        (None, Some(_)) => Step::stop_with(
            "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not",
            "set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither",
        ),
    }
}

/// 3. `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN` (+ `AWS_ROLE_SESSION_NAME`).
fn web_identity(region: &str, request: &Request<'_>) -> Step {
    let file = var(request, "AWS_WEB_IDENTITY_TOKEN_FILE");
    let role = var(request, "AWS_ROLE_ARN");
    let (token_file, role_arn) = match (file, role) {
        (Some(file), Some(role)) => (file, role),
        (None, None) => return Step::Skip("AWS_WEB_IDENTITY_TOKEN_FILE not set".to_string()),
        (Some(_), None) => {
            return Step::stop_with(
                "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not",
                "set AWS_ROLE_ARN to the role to assume with the web identity token",
            )
        }
        (None, Some(_)) => {
            return Step::stop_with(
                "AWS_ROLE_ARN is set but AWS_WEB_IDENTITY_TOKEN_FILE is not",
                "set AWS_WEB_IDENTITY_TOKEN_FILE to the file holding the OIDC token",
            )
        }
    };
    let identity = sts::WebIdentity {
        token_file: profile::expand_home(&token_file, request),
        token_file_label: "AWS_WEB_IDENTITY_TOKEN_FILE".to_string(),
        role_arn,
        session_name: var(request, "AWS_ROLE_SESSION_NAME"),
        origin: "AWS_ROLE_ARN".to_string(),
    };
    sts::assume(&identity, region, request)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;
    use std::time::SystemTime;

    use super::*;
    use crate::cloud::http::Http;

    /// A request whose environment is `vars` only, for host db.example:5432.
    pub fn with_env<T>(vars: &[(&str, &str)], body: impl FnOnce(&Request<'_>) -> T) -> T {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = move |name: &str| map.get(name).cloned();
        let http = Http::new(std::time::Duration::from_secs(5));
        let request = Request {
            host: "db.example",
            port: 5432,
            user: "iam_user",
            env: &env,
            http: &http,
            now: SystemTime::UNIX_EPOCH,
        };
        body(&request)
    }

    fn sources(err: &CloudError) -> Vec<&str> {
        err.tried.iter().map(|t| t.source.as_str()).collect()
    }

    #[test]
    fn environment_keys_come_first() {
        let found = with_env(
            &[
                ("AWS_ACCESS_KEY_ID", "AKIDENV"),
                ("AWS_SECRET_ACCESS_KEY", "secret-env"),
                ("AWS_SESSION_TOKEN", "session-env"),
                // Also configured, but later in the chain: never reached.
                ("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/token"),
                ("AWS_ROLE_ARN", "arn:aws:iam::1:role/x"),
            ],
            |r| credentials("us-east-1", r),
        )
        .unwrap();
        assert_eq!(found.keys.access_key_id, "AKIDENV");
        assert_eq!(found.keys.secret_access_key, "secret-env");
        assert_eq!(found.keys.session_token.as_deref(), Some("session-env"));
        assert!(found.source.contains("environment"), "{}", found.source);
        assert!(!found.source.contains("secret-env"));
    }

    #[test]
    fn half_set_environment_keys_stop_the_chain() {
        let err = with_env(&[("AWS_ACCESS_KEY_ID", "AKIDENV")], |r| {
            credentials("us-east-1", r)
        })
        .unwrap_err();
        assert_eq!(sources(&err), ["environment variables"]);
        assert!(
            err.tried[0].why.contains("AWS_SECRET_ACCESS_KEY"),
            "{err:?}"
        );
    }

    #[test]
    fn broken_web_identity_stops_before_container_and_instance() {
        let home = tempfile::tempdir().unwrap();
        let home_path = home.path().to_str().unwrap();
        let err = with_env(
            &[
                ("HOME", home_path),
                ("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/pgmi/token"),
                ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/deploy"),
                // Would be tried next, and must not be.
                (
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                    "http://127.0.0.1:9/creds",
                ),
            ],
            |r| credentials("us-east-1", r),
        )
        .unwrap_err();
        assert_eq!(
            sources(&err),
            [
                "environment variables",
                "shared config files",
                "web identity"
            ]
        );
        assert!(err.tried[0].why.contains("not set"), "{err:?}");
        assert!(
            err.tried[2].why.contains("AWS_WEB_IDENTITY_TOKEN_FILE"),
            "{err:?}"
        );
    }

    #[test]
    fn nothing_configured_tries_every_source_and_says_how() {
        let home = tempfile::tempdir().unwrap();
        let err = with_env(
            &[
                ("HOME", home.path().to_str().unwrap()),
                ("AWS_EC2_METADATA_DISABLED", "true"),
            ],
            |r| credentials("us-east-1", r),
        )
        .unwrap_err();
        assert_eq!(
            sources(&err),
            [
                "environment variables",
                "shared config files",
                "web identity",
                "container credentials",
                "EC2 instance metadata"
            ]
        );
        assert!(
            err.tried[4].why.contains("AWS_EC2_METADATA_DISABLED"),
            "{err:?}"
        );
        for needle in [
            "AWS_ACCESS_KEY_ID",
            "AWS_PROFILE",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "aws-actions/configure-aws-credentials",
            "instance",
        ] {
            assert!(
                err.hint.contains(needle),
                "{needle} missing from {}",
                err.hint
            );
        }
    }

    #[test]
    fn profile_keys_come_before_web_identity() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".aws")).unwrap();
        std::fs::write(
            home.path().join(".aws/credentials"),
            "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = secret-file\n",
        )
        .unwrap();
        let found = with_env(
            &[
                ("HOME", home.path().to_str().unwrap()),
                ("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/token"),
                ("AWS_ROLE_ARN", "arn:aws:iam::1:role/x"),
            ],
            |r| credentials("us-east-1", r),
        )
        .unwrap();
        assert_eq!(found.keys.access_key_id, "AKIDFILE");
        assert_eq!(found.keys.session_token, None);
        assert!(found.source.contains("profile default"), "{}", found.source);
    }

    #[test]
    fn web_identity_needs_both_variables() {
        let err = with_env(&[("AWS_ROLE_ARN", "arn:aws:iam::1:role/x")], |r| {
            web_identity("us-east-1", r)
        });
        assert!(
            matches!(&err, Step::Stop { why, .. } if why.contains("AWS_WEB_IDENTITY_TOKEN_FILE")),
        );
    }
}
