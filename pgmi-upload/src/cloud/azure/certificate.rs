//! A service principal's certificate credential: the client proves itself with a short
//! JWT signed by the certificate's private key (RS256), which names the certificate by
//! its SHA-1 thumbprint (`x5t`) so Entra can find the matching uploaded certificate.
//!
//! `AZURE_CLIENT_CERTIFICATE_PATH` is a PEM file with the private key and the certificate
//! (the form the SDKs and `az ad sp create-for-rbac --create-cert` use), or a PKCS#12
//! file; `AZURE_CLIENT_CERTIFICATE_PASSWORD` opens an encrypted key or a PKCS#12 file.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openssl::hash::MessageDigest;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{Id, PKey, Private};
use openssl::sign::Signer;
use openssl::x509::X509;

/// How long an assertion is valid; it is used at once.
const LIFETIME: Duration = Duration::from_secs(10 * 60);

/// A private key and its certificate's thumbprint.
pub(super) struct Credential {
    key: PKey<Private>,
    /// base64url of the SHA-1 of the certificate's DER.
    thumbprint: String,
}

/// Read the key and certificate from `path`. Errors name the file, never its contents.
pub(super) fn load(path: &str, password: Option<&str>) -> Result<Credential, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let (key, cert) = if bytes.starts_with(b"-----") || contains(&bytes, b"-----BEGIN") {
        from_pem(&bytes, password)
    } else {
        from_pkcs12(&bytes, password)
    }
    .map_err(|why| format!("{path}: {why}"))?;
    if key.id() != Id::RSA {
        return Err(format!(
            "{path}: the private key is not an RSA key (Entra signs client assertions with RS256)"
        ));
    }
    let public_matches = cert
        .public_key()
        .map(|public| public.public_eq(&key))
        .unwrap_or(false);
    if !public_matches {
        return Err(format!(
            "{path}: the certificate does not belong to the private key"
        ));
    }
    let digest = cert
        .digest(MessageDigest::sha1())
        .map_err(|e| format!("{path}: cannot hash the certificate ({e})"))?;
    Ok(Credential {
        key,
        thumbprint: base64url(&digest),
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn from_pem(bytes: &[u8], password: Option<&str>) -> Result<(PKey<Private>, X509), String> {
    let key = match password {
        Some(password) => PKey::private_key_from_pem_passphrase(bytes, password.as_bytes()),
        None => PKey::private_key_from_pem(bytes),
    }
    .map_err(|_| {
        "no readable private key in the PEM file (an encrypted key needs AZURE_CLIENT_CERTIFICATE_PASSWORD)"
            .to_string()
    })?;
    let cert = X509::from_pem(bytes).map_err(|_| "no certificate in the PEM file".to_string())?;
    Ok((key, cert))
}

fn from_pkcs12(bytes: &[u8], password: Option<&str>) -> Result<(PKey<Private>, X509), String> {
    let parsed = Pkcs12::from_der(bytes)
        .and_then(|p12| p12.parse2(password.unwrap_or("")))
        .map_err(|_| {
            "neither PEM nor a PKCS#12 file this password opens (AZURE_CLIENT_CERTIFICATE_PASSWORD)"
                .to_string()
        })?;
    match (parsed.pkey, parsed.cert) {
        (Some(key), Some(cert)) => Ok((key, cert)),
        _ => Err("the PKCS#12 file lacks the private key or the certificate".to_string()),
    }
}

impl Credential {
    /// A signed assertion for `audience` (the token endpoint) from `client_id`.
    pub(super) fn assertion(
        &self,
        audience: &str,
        client_id: &str,
        now: SystemTime,
    ) -> Result<String, String> {
        let issued = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let header = serde_json::json!({
            "alg": "RS256",
            "typ": "JWT",
            "x5t": self.thumbprint,
        });
        let claims = serde_json::json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": random_id()?,
            "nbf": issued,
            "iat": issued,
            "exp": issued + LIFETIME.as_secs(),
        });
        let signed = format!(
            "{}.{}",
            base64url(header.to_string().as_bytes()),
            base64url(claims.to_string().as_bytes())
        );
        let signature = self
            .sign(signed.as_bytes())
            .map_err(|e| format!("cannot sign the client assertion ({e})"))?;
        Ok(format!("{signed}.{}", base64url(&signature)))
    }

    fn sign(&self, data: &[u8]) -> Result<Vec<u8>, openssl::error::ErrorStack> {
        let mut signer = Signer::new(MessageDigest::sha256(), &self.key)?;
        signer.update(data)?;
        signer.sign_to_vec()
    }
}

/// 16 random bytes as hex: the assertion's unique id (Entra refuses a replayed one).
fn random_id() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    openssl::rand::rand_bytes(&mut bytes).map_err(|e| format!("no random bytes ({e})"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Base64 with the URL alphabet and no padding, as JWTs are written.
pub(super) fn base64url(bytes: &[u8]) -> String {
    openssl::base64::encode_block(bytes)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}
