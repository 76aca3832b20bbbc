//! The TLS settings (README, "Connecting"), resolved the same way on both paths:
//! the mode as the caller found it (`sslrootcert=system` with no mode given anywhere means
//! `verify-full`, as in libpq 16); each file setting `flag > connection string > PGSSL*
//! variable > pgmi.yaml`; the key's passphrase `connection string > PGSSLPASSWORD`. The
//! files themselves are read later, by `tls::prepare`.

use crate::cli::ConnectionArgs;
use crate::config;
use crate::exit::Failure;
use crate::uri;

use super::{Inputs, Source};

/// Where each TLS setting came from, for [`super::Sources`].
pub(super) struct TlsSources {
    pub(super) mode: Source,
    pub(super) rootcert: Option<Source>,
    pub(super) cert: Option<Source>,
    pub(super) key: Option<Source>,
    pub(super) password: Option<Source>,
}

/// The mode as resolved by the caller; each file setting is flag > connection string >
/// `PGSSL*` variable > pgmi.yaml (the string beats the environment, as in libpq, so a stale
/// `PGSSLROOTCERT` cannot swap the trust anchor of a `verify-full` string); the key's
/// passphrase is string > `PGSSLPASSWORD`.
pub(super) fn tls_settings(
    (mode, mode_source): (String, Source),
    args: &ConnectionArgs,
    string: Option<&uri::UriParts>,
    string_source: &Source,
    inputs: &Inputs<'_>,
) -> Result<(crate::tls::TlsSettings, TlsSources), Failure> {
    let parsed = crate::tls::SslMode::parse(&mode).ok_or_else(|| {
        Failure::config(format!(
            "invalid sslmode {mode:?} (from {mode_source}): expected one of {}",
            crate::tls::SslMode::NAMES.join(", ")
        ))
    })?;
    let pick = |flag: &Option<String>,
                flag_name: &'static str,
                from_string: Option<&String>,
                var: &'static str,
                yaml: fn(&config::Connection) -> Option<&String>| {
        flag.clone()
            .map(|v| (v, Source::Flag(flag_name)))
            .or_else(|| from_string.map(|v| (v.clone(), string_source.clone())))
            .or_else(|| inputs.var(var))
            .or_else(|| inputs.yaml_value(yaml))
            .unzip()
    };
    let (rootcert, rootcert_source) = pick(
        &args.sslrootcert,
        "--sslrootcert",
        string.and_then(|s| s.sslrootcert.as_ref()),
        "PGSSLROOTCERT",
        |c| c.sslrootcert.as_ref(),
    );
    let (cert, cert_source) = pick(
        &args.sslcert,
        "--sslcert",
        string.and_then(|s| s.sslcert.as_ref()),
        "PGSSLCERT",
        |c| c.sslcert.as_ref(),
    );
    let (key, key_source) = pick(
        &args.sslkey,
        "--sslkey",
        string.and_then(|s| s.sslkey.as_ref()),
        "PGSSLKEY",
        |c| c.sslkey.as_ref(),
    );
    // As libpq 16: sslrootcert=system with no sslmode given anywhere means verify-full
    // (a weaker mode given explicitly is refused by tls::prepare).
    let (parsed, mode_source) =
        if rootcert.as_deref() == Some("system") && mode_source == Source::Default {
            (crate::tls::SslMode::VerifyFull, Source::Default)
        } else {
            (parsed, mode_source)
        };
    let (password, password_source) = string
        .and_then(|s| s.sslpassword.clone())
        .map(|p| (p, string_source.clone()))
        .or_else(|| inputs.var("PGSSLPASSWORD"))
        .unzip();
    Ok((
        crate::tls::TlsSettings {
            mode: parsed,
            rootcert,
            cert,
            key,
            password,
        },
        TlsSources {
            mode: mode_source,
            rootcert: rootcert_source,
            cert: cert_source,
            key: key_source,
            password: password_source,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::super::tests::resolve_args;

    #[test]
    fn system_roots_default_to_verify_full() {
        let mode =
            |extra: &[&str], vars: &[(&str, &str)]| resolve_args(extra, vars).unwrap().tls.mode;
        let base = [("USER", "u"), ("PGDATABASE", "d")];
        assert_eq!(
            mode(&["--sslrootcert", "system"], &base),
            crate::tls::SslMode::VerifyFull
        );
        let env = [
            ("USER", "u"),
            ("PGDATABASE", "d"),
            ("PGSSLROOTCERT", "system"),
        ];
        assert_eq!(mode(&[], &env), crate::tls::SslMode::VerifyFull);
        // A mode given explicitly stays (tls::prepare refuses the weak ones).
        assert_eq!(
            mode(&["--sslrootcert", "system", "--sslmode", "require"], &base),
            crate::tls::SslMode::Require
        );
        assert_eq!(mode(&[], &base), crate::tls::SslMode::Prefer);
    }
}
