//! Connection strings that are not URIs: ADO.NET (`Host=db;Database=app;Username=u`, the
//! form .NET applications keep in their settings) and libpq's
//! keyword/value form (`host=db dbname=app user=u`, which the original pgmi refuses and we
//! accept). Both produce the [`UriParts`] a URI produces, so `conninfo.rs` treats every
//! format the same way.
//!
//! Which format a string is: a URI when it starts with `postgresql://` or `postgres://`;
//! ADO.NET when it holds both `=` and `;` (the original pgmi's rule); libpq when it holds `=`
//! only. A libpq string whose unquoted password happens to hold `;` looks like ADO.NET; when
//! it then does not split into ADO.NET `Key=Value` parts but parses as libpq, it is taken as
//! libpq. An ADO.NET string with an unknown key stays an ADO.NET error.
//!
//! ADO.NET rules: parts separated by `;`; each `Key=Value` with white space around key and
//! value trimmed; keys case-insensitive, with the original pgmi's aliases; a value may be
//! wrapped in `'` or `"`, inside which the other quote, `;` and `=` are literal and a
//! doubled quote stands for one; `SslMode` is lower-cased and Npgsql's `VerifyCA` /
//! `VerifyFull` become `verify-ca` / `verify-full`. Unlike the original pgmi, which skips
//! malformed parts and hands unknown keys to the driver (where the server then refuses them
//! at start-up), an unknown key or a part without `=` is an error here (exit 10): a typo in
//! `SslMode` must not silently mean "no TLS". Npgsql's client-side pool and diagnostics
//! settings ([`ADO_IGNORED`]) are accepted and ignored, so a string copied from an
//! application's settings works as it is.
//!
//! libpq rules (as `PQconnectdb` reads them): `keyword = value` pairs separated by white
//! space; a value is either bare (up to the next white space) or in single quotes; a
//! backslash escapes the next character in both (`\'`, `\\`); keywords are lower-case and
//! must be libpq keywords that pgmi-upload understands.
//!
//! Errors never contain the string or a value: the string may hold a password. They may name
//! a key, except a "key" that follows a password, which could be a piece of it.

use crate::uri::{self, Keyword, UriParts};

/// Which syntax a connection string used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Uri,
    AdoNet,
    KeyValue,
}

impl Format {
    pub fn label(self) -> &'static str {
        match self {
            Format::Uri => "URI",
            Format::AdoNet => "ADO.NET",
            Format::KeyValue => "key=value",
        }
    }
}

/// Npgsql keywords that only tune its own connection pool, diagnostics or keep-alives;
/// pgmi-upload opens one connection and has nothing to tune.
pub const ADO_IGNORED: &[&str] = &[
    "pooling",
    "minimum pool size",
    "min pool size",
    "maximum pool size",
    "max pool size",
    "connection idle lifetime",
    "connection pruning interval",
    "connection lifetime",
    "include error detail",
    "enlist",
    "keepalive",
    "tcp keepalive",
    "no reset on close",
    "command timeout",
    "trust server certificate",
];

const ADO_KEYS_HINT: &str = "ADO.NET keys: Host (Server), Port, Database (Initial Catalog), Username (User Id, Uid), Password (Pwd), SslMode, SslCert, SslKey, SslRootCert, SslPassword, Application Name, Timeout (Connect Timeout), Options, Search Path";

const KEY_VALUE_KEYS_HINT: &str = "keywords: host, port, dbname, user, password, passfile, sslmode, sslcert, sslkey, sslrootcert, sslpassword, application_name, fallback_application_name, connect_timeout, options";

/// Parse a connection string of any supported format.
pub fn parse(text: &str) -> Result<(Format, UriParts), ParseError> {
    if uri::is_uri(text) {
        return uri::parse(text)
            .map(|p| (Format::Uri, p))
            .map_err(ParseError::plain);
    }
    if text.contains('=') && text.contains(';') {
        return match parse_ado(text) {
            Ok(parts) => Ok((Format::AdoNet, parts)),
            Err(err) if err.structural => match parse_key_value(text) {
                Ok(parts) => Ok((Format::KeyValue, parts)),
                Err(_) => Err(err),
            },
            Err(err) => Err(err),
        };
    }
    if text.contains('=') {
        return parse_key_value(text).map(|p| (Format::KeyValue, p));
    }
    Err(ParseError::plain(
        "unrecognized connection string format: expected a URI (postgresql://...), libpq key=value pairs (host=... dbname=...) or an ADO.NET string (Host=...;Database=...)".to_string(),
    ))
}

/// Why a string did not parse; `hint` says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub message: String,
    pub hint: Option<String>,
    /// The string did not even split into parts (so another format may fit).
    structural: bool,
}

impl ParseError {
    fn plain(message: String) -> ParseError {
        ParseError {
            message,
            hint: None,
            structural: false,
        }
    }

    fn structural(message: String) -> ParseError {
        ParseError {
            message,
            hint: None,
            structural: true,
        }
    }

    fn with_hint(mut self, hint: impl Into<String>) -> ParseError {
        self.hint = Some(hint.into());
        self
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// `Key=Value;...`.
pub fn parse_ado(text: &str) -> Result<UriParts, ParseError> {
    let mut parts = UriParts::default();
    let mut after_secret = false;
    for (index, (key, value)) in split_ado(text)?.into_iter().enumerate() {
        let number = index + 1;
        let lower = key.to_ascii_lowercase();
        let canonical = match lower.as_str() {
            "host" | "server" => "host",
            "port" => "port",
            "database" | "initial catalog" => "dbname",
            "username" | "user id" | "uid" => "user",
            "password" | "pwd" => "password",
            "sslmode" | "ssl mode" => "sslmode",
            "sslcert" | "ssl cert" => "sslcert",
            "sslkey" | "ssl key" => "sslkey",
            "sslrootcert" | "ssl root cert" => "sslrootcert",
            "sslpassword" | "ssl password" => "sslpassword",
            "application name" | "applicationname" => "application_name",
            "timeout" | "connect timeout" | "connecttimeout" => "connect_timeout",
            "options" => "options",
            "search path" => {
                parts
                    .runtime_params
                    .push(("search_path".to_string(), value));
                after_secret = false;
                continue;
            }
            k if ADO_IGNORED.contains(&k) => {
                after_secret = false;
                continue;
            }
            _ => {
                return Err(unknown_key(
                    "ADO.NET",
                    &key,
                    number,
                    after_secret,
                    "put it in single or double quotes",
                    ADO_KEYS_HINT,
                ))
            }
        };
        after_secret = canonical == "password" || canonical == "sslpassword";
        let value = if canonical == "sslmode" {
            ado_sslmode(&value)
        } else {
            value
        };
        match uri::apply_keyword(&mut parts, canonical, value) {
            Ok(_) => {}
            Err(message) => {
                return Err(ParseError::plain(format!("{key}: {message}")));
            }
        }
    }
    Ok(parts)
}

/// Npgsql spells the verifying modes `VerifyCA` and `VerifyFull`.
fn ado_sslmode(value: &str) -> String {
    let lower = value.to_ascii_lowercase();
    match lower.as_str() {
        "verifyca" => "verify-ca".to_string(),
        "verifyfull" => "verify-full".to_string(),
        _ => lower,
    }
}

/// Split into trimmed `(key, value)` pairs, removing quotes.
fn split_ado(text: &str) -> Result<Vec<(String, String)>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut pairs = Vec::new();
    let mut i = 0;
    let mut number = 0;
    loop {
        while i < chars.len() && (chars[i] == ';' || chars[i].is_whitespace()) {
            i += 1;
        }
        if i >= chars.len() {
            return Ok(pairs);
        }
        number += 1;
        let key_start = i;
        while i < chars.len() && chars[i] != '=' && chars[i] != ';' {
            i += 1;
        }
        if i >= chars.len() || chars[i] == ';' {
            return Err(ParseError::structural(format!(
                "ADO.NET connection string: part {number} is not Key=Value"
            ))
            .with_hint(
                "separate Key=Value parts with ';'; put values that contain ';' in quotes",
            ));
        }
        let key: String = chars[key_start..i]
            .iter()
            .collect::<String>()
            .trim()
            .to_string();
        if key.is_empty() {
            return Err(ParseError::structural(format!(
                "ADO.NET connection string: part {number} has an empty key"
            )));
        }
        i += 1; // '='
        while i < chars.len() && chars[i].is_whitespace() && chars[i] != ';' {
            i += 1;
        }
        let value = if i < chars.len() && (chars[i] == '\'' || chars[i] == '"') {
            let quote = chars[i];
            i += 1;
            let mut value = String::new();
            loop {
                match chars.get(i) {
                    None => {
                        return Err(ParseError::structural(format!(
                            "ADO.NET connection string: the value of {key} has no closing quote"
                        )))
                    }
                    Some(&c) if c == quote => {
                        if chars.get(i + 1) == Some(&quote) {
                            value.push(quote);
                            i += 2;
                        } else {
                            i += 1;
                            break;
                        }
                    }
                    Some(&c) => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            if i < chars.len() && chars[i] != ';' {
                return Err(ParseError::structural(format!(
                    "ADO.NET connection string: text after the closing quote of {key}"
                ))
                .with_hint("end each quoted value with its quote followed by ';'; double a quote to put one inside ('it''s')"));
            }
            value
        } else {
            let start = i;
            while i < chars.len() && chars[i] != ';' {
                i += 1;
            }
            chars[start..i]
                .iter()
                .collect::<String>()
                .trim()
                .to_string()
        };
        pairs.push((key, value));
    }
}

/// libpq's `keyword=value keyword='value with spaces'`.
pub fn parse_key_value(text: &str) -> Result<UriParts, ParseError> {
    let mut parts = UriParts::default();
    let mut after_secret = false;
    for (index, (key, value)) in split_key_value(text)?.into_iter().enumerate() {
        let secret = key == "password" || key == "sslpassword";
        match uri::apply_keyword(&mut parts, &key, value) {
            Ok(Keyword::Known) => {}
            Ok(Keyword::Unknown(_)) => {
                return Err(unknown_key(
                    "key=value",
                    &key,
                    index + 1,
                    after_secret,
                    "put it in single quotes",
                    KEY_VALUE_KEYS_HINT,
                ))
            }
            Err(message) => return Err(ParseError::plain(format!("{key}: {message}"))),
        }
        after_secret = secret;
    }
    Ok(parts)
}

fn split_key_value(text: &str) -> Result<Vec<(String, String)>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut pairs = Vec::new();
    let mut i = 0;
    let mut number = 0;
    loop {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= chars.len() {
            return Ok(pairs);
        }
        number += 1;
        let start = i;
        while i < chars.len() && chars[i] != '=' && !chars[i].is_whitespace() {
            i += 1;
        }
        let key: String = chars[start..i].iter().collect();
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= chars.len() || chars[i] != '=' {
            return Err(ParseError::structural(format!(
                "key=value connection string: item {number} has no '='"
            ))
            .with_hint("write keyword=value pairs separated by spaces; put values that contain spaces in single quotes ('a b')"));
        }
        if key.is_empty() {
            return Err(ParseError::structural(format!(
                "key=value connection string: item {number} has an empty keyword"
            )));
        }
        i += 1; // '='
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if chars.get(i) == Some(&'\'') {
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(ParseError::structural(format!(
                            "key=value connection string: the value of item {number} has no closing quote"
                        ))
                        .with_hint("close quoted values with ' and write a quote inside one as \\'"))
                    }
                    Some('\\') if i + 1 < chars.len() => {
                        value.push(chars[i + 1]);
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(&c) => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < chars.len() && !chars[i].is_whitespace() {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                value.push(chars[i]);
                i += 1;
            }
        }
        pairs.push((key, value));
    }
}

/// An unknown key, named unless it follows a password (an unquoted password that holds the
/// separator splits into a "key" that is really part of the password) or does not look like
/// a key at all.
fn unknown_key(
    format: &str,
    key: &str,
    number: usize,
    after_secret: bool,
    quoting: &str,
    keys_hint: &str,
) -> ParseError {
    let printable = key.len() <= 40
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '_' || c == '-');
    if after_secret || !printable {
        return ParseError::plain(format!(
            "{format} connection string: part {number} is not a known key"
        ))
        .with_hint(format!(
            "if the password holds a separator, {quoting}; {keys_hint}"
        ));
    }
    ParseError::plain(format!("{format} connection string: unknown key \"{key}\""))
        .with_hint(keys_hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ado(text: &str) -> UriParts {
        match parse(text).unwrap() {
            (Format::AdoNet, parts) => parts,
            (other, _) => panic!("parsed as {other:?}"),
        }
    }

    fn kv(text: &str) -> UriParts {
        match parse(text).unwrap() {
            (Format::KeyValue, parts) => parts,
            (other, _) => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn ado_keys_and_aliases() {
        let p = ado("Host=db.example.com;Port=6432;Database=app;Username=deployer;Password=pw;SSL Mode=Require;Application Name=ci;Timeout=7");
        assert_eq!(p.host.as_deref(), Some("db.example.com"));
        assert_eq!(p.port, Some(6432));
        assert_eq!(p.dbname.as_deref(), Some("app"));
        assert_eq!(p.user.as_deref(), Some("deployer"));
        assert_eq!(p.password.as_deref(), Some("pw"));
        assert_eq!(p.sslmode.as_deref(), Some("require"));
        assert_eq!(p.application_name.as_deref(), Some("ci"));
        assert_eq!(p.connect_timeout, Some(7));

        let p = ado("server = h ; initial catalog = d ; user id = u ; pwd = x ; connect timeout = 3 ; sslmode = VerifyFull ; ssl root cert = /ca.pem ; ssl cert = c ; ssl key = k ; ssl password = kp ;");
        assert_eq!(
            (p.host.as_deref(), p.dbname.as_deref(), p.user.as_deref()),
            (Some("h"), Some("d"), Some("u"))
        );
        assert_eq!(p.password.as_deref(), Some("x"));
        assert_eq!(p.connect_timeout, Some(3));
        assert_eq!(p.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(p.sslrootcert.as_deref(), Some("/ca.pem"));
        assert_eq!(
            (p.sslcert.as_deref(), p.sslkey.as_deref()),
            (Some("c"), Some("k"))
        );
        assert_eq!(p.sslpassword.as_deref(), Some("kp"));

        let p = ado("UID=u;ApplicationName=a;ConnectTimeout=0;SslMode=VerifyCA;Search Path=app");
        assert_eq!(p.user.as_deref(), Some("u"));
        assert_eq!(p.application_name.as_deref(), Some("a"));
        assert_eq!(p.connect_timeout, Some(0));
        assert_eq!(p.sslmode.as_deref(), Some("verify-ca"));
        assert_eq!(
            p.runtime_params,
            vec![("search_path".to_string(), "app".to_string())]
        );
    }

    #[test]
    fn ado_quoting() {
        let p = ado(r#"Host=h;Password='a;b=c';Database="x""y";Username='it''s'"#);
        assert_eq!(p.password.as_deref(), Some("a;b=c"));
        assert_eq!(p.dbname.as_deref(), Some("x\"y"));
        assert_eq!(p.user.as_deref(), Some("it's"));
        let p = ado(r#"Host=h;Password="say 'hi'" ;"#);
        assert_eq!(p.password.as_deref(), Some("say 'hi'"));
    }

    #[test]
    fn ado_ignores_pool_settings_and_refuses_unknown_keys() {
        let p =
            ado("Host=h;Database=d;Pooling=true;Maximum Pool Size=50;Include Error Detail=true");
        assert_eq!(p.host.as_deref(), Some("h"));
        let err = parse("Host=h;Databse=d").unwrap_err();
        assert!(err.message.contains("unknown key \"Databse\""), "{err}");
        assert!(err.hint.unwrap().contains("Initial Catalog"));
    }

    #[test]
    fn ado_errors_never_echo_values() {
        for bad in [
            "Host=h;Password=secretpw;Port=abc",
            "Host=h;Password='secretpw",
            "Host=h;Password='secret'pw;",
            "Host=h;Password=se=cretpw;Port=99999",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(!err.message.contains("secret"), "{bad}: {err}");
        }
        // A "key" right after a password may be a piece of it: not named.
        let err = parse("Host=h;Password=abc;secretpw=1").unwrap_err();
        assert!(!err.message.contains("secretpw"), "{err}");
        assert!(err.hint.unwrap().contains("quote"));
    }

    #[test]
    fn key_value_rules() {
        let p = kv(
            r"host=db port = 5433 dbname=app user=u password='a b\'c' sslmode=require options='-c search_path=x'",
        );
        assert_eq!(p.host.as_deref(), Some("db"));
        assert_eq!(p.port, Some(5433));
        assert_eq!(p.dbname.as_deref(), Some("app"));
        assert_eq!(p.user.as_deref(), Some("u"));
        assert_eq!(p.password.as_deref(), Some("a b'c"));
        assert_eq!(p.sslmode.as_deref(), Some("require"));
        assert_eq!(p.options.as_deref(), Some("-c search_path=x"));
        let p = kv(r"host=/var/run/postgresql dbname=d password=back\\slash\ sp passfile=/p");
        assert_eq!(p.host.as_deref(), Some("/var/run/postgresql"));
        assert_eq!(p.password.as_deref(), Some(r"back\slash sp"));
        assert_eq!(p.passfile.as_deref(), Some("/p"));
        let p = kv("dbname=d password=''");
        assert_eq!(p.password.as_deref(), Some(""));
    }

    #[test]
    fn key_value_with_semicolon_in_password_is_not_ado() {
        let p = kv("host=h dbname=d password=a;b");
        assert_eq!(p.password.as_deref(), Some("a;b"));
        assert_eq!(p.dbname.as_deref(), Some("d"));
    }

    #[test]
    fn key_value_errors() {
        let err = parse("host=h dbnme=d").unwrap_err();
        assert!(err.message.contains("unknown key \"dbnme\""), "{err}");
        // Upper-case keywords are ADO.NET's, not libpq's.
        assert!(parse("Host=h Database=d").is_err());
        for bad in [
            "host=h password='secretpw",
            "host=h password=secretpw port=0",
            "host=h secretpw",
            "host=h password=secret pw=1",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(!err.message.contains("secret"), "{bad}: {err}");
            assert!(
                !err.message.contains("pw"),
                "{bad}: a piece of the password was named: {err}"
            );
        }
    }

    #[test]
    fn unrecognised_formats() {
        for bad in ["mydb", "", "mysql://u:secretpw@h/db"] {
            let err = parse(bad).unwrap_err();
            assert!(err.message.contains("unrecognized"), "{err}");
            assert!(!err.message.contains("secretpw"));
        }
    }

    #[test]
    fn uri_still_parses() {
        let (format, p) = parse("postgresql://u@h/db").unwrap();
        assert_eq!(format, Format::Uri);
        assert_eq!(p.dbname.as_deref(), Some("db"));
    }
}
