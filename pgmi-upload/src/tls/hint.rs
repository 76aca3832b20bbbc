//! Advice for a connection that failed because of TLS: the handshake, the server's
//! certificate failing verification, the server refusing or requiring TLS, or a client
//! certificate the server wants or rejects. Each hint names the flag to change.
//!
//! The verify callback set up in `prepare` records the first certificate OpenSSL refused as
//! a [`Rejection`]; [`failure_hint`] words it (which certificate, why, against which roots).
//! The server's own refusals are matched on its English texts; with another `lc_messages`
//! the caller's generic pg_hba.conf hint applies instead.

use std::fmt::Write as _;
use std::net::IpAddr;

use openssl::nid::Nid;
use openssl::x509::{X509Ref, X509StoreContextRef};

use crate::exit::error_chain;

use super::{is_handshake_error, SslMode, Tls, Trust};

/// The first certificate OpenSSL refused, with what a hint needs to say about it.
#[derive(Debug, Clone)]
pub(super) struct Rejection {
    /// `X509_V_ERR_*`.
    code: i32,
    reason: &'static str,
    /// 0 for the server's own certificate, 1 for its issuer, …
    depth: u32,
    /// The host the connection was for.
    host: String,
    subject: String,
    issuer: String,
    /// Subject alternative names (`DNS:…`, `IP:…`), else `CN=…`.
    names: Vec<String>,
    not_before: String,
    not_after: String,
}

// OpenSSL's X509_V_ERR_* codes that get a specific hint (x509_vfy.h; stable since 1.0).
const ERR_UNABLE_TO_GET_ISSUER_CERT: i32 = 2;
const ERR_CERT_NOT_YET_VALID: i32 = 9;
const ERR_CERT_HAS_EXPIRED: i32 = 10;
const ERR_DEPTH_ZERO_SELF_SIGNED_CERT: i32 = 18;
const ERR_SELF_SIGNED_CERT_IN_CHAIN: i32 = 19;
const ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY: i32 = 20;
const ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE: i32 = 21;
const ERR_CERT_UNTRUSTED: i32 = 27;
const ERR_HOSTNAME_MISMATCH: i32 = 62;
const ERR_IP_ADDRESS_MISMATCH: i32 = 64;

/// A hint for a connection failure that TLS caused (handshake, verification, the server
/// refusing or requiring TLS), naming the flag to change; `None` when TLS was not the cause.
pub fn failure_hint(err: &postgres::Error, tls: &Tls) -> Option<String> {
    if let Some(db) = err.as_db_error() {
        return server_refusal_hint(db.code().code(), db.message(), tls);
    }
    let text = error_chain(err);
    if text.contains("server does not support TLS") {
        return Some(format!(
            "the server has TLS turned off (ssl = off in postgresql.conf), and sslmode {} needs it: \
             enable ssl on the server, or connect without encryption with --sslmode prefer, allow or disable",
            tls.mode.as_str()
        ));
    }
    let rejection = tls
        .seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .rejection
        .clone();
    if let Some(rejection) = rejection.filter(|_| is_handshake_error(err)) {
        return Some(rejection.hint(tls));
    }
    let lower = text.to_ascii_lowercase();
    if lower.contains("alert unknown ca") || lower.contains("alert bad certificate") {
        return Some(match &tls.client_cert {
            Some(client) => format!(
                "the server rejected the client certificate {}: it is not signed by a CA in the server's ssl_ca_file",
                client.cert.label()
            ),
            None => "the server rejected the TLS handshake (bad or unknown certificate)".to_string(),
        });
    }
    if lower.contains("alert certificate required") {
        return Some(client_cert_needed());
    }
    // With TLS 1.3 the client finishes its side of the handshake before the server has
    // judged the client certificate; the server's alert can then be lost to the reset of
    // the connection it closes. The same cause, without the server's word for it.
    let handshake = tls.seen.lock().unwrap_or_else(|e| e.into_inner()).handshake;
    if handshake && (lower.contains("connection reset") || lower.contains("broken pipe")) {
        if let Some(client) = &tls.client_cert {
            return Some(format!(
                "the server closed the connection right after the TLS handshake, which is how it rejects a client certificate it does not trust: is {} signed by a CA in the server's ssl_ca_file?",
                client.cert.label()
            ));
        }
    }
    None
}

/// Hints for the server's own refusals (SQLSTATE 28000) that are about TLS. They match
/// the server's English texts; with another `lc_messages` the caller's generic pg_hba.conf
/// hint applies instead.
fn server_refusal_hint(code: &str, message: &str, tls: &Tls) -> Option<String> {
    if code != "28000" {
        return None;
    }
    if message.contains("requires a valid client certificate") {
        return Some(client_cert_needed());
    }
    if message.contains("certificate authentication failed") {
        let cn = tls
            .client_cert
            .as_ref()
            .and_then(|c| c.common_name.clone())
            .map(|cn| format!(" (this one has CN \"{cn}\")"))
            .unwrap_or_default();
        return Some(format!(
            "the client certificate's common name{cn} must equal the user name (-U), or be mapped to it in the server's pg_ident.conf"
        ));
    }
    // These refusals end with how the connection was made: "no encryption" or "SSL
    // encryption" from PostgreSQL 14, "SSL off" or "SSL on" before.
    let clear = message.ends_with("no encryption") || message.ends_with(", SSL off");
    let encrypted = message.ends_with("SSL encryption") || message.ends_with(", SSL on");
    if clear && tls.mode == SslMode::Disable {
        return Some(
            "the server accepts this connection only over TLS: use --sslmode prefer (the default) or require"
                .to_string(),
        );
    }
    if encrypted && tls.mode >= SslMode::Require {
        return Some(format!(
            "the server accepts this connection only without TLS (pg_hba.conf), and sslmode {} insists on TLS: \
             use --sslmode prefer or allow, or allow hostssl connections on the server",
            tls.mode.as_str()
        ));
    }
    None
}

fn client_cert_needed() -> String {
    "the server requires a client certificate for this user: give it with --sslcert and --sslkey \
     (sslcert= and sslkey= in the connection URI, or PGSSLCERT and PGSSLKEY)"
        .to_string()
}

impl Rejection {
    pub(super) fn capture(ctx: &X509StoreContextRef, host: &str) -> Rejection {
        let error = ctx.error();
        let cert = ctx.current_cert();
        Rejection {
            code: error.as_raw(),
            reason: error.error_string(),
            depth: ctx.error_depth(),
            host: host.to_string(),
            subject: cert
                .map(|c| name_text(c.subject_name()))
                .unwrap_or_default(),
            issuer: cert.map(|c| name_text(c.issuer_name())).unwrap_or_default(),
            names: cert.map(certificate_names).unwrap_or_default(),
            not_before: cert.map(|c| c.not_before().to_string()).unwrap_or_default(),
            not_after: cert.map(|c| c.not_after().to_string()).unwrap_or_default(),
        }
    }

    /// "the server's certificate (CN=…)", or "the CA certificate CN=… in the server's chain".
    fn which(&self) -> String {
        if self.depth == 0 {
            format!("the server's certificate ({})", self.subject)
        } else {
            format!("the CA certificate {} in the server's chain", self.subject)
        }
    }

    fn hint(&self, tls: &Tls) -> String {
        let trust = match &tls.trust {
            Trust::File(file) => format!("the root certificate file {}", file.label()),
            Trust::System => "the system's trusted roots (sslrootcert=system)".to_string(),
            Trust::Nothing => "no root certificate".to_string(),
        };
        // `require` verifies only because a root certificate exists; say so.
        let why = match (tls.mode.verifies(), &tls.trust) {
            (false, Trust::File(file)) => format!(
                "; sslmode {} verifies the chain because {} exists, as libpq does",
                tls.mode.as_str(),
                file.label()
            ),
            _ => String::new(),
        };
        match self.code {
            ERR_HOSTNAME_MISMATCH | ERR_IP_ADDRESS_MISMATCH => {
                let names = if self.names.is_empty() {
                    "no host names".to_string()
                } else {
                    self.names.join(", ")
                };
                format!(
                    "the server's certificate is for {names}, not for \"{}\": connect with a name it holds (-h), \
                     or use --sslmode verify-ca, which checks the CA but not the host name",
                    self.host
                )
            }
            ERR_CERT_HAS_EXPIRED => format!(
                "{} expired on {}: the server needs a renewed certificate (ssl_cert_file); check this machine's clock too",
                self.which(),
                self.not_after
            ),
            ERR_CERT_NOT_YET_VALID => format!(
                "{} is not valid before {}: check the clocks of this machine and of the server",
                self.which(),
                self.not_before
            ),
            ERR_DEPTH_ZERO_SELF_SIGNED_CERT => format!(
                "{} is self-signed and not in {trust}: give that certificate (or the CA that signed it) with --sslrootcert{why}",
                self.which()
            ),
            // The server sent its chain up to a root (PostgreSQL sends what its
            // ssl_ca_file completes), and that root is not one of ours.
            ERR_SELF_SIGNED_CERT_IN_CHAIN => format!(
                "the server's certificate chain ends at the CA {}, which is not in {trust}: \
                 give the CA certificate to trust with --sslrootcert (sslrootcert= in the URI, or PGSSLROOTCERT){why}",
                self.subject
            ),
            ERR_UNABLE_TO_GET_ISSUER_CERT
            | ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
            | ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE
            | ERR_CERT_UNTRUSTED => format!(
                "{} is issued by {}, which is not in {trust}: give that CA's certificate with \
                 --sslrootcert (sslrootcert= in the URI, or PGSSLROOTCERT){why}",
                self.which(),
                self.issuer
            ),
            _ => format!(
                "{} failed verification ({}) against {trust}{why}",
                self.which(),
                self.reason
            ),
        }
    }
}

/// `CN=db, O=Example`.
fn name_text(name: &openssl::x509::X509NameRef) -> String {
    let mut out = String::new();
    for entry in name.entries() {
        let key = entry.object().nid().short_name().unwrap_or("?");
        let value = entry.data().to_string().unwrap_or_else(|_| "?".to_string());
        if !out.is_empty() {
            out.push_str(", ");
        }
        let _ = write!(out, "{key}={value}");
    }
    out
}

pub(super) fn common_name(cert: &X509Ref) -> Option<String> {
    cert.subject_name()
        .entries_by_nid(Nid::COMMONNAME)
        .next()
        .and_then(|e| e.data().to_string().ok())
}

/// The names a host-name check compares against: the DNS and IP alternative names, and
/// the CN when there is no DNS name (OpenSSL's rule, and libpq's).
fn certificate_names(cert: &X509Ref) -> Vec<String> {
    let mut names = Vec::new();
    let mut has_dns = false;
    if let Some(alt) = cert.subject_alt_names() {
        for name in alt.iter() {
            if let Some(dns) = name.dnsname() {
                has_dns = true;
                names.push(format!("DNS:{dns}"));
            } else if let Some(ip) = name.ipaddress().and_then(ip_from_bytes) {
                names.push(format!("IP:{ip}"));
            }
        }
    }
    if !has_dns {
        if let Some(cn) = common_name(cert) {
            names.push(format!("CN={cn}"));
        }
    }
    names
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}
