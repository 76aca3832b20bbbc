//! TLS for every connection, with libpq's `sslmode` meanings.
//!
//! Why OpenSSL and not rustls: libpq itself is built on OpenSSL, so with the same library we
//! get the same answers to the questions users compare us on — which chains verify, the
//! host-name rules (subject alternative names, the CN only when there is no DNS name), the
//! `sslrootcert=system` trust store (OpenSSL's default paths, `SSL_CERT_FILE`), client keys
//! in every PEM form libpq reads (PKCS#8, encrypted PKCS#8, legacy `Proc-Type: 4,ENCRYPTED`)
//! and the distribution's crypto policy. rustls would give a self-contained binary, but
//! `verify-ca` and `require` need hand-written certificate verifiers, legacy encrypted keys
//! cannot be read, and the policy would be ours rather than the system's.
//!
//! Invariants this module keeps:
//! * files are read and checked once, in [`prepare`], before any connection; a missing,
//!   unreadable or malformed file, a key readable by others, or a wrong passphrase is a
//!   configuration error (exit 10) naming the file;
//! * the chain is verified whenever a root certificate is available — an explicit
//!   `sslrootcert`, `system`, or `~/.postgresql/root.crt` — in every mode that uses TLS, as
//!   libpq does (so `require` with a root certificate behaves like `verify-ca`);
//! * the host name is checked only in `verify-full`, by OpenSSL (`X509_VERIFY_PARAM_set1_host`
//!   or `set1_ip`); SNI is sent for host names, never for IP addresses. One difference from
//!   libpq: for an IP address OpenSSL matches only `iPAddress` entries, while libpq also
//!   falls back to the CN when the certificate has no alternative names at all;
//! * a Unix socket never uses TLS, whatever the mode: libpq ignores `sslmode` there and
//!   connects in clear (the PostgreSQL server refuses TLS on sockets anyway), so we do too;
//! * the passphrase of a key is only handed to OpenSSL, never printed or kept.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509Ref, X509StoreContextRef, X509};
use postgres::config::SslMode as WireMode;
use postgres::{Client, NoTls};
use postgres_openssl::MakeTlsConnector;

use crate::exit::{error_chain, Failure};

/// libpq's six modes, from the weakest to the strictest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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

    fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
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

/// libpq's default file names, under the home directory.
const DEFAULT_ROOT: &str = ".postgresql/root.crt";
const DEFAULT_CERT: &str = ".postgresql/postgresql.crt";
const DEFAULT_KEY: &str = ".postgresql/postgresql.key";

/// A TLS set-up built once per run (files read, key decrypted), used by every connection.
pub struct Tls {
    mode: SslMode,
    /// `None` in `disable` mode: nothing was read and no connection uses TLS.
    connector: Option<MakeTlsConnector>,
    trust: Trust,
    client_cert: Option<ClientCert>,
    /// What the last connection attempt learnt about the server's certificate.
    seen: Arc<Mutex<Observed>>,
}

/// Where the root certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Trust {
    /// None: the chain is not verified.
    Nothing,
    File(FileSetting),
    /// `sslrootcert=system`: OpenSSL's default paths (also `SSL_CERT_FILE`, `SSL_CERT_DIR`).
    System,
}

/// A file and how it was chosen, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileSetting {
    path: PathBuf,
    /// Taken from libpq's default location rather than a setting.
    default: bool,
    /// The setting's name: `sslrootcert`, `sslcert`, `sslkey`.
    setting: &'static str,
}

impl FileSetting {
    /// `sslrootcert "/x/ca.pem"`, or `"/home/u/.postgresql/root.crt" (default sslrootcert)`.
    fn label(&self) -> String {
        if self.default {
            format!("\"{}\" (default {})", self.path.display(), self.setting)
        } else {
            format!("{} \"{}\"", self.setting, self.path.display())
        }
    }

    /// Where a user changes this setting.
    fn origins(&self) -> String {
        let var = format!("PG{}", self.setting.to_ascii_uppercase());
        format!("--{0}, {0}= in the connection URI, or {var}", self.setting)
    }
}

#[derive(Debug, Clone)]
struct ClientCert {
    cert: FileSetting,
    common_name: Option<String>,
}

/// The files a set of settings points at, before any of them is read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Files {
    trust: Trust,
    cert: Option<FileSetting>,
    key: Option<FileSetting>,
}

/// State shared with the verify callback of the connection being made. Connections are made
/// one at a time (see `connect.rs`), so one slot is enough; it is cleared before each.
#[derive(Debug, Default)]
struct Observed {
    /// The server sent a certificate: the connection attempt used TLS.
    handshake: bool,
    rejection: Option<Rejection>,
}

/// The first certificate OpenSSL refused, with what a hint needs to say about it.
#[derive(Debug, Clone)]
struct Rejection {
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

/// Read the certificate and key files and build the TLS context. Unreadable or invalid
/// files fail here, before any connection (exit 10 for a file that is missing or
/// malformed, with the file named).
///
/// The host is not known here, so the files are checked even when the connection will go
/// through a Unix socket (where libpq would not look at them): a broken TLS configuration
/// is reported wherever it points.
pub fn prepare(settings: &TlsSettings) -> Result<Tls, Failure> {
    let mode = settings.mode;
    if settings.rootcert.as_deref() == Some("system") && mode != SslMode::VerifyFull {
        // libpq 16+: any certificate the system trusts can be bought for any name, so the
        // system store without the name check proves nothing.
        return Err(Failure::config(format!(
            "weak sslmode \"{}\" may not be used with sslrootcert=system",
            mode.as_str()
        ))
        .with_hint("use --sslmode verify-full with sslrootcert=system, or give the CA certificate file with --sslrootcert"));
    }
    let seen = Arc::new(Mutex::new(Observed::default()));
    if mode == SslMode::Disable {
        return Ok(Tls {
            mode,
            connector: None,
            trust: Trust::Nothing,
            client_cert: None,
            seen,
        });
    }
    let home = home_dir();
    let files = resolve_files(settings, home.as_deref(), &|p| p.exists())?;

    let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(openssl_failure)?;
    // libpq's default ssl_min_protocol_version.
    builder
        .set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(openssl_failure)?;
    // Replace the store `SslConnector::builder` filled with the system paths: only the
    // roots the settings name are trusted.
    let mut store = X509StoreBuilder::new().map_err(openssl_failure)?;
    match &files.trust {
        Trust::Nothing => {}
        Trust::System => store.set_default_paths().map_err(|e| {
            Failure::config(format!(
                "could not load the system's root certificates (sslrootcert=system): {e}"
            ))
        })?,
        Trust::File(file) => {
            for cert in read_certificates(file)? {
                store.add_cert(cert).map_err(openssl_failure)?;
            }
        }
    }
    builder.set_cert_store(store.build());

    let mut client_cert = None;
    if let (Some(cert_file), Some(key_file)) = (&files.cert, &files.key) {
        let chain = read_certificates(cert_file)?;
        let key = read_key(key_file, settings.password.as_deref())?;
        let mut chain = chain.into_iter();
        let leaf = chain
            .next()
            .expect("read_certificates returns at least one");
        builder.set_certificate(&leaf).map_err(openssl_failure)?;
        for extra in chain {
            builder
                .add_extra_chain_cert(extra)
                .map_err(openssl_failure)?;
        }
        // OpenSSL compares the key with the certificate in both calls.
        let mismatch = |_| {
            Failure::config(format!(
                "the client certificate {} does not match the private key {}",
                cert_file.label(),
                key_file.label()
            ))
            .with_hint("give the key that belongs to the certificate (--sslkey)")
        };
        builder.set_private_key(&key).map_err(mismatch)?;
        builder.check_private_key().map_err(mismatch)?;
        client_cert = Some(ClientCert {
            cert: cert_file.clone(),
            common_name: common_name(&leaf),
        });
    }

    let mut connector = MakeTlsConnector::new(builder.build());
    let verify_chain = files.trust != Trust::Nothing;
    let verify_name = mode == SslMode::VerifyFull;
    let sink = Arc::clone(&seen);
    connector.set_callback(move |ssl, host| {
        // Host-name check and SNI are applied by `ConnectConfiguration::into_ssl`: the name
        // through X509_VERIFY_PARAM (host or IP), SNI only when `host` is not an IP address.
        ssl.set_verify_hostname(verify_name);
        let sink = Arc::clone(&sink);
        let host = host.to_string();
        // Always VERIFY_PEER with a callback, so we learn that the server sent a
        // certificate; without a root certificate the callback accepts everything, which
        // is what VERIFY_NONE would do.
        ssl.set_verify_callback(SslVerifyMode::PEER, move |ok, ctx| {
            let mut seen = sink.lock().unwrap_or_else(|e| e.into_inner());
            seen.handshake = true;
            if !ok && verify_chain && seen.rejection.is_none() {
                seen.rejection = Some(Rejection::capture(ctx, &host));
            }
            ok || !verify_chain
        });
        Ok(())
    });

    Ok(Tls {
        mode,
        connector: Some(connector),
        trust: files.trust,
        client_cert,
        seen,
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
    let connector = match &tls.connector {
        Some(connector) if !is_socket => connector,
        _ => return plain(config),
    };
    *tls.seen.lock().unwrap_or_else(|e| e.into_inner()) = Observed::default();
    match tls.mode {
        SslMode::Disable => plain(config),
        // libpq: any error from the server on the clear attempt → one more attempt, with
        // TLS if the server offers it.
        SslMode::Allow => match plain(config) {
            Ok(client) => Ok(client),
            Err(clear) if clear.as_db_error().is_some() => {
                match encrypted(config, connector, WireMode::Prefer) {
                    Ok(client) => Ok(client),
                    Err(tls_error) => Err(more_useful(tls_error, clear, false)),
                }
            }
            Err(clear) => Err(clear),
        },
        // libpq: a failed handshake, or an error from the server over TLS → one more
        // attempt in clear.
        SslMode::Prefer => match encrypted(config, connector, WireMode::Prefer) {
            Ok(client) => Ok(client),
            Err(tls_error) if is_handshake_error(&tls_error) || used_tls(tls) => {
                match plain(config) {
                    Ok(client) => Ok(client),
                    Err(clear) => Err(more_useful(tls_error, clear, true)),
                }
            }
            Err(tls_error) => Err(tls_error),
        },
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            encrypted(config, connector, WireMode::Require)
        }
    }
}

/// One line for `--verbose`: the mode, what is verified against what, the client
/// certificate.
pub fn describe(tls: &Tls) -> String {
    if tls.connector.is_none() {
        return "TLS: off (sslmode disable)".to_string();
    }
    let mut out = format!("TLS: sslmode {}", tls.mode.as_str());
    match &tls.trust {
        Trust::Nothing => out.push_str(", server certificate not verified"),
        Trust::System => out.push_str(", server certificate verified against the system's roots"),
        Trust::File(file) => {
            let _ = write!(
                out,
                ", server certificate verified against {}",
                file.label()
            );
        }
    }
    if tls.mode == SslMode::VerifyFull {
        out.push_str(" and the host name");
    }
    match &tls.client_cert {
        Some(client) => {
            let _ = write!(out, ", client certificate {}", client.cert.label());
        }
        None => out.push_str(", no client certificate"),
    }
    out
}

/// Sends cancel requests for sessions opened by [`connect`]. A token from a connection made
/// in `require` / `verify-*` insists on TLS, so `CancelToken::cancel_query(NoTls)` fails
/// for it; this sends the request the way the session was made, with the same checks.
#[derive(Clone)]
pub struct Canceller(Option<MakeTlsConnector>);

impl Canceller {
    pub fn new(tls: &Tls) -> Canceller {
        Canceller(tls.connector.clone())
    }

    pub fn cancel(&self, token: &postgres::CancelToken) -> Result<(), postgres::Error> {
        match &self.0 {
            Some(connector) => token.cancel_query(connector.clone()),
            None => token.cancel_query(NoTls),
        }
    }
}

/// Which failure to report when both attempts of `allow` / `prefer` failed (libpq 16+
/// prints both; we have one error to return):
/// * an answer in clear that is not an authentication refusal (SQLSTATE class 28) is
///   the next thing to deal with — and "database does not exist" lets the caller create it;
/// * else the TLS attempt's server error or handshake failure: the clear attempt was
///   typically refused only because pg_hba.conf wants TLS, which says less;
/// * else (neither reached the server's answer) the first attempt's error.
fn more_useful(
    tls_error: postgres::Error,
    clear: postgres::Error,
    tls_first: bool,
) -> postgres::Error {
    let refusal = |e: &postgres::Error| e.code().map(|c| c.code().starts_with("28"));
    match (refusal(&clear), refusal(&tls_error)) {
        (Some(false), _) => clear,
        (_, Some(_)) => tls_error,
        (Some(true), None) if is_handshake_error(&tls_error) => tls_error,
        (Some(true), None) => clear,
        (None, None) if tls_first => tls_error,
        (None, None) => clear,
    }
}

fn plain(config: &postgres::Config) -> Result<Client, postgres::Error> {
    let mut config = config.clone();
    config.ssl_mode(WireMode::Disable);
    config.connect(NoTls)
}

fn encrypted(
    config: &postgres::Config,
    connector: &MakeTlsConnector,
    mode: WireMode,
) -> Result<Client, postgres::Error> {
    let mut config = config.clone();
    config.ssl_mode(mode);
    config.connect(connector.clone())
}

fn used_tls(tls: &Tls) -> bool {
    tls.seen.lock().unwrap_or_else(|e| e.into_inner()).handshake
}

/// The `postgres` crate keeps its error kinds private; a TLS failure (refused handshake,
/// failed verification, server without TLS) is the one whose text starts like this.
fn is_handshake_error(err: &postgres::Error) -> bool {
    err.as_db_error().is_none()
        && err
            .to_string()
            .starts_with("error performing TLS handshake")
}

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
    // PostgreSQL 14+ ends these refusals with how the connection was made.
    if message.contains("no encryption") && tls.mode == SslMode::Disable {
        return Some(
            "the server accepts this connection only over TLS: use --sslmode prefer (the default) or require"
                .to_string(),
        );
    }
    if message.contains("SSL encryption") && tls.mode >= SslMode::Require {
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
    fn capture(ctx: &X509StoreContextRef, host: &str) -> Rejection {
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

fn common_name(cert: &X509Ref) -> Option<String> {
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

/// `$HOME`, as libpq looks for `~/.postgresql/` (an unset or empty HOME: no defaults).
fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// Which files the settings point at (libpq's rules), without reading them: explicit
/// settings are taken as given (a missing file is an error when read); a default file is
/// used only when it exists; `verify-ca` / `verify-full` need a root certificate.
fn resolve_files(
    settings: &TlsSettings,
    home: Option<&Path>,
    exists: &dyn Fn(&Path) -> bool,
) -> Result<Files, Failure> {
    fn given(value: &Option<String>) -> Option<&str> {
        value.as_deref().filter(|v| !v.is_empty())
    }
    let default = |rel: &str| home.map(|h| h.join(rel));
    let explicit = |path: &str, setting| FileSetting {
        path: PathBuf::from(path),
        default: false,
        setting,
    };
    let existing_default = |rel: &str, setting| {
        default(rel).filter(|p| exists(p)).map(|path| FileSetting {
            path,
            default: true,
            setting,
        })
    };

    let trust = match given(&settings.rootcert) {
        Some("system") => Trust::System,
        Some(path) => Trust::File(explicit(path, "sslrootcert")),
        None => match existing_default(DEFAULT_ROOT, "sslrootcert") {
            Some(file) => Trust::File(file),
            None => Trust::Nothing,
        },
    };
    if trust == Trust::Nothing && settings.mode.verifies() {
        let missing = match default(DEFAULT_ROOT) {
            Some(path) => format!(
                "the root certificate file \"{}\" does not exist",
                path.display()
            ),
            None => "HOME is not set, so ~/.postgresql/root.crt cannot be looked for".to_string(),
        };
        return Err(Failure::config(format!(
            "sslmode {} verifies the server's certificate, but no root certificate was given and {missing}",
            settings.mode.as_str()
        ))
        .with_hint(
            "give the CA certificate that signed the server's certificate with --sslrootcert \
             (sslrootcert= in the URI, or PGSSLROOTCERT), use the system's trusted roots with \
             sslrootcert=system (verify-full only), or use --sslmode require to encrypt without verifying",
        ));
    }

    let cert = match given(&settings.cert) {
        Some(path) => Some(explicit(path, "sslcert")),
        None => existing_default(DEFAULT_CERT, "sslcert"),
    };
    let key = match (given(&settings.key), &cert) {
        (Some(path), _) => Some(explicit(path, "sslkey")),
        (None, Some(cert)) => Some(
            default(DEFAULT_KEY)
                .map(|path| FileSetting {
                    path,
                    default: true,
                    setting: "sslkey",
                })
                .ok_or_else(|| {
                    Failure::config(format!(
                        "client certificate {} given, but no private key (HOME is not set)",
                        cert.label()
                    ))
                    .with_hint("give the key with --sslkey (sslkey= in the URI, or PGSSLKEY)")
                })?,
        ),
        (None, None) => None,
    };
    if let (Some(key), None) = (&key, &cert) {
        return Err(Failure::config(format!(
            "private key {} given without a client certificate",
            key.label()
        ))
        .with_hint("give the certificate that belongs to it with --sslcert (sslcert= in the URI, or PGSSLCERT)"));
    }
    Ok(Files { trust, cert, key })
}

fn read_file(file: &FileSetting, what: &str) -> Result<Vec<u8>, Failure> {
    std::fs::read(&file.path).map_err(|e| {
        let failure = Failure::config(format!("{}: {}", file.label(), io_text(&e)));
        if file.default {
            failure.with_hint(format!(
                "{what} was found at libpq's default location but cannot be read; fix its permissions or give another file with {}",
                file.origins()
            ))
        } else {
            failure.with_hint(format!("check the {what} path given with {}", file.origins()))
        }
    })
}

/// `No such file or directory`, without the `(os error 2)` suffix.
fn io_text(err: &std::io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// Every PEM certificate in the file (the first is the leaf of a client chain).
fn read_certificates(file: &FileSetting) -> Result<Vec<X509>, Failure> {
    let what = if file.setting == "sslrootcert" {
        "root certificate"
    } else {
        "client certificate"
    };
    let bytes = read_file(file, what)?;
    let certs = X509::stack_from_pem(&bytes).map_err(|e| {
        Failure::config(format!(
            "{}: not a valid PEM certificate file: {e}",
            file.label()
        ))
    })?;
    if certs.is_empty() {
        return Err(Failure::config(format!(
            "{}: no certificate in it (expected -----BEGIN CERTIFICATE-----)",
            file.label()
        )));
    }
    Ok(certs)
}

/// The client key: permissions checked as libpq does, then read (PEM, optionally
/// encrypted, or DER), decrypting with `password`.
fn read_key(file: &FileSetting, password: Option<&str>) -> Result<PKey<Private>, Failure> {
    check_key_permissions(file)?;
    let bytes = read_file(file, "private key")?;
    let encrypted = looks_encrypted(&bytes);
    let passphrase = password.filter(|p| !p.is_empty());
    if encrypted && passphrase.is_none() {
        return Err(Failure::config(format!(
            "private key {} is encrypted and no passphrase was given",
            file.label()
        ))
        .with_hint(PASSPHRASE_SOURCES));
    }
    let is_pem = bytes.windows(11).any(|w| w == b"-----BEGIN ");
    let parsed = if is_pem {
        // Always through a callback: with none, OpenSSL would prompt on the terminal.
        let pass = passphrase.unwrap_or("").as_bytes();
        PKey::private_key_from_pem_callback(&bytes, |buf| {
            let n = pass.len().min(buf.len());
            buf[..n].copy_from_slice(&pass[..n]);
            Ok(n)
        })
    } else {
        PKey::private_key_from_der(&bytes)
    };
    parsed.map_err(|e| {
        if encrypted {
            Failure::config(format!(
                "could not decrypt private key {}: wrong passphrase",
                file.label()
            ))
            .with_hint(PASSPHRASE_SOURCES)
        } else {
            Failure::config(format!(
                "{}: not a valid private key (PEM or DER): {e}",
                file.label()
            ))
        }
    })
}

/// Written without `sslpassword=`, which the output redaction would take for a secret.
const PASSPHRASE_SOURCES: &str =
    "the passphrase comes from PGSSLPASSWORD or the sslpassword parameter of the connection URI";

fn looks_encrypted(pem: &[u8]) -> bool {
    let has = |needle: &[u8]| pem.windows(needle.len()).any(|w| w == needle);
    has(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") || has(b"Proc-Type: 4,ENCRYPTED")
}

#[cfg(unix)]
fn check_key_permissions(file: &FileSetting) -> Result<(), Failure> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&file.path)
        .map_err(|e| Failure::config(format!("{}: {}", file.label(), io_text(&e))))?;
    if !meta.is_file() {
        return Err(Failure::config(format!(
            "private key {} is not a regular file",
            file.label()
        )));
    }
    if key_too_open(meta.mode(), meta.uid()) {
        return Err(Failure::config(format!(
            "private key {} has group or world access (mode {:04o})",
            file.label(),
            meta.mode() & 0o7777
        ))
        .with_hint(format!(
            "restrict it: chmod 0600 \"{}\" (a key owned by root may be 0640)",
            file.path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_key_permissions(_file: &FileSetting) -> Result<(), Failure> {
    Ok(())
}

/// libpq's rule: a key owned by root may be readable by its group (0640, for keys shared
/// through a group such as ssl-cert); any other key must be 0600 or less.
fn key_too_open(mode: u32, owner_uid: u32) -> bool {
    if owner_uid == 0 {
        mode & 0o037 != 0
    } else {
        mode & 0o077 != 0
    }
}

fn openssl_failure(err: openssl::error::ErrorStack) -> Failure {
    Failure::config(format!("could not set up TLS: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_case_insensitively_and_round_trip() {
        for name in SslMode::NAMES {
            let mode = SslMode::parse(name).unwrap();
            assert_eq!(mode.as_str(), *name);
            assert_eq!(SslMode::parse(&name.to_uppercase()), Some(mode));
        }
        assert_eq!(SslMode::parse(" Require "), Some(SslMode::Require));
        assert_eq!(SslMode::parse("verify_full"), None);
        assert_eq!(SslMode::parse(""), None);
    }

    fn settings(mode: SslMode) -> TlsSettings {
        TlsSettings {
            mode,
            ..TlsSettings::default()
        }
    }

    fn home() -> &'static Path {
        Path::new("/home/u")
    }

    #[test]
    fn default_files_are_used_only_when_they_exist() {
        let all = |_: &Path| true;
        let files = resolve_files(&settings(SslMode::Prefer), Some(home()), &all).unwrap();
        assert_eq!(
            files.trust,
            Trust::File(FileSetting {
                path: PathBuf::from("/home/u/.postgresql/root.crt"),
                default: true,
                setting: "sslrootcert",
            })
        );
        assert_eq!(
            files.cert.unwrap().path,
            Path::new("/home/u/.postgresql/postgresql.crt")
        );
        assert_eq!(
            files.key.unwrap().path,
            Path::new("/home/u/.postgresql/postgresql.key")
        );

        let none = |_: &Path| false;
        let files = resolve_files(&settings(SslMode::Require), Some(home()), &none).unwrap();
        assert_eq!(files.trust, Trust::Nothing);
        assert_eq!(files.cert, None);
        assert_eq!(files.key, None);
    }

    #[test]
    fn explicit_files_win_and_are_not_probed() {
        let none = |_: &Path| false;
        let s = TlsSettings {
            mode: SslMode::VerifyCa,
            rootcert: Some("/x/ca.pem".into()),
            cert: Some("/x/c.pem".into()),
            key: Some("/x/k.pem".into()),
            password: None,
        };
        let files = resolve_files(&s, None, &none).unwrap();
        match files.trust {
            Trust::File(f) => {
                assert_eq!(f.path, Path::new("/x/ca.pem"));
                assert!(!f.default);
                assert_eq!(f.label(), "sslrootcert \"/x/ca.pem\"");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(files.key.unwrap().path, Path::new("/x/k.pem"));
    }

    #[test]
    fn a_default_key_goes_with_an_explicit_certificate() {
        let only_root = |p: &Path| p.ends_with("root.crt");
        let s = TlsSettings {
            cert: Some("/x/c.pem".into()),
            ..settings(SslMode::Require)
        };
        let files = resolve_files(&s, Some(home()), &only_root).unwrap();
        let key = files.key.unwrap();
        assert!(key.default);
        assert_eq!(key.path, Path::new("/home/u/.postgresql/postgresql.key"));
    }

    #[test]
    fn verify_modes_need_a_root_certificate() {
        let none = |_: &Path| false;
        for mode in [SslMode::VerifyCa, SslMode::VerifyFull] {
            let err = resolve_files(&settings(mode), Some(home()), &none).unwrap_err();
            assert_eq!(err.exit, crate::exit::Exit::InvalidConfig);
            assert!(
                err.message.contains("/home/u/.postgresql/root.crt"),
                "{}",
                err.message
            );
            let hint = err.hint.unwrap();
            assert!(hint.contains("--sslrootcert") && hint.contains("sslrootcert=system"));
        }
        let err = resolve_files(&settings(SslMode::VerifyFull), None, &none).unwrap_err();
        assert!(err.message.contains("HOME is not set"), "{}", err.message);
        let s = TlsSettings {
            rootcert: Some("system".into()),
            ..settings(SslMode::VerifyFull)
        };
        assert_eq!(resolve_files(&s, None, &none).unwrap().trust, Trust::System);
    }

    #[test]
    fn a_key_without_a_certificate_is_refused() {
        let none = |_: &Path| false;
        let s = TlsSettings {
            key: Some("/x/k.pem".into()),
            ..settings(SslMode::Require)
        };
        let err = resolve_files(&s, Some(home()), &none).unwrap_err();
        assert!(
            err.message.contains("sslkey \"/x/k.pem\""),
            "{}",
            err.message
        );
    }

    #[test]
    fn system_roots_require_verify_full() {
        for mode in [
            SslMode::Disable,
            SslMode::Prefer,
            SslMode::Require,
            SslMode::VerifyCa,
        ] {
            let s = TlsSettings {
                rootcert: Some("system".into()),
                ..settings(mode)
            };
            let err = prepare(&s).err().expect("refused");
            assert_eq!(err.exit, crate::exit::Exit::InvalidConfig);
            assert!(err.message.contains("weak sslmode"), "{}", err.message);
        }
    }

    #[test]
    fn key_permission_rule_matches_libpq() {
        // owned by a user: nothing for group or others
        assert!(!key_too_open(0o100600, 1000));
        assert!(!key_too_open(0o100400, 1000));
        assert!(key_too_open(0o100640, 1000));
        assert!(key_too_open(0o100604, 1000));
        assert!(key_too_open(0o100644, 1000));
        // owned by root: group may read
        assert!(!key_too_open(0o100600, 0));
        assert!(!key_too_open(0o100640, 0));
        assert!(key_too_open(0o100660, 0));
        assert!(key_too_open(0o100644, 0));
        assert!(key_too_open(0o100650, 0));
    }

    #[test]
    fn encrypted_keys_are_recognised() {
        assert!(looks_encrypted(
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMII...\n"
        ));
        assert!(looks_encrypted(
            b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00\n"
        ));
        assert!(!looks_encrypted(b"-----BEGIN PRIVATE KEY-----\nMII...\n"));
    }

    #[test]
    fn io_errors_lose_the_os_error_suffix() {
        let err = std::io::Error::from_raw_os_error(2);
        assert_eq!(io_text(&err), "No such file or directory");
    }
}
