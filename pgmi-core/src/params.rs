//! Deployment parameters (docs/session-api.md, "Parameters"): parsing `--param` and
//! `--params-file`, key and value validation, and the final merge that the session loads.
//!
//! Invariants:
//! * Errors name the key (or a line number), never a value: values often hold passwords.
//! * Merging is case-sensitive and later-wins, exactly like the original pgmi; keys are
//!   lower-cased only afterwards, and keys that then collide are rejected here instead of
//!   failing on `_pgmi_parameter_pkey` after connecting (as the original pgmi does; fixed on
//!   purpose).
//! * [`finalize`]'s output is what the server stores: `(lower(key), value)` pairs, each key
//!   a PostgreSQL simple identifier of at most 63 bytes, each value NUL-free UTF-8.

use std::collections::HashMap;

/// A parameter problem; every variant is an invalid-configuration error (exit 10).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// `--param` without `=`. The argument is echoed: it holds no `=`, so no value.
    #[error("parameter {} is not in key=value format (example: --param env=production)", crate::path::go_quote(.arg))]
    MissingEquals { arg: String },
    /// `--param =value`.
    #[error("parameter has an empty key (expected key=value, example: --param env=production)")]
    EmptyKey,
    /// `--params-file` line without `=` (1-based line number).
    #[error("line {line}: invalid format, expected KEY=VALUE")]
    FileLineFormat { line: usize },
    /// `--params-file` line `=value`.
    #[error("line {line}: empty key")]
    FileLineEmptyKey { line: usize },
    /// `--params-file` line that is not UTF-8.
    #[error("line {line}: not valid UTF-8")]
    FileLineNotUtf8 { line: usize },
    /// Key is not `^[a-zA-Z_][a-zA-Z0-9_]{0,62}$` (the original pgmi's wording).
    #[error("invalid parameter key '{key}': must start with a letter or underscore and contain only letters, digits and underscores, 1-63 characters (PostgreSQL identifier limit)")]
    InvalidKey { key: String },
    /// Value contains a NUL byte (the original pgmi's wording).
    #[error("invalid parameter value for '{key}': contains NUL byte at offset {offset}")]
    ValueNul { key: String, offset: usize },
    /// Value is not UTF-8 (the original pgmi's wording).
    #[error("invalid parameter value for '{key}': not valid UTF-8")]
    ValueNotUtf8 { key: String },
    /// Two keys differ only in case; both would become the same `pgmi.<key>` setting.
    #[error("parameter keys '{first}' and '{second}' differ only in case; parameter names are case-insensitive (both would set pgmi.{lower})")]
    CaseCollision {
        first: String,
        second: String,
        lower: String,
    },
}

impl ParamError {
    /// What the user should do about it.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            ParamError::MissingEquals { .. } | ParamError::EmptyKey => {
                "write each parameter as --param key=value".into()
            }
            ParamError::FileLineFormat { .. } | ParamError::FileLineEmptyKey { .. } => {
                "each non-blank line must be KEY=VALUE; lines starting with # are comments".into()
            }
            ParamError::FileLineNotUtf8 { .. } => "save the parameters file as UTF-8".into(),
            ParamError::InvalidKey { .. } => {
                "rename the parameter, e.g. my-key becomes my_key; it is read as current_setting('pgmi.<key>')".into()
            }
            ParamError::ValueNul { .. } | ParamError::ValueNotUtf8 { .. } => {
                "parameter values must be UTF-8 text without NUL bytes; encode binary data (e.g. base64)".into()
            }
            ParamError::CaseCollision { .. } => {
                "keep one spelling: remove or rename one of the two parameters (check pgmi.yaml, --params-file and --param)".into()
            }
        })
    }
}

/// Parses one `--param` argument: split at the first `=`, no trimming; `a=b=c` is key `a`,
/// value `b=c`; `k=` has an empty value.
pub fn parse_cli_arg(arg: &str) -> Result<(String, String), ParamError> {
    let Some((key, value)) = arg.split_once('=') else {
        return Err(ParamError::MissingEquals {
            arg: arg.to_owned(),
        });
    };
    if key.is_empty() {
        return Err(ParamError::EmptyKey);
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// Parses a `--params-file`: one leading UTF-8 BOM stripped; per line (LF or CRLF):
/// trim white space; skip blank lines and lines starting with `#`; split at the first `=`;
/// trim key and value; remove one pair of matching surrounding `"` or `'` from the value
/// (no escapes, no `export`, no inline comments). Pairs are returned in file order,
/// duplicates included; [`finalize`] applies later-wins.
pub fn parse_params_file(bytes: &[u8]) -> Result<Vec<(String, String)>, ParamError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut pairs = Vec::new();
    // A trailing newline does not start another line (as with Go's line scanner).
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if bytes.is_empty() {
        return Ok(pairs);
    }
    for (index, raw) in body.split(|&b| b == b'\n').enumerate() {
        let line_no = index + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = std::str::from_utf8(raw)
            .map_err(|_| ParamError::FileLineNotUtf8 { line: line_no })?
            .trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(ParamError::FileLineFormat { line: line_no });
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(ParamError::FileLineEmptyKey { line: line_no });
        }
        let value = value.trim();
        let unquoted = if value.len() >= 2
            && ((value.starts_with('"') && value.ends_with('"'))
                || (value.starts_with('\'') && value.ends_with('\'')))
        {
            &value[1..value.len() - 1]
        } else {
            value
        };
        pairs.push((key.to_owned(), unquoted.to_owned()));
    }
    Ok(pairs)
}

/// Checks a key against `^[a-zA-Z_][a-zA-Z0-9_]{0,62}$`: a PostgreSQL simple identifier
/// that fits the 63-byte name limit, because it becomes the setting `pgmi.<key>`.
pub fn validate_key(key: &str) -> Result<(), ParamError> {
    let b = key.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_');
    if ok {
        Ok(())
    } else {
        Err(ParamError::InvalidKey {
            key: key.to_owned(),
        })
    }
}

/// Checks a value's raw bytes: no NUL (reported with its byte offset), valid UTF-8.
/// The error names `key`, never the value.
pub fn validate_value(key: &str, value: &[u8]) -> Result<(), ParamError> {
    if let Some(offset) = value.iter().position(|&b| b == 0) {
        return Err(ParamError::ValueNul {
            key: key.to_owned(),
            offset,
        });
    }
    if std::str::from_utf8(value).is_err() {
        return Err(ParamError::ValueNotUtf8 {
            key: key.to_owned(),
        });
    }
    Ok(())
}

/// Merges `pairs` (lowest precedence first: `pgmi.yaml` < each `--params-file` < each
/// `--param`) case-sensitively, later wins, keeping each key at its first position; then
/// validates every surviving key and value, lower-cases the keys, and rejects keys that
/// collide only after lower-casing. The result is what the session stores.
pub fn finalize(pairs: Vec<(String, String)>) -> Result<Vec<(String, String)>, ParamError> {
    let mut merged: Vec<(String, String)> = Vec::with_capacity(pairs.len());
    let mut position: HashMap<String, usize> = HashMap::with_capacity(pairs.len());
    for (key, value) in pairs {
        match position.get(&key) {
            Some(&i) => merged[i].1 = value,
            None => {
                position.insert(key.clone(), merged.len());
                merged.push((key, value));
            }
        }
    }
    for (key, value) in &merged {
        validate_key(key)?;
        validate_value(key, value.as_bytes())?;
    }
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(merged.len());
    let mut out = Vec::with_capacity(merged.len());
    for (i, (key, value)) in merged.iter().enumerate() {
        let lower = key.to_ascii_lowercase();
        if let Some(&j) = seen.get(&lower) {
            return Err(ParamError::CaseCollision {
                first: merged[j].0.clone(),
                second: key.clone(),
                lower,
            });
        }
        seen.insert(lower.clone(), i);
        out.push((lower, value.clone()));
    }
    Ok(out)
}

/// True for a parameter key that names a secret: it contains (ASCII case-insensitively) one of
/// password, passwd, secret, token, key, credential, auth, private.
///
/// The CLI refuses to write such values into a generated psql script in clear text, where
/// they would end up in files, shell history or CI logs. The list matches the words the
/// original pgmi's advanced template masks (`password|secret|token|key|credential|auth`), plus
/// `passwd` and `private`. It is a substring test on purpose, like the original pgmi's: a false
/// positive (`monkey`, `author`) only costs a refusal, a false negative leaks a secret.
pub fn looks_secret(key: &str) -> bool {
    const WORDS: [&str; 8] = [
        "password",
        "passwd",
        "secret",
        "token",
        "key",
        "credential",
        "auth",
        "private",
    ];
    let lower = key.to_ascii_lowercase();
    WORDS.iter().any(|w| lower.contains(w))
}

#[cfg(test)]
mod tests;
