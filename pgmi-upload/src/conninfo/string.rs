//! The connection-string path (README, "Connecting"): a string from
//! `--connection`, else `PGMI_CONNECTION_STRING`, else `DATABASE_URL`, in any format
//! `connstr.rs` reads (URI, ADO.NET, libpq key=value).
//!
//! Host, port, database, sslmode, application name and connect timeout come from the string
//! or built-in defaults, never from `pgmi.yaml` (nor `PGAPPNAME`); user and password fall
//! back to `PGUSER`/`$USER` and `PGPASSWORD` as a driver's would (an empty password in the
//! string counts as none; the password file is `resolve_with`'s business). `-h/-p/-U/--sslmode` together with a string is an error (exit
//! 10) even when the string came from the environment; `-d` names the target, and a
//! different database in the string becomes the maintenance database. Unknown keys become
//! server run-time parameters in the start-up `options`.

use std::time::Duration;

use crate::cli::ConnectionArgs;
use crate::connstr;
use crate::exit::Failure;

use super::tls_settings::tls_settings;
use super::{
    default_user, env_connect_timeout, ConnInfo, Inputs, Source, Sources, DEFAULT_APPLICATION_NAME,
    DEFAULT_PORT, MAINTENANCE_DB,
};

/// The string's `passfile`, if it names one, with its source.
pub(super) type PassfileKeyword = Option<(String, Source)>;

/// The connection-string path for `text`, which came from `origin`.
pub(super) fn from_string(
    args: &ConnectionArgs,
    origin: &'static str,
    text: &str,
    inputs: &Inputs<'_>,
) -> Result<(ConnInfo, PassfileKeyword), Failure> {
    let granular: Vec<&str> = [
        (args.host.is_some(), "--host"),
        (args.port.is_some(), "--port"),
        (args.username.is_some(), "--username"),
        (args.sslmode.is_some(), "--sslmode"),
    ]
    .into_iter()
    .filter_map(|(given, name)| given.then_some(name))
    .collect();
    if !granular.is_empty() {
        return Err(Failure::config(format!(
            "cannot specify both a connection string ({origin}) and {}",
            granular.join(", ")
        ))
        .with_hint(
            "put host, port, user and sslmode into the connection string, or unset the connection string and use -h/-p/-U/--sslmode",
        ));
    }
    let (format, parts) = connstr::parse(text).map_err(|e| {
        Failure::config(format!("invalid connection string in {origin}: {}", e.message)).with_hint(
            e.hint.unwrap_or_else(|| {
                "formats: postgresql://user@host:port/db?sslmode=require, host=h port=5432 dbname=db user=u, or Host=h;Port=5432;Database=db;Username=u".to_string()
            }),
        )
    })?;
    let src = Source::ConnectionString { origin, format };
    let from = |value: &Option<String>| value.clone().map(|v| (v, src.clone()));

    let (target_db, target_source, maintenance_db, maintenance_source) = {
        let string_db = parts.dbname.clone();
        match (&args.database, string_db) {
            // -d names the target; the string's database (if it names another) is where
            // the target gets created.
            (Some(d), Some(s)) if *d != s => {
                (d.clone(), Source::Flag("--database"), s, src.clone())
            }
            (Some(d), _) => (
                d.clone(),
                Source::Flag("--database"),
                MAINTENANCE_DB.to_string(),
                Source::Default,
            ),
            (None, Some(s)) => (s, src.clone(), MAINTENANCE_DB.to_string(), Source::Default),
            (None, None) => (
                MAINTENANCE_DB.to_string(),
                Source::Default,
                MAINTENANCE_DB.to_string(),
                Source::Default,
            ),
        }
    };
    let (connect_timeout, connect_timeout_source) = match parts.connect_timeout {
        Some(secs) => (Some(secs), Some(src.clone())),
        None => env_connect_timeout(inputs)?,
    };
    // libpq: PGOPTIONS when the string sets no `options`.
    let mut options = parts
        .options
        .clone()
        .or_else(|| inputs.var("PGOPTIONS").map(|(v, _)| v))
        .filter(|o| !o.trim().is_empty());
    if !parts.runtime_params.is_empty() {
        let extra: Vec<String> = parts
            .runtime_params
            .iter()
            .map(|(k, v)| format!("-c {}={}", escape_option(k), escape_option(v)))
            .collect();
        options = Some(
            options
                .into_iter()
                .chain(extra)
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    let (user, user_source) = match from(&parts.user).or_else(|| inputs.var("PGUSER")) {
        Some(found) => found,
        None => default_user(inputs)?,
    };
    let (password, password_source) = from(&parts.password)
        .filter(|(p, _)| !p.is_empty())
        .or_else(|| inputs.var("PGPASSWORD"))
        .unzip();
    // The original pgmi ignores PGAPPNAME on this path: the string decides, else `pgmi`.
    let (application_name, application_name_source) = from(&parts.application_name)
        .or_else(|| from(&parts.fallback_application_name))
        .unwrap_or_else(|| (DEFAULT_APPLICATION_NAME.to_string(), Source::Default));
    let mode = from(&parts.sslmode)
        .or_else(|| inputs.var("PGSSLMODE"))
        .unwrap_or_else(|| ("prefer".to_string(), Source::Default));
    let (tls, tls_sources) = tls_settings(mode, args, Some(&parts), &src, inputs)?;
    let info = ConnInfo {
        host: parts.host.clone().unwrap_or_default(),
        port: parts.port.unwrap_or(DEFAULT_PORT),
        user,
        password,
        target_db,
        maintenance_db,
        application_name,
        connect_timeout: connect_timeout.filter(|s| *s > 0).map(Duration::from_secs),
        options,
        tls,
        passfile: None,
        cloud: None,
        sources: Sources {
            host: src.clone(),
            port: if parts.port.is_some() {
                src.clone()
            } else {
                Source::Default
            },
            user: user_source,
            password: password_source,
            target_db: target_source,
            maintenance_db: maintenance_source,
            sslmode: tls_sources.mode,
            sslrootcert: tls_sources.rootcert,
            sslcert: tls_sources.cert,
            sslkey: tls_sources.key,
            sslpassword: tls_sources.password,
            application_name: application_name_source,
            connect_timeout: connect_timeout_source,
            passfile: None,
        },
    };
    Ok((info, parts.passfile.clone().map(|p| (p, src))))
}

/// Escape a value for the start-up `options` string: backslash before space and backslash.
fn escape_option(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == ' ' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::{resolve_args, resolve_full, yaml};
    use super::*;
    use crate::connstr::Format;

    #[test]
    fn connection_string_ignores_yaml_except_cert_paths() {
        let y = yaml("connection:\n  host: yhost\n  port: 7000\n  username: yuser\n  database: ydb\n  maintenance_database: admin\n  sslmode: require\n  sslcert: y.crt\n  sslkey: y.key\n");
        let info = resolve_full(
            &["--connection", "postgresql://h/app"],
            &[("USER", "os")],
            Some(&y),
        )
        .unwrap();
        assert_eq!((info.host.as_str(), info.port), ("h", 5432));
        assert_eq!(info.user, "os");
        assert_eq!(
            (info.target_db.as_str(), info.maintenance_db.as_str()),
            ("app", "postgres")
        );
        assert_eq!(info.tls.mode.as_str(), "prefer");
        assert_eq!(info.tls.cert.as_deref(), Some("y.crt"));
        assert_eq!(info.sources.sslcert, Some(Source::Yaml));
        assert_eq!(
            info.sources.host,
            Source::ConnectionString {
                origin: "--connection",
                format: Format::Uri
            }
        );
    }

    #[test]
    fn connection_string_excludes_granular_flags_even_from_env() {
        for string in ["postgres://h/db", "Host=h;Database=db", "host=h dbname=db"] {
            let err =
                resolve_args(&["-h", "x", "-d", "a"], &[("DATABASE_URL", string)]).unwrap_err();
            assert!(
                err.message.contains("cannot specify both"),
                "{}",
                err.message
            );
        }
        // Environment PGHOST does not conflict.
        let info = resolve_args(
            &[],
            &[
                ("PGHOST", "x"),
                ("PGMI_CONNECTION_STRING", "postgres://u@h/db"),
            ],
        )
        .unwrap();
        assert_eq!(info.host, "h");
        assert_eq!(info.target_db, "db");
    }

    #[test]
    fn ado_and_key_value_strings() {
        let info = resolve_args(
            &["--connection", "Server=db;Port=6432;Database=app;User Id=u;Password='p;w';SSL Mode=VerifyFull;Timeout=5"],
            &[],
        )
        .unwrap();
        assert_eq!((info.host.as_str(), info.port), ("db", 6432));
        assert_eq!((info.user.as_str(), info.target_db.as_str()), ("u", "app"));
        assert_eq!(info.password.as_deref(), Some("p;w"));
        assert_eq!(info.tls.mode.as_str(), "verify-full");
        assert_eq!(info.connect_timeout, Some(Duration::from_secs(5)));
        assert!(info
            .describe()
            .contains("ADO.NET connection string from --connection"));

        let info = resolve_args(
            &[],
            &[(
                "PGMI_CONNECTION_STRING",
                "host=db dbname=app user=u password='a b' application_name=ci",
            )],
        )
        .unwrap();
        assert_eq!(info.password.as_deref(), Some("a b"));
        assert_eq!(info.application_name, "ci");
        assert_eq!(
            info.sources.user,
            Source::ConnectionString {
                origin: "PGMI_CONNECTION_STRING",
                format: Format::KeyValue
            }
        );
        let err =
            resolve_args(&["--connection", "Host=h;Password=secretpw;Bogus=1"], &[]).unwrap_err();
        assert!(err
            .message
            .contains("invalid connection string in --connection"));
        assert!(!err.message.contains("secretpw"));
    }

    #[test]
    fn uri_database_rules() {
        let info = resolve_args(&["--connection", "postgresql://u@h"], &[]).unwrap();
        assert_eq!(info.target_db, "postgres");
        let info = resolve_args(
            &["--connection", "postgresql://u@h/admin", "-d", "app"],
            &[],
        )
        .unwrap();
        assert_eq!(
            (info.target_db.as_str(), info.maintenance_db.as_str()),
            ("app", "admin")
        );
        let info = resolve_args(&["--connection", "postgresql://u@h/app"], &[]).unwrap();
        assert_eq!(
            (info.target_db.as_str(), info.maintenance_db.as_str()),
            ("app", "postgres")
        );
    }

    #[test]
    fn string_password_falls_back_to_pgpassword() {
        let info = resolve_args(
            &["--connection", "postgres://u@h/d"],
            &[("PGPASSWORD", "envpw")],
        )
        .unwrap();
        assert_eq!(info.password.as_deref(), Some("envpw"));
        let info = resolve_args(
            &["--connection", "postgres://u:uripw@h/d"],
            &[("PGPASSWORD", "envpw")],
        )
        .unwrap();
        assert_eq!(info.password.as_deref(), Some("uripw"));
        // An empty password is no password (libpq), so PGPASSWORD applies.
        let info = resolve_args(
            &["--connection", "postgres://u:@h/d"],
            &[("PGPASSWORD", "envpw")],
        )
        .unwrap();
        assert_eq!(info.password.as_deref(), Some("envpw"));
    }

    #[test]
    fn runtime_params_go_into_options() {
        let info = resolve_args(
            &["--connection", "postgres://h/d?search_path=a%20b"],
            &[("USER", "u")],
        )
        .unwrap();
        assert_eq!(info.options.as_deref(), Some("-c search_path=a\\ b"));
    }

    #[test]
    fn pgoptions_applies_when_nothing_else_sets_options() {
        let env = [("USER", "u"), ("PGOPTIONS", "-c work_mem=64MB")];
        let info = resolve_args(&["--connection", "postgres://h/d"], &env).unwrap();
        assert_eq!(info.options.as_deref(), Some("-c work_mem=64MB"));
        let info = resolve_args(&["-h", "h", "-d", "d"], &env).unwrap();
        assert_eq!(info.options.as_deref(), Some("-c work_mem=64MB"));
        // The string's own options win, as in libpq.
        let info = resolve_args(
            &["--connection", "postgres://h/d?options=-c%20geqo%3Doff"],
            &env,
        )
        .unwrap();
        assert_eq!(info.options.as_deref(), Some("-c geqo=off"));
    }
}
