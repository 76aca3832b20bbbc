//! The granular path (README, "Connecting"), taken when no connection string
//! is given: each field is `flag > PG* variable > pgmi.yaml > default`, the user falling
//! back to `$USER`, `$USERNAME` and the operating-system user; the password is `PGPASSWORD`
//! (the password file is `resolve_with`'s business); the maintenance database is
//! `pgmi.yaml`'s `maintenance_database`, else `postgres`. A value that does not parse is a
//! configuration error naming where it came from.

use std::time::Duration;

use crate::cli::ConnectionArgs;
use crate::exit::Failure;
use crate::uri;

use super::tls_settings::tls_settings;
use super::{
    default_user, env_connect_timeout, ConnInfo, Inputs, Source, Sources, DEFAULT_APPLICATION_NAME,
    DEFAULT_PORT, MAINTENANCE_DB,
};

/// The granular path: no connection string was given.
pub(super) fn from_parts(args: &ConnectionArgs, inputs: &Inputs<'_>) -> Result<ConnInfo, Failure> {
    let yaml_port = inputs.yaml.and_then(|c| c.connection.port);
    let (port, port_source) = match (&args.port, inputs.var("PGPORT"), yaml_port) {
        (Some(flag), _, _) => (
            uri::parse_port(flag).map_err(|e| Failure::config(format!("--port: {e}")))?,
            Source::Flag("--port"),
        ),
        (None, Some((var, source)), _) => (
            uri::parse_port(&var).map_err(|e| Failure::config(format!("{source}: {e}")))?,
            source,
        ),
        (None, None, Some(port)) => (port, Source::Yaml),
        (None, None, None) => (DEFAULT_PORT, Source::Default),
    };
    let flag =
        |value: &Option<String>, name: &'static str| value.clone().map(|v| (v, Source::Flag(name)));
    let (target_db, target_source) = flag(&args.database, "--database")
        .or_else(|| inputs.var("PGDATABASE"))
        .or_else(|| inputs.yaml_value(|c| c.database.as_ref()))
        .ok_or_else(|| {
            Failure::config("database name is required").with_hint(
                "pass -d <name>, set PGDATABASE, set connection.database in pgmi.yaml, or give a connection string that names the database (--connection, PGMI_CONNECTION_STRING or DATABASE_URL)",
            )
        })?;
    let (host, host_source) = flag(&args.host, "--host")
        .or_else(|| inputs.var("PGHOST"))
        .or_else(|| inputs.yaml_value(|c| c.host.as_ref()))
        .unwrap_or_else(|| (String::new(), Source::Default));
    let (user, user_source) = match flag(&args.username, "--username")
        .or_else(|| inputs.var("PGUSER"))
        .or_else(|| inputs.yaml_value(|c| c.username.as_ref()))
    {
        Some(found) => found,
        None => default_user(inputs)?,
    };
    let (password, password_source) = inputs.var("PGPASSWORD").unzip();
    let (maintenance_db, maintenance_source) = inputs
        .yaml_value(|c| c.maintenance_database.as_ref())
        .unwrap_or_else(|| (MAINTENANCE_DB.to_string(), Source::Default));
    let (application_name, application_name_source) = inputs
        .var("PGAPPNAME")
        .unwrap_or_else(|| (DEFAULT_APPLICATION_NAME.to_string(), Source::Default));
    let (connect_timeout, connect_timeout_source) = env_connect_timeout(inputs)?;
    let mode = flag(&args.sslmode, "--sslmode")
        .or_else(|| inputs.var("PGSSLMODE"))
        .or_else(|| inputs.yaml_value(|c| c.sslmode.as_ref()))
        .unwrap_or_else(|| ("prefer".to_string(), Source::Default));
    let (tls, tls_sources) = tls_settings(mode, args, None, &Source::Default, inputs)?;
    Ok(ConnInfo {
        host,
        port,
        user,
        password,
        target_db,
        maintenance_db,
        application_name,
        connect_timeout: connect_timeout.filter(|s| *s > 0).map(Duration::from_secs),
        // Server start-up options, as libpq reads them (`-c key=value …`).
        options: inputs
            .var("PGOPTIONS")
            .map(|(v, _)| v)
            .filter(|o| !o.trim().is_empty()),
        tls,
        passfile: None,
        cloud: None,
        sources: Sources {
            host: host_source,
            port: port_source,
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
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{resolve_args, resolve_full, yaml};
    use super::*;

    #[test]
    fn granular_precedence_flag_over_env_over_default() {
        let info = resolve_args(
            &["-h", "flaghost", "-d", "app"],
            &[
                ("PGHOST", "envhost"),
                ("PGPORT", "6000"),
                ("PGUSER", "u"),
                ("PGPASSWORD", "pw"),
            ],
        )
        .unwrap();
        assert_eq!(info.host, "flaghost");
        assert_eq!(info.sources.host, Source::Flag("--host"));
        assert_eq!(info.port, 6000);
        assert_eq!(
            info.sources.port,
            Source::Env {
                var: "PGPORT",
                dotenv: false
            }
        );
        assert_eq!(info.user, "u");
        assert_eq!(info.password.as_deref(), Some("pw"));
        assert_eq!(info.target_db, "app");
        assert_eq!(info.maintenance_db, "postgres");
        assert_eq!(info.application_name, "pgmi");
        let line = info.describe();
        assert!(!line.contains("pw "), "{line}");
        assert!(line.contains("password: set (from PGPASSWORD)"), "{line}");
        assert!(line.contains("host=flaghost (--host)"), "{line}");
        assert!(!format!("{info:?}").contains("=pw"));
    }

    #[test]
    fn yaml_is_below_flags_and_environment() {
        let y = yaml("connection:\n  host: yhost\n  port: 7000\n  username: yuser\n  database: ydb\n  maintenance_database: admin\n  sslmode: require\n  sslrootcert: y-ca.pem\n");
        let info = resolve_full(&[], &[("USER", "os")], Some(&y)).unwrap();
        assert_eq!(
            (info.host.as_str(), info.port, info.user.as_str()),
            ("yhost", 7000, "yuser")
        );
        assert_eq!(
            (info.target_db.as_str(), info.maintenance_db.as_str()),
            ("ydb", "admin")
        );
        assert_eq!(info.tls.mode.as_str(), "require");
        assert_eq!(info.tls.rootcert.as_deref(), Some("y-ca.pem"));
        assert_eq!(info.sources.host, Source::Yaml);
        assert_eq!(info.sources.maintenance_db, Source::Yaml);

        let info = resolve_full(
            &["-h", "fhost", "--sslmode", "disable"],
            &[
                ("PGPORT", "6000"),
                ("PGUSER", "euser"),
                ("PGDATABASE", "edb"),
                ("PGSSLROOTCERT", "e-ca.pem"),
            ],
            Some(&y),
        )
        .unwrap();
        assert_eq!(
            (info.host.as_str(), info.port, info.user.as_str()),
            ("fhost", 6000, "euser")
        );
        assert_eq!(info.target_db, "edb");
        assert_eq!(info.tls.mode.as_str(), "disable");
        assert_eq!(info.tls.rootcert.as_deref(), Some("e-ca.pem"));
    }

    #[test]
    fn missing_database_is_a_config_error() {
        let err = resolve_args(&[], &[("USER", "me")]).unwrap_err();
        assert_eq!(err.exit, crate::exit::Exit::InvalidConfig);
        assert!(err.message.contains("database name is required"));
        assert!(err.hint.unwrap().contains("PGDATABASE"));
    }

    #[test]
    fn bad_values_are_config_errors_naming_the_source() {
        assert!(resolve_args(&["-d", "a", "-p", "0"], &[("USER", "u")]).is_err());
        let err = resolve_args(&["-d", "a"], &[("USER", "u"), ("PGPORT", "x")]).unwrap_err();
        assert!(err.message.starts_with("PGPORT: "), "{}", err.message);
        assert!(resolve_args(&["-d", "a"], &[("USER", "u"), ("PGCONNECT_TIMEOUT", "-3")]).is_err());
        let info =
            resolve_args(&["-d", "a"], &[("USER", "u"), ("PGCONNECT_TIMEOUT", "4")]).unwrap();
        assert_eq!(info.connect_timeout, Some(Duration::from_secs(4)));
        let err = resolve_args(&["-d", "a"], &[("USER", "u"), ("PGSSLMODE", "on")]).unwrap_err();
        assert!(err.message.contains("(from PGSSLMODE)"), "{}", err.message);
    }
}
