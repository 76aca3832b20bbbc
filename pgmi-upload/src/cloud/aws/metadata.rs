//! The credentials a compute platform hands its workloads: container credentials (ECS
//! task roles, EKS Pod Identity) and the EC2 instance role through IMDSv2.
//!
//! Both are plain-HTTP link-local services by design. A container endpoint given as a
//! full URI must therefore be one of the platform's own addresses or loopback, so a
//! mistaken or hostile setting cannot send the authorization token elsewhere. The
//! instance metadata service is absent off EC2, so it is probed with a short timeout.
//! IMDSv1 (no session token) is not used.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::chain::{var, Found, Step};
use super::Keys;
use crate::cloud::http::{check_override, Response};
use crate::cloud::Request;

/// The ECS task credentials address (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`).
const ECS_ADDRESS: &str = "http://169.254.170.2";
/// The EC2 instance metadata service.
const IMDS_ADDRESS: &str = "http://169.254.169.254";
/// The same on IPv6-only (Nitro) instances.
const IMDS_ADDRESS_V6: &str = "http://[fd00:ec2::254]";
/// How long the instance metadata service gets per request.
const IMDS_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the container endpoint gets (it is local, but may be slow to start).
const CONTAINER_TIMEOUT: Duration = Duration::from_secs(5);
/// The IMDSv2 session lifetime asked for; one token fetch needs seconds.
const IMDS_SESSION_SECONDS: &str = "60";

/// Source 4: `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`, else `…_FULL_URI`.
pub(crate) fn container(_region: &str, request: &Request<'_>) -> Step {
    let (url, variable) = if let Some(relative) =
        var(request, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
    {
        let slash = if relative.starts_with('/') { "" } else { "/" };
        (
            format!("{ECS_ADDRESS}{slash}{relative}"),
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        )
    } else if let Some(full) = var(request, "AWS_CONTAINER_CREDENTIALS_FULL_URI") {
        if let Err(why) = allowed_full_uri(&full) {
            return Step::stop_with(
                why,
                "AWS_CONTAINER_CREDENTIALS_FULL_URI may point only at the loopback interface or the ECS/EKS credential addresses 169.254.170.2, 169.254.170.23 and fd00:ec2::23",
            );
        }
        (full, "AWS_CONTAINER_CREDENTIALS_FULL_URI")
    } else {
        return Step::Skip(
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and _FULL_URI not set".to_string(),
        );
    };
    let authorization = match authorization(request) {
        Ok(value) => value,
        Err(why) => return Step::stop(why),
    };
    let headers: Vec<(&str, &str)> = authorization
        .as_deref()
        .map(|value| ("Authorization", value))
        .into_iter()
        .collect();
    let response = match request.http.get(&url, &headers, Some(CONTAINER_TIMEOUT)) {
        Ok(response) => response,
        Err(e) => return Step::stop(format!("the {variable} endpoint did not answer: {e}")),
    };
    if !response.ok() {
        return Step::stop(format!(
            "the {variable} endpoint answered HTTP {}",
            response.status
        ));
    }
    match keys_from_json(&response) {
        Ok(keys) => Step::Found(Found {
            keys,
            source: format!("container credentials ({variable})"),
        }),
        Err(why) => Step::stop(format!("the {variable} endpoint: {why}")),
    }
}

/// The `Authorization` value: the token file's content (re-read each time: the platform
/// rotates it), else `AWS_CONTAINER_AUTHORIZATION_TOKEN`.
fn authorization(request: &Request<'_>) -> Result<Option<String>, String> {
    let value = match var(request, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
        Some(path) => Some(
            std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: {e}"))?
                .trim()
                .to_string(),
        ),
        None => var(request, "AWS_CONTAINER_AUTHORIZATION_TOKEN"),
    };
    if let Some(value) = &value {
        if value.contains(['\r', '\n']) {
            return Err("the container authorization token contains a line break".to_string());
        }
        crate::redact::register_secret(value);
    }
    Ok(value)
}

/// A full container-credentials URI must reach loopback or the platform's addresses.
pub(crate) fn allowed_full_uri(url: &str) -> Result<(), String> {
    // The URL is not repeated: a *_CREDENTIALS_* value is treated like a secret.
    let refuse = || {
        Err(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI is not a loopback or ECS/EKS credentials address"
                .to_string(),
        )
    };
    let lower = url.to_ascii_lowercase();
    let Some(rest) = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))
    else {
        return refuse();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    // `http://127.0.0.1@elsewhere/` would go elsewhere.
    if authority.contains('@') {
        return refuse();
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((host, after)) if after.is_empty() || after.starts_with(':') => host,
            _ => return refuse(),
        },
        None => authority.split(':').next().unwrap_or(""),
    };
    let platform: [IpAddr; 3] = [
        IpAddr::V4(Ipv4Addr::new(169, 254, 170, 2)),
        IpAddr::V4(Ipv4Addr::new(169, 254, 170, 23)),
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23)),
    ];
    let ok = host == "localhost"
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || platform.contains(&ip));
    if ok {
        Ok(())
    } else {
        refuse()
    }
}

/// Source 5: the instance role, through an IMDSv2 session.
pub(crate) fn instance(_region: &str, request: &Request<'_>) -> Step {
    if var(request, "AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Step::Skip("disabled by AWS_EC2_METADATA_DISABLED".to_string());
    }
    let base = match imds_base(request) {
        Ok(base) => base,
        Err(why) => return Step::stop(why),
    };
    let hint = "attach an IAM role (instance profile) to the instance, allow PUT requests to the metadata service (IMDSv2; hop limit 2 inside containers), or give credentials another way";
    let session = match request.http.put(
        &format!("{base}/latest/api/token"),
        &[("X-aws-ec2-metadata-token-ttl-seconds", IMDS_SESSION_SECONDS)],
        Some(IMDS_TIMEOUT),
    ) {
        Ok(response) if response.ok() => response.body.trim().to_string(),
        Ok(response) => {
            return Step::stop_with(
                format!(
                    "the metadata service at {base} refused an IMDSv2 session (HTTP {})",
                    response.status
                ),
                hint,
            )
        }
        // The usual case off EC2: nothing answers.
        Err(e) => return Step::Skip(format!("no instance metadata service at {base} ({e})")),
    };
    crate::redact::register_secret(&session);
    let headers = [("X-aws-ec2-metadata-token", session.as_str())];
    let listing = format!("{base}/latest/meta-data/iam/security-credentials/");
    let role = match request.http.get(&listing, &headers, Some(IMDS_TIMEOUT)) {
        Ok(response) if response.status == 404 => {
            return Step::stop_with("the instance has no IAM role attached", hint)
        }
        Ok(response) if response.ok() => response
            .body
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
        Ok(response) => {
            return Step::stop(format!(
                "the metadata service answered HTTP {} for the role",
                response.status
            ))
        }
        Err(e) => {
            return Step::stop(format!(
                "the metadata service did not answer for the role: {e}"
            ))
        }
    };
    if role.is_empty()
        || !role
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
    {
        return Step::stop_with("the metadata service gave no usable role name", hint);
    }
    let response = match request
        .http
        .get(&format!("{listing}{role}"), &headers, Some(IMDS_TIMEOUT))
    {
        Ok(response) if response.ok() => response,
        Ok(response) => {
            return Step::stop(format!(
                "the metadata service answered HTTP {} for role {role}",
                response.status
            ))
        }
        Err(e) => {
            return Step::stop(format!(
                "the metadata service did not answer for role {role}: {e}"
            ))
        }
    };
    match keys_from_json(&response) {
        Ok(keys) => Step::Found(Found {
            keys,
            source: format!("EC2 instance role {role}"),
        }),
        Err(why) => Step::stop(format!("instance role {role}: {why}")),
    }
}

/// `AWS_EC2_METADATA_SERVICE_ENDPOINT` (loopback, https, or an IMDS address), else the
/// standard address (the IPv6 one with `AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6`);
/// without a trailing slash.
fn imds_base(request: &Request<'_>) -> Result<String, String> {
    let Some(url) = var(request, "AWS_EC2_METADATA_SERVICE_ENDPOINT") else {
        let mode = var(request, "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
        return Ok(match mode {
            Some(mode) if mode.eq_ignore_ascii_case("ipv6") => IMDS_ADDRESS_V6.to_string(),
            _ => IMDS_ADDRESS.to_string(),
        });
    };
    let url = url.trim_end_matches('/').to_string();
    let imds_host = [IMDS_ADDRESS, IMDS_ADDRESS_V6]
        .iter()
        .any(|known| url.eq_ignore_ascii_case(known));
    if !imds_host {
        check_override(&url, "AWS_EC2_METADATA_SERVICE_ENDPOINT")?;
    }
    Ok(url)
}

/// `AccessKeyId`, `SecretAccessKey` and `Token` of a container or instance answer.
pub(crate) fn keys_from_json(response: &Response) -> Result<Keys, String> {
    let json = response.json()?;
    if let Some(code) = json.get("Code").and_then(|c| c.as_str()) {
        if code != "Success" {
            return Err(format!("the answer says {code:?}"));
        }
    }
    let field = |name: &str| {
        json.get(name)
            .and_then(|v| v.as_str())
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let id = field("AccessKeyId").ok_or("no AccessKeyId in the answer")?;
    let secret = field("SecretAccessKey").ok_or("no SecretAccessKey in the answer")?;
    Ok(Keys::new(id, secret, field("Token")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::aws::chain::tests::with_env;

    #[test]
    fn full_uri_must_be_loopback_or_a_platform_address() {
        for ok in [
            "http://127.0.0.1:8080/creds",
            "http://127.1.2.3/creds",
            "http://localhost/creds",
            "http://[::1]:80/creds",
            "http://169.254.170.2/v2/credentials/x",
            "http://169.254.170.23/v1/credentials",
            "http://[fd00:ec2::23]/v1/credentials",
            "https://169.254.170.23/v1/credentials",
        ] {
            assert_eq!(allowed_full_uri(ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://example.com/creds",
            "http://169.254.169.254/latest",
            "http://127.0.0.1@evil.example/creds",
            "http://127.0.0.1.evil.example/",
            "http://[fd00:ec2::24]/",
            "http://[::1]evil/",
            "ftp://127.0.0.1/",
            "127.0.0.1/creds",
        ] {
            let err = allowed_full_uri(bad).unwrap_err();
            assert!(
                err.contains("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn a_refused_full_uri_stops_the_chain() {
        let step = with_env(
            &[(
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "http://example.com/creds",
            )],
            |r| container("us-east-1", r),
        );
        assert!(matches!(step, Step::Stop { .. }));
    }

    #[test]
    fn the_authorization_file_wins_and_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file-token\n").unwrap();
        let value = with_env(
            &[
                (
                    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                    file.to_str().unwrap(),
                ),
                ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "from-variable"),
            ],
            authorization,
        );
        assert_eq!(value, Ok(Some("from-file-token".to_string())));
        std::fs::write(&file, "a\r\nInjected: 1").unwrap();
        let err = with_env(
            &[(
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                file.to_str().unwrap(),
            )],
            authorization,
        );
        assert!(err.unwrap_err().contains("line break"));
        let missing = with_env(
            &[(
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                "/nonexistent/pgmi",
            )],
            authorization,
        );
        assert!(missing
            .unwrap_err()
            .contains("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"));
    }

    #[test]
    fn imds_endpoint_override_is_checked() {
        assert_eq!(with_env(&[], imds_base).unwrap(), IMDS_ADDRESS);
        let v6 = with_env(
            &[("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv6")],
            imds_base,
        );
        assert_eq!(v6.unwrap(), "http://[fd00:ec2::254]");
        let set =
            |url: &'static str| with_env(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT", url)], imds_base);
        assert_eq!(
            set("http://127.0.0.1:1338/").unwrap(),
            "http://127.0.0.1:1338"
        );
        assert_eq!(
            set("http://[fd00:ec2::254]").unwrap(),
            "http://[fd00:ec2::254]"
        );
        assert!(set("http://metadata.example/").is_err());
    }

    #[test]
    fn disabled_imds_is_skipped_without_a_request() {
        let step = with_env(
            &[
                ("AWS_EC2_METADATA_DISABLED", "TRUE"),
                // Would fail to connect if it were used.
                ("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9"),
            ],
            |r| instance("us-east-1", r),
        );
        assert!(matches!(step, Step::Skip(why) if why.contains("AWS_EC2_METADATA_DISABLED")));
    }

    #[test]
    fn metadata_answers_give_keys() {
        let response = |body: &str| Response {
            status: 200,
            body: body.to_string(),
        };
        let keys = keys_from_json(&response(
            r#"{"Code":"Success","AccessKeyId":"ASIA1","SecretAccessKey":"s","Token":"t","Expiration":"2026-11-20T10:00:00Z"}"#,
        ))
        .unwrap();
        assert_eq!(keys.access_key_id, "ASIA1");
        assert_eq!(keys.session_token.as_deref(), Some("t"));
        assert!(keys_from_json(&response(r#"{"Code":"Failure"}"#))
            .unwrap_err()
            .contains("Failure"));
        assert!(keys_from_json(&response(r#"{"AccessKeyId":"A"}"#))
            .unwrap_err()
            .contains("SecretAccessKey"));
        assert!(keys_from_json(&response("<html>")).is_err());
    }
}
