//! The certificate and key files of a TLS set-up: which files the settings point at
//! (libpq's defaults under `~/.postgresql/`, used only when they exist), and reading them
//! once, before any connection.
//!
//! Invariants: an explicit setting is taken as given (a missing file is an error when read);
//! `verify-ca` / `verify-full` need a root certificate; a key needs its certificate and the
//! reverse; a client key readable by group or others is refused with libpq's rule
//! ([`key_too_open`]); an encrypted key without a passphrase, or with a wrong one, is an
//! error naming the file, and OpenSSL never prompts on the terminal. Every failure here is
//! a configuration error (exit 10) naming the file and the setting to change.

use std::path::{Path, PathBuf};

use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

use crate::exit::Failure;

use super::{TlsSettings, Trust};

/// libpq's default file names, under the home directory.
const DEFAULT_ROOT: &str = ".postgresql/root.crt";
const DEFAULT_CERT: &str = ".postgresql/postgresql.crt";
const DEFAULT_KEY: &str = ".postgresql/postgresql.key";

/// A file and how it was chosen, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileSetting {
    path: PathBuf,
    /// Taken from libpq's default location rather than a setting.
    default: bool,
    /// The setting's name: `sslrootcert`, `sslcert`, `sslkey`.
    setting: &'static str,
}

impl FileSetting {
    /// `sslrootcert "/x/ca.pem"`, or `"/home/u/.postgresql/root.crt" (default sslrootcert)`.
    pub(super) fn label(&self) -> String {
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

/// The files a set of settings points at, before any of them is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Files {
    pub(super) trust: Trust,
    pub(super) cert: Option<FileSetting>,
    pub(super) key: Option<FileSetting>,
}

/// `$HOME`, as libpq looks for `~/.postgresql/` (an unset or empty HOME: no defaults).
pub(super) fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// Which files the settings point at (libpq's rules), without reading them: explicit
/// settings are taken as given (a missing file is an error when read); a default file is
/// used only when it exists; `verify-ca` / `verify-full` need a root certificate.
pub(super) fn resolve_files(
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
pub(super) fn read_certificates(file: &FileSetting) -> Result<Vec<X509>, Failure> {
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
pub(super) fn read_key(
    file: &FileSetting,
    password: Option<&str>,
) -> Result<PKey<Private>, Failure> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::SslMode;

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
