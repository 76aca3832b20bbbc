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
//!
//! Where things are: this file holds the settings ([`SslMode`], [`TlsSettings`]), the
//! prepared set-up ([`Tls`], built by [`prepare`]), [`connect`] with `allow` / `prefer`
//! fallbacks, [`describe`] for `--verbose`, and the [`Canceller`]; `files.rs` decides which
//! certificate and key files the settings point at and reads them (libpq's default
//! locations, the key permission rule, passphrases); `hint.rs` turns a failed connection
//! into advice ([`failure_hint`]), from what the certificate check saw.

mod connector;
mod files;
mod hint;

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use openssl::ssl::{SslContextBuilder, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::store::X509StoreBuilder;
use postgres::config::SslMode as WireMode;
use postgres::{Client, NoTls};

use connector::Connector;

use crate::exit::Failure;

use files::{home_dir, read_certificates, read_key, resolve_files, FileSetting};
use hint::{common_name, Rejection};

pub use hint::failure_hint;

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

/// A TLS set-up built once per run (files read, key decrypted), used by every connection.
#[derive(Clone)]
pub struct Tls {
    mode: SslMode,
    /// `None` in `disable` mode: nothing was read and no connection uses TLS.
    connector: Option<Connector>,
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

#[derive(Debug, Clone)]
struct ClientCert {
    cert: FileSetting,
    common_name: Option<String>,
}

/// State shared with the verify callback of the connection being made. Connections are made
/// one at a time (see `connect.rs`), so one slot is enough; it is cleared before each.
#[derive(Debug, Default)]
struct Observed {
    /// The server sent a certificate: the connection attempt used TLS.
    handshake: bool,
    rejection: Option<Rejection>,
}

/// Read the certificate and key files and build the TLS context. Unreadable or invalid
/// files fail here, before any connection (exit 10 for a file that is missing or
/// malformed, with the file named).
///
/// With `sockets_only` (every connection goes through a Unix socket, which never uses TLS)
/// no connector is built, but the files are still read and checked, although libpq would
/// not look at them: a broken TLS configuration is reported wherever it points.
pub fn prepare(settings: &TlsSettings, sockets_only: bool) -> Result<Tls, Failure> {
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

    if sockets_only {
        // No connector. The files are checked in a bare context, and without files to
        // check OpenSSL is not even started (its configuration is read and parsed on first
        // use: about 1.5 ms of a one-file deploy over a socket, measured).
        if let Trust::File(file) = &files.trust {
            read_certificates(file)?;
        }
        let client_cert = if files.cert.is_some() && files.key.is_some() {
            let mut context =
                SslContextBuilder::new(SslMethod::tls_client()).map_err(openssl_failure)?;
            check_client_cert(&mut context, &files, settings)?
        } else {
            None
        };
        return Ok(Tls {
            mode,
            connector: None,
            trust: files.trust,
            client_cert,
            seen,
        });
    }
    // A bare context (connector.rs: not OpenSSL's default trust store, whose loading cost
    // ~15 ms of every deploy over TCP).
    let mut builder = connector::context().map_err(openssl_failure)?;
    // libpq's default ssl_min_protocol_version.
    builder
        .set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(openssl_failure)?;
    // Only the roots the settings name are trusted.
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

    let client_cert = check_client_cert(&mut builder, &files, settings)?;

    let verify_chain = files.trust != Trust::Nothing;
    let verify_name = mode == SslMode::VerifyFull;
    let sink = Arc::clone(&seen);
    // Host-name check and SNI are applied by the connector: the name through
    // X509_VERIFY_PARAM (host or IP), SNI only when `host` is not an IP address.
    let connector = Connector::new(builder.build(), verify_name, move |ssl, host| {
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

/// Load the client certificate and its key into `context` and check that they belong
/// together (exit 10 naming both files when they do not).
fn check_client_cert(
    context: &mut SslContextBuilder,
    files: &files::Files,
    settings: &TlsSettings,
) -> Result<Option<ClientCert>, Failure> {
    if let (Some(cert_file), Some(key_file)) = (&files.cert, &files.key) {
        let chain = read_certificates(cert_file)?;
        let key = read_key(key_file, settings.password.as_deref())?;
        let mut chain = chain.into_iter();
        let leaf = chain
            .next()
            .expect("read_certificates returns at least one");
        context.set_certificate(&leaf).map_err(openssl_failure)?;
        for extra in chain {
            context
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
        context.set_private_key(&key).map_err(mismatch)?;
        context.check_private_key().map_err(mismatch)?;
        return Ok(Some(ClientCert {
            cert: cert_file.clone(),
            common_name: common_name(&leaf),
        }));
    }
    Ok(None)
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
    if tls.mode == SslMode::Disable {
        return "TLS: off (sslmode disable)".to_string();
    }
    if tls.connector.is_none() {
        return format!(
            "TLS: not used on a Unix socket (sslmode {}; its files were checked)",
            tls.mode.as_str()
        );
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
pub struct Canceller(Option<Connector>);

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
    connector: &Connector,
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
            let err = prepare(&s, false).err().expect("refused");
            assert_eq!(err.exit, crate::exit::Exit::InvalidConfig);
            assert!(err.message.contains("weak sslmode"), "{}", err.message);
        }
    }
}
