//! Web identity: an OIDC token from a file (GitHub Actions, EKS service accounts) traded
//! with STS `AssumeRoleWithWebIdentity` for temporary keys.
//!
//! The call is an unsigned form POST (the OIDC token is the proof) to the regional STS
//! endpoint, or to `AWS_ENDPOINT_URL_STS` / `AWS_ENDPOINT_URL` as the SDKs allow (https,
//! or http on loopback only). STS answers in XML; the few elements needed are read
//! directly rather than with an XML crate. The OIDC token is a secret: it is registered
//! for redaction and never put in a message, even if STS were to echo it.

use std::time::{SystemTime, UNIX_EPOCH};

use super::chain::{var, Found, Step};
use super::Keys;
use crate::cloud::http::check_override;
use crate::cloud::Request;

/// The role to assume and with which token.
pub(crate) struct WebIdentity {
    pub token_file: String,
    /// The file as messages name it (the variable or profile setting, not the path).
    pub token_file_label: String,
    pub role_arn: String,
    /// `AWS_ROLE_SESSION_NAME` or the profile's `role_session_name`; else generated.
    pub session_name: Option<String>,
    /// Where the settings came from, for the source text ("AWS_ROLE_ARN", "profile ci").
    pub origin: String,
}

/// How STS error text is cut in a message.
const MAX_MESSAGE: usize = 400;

/// Assume the role; a failure stops the chain (web identity was configured).
pub(crate) fn assume(identity: &WebIdentity, region: &str, request: &Request<'_>) -> Step {
    let hint = "check that the role's trust policy allows this OIDC provider and subject (on GitHub Actions: the repository, branch or environment in the `sub` condition), and that the job may request an ID token (`permissions: id-token: write`)";
    let token = match read_token(&identity.token_file, &identity.token_file_label) {
        Ok(token) => token,
        Err(why) => {
            return Step::stop_with(
                why,
                "the web identity token file must exist and hold the OIDC token (on GitHub Actions, use aws-actions/configure-aws-credentials, or request the token with the job's `id-token: write` permission)",
            )
        }
    };
    let url = match endpoint(region, request) {
        Ok(url) => url,
        Err(why) => return Step::stop(why),
    };
    let session_name = identity
        .session_name
        .clone()
        .unwrap_or_else(|| generated_session_name(request.now));
    let form = [
        ("Action", "AssumeRoleWithWebIdentity"),
        ("Version", "2011-06-15"),
        ("RoleArn", identity.role_arn.as_str()),
        ("RoleSessionName", session_name.as_str()),
        ("WebIdentityToken", token.as_str()),
    ];
    let response = match request
        .http
        .post_form(&url, &[("Accept", "text/xml")], &form)
    {
        Ok(response) => response,
        Err(e) => return Step::stop(format!("web identity: STS at {url} did not answer: {e}")),
    };
    let source = format!("web identity ({} {})", identity.origin, identity.role_arn);
    if !response.ok() {
        let detail = error_detail(&response.body, &token);
        return Step::stop_with(
            format!(
                "web identity: STS refused AssumeRoleWithWebIdentity for {} (HTTP {}{detail})",
                identity.role_arn, response.status
            ),
            hint,
        );
    }
    match parse_credentials(&response.body) {
        Ok(keys) => Step::Found(Found { keys, source }),
        Err(why) => Step::stop(format!("web identity: STS answer unusable: {why}")),
    }
}

/// The token file's content, trimmed; registered as a secret.
fn read_token(path: &str, label: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("web identity: cannot read the token file ({label}): {e}"))?;
    let token = text.trim().to_string();
    if token.is_empty() {
        return Err(format!("web identity: the token file ({label}) is empty"));
    }
    crate::redact::register_secret(&token);
    Ok(token)
}

/// `AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL`, else the regional endpoint.
fn endpoint(region: &str, request: &Request<'_>) -> Result<String, String> {
    for name in ["AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"] {
        if let Some(url) = var(request, name) {
            check_override(&url, name)?;
            return Ok(url);
        }
    }
    let domain = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    Ok(format!("https://sts.{region}.{domain}/"))
}

/// A session name STS accepts (`[\w+=,.@-]{2,64}`) that says who made it.
fn generated_session_name(now: SystemTime) -> String {
    let millis = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("pgmi-upload-{millis}")
}

/// `: Code: Message` from an STS error body, without the OIDC token; empty if none.
fn error_detail(body: &str, token: &str) -> String {
    let code = element(body, "Code");
    let message = element(body, "Message");
    let text = match (code, message) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(only), None) | (None, Some(only)) => only,
        (None, None) => return String::new(),
    };
    let text = if token.is_empty() {
        text
    } else {
        text.replace(token, "[redacted]")
    };
    let cut: String = text.chars().take(MAX_MESSAGE).collect();
    format!(", {cut}")
}

/// The keys in an AssumeRoleWithWebIdentity answer's `<Credentials>`.
pub(crate) fn parse_credentials(body: &str) -> Result<Keys, String> {
    let credentials =
        element_raw(body, "Credentials").ok_or("no <Credentials> element in the answer")?;
    let field = |name: &str| {
        element(credentials, name)
            .filter(|v| !v.is_empty())
            .ok_or(format!("no <{name}> in <Credentials>"))
    };
    Ok(Keys::new(
        field("AccessKeyId")?,
        field("SecretAccessKey")?,
        Some(field("SessionToken")?),
    ))
}

/// The text of the first `<name>` element, entities decoded.
pub(crate) fn element(xml: &str, name: &str) -> Option<String> {
    element_raw(xml, name).map(unescape)
}

/// The raw content of the first `<name>` (or `<name attr=…>`) element.
fn element_raw<'x>(xml: &'x str, name: &str) -> Option<&'x str> {
    let open = format!("<{name}");
    let close = format!("</{name}>");
    let mut from = 0;
    while let Some(at) = xml[from..].find(&open) {
        let start = from + at + open.len();
        let rest = &xml[start..];
        // `<Code>` must not match `<CodeX>`.
        match rest.chars().next() {
            Some('>') | Some(' ') | Some('\t') | Some('\n') | Some('\r') => {
                let content_start = start + rest.find('>')? + 1;
                let end = xml[content_start..].find(&close)?;
                return Some(&xml[content_start..content_start + end]);
            }
            _ => from = start,
        }
    }
    None
}

/// XML character entities, predefined and numeric; anything else stays as written.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';') else { break };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .map(|hex| u32::from_str_radix(hex, 16))
                .or_else(|| entity.strip_prefix('#').map(|dec| dec.parse::<u32>()))
                .and_then(|n| n.ok())
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::aws::chain::tests::with_env;

    const ANSWER: &str = r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>repo:org/app:ref:refs/heads/main</SubjectFromWebIdentityToken>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/deploy/pgmi</Arn>
      <AssumedRoleId>AROAEXAMPLE:pgmi</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>FwoGZXIvYXdzE&amp;/+token==</SessionToken>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY</SecretAccessKey>
      <Expiration>2026-11-20T10:15:30Z</Expiration>
      <AccessKeyId>ASIAEXAMPLE</AccessKeyId>
    </Credentials>
    <Audience>sts.amazonaws.com</Audience>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"#;

    #[test]
    fn reads_the_credentials_of_an_answer() {
        let keys = parse_credentials(ANSWER).unwrap();
        assert_eq!(keys.access_key_id, "ASIAEXAMPLE");
        assert_eq!(
            keys.secret_access_key,
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
        );
        assert_eq!(
            keys.session_token.as_deref(),
            Some("FwoGZXIvYXdzE&/+token==")
        );
    }

    #[test]
    fn incomplete_answers_are_refused() {
        assert!(parse_credentials("<x/>")
            .unwrap_err()
            .contains("<Credentials>"));
        let no_token = "<Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey>S</SecretAccessKey></Credentials>";
        assert!(parse_credentials(no_token)
            .unwrap_err()
            .contains("SessionToken"));
    }

    #[test]
    fn elements_match_whole_names_and_decode_entities() {
        let xml = "<Error><CodeX>no</CodeX><Code attr=\"1\">AccessDenied</Code><Message>Not &lt;authorized&gt; &#65;&#x42; &amp;c &bogus;</Message></Error>";
        assert_eq!(element(xml, "Code").as_deref(), Some("AccessDenied"));
        assert_eq!(
            element(xml, "Message").as_deref(),
            Some("Not <authorized> AB &c &bogus;")
        );
        assert_eq!(element(xml, "Missing"), None);
    }

    #[test]
    fn error_details_name_code_and_message_but_never_the_token() {
        let body = "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>Token eyJhbGciOi.secret.sig is expired</Message></Error></ErrorResponse>";
        let detail = error_detail(body, "eyJhbGciOi.secret.sig");
        assert_eq!(
            detail,
            ", InvalidIdentityToken: Token [redacted] is expired"
        );
        assert_eq!(error_detail("<html>502</html>", "t"), "");
    }

    #[test]
    fn endpoint_overrides_are_checked() {
        let url = with_env(&[], |r| endpoint("eu-west-1", r)).unwrap();
        assert_eq!(url, "https://sts.eu-west-1.amazonaws.com/");
        let url = with_env(&[], |r| endpoint("cn-north-1", r)).unwrap();
        assert_eq!(url, "https://sts.cn-north-1.amazonaws.com.cn/");
        let url = with_env(
            &[
                ("AWS_ENDPOINT_URL", "https://general.example"),
                ("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:8080"),
            ],
            |r| endpoint("eu-west-1", r),
        )
        .unwrap();
        assert_eq!(url, "http://127.0.0.1:8080");
        let err = with_env(&[("AWS_ENDPOINT_URL", "http://sts.example")], |r| {
            endpoint("eu-west-1", r)
        })
        .unwrap_err();
        assert!(err.contains("AWS_ENDPOINT_URL"), "{err}");
    }

    #[test]
    fn generated_session_names_are_valid() {
        let name =
            generated_session_name(UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000));
        assert_eq!(name, "pgmi-upload-1700000000000");
        assert!(name.len() <= 64);
    }
}
