//! TLS for every connection, with libpq's `sslmode` meanings.
//!
//! STUB: the interface is final; the bodies are being written (only the non-TLS modes work).

use postgres::Client;

use crate::exit::Failure;

/// libpq's six modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub const NAMES: &'static [&'static str] = &[
        "disable",
        "allow",
        "prefer",
        "require",
        "verify-ca",
        "verify-full",
    ];

    /// Case-insensitive, as libpq reads `PGSSLMODE` (`Require` from an ADO.NET string too).
    pub fn parse(text: &str) -> Option<SslMode> {
        match text.trim().to_ascii_lowercase().as_str() {
            "disable" => Some(SslMode::Disable),
            "allow" => Some(SslMode::Allow),
            "prefer" => Some(SslMode::Prefer),
            "require" => Some(SslMode::Require),
            "verify-ca" => Some(SslMode::VerifyCa),
            "verify-full" => Some(SslMode::VerifyFull),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// The TLS settings as resolved from flags, connection string, environment and pgmi.yaml.
/// `None` file settings mean "libpq's default location under ~/.postgresql/, if the file
/// exists"; `rootcert` may also be `system`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    pub rootcert: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    /// Passphrase of an encrypted client key (`sslpassword`, `PGSSLPASSWORD`). Secret.
    pub password: Option<String>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            mode: SslMode::Prefer,
            rootcert: None,
            cert: None,
            key: None,
            password: None,
        }
    }
}

/// A TLS set-up built once per run (files read, key decrypted), used by every connection.
pub struct Tls {
    settings: TlsSettings,
}

/// Read the certificate and key files and build the TLS context. Unreadable or invalid
/// files fail here, before any connection (exit 10 for a file that is missing or
/// malformed, with the file named).
pub fn prepare(settings: &TlsSettings) -> Result<Tls, Failure> {
    Ok(Tls {
        settings: settings.clone(),
    })
}

/// Connect with `config` (everything but TLS set), applying the mode: `allow` tries
/// without TLS first, `prefer` with TLS first, each falling back as libpq does. A Unix
/// socket never uses TLS. `is_socket`: the host is a socket directory.
pub fn connect(
    config: &postgres::Config,
    tls: &Tls,
    is_socket: bool,
) -> Result<Client, postgres::Error> {
    let _ = is_socket;
    let mut config = config.clone();
    config.ssl_mode(postgres::config::SslMode::Disable);
    let _ = tls.settings.mode;
    config.connect(postgres::NoTls)
}

/// A hint for a connection failure that TLS caused (handshake, verification, the server
/// refusing or requiring TLS), naming the flag to change; `None` when TLS was not the cause.
pub fn failure_hint(err: &postgres::Error, tls: &Tls) -> Option<String> {
    let _ = (err, tls);
    None
}
