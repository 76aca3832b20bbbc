//! AWS RDS / Aurora IAM tokens (`--aws`).
//!
//! An RDS auth token is not fetched from anywhere: it is a SigV4 query-string presigned
//! `GET https://{host}:{port}/?Action=connect&DBUser={user}` for the service `rds-db`,
//! valid 15 minutes, written without its `https://`. The server checks the signature
//! against the IAM identity, so the token must be exactly what the AWS tools produce.
//! The signature itself comes from the AWS-maintained `aws-sigv4` crate; this file only
//! lays the query out the way botocore's `generate_db_auth_token` does (its parameter
//! order differs from `aws-sigv4`'s), which the recorded botocore tokens in
//! `aws/botocore_tokens.json` pin byte for byte (regenerate them with
//! `scripts/aws-reference-tokens.py`).
//!
//! The keys come from the SDKs' default credential chain, as far as a command-line tool
//! run by a person or a CI job needs it ([`chain`]).

mod chain;
mod metadata;
mod profile;
mod sts;

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

use super::{AwsSettings, CloudError, Request, Token};

/// How long an RDS token is valid; RDS accepts no other value.
const TOKEN_LIFETIME: Duration = Duration::from_secs(900);
/// The SigV4 service name of database logins.
const SERVICE: &str = "rds-db";

/// The token for one new connection: credentials from the chain, then the signature.
pub fn token(settings: &AwsSettings, request: &Request<'_>) -> Result<Token, CloudError> {
    let found = chain::credentials(&settings.region, request)?;
    let secret = rds_token(
        &found.keys,
        request.host,
        request.port,
        request.user,
        &settings.region,
        request.now,
    )
    .map_err(|why| {
        CloudError::one(
            found.source.clone(),
            format!("could not sign the token: {why}"),
            "check the host name, region and user name",
        )
    })?;
    Ok(Token {
        secret,
        expires_at: Some(request.now + TOKEN_LIFETIME),
        source: found.source,
    })
}

/// Access keys; the secret parts never reach a message (`Debug` hides them).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Keys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl Keys {
    /// Keys from a credential source, registered as secrets before anything could print
    /// them.
    fn new(
        access_key_id: String,
        secret_access_key: String,
        session_token: Option<String>,
    ) -> Keys {
        crate::redact::register_secret(&secret_access_key);
        if let Some(token) = &session_token {
            crate::redact::register_secret(token);
        }
        Keys {
            access_key_id,
            secret_access_key,
            session_token: session_token.filter(|t| !t.is_empty()),
        }
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Keys {{ access_key_id: {:?}, session_token: {} }}",
            self.access_key_id,
            if self.session_token.is_some() {
                "yes"
            } else {
                "no"
            }
        )
    }
}

/// The token as botocore writes it: `host:port/?Action=connect&DBUser=…&X-Amz-…`.
fn rds_token(
    keys: &Keys,
    host: &str,
    port: u16,
    user: &str,
    region: &str,
    now: SystemTime,
) -> Result<String, String> {
    if host.is_empty() {
        return Err("no host name to sign".to_string());
    }
    // A bare IPv6 address needs brackets to be a URL authority.
    let authority = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let operation = [("Action", "connect"), ("DBUser", user)];
    let url = format!("https://{authority}/?{}", query(&operation));
    let presigned = presign(keys, &url, region, SERVICE, now, TOKEN_LIFETIME)?;
    // botocore: the operation's parameters, then the X-Amz ones in the order it adds them,
    // the signature last.
    let order = [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Security-Token",
        "X-Amz-Signature",
    ];
    let mut pairs: Vec<(&str, &str)> = operation.to_vec();
    for name in order {
        if let Some((_, value)) = presigned.iter().find(|(n, _)| *n == name) {
            pairs.push((name, value));
        }
    }
    if pairs.len() != presigned.len() + operation.len() {
        return Err("the signer returned parameters this version does not know".to_string());
    }
    Ok(format!("{authority}/?{}", query(&pairs)))
}

/// The query parameters `aws-sigv4` computes for a presigned `GET url` (the URL already
/// percent-encoded), in its own order: the signature and the other `X-Amz-*` values.
fn presign(
    keys: &Keys,
    url: &str,
    region: &str,
    service: &str,
    now: SystemTime,
    expires: Duration,
) -> Result<Vec<(&'static str, String)>, String> {
    let identity: Identity = aws_credential_types::Credentials::new(
        keys.access_key_id.clone(),
        keys.secret_access_key.clone(),
        keys.session_token.clone(),
        None,
        "pgmi-upload",
    )
    .into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(expires);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let request = SignableRequest::new("GET", url, std::iter::empty(), SignableBody::Bytes(&[]))
        .map_err(|e| e.to_string())?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    let (_headers, params) = instructions.into_parts();
    Ok(params
        .into_iter()
        .map(|(name, value): (&'static str, Cow<'static, str>)| (name, value.into_owned()))
        .collect())
}

/// `name=value&…`, each side percent-encoded as botocore does (RFC 3986: only letters,
/// digits and `-_.~` stay as they are; a space is `%20`, `+` is `%2B`).
fn query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `2015-08-30T12:36:00Z` as a time (whole seconds, UTC).
    fn at(text: &str) -> SystemTime {
        let n = |range: std::ops::Range<usize>| text[range].parse::<i64>().unwrap();
        let (year, month, day) = (n(0..4), n(5..7), n(8..10));
        // Days since 1970-01-01 of a proleptic Gregorian date.
        let y = if month <= 2 { year - 1 } else { year };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (month + 9) % 12;
        let doy = (153 * mp + 2) / 5 + day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        let seconds = days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19);
        SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap())
    }

    fn keys(id: &str, secret: &str, token: Option<&str>) -> Keys {
        Keys::new(
            id.to_string(),
            secret.to_string(),
            token.map(str::to_string),
        )
    }

    fn signature(params: &[(&'static str, String)]) -> String {
        params
            .iter()
            .find(|(n, _)| *n == "X-Amz-Signature")
            .unwrap()
            .1
            .clone()
    }

    /// The published SigV4 suite (aws-c-auth's, as shipped with aws-sigv4): the
    /// query-signed variants, computed through the same `presign` the tokens use.
    #[test]
    fn sigv4_suite_query_vectors() {
        let example = keys(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
        );
        let hour = Duration::from_secs(3600);
        let time = at("2015-08-30T12:36:00Z");
        // get-vanilla-query
        let params = presign(
            &example,
            "https://example.amazonaws.com/",
            "us-east-1",
            "service",
            time,
            hour,
        )
        .unwrap();
        assert_eq!(
            signature(&params),
            "e93c787ed7f371d5c6b165c1b38ede9550f4dce4144713e844b25b7192d3865d"
        );
        // get-vanilla-query-unreserved
        let unreserved = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let url = format!("https://example.amazonaws.com/?{unreserved}={unreserved}");
        let params = presign(&example, &url, "us-east-1", "service", time, hour).unwrap();
        assert_eq!(
            signature(&params),
            "8e76a88a7433637b12778d5592799b29ad21ecd6cf6325051c21d86f0acda2bf"
        );
        // get-vanilla-with-session-token
        let with_token = keys(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"),
        );
        let params = presign(
            &with_token,
            "https://example.amazonaws.com/",
            "us-east-1",
            "service",
            time,
            hour,
        )
        .unwrap();
        assert_eq!(
            signature(&params),
            "7ff2b50b376cb4d151970630573d6291dc128cc5c2a12ffb237f73cc53f67b6c"
        );
        let names: Vec<&str> = params.iter().map(|(n, _)| *n).collect();
        assert!(names.contains(&"X-Amz-Security-Token"), "{names:?}");
    }

    /// Every case botocore recorded (scripts/aws-reference-tokens.py), byte for byte.
    #[test]
    fn botocore_tokens_byte_for_byte() {
        let fixture: serde_json::Value =
            serde_json::from_str(include_str!("aws/botocore_tokens.json")).unwrap();
        let cases = fixture["cases"].as_array().unwrap();
        assert!(cases.len() >= 6);
        for case in cases {
            let text = |name: &str| case[name].as_str().unwrap_or_else(|| panic!("{name}"));
            let keys = keys(
                text("access_key_id"),
                text("secret_access_key"),
                case["session_token"].as_str(),
            );
            let port = u16::try_from(case["port"].as_u64().unwrap()).unwrap();
            let token = rds_token(
                &keys,
                text("host"),
                port,
                text("user"),
                text("region"),
                at(text("now")),
            )
            .unwrap();
            assert_eq!(token, text("token"), "case {}", text("name"));
        }
    }

    #[test]
    fn token_layout() {
        let keys = keys("AKIDEXAMPLE", "secret", Some("a/b+c="));
        let token = rds_token(
            &keys,
            "db.example",
            5432,
            "u",
            "us-east-1",
            at("2026-01-02T03:04:05Z"),
        )
        .unwrap();
        assert!(token.starts_with("db.example:5432/?Action=connect&DBUser=u&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20260102%2Fus-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20260102T030405Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Security-Token=a%2Fb%2Bc%3D&X-Amz-Signature="), "{token}");
        assert!(!token.contains("secret"));
        let v6 = rds_token(
            &keys,
            "::1",
            5432,
            "u",
            "us-east-1",
            at("2026-01-02T03:04:05Z"),
        )
        .unwrap();
        assert!(v6.starts_with("[::1]:5432/?"), "{v6}");
        assert!(rds_token(&keys, "", 5432, "u", "us-east-1", SystemTime::UNIX_EPOCH).is_err());
    }

    #[test]
    fn encoding_keeps_only_unreserved_characters() {
        assert_eq!(encode("aZ09-_.~"), "aZ09-_.~");
        assert_eq!(encode("a+b c/d=e@f%"), "a%2Bb%20c%2Fd%3De%40f%25");
        assert_eq!(encode("é"), "%C3%A9");
    }

    #[test]
    fn keys_never_show_their_secrets() {
        let keys = keys("AKIDEXAMPLE", "very-secret-key", Some("very-secret-token"));
        let shown = format!("{keys:?}");
        assert!(shown.contains("AKIDEXAMPLE"));
        assert!(!shown.contains("very-secret"), "{shown}");
    }

    #[test]
    fn token_from_environment_keys() {
        let now = at("2026-11-20T09:15:30Z");
        let vars = [
            ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
            (
                "AWS_SECRET_ACCESS_KEY",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            ),
        ];
        let settings = AwsSettings {
            region: "us-east-1".to_string(),
            region_source: crate::conninfo::Source::Default,
        };
        let token = chain::tests::with_env(&vars, |r| {
            let request = Request {
                host: "mydb.c9akciq32.us-east-1.rds.amazonaws.com",
                port: 5432,
                user: "iam_user",
                env: r.env,
                http: r.http,
                now,
            };
            token(&settings, &request)
        })
        .unwrap();
        assert_eq!(token.expires_at, Some(now + Duration::from_secs(900)));
        assert!(token.source.contains("environment"));
        assert!(token.secret.ends_with(
            "X-Amz-Signature=20619205aabc34a16efcd24055bcf81e5b007d6a928e50611392d86414a5443f"
        ));
    }
}
