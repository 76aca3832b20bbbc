//! `postgresql://` / `postgres://` connection URIs (README "Connecting").
//!
//! Parsed here rather than by the `postgres` crate because we must know which fields the
//! URI set (flags and environment fill only the gaps), and because the crate rejects
//! `sslmode` values it cannot honour without telling us which one was asked for.
//!
//! Form: `scheme://[user[:password]@][host][:port][/dbname][?key=value&…]`, every part
//! percent-decoded. The userinfo ends at the **last** `@` of the authority, so a password
//! with an unencoded `@` still works. A host may be `[v6 address]` or a percent-encoded
//! Unix socket directory (`%2Fvar%2Frun%2Fpostgresql`); `?host=/dir` works as in libpq.
//! Several hosts (`h1,h2`) are not supported. Parse errors never echo the URI, which may
//! hold a password.
//!
//! Query keys are libpq's connection keywords ([`apply_keyword`], shared with the libpq
//! `key=value` strings of `connstr.rs`); a few that change nothing for a deploy are accepted
//! and ignored ([`IGNORED_KEYWORDS`]); any other key is sent to the server as a run-time
//! parameter (`-c key=value`), as the original pgmi's driver does.

/// The fields a URI may set; `None` means "not in the URI".
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UriParts {
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub dbname: Option<String>,
    pub sslmode: Option<String>,
    pub application_name: Option<String>,
    pub connect_timeout: Option<u64>,
    /// `options=` as given (server command-line options, e.g. `-c search_path=x`).
    pub options: Option<String>,
    pub sslrootcert: Option<String>,
    pub sslcert: Option<String>,
    pub sslkey: Option<String>,
    /// Secret: the passphrase of an encrypted client key.
    pub sslpassword: Option<String>,
    /// `passfile=`: the `.pgpass` file to search instead of `PGPASSFILE` / `~/.pgpass`.
    pub passfile: Option<String>,
    /// `fallback_application_name=`: used when nothing sets `application_name`.
    pub fallback_application_name: Option<String>,
    /// Other query keys: sent as run-time parameters (`-c key=value`), as libpq-compatible
    /// drivers pass unknown keys on to the server.
    pub runtime_params: Vec<(String, String)>,
}

/// libpq keywords we accept and do not use. None of them changes what a deploy does or
/// weakens its security: certificate revocation lists (not checked), TCP keep-alive
/// tuning, SNI (always sent for host names) and the obsolete `sslcompression`.
pub const IGNORED_KEYWORDS: &[&str] = &[
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "sslcompression",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
];

pub fn is_uri(text: &str) -> bool {
    text.starts_with("postgresql://") || text.starts_with("postgres://")
}

pub fn parse(uri: &str) -> Result<UriParts, String> {
    let rest = uri
        .strip_prefix("postgresql://")
        .or_else(|| uri.strip_prefix("postgres://"))
        .ok_or_else(|| {
            "unrecognized connection string format: expected a URI starting with postgresql:// or postgres://".to_string()
        })?;
    let (before_query, query) = match rest.find('?') {
        Some(q) => (&rest[..q], Some(&rest[q + 1..])),
        None => (rest, None),
    };
    // The authority ends at the first `/` after the userinfo; search for `@` in the whole
    // pre-query part so a password containing `/` still parses.
    let userinfo_end = before_query.rfind('@');
    let after_userinfo = userinfo_end.map_or(0, |at| at + 1);
    let (authority_end, dbname) = match before_query[after_userinfo..].find('/') {
        Some(slash) => {
            let slash = after_userinfo + slash;
            (slash, Some(&before_query[slash + 1..]))
        }
        None => (before_query.len(), None),
    };
    let mut parts = UriParts::default();
    if let Some(at) = userinfo_end {
        let userinfo = &before_query[..at];
        let (user, password) = match userinfo.find(':') {
            Some(colon) => (&userinfo[..colon], Some(&userinfo[colon + 1..])),
            None => (userinfo, None),
        };
        parts.user = non_empty(decode(user, "user name")?);
        parts.password = match password {
            Some(p) => Some(decode(p, "password")?),
            None => None,
        };
    }
    let hostport = &before_query[after_userinfo..authority_end];
    if hostport.contains(',') {
        return Err(
            "connection URI names several hosts; pgmi-upload connects to exactly one".into(),
        );
    }
    let (host, port) = split_host_port(hostport)?;
    parts.host = non_empty(decode(host, "host")?);
    if let Some(port) = port {
        parts.port = Some(parse_port(&decode(port, "port")?)?);
    }
    if let Some(db) = dbname {
        parts.dbname = non_empty(decode(db, "database name")?);
    }
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| "connection URI has a query parameter without '='".to_string())?;
        let key = decode(key, "query parameter name")?;
        let value = decode(value, "query parameter value")?;
        apply_query_param(&mut parts, &key, value)?;
    }
    Ok(parts)
}

fn apply_query_param(parts: &mut UriParts, key: &str, value: String) -> Result<(), String> {
    if let Keyword::Unknown(value) = apply_keyword(parts, key, value)? {
        parts.runtime_params.push((key.to_string(), value));
    }
    Ok(())
}

/// What [`apply_keyword`] did with a key.
pub enum Keyword {
    /// Stored in the parts (or deliberately ignored).
    Known,
    /// Not a connection keyword; the value is handed back.
    Unknown(String),
}

/// Apply one libpq connection keyword (shared by URIs and `key=value` strings). Empty host,
/// user and database values mean "not set", as in libpq.
pub fn apply_keyword(parts: &mut UriParts, key: &str, value: String) -> Result<Keyword, String> {
    match key {
        "host" => {
            if value.contains(',') {
                return Err(
                    "connection string names several hosts; pgmi-upload connects to exactly one"
                        .into(),
                );
            }
            parts.host = non_empty(value);
        }
        "port" => parts.port = Some(parse_port(&value)?),
        "user" => parts.user = non_empty(value),
        "password" => parts.password = Some(value),
        "dbname" => parts.dbname = non_empty(value),
        "sslmode" => parts.sslmode = Some(value.to_ascii_lowercase()),
        "application_name" | "applicationname" => parts.application_name = Some(value),
        "fallback_application_name" => parts.fallback_application_name = Some(value),
        "sslrootcert" => parts.sslrootcert = Some(value),
        "sslcert" => parts.sslcert = Some(value),
        "sslkey" => parts.sslkey = Some(value),
        "sslpassword" => parts.sslpassword = Some(value),
        "passfile" => parts.passfile = non_empty(value),
        "connect_timeout" | "connecttimeout" => {
            parts.connect_timeout = Some(parse_connect_timeout(&value)?)
        }
        "options" => parts.options = Some(value),
        k if IGNORED_KEYWORDS.contains(&k) => {}
        _ => return Ok(Keyword::Unknown(value)),
    }
    Ok(Keyword::Known)
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
fn split_host_port(hostport: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(rest) = hostport.strip_prefix('[') {
        let close = rest
            .find(']')
            .ok_or_else(|| "connection URI has an unterminated [IPv6] host".to_string())?;
        let host = &rest[..close];
        let after = &rest[close + 1..];
        return match after.strip_prefix(':') {
            Some(port) => Ok((host, Some(port))),
            None if after.is_empty() => Ok((host, None)),
            None => Err("connection URI has text after the [IPv6] host".into()),
        };
    }
    Ok(match hostport.rfind(':') {
        Some(colon) => (&hostport[..colon], Some(&hostport[colon + 1..])),
        None => (hostport, None),
    })
}

/// A port 1–65535 (the same check serves `-p`, `PGPORT` and URIs).
pub fn parse_port(text: &str) -> Result<u16, String> {
    match text.trim().parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
        _ => Err(format!(
            "invalid port {text:?}: must be a number from 1 to 65535"
        )),
    }
}

/// Seconds, a non-negative integer (`PGCONNECT_TIMEOUT`, `connect_timeout=`).
pub fn parse_connect_timeout(text: &str) -> Result<u64, String> {
    text.trim().parse::<u64>().map_err(|_| {
        format!("invalid connect timeout {text:?}: must be a whole number of seconds (0 = wait forever)")
    })
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// Percent-decoding; the result must be UTF-8. `+` is not a space (libpq does not treat it
/// as one either).
fn decode(text: &str, what: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("connection URI has a bad percent-escape in the {what}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| format!("connection URI {what} is not valid UTF-8 after percent-decoding"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_uri() {
        let p = parse("postgresql://alice:s%40cret@db.example.com:6543/my%20db?sslmode=Disable&application_name=ci&connect_timeout=7").unwrap();
        assert_eq!(p.user.as_deref(), Some("alice"));
        assert_eq!(p.password.as_deref(), Some("s@cret"));
        assert_eq!(p.host.as_deref(), Some("db.example.com"));
        assert_eq!(p.port, Some(6543));
        assert_eq!(p.dbname.as_deref(), Some("my db"));
        assert_eq!(p.sslmode.as_deref(), Some("disable"));
        assert_eq!(p.application_name.as_deref(), Some("ci"));
        assert_eq!(p.connect_timeout, Some(7));
    }

    #[test]
    fn minimal_and_empty_parts() {
        assert_eq!(parse("postgres://").unwrap(), UriParts::default());
        let p = parse("postgres://h").unwrap();
        assert_eq!(p.host.as_deref(), Some("h"));
        assert_eq!(p.dbname, None);
        let p = parse("postgresql:///app").unwrap();
        assert_eq!(p.host, None);
        assert_eq!(p.dbname.as_deref(), Some("app"));
    }

    #[test]
    fn password_runs_to_the_last_at() {
        let p = parse("postgresql://u:p@ss/w@host/db").unwrap();
        assert_eq!(p.user.as_deref(), Some("u"));
        assert_eq!(p.password.as_deref(), Some("p@ss/w"));
        assert_eq!(p.host.as_deref(), Some("host"));
        assert_eq!(p.dbname.as_deref(), Some("db"));
    }

    #[test]
    fn unix_socket_and_ipv6_hosts() {
        let p = parse("postgresql://%2Fvar%2Frun%2Fpostgresql/db").unwrap();
        assert_eq!(p.host.as_deref(), Some("/var/run/postgresql"));
        let p = parse("postgresql:///db?host=/tmp&port=5433").unwrap();
        assert_eq!(p.host.as_deref(), Some("/tmp"));
        assert_eq!(p.port, Some(5433));
        let p = parse("postgresql://[::1]:5433/db").unwrap();
        assert_eq!(p.host.as_deref(), Some("::1"));
        assert_eq!(p.port, Some(5433));
    }

    #[test]
    fn unknown_keys_become_runtime_parameters() {
        let p = parse("postgres://h/db?search_path=app&sslrootcert=/ca.pem&keepalives=1").unwrap();
        assert_eq!(
            p.runtime_params,
            vec![("search_path".to_string(), "app".to_string())]
        );
        assert_eq!(p.sslrootcert.as_deref(), Some("/ca.pem"));
    }

    #[test]
    fn passfile_and_fallback_application_name() {
        let p = parse("postgres://h/db?passfile=%2Fsecrets%2Fpgpass&fallback_application_name=ci")
            .unwrap();
        assert_eq!(p.passfile.as_deref(), Some("/secrets/pgpass"));
        assert_eq!(p.fallback_application_name.as_deref(), Some("ci"));
        assert_eq!(p.application_name, None);
        assert!(p.runtime_params.is_empty());
    }

    #[test]
    fn rejects_bad_input_without_echoing_it() {
        for bad in [
            "mysql://u:secretpw@h/db",
            "host=h dbname=d password=secretpw",
            "postgres://u:secretpw@h:0/db",
            "postgres://u:secretpw@h:99999/db",
            "postgres://u:secretpw@h:abc/db",
            "postgres://u:secretpw@h1,h2/db",
            "postgres://u:secretpw@/db?host=h1,h2",
            "postgres://u:secretpw@h/db?connect_timeout=-1",
            "postgres://u:secretpw@h/d%zzb",
            "postgres://u:secretpw@[::1/db",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(!err.contains("secretpw"), "{err}");
        }
    }

    #[test]
    fn port_rules() {
        assert_eq!(parse_port("5432"), Ok(5432));
        assert_eq!(parse_port("65535"), Ok(65535));
        assert!(parse_port("0").is_err());
        assert!(parse_port("65536").is_err());
        assert!(parse_port("").is_err());
    }
}
