//! The project's `.env` (README, "Connecting"): `<project>/.env`, never the working
//! directory's, fills environment variables that are not set yet, before anything reads
//! them. It can carry `PGHOST`, `PGPASSWORD`, `PGMI_CONNECTION_STRING` and the like; it
//! does not define deployment parameters.
//!
//! Format: the `--params-file` line rules (a leading BOM dropped, `KEY=VALUE` lines split
//! at the first `=` and trimmed, `#` comment lines, one pair of surrounding quotes removed,
//! no escapes, no expansion, no inline comments), plus two things
//! an environment file needs:
//! * `export KEY=VALUE` is accepted, so a file that a shell can `source` works too (the
//!   original pgmi would read the key `export KEY` and reject it);
//! * keys must be environment variable names (`[A-Za-z_][A-Za-z0-9_]*`) and values must not
//!   hold NUL, which no environment can carry.
//!
//! A variable that is already present in the environment, even with an empty value, is left
//! alone ("existing environment variables win", as the original pgmi's loader does).
//!
//! A malformed file applies nothing and produces one warning naming the file, the line and
//! the rule; its content is never echoed, since it often holds `PGPASSWORD`.

use std::path::{Path, PathBuf};

/// The parsed file.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DotEnv {
    /// Where it was read from, when it exists.
    pub path: Option<PathBuf>,
    /// The pairs, in file order (later lines win).
    pairs: Vec<(String, String)>,
    /// Why nothing was applied (malformed or unreadable file), for stderr.
    pub warning: Option<String>,
}

impl std::fmt::Debug for DotEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.pairs.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("DotEnv")
            .field("path", &self.path)
            .field("names", &names)
            .field("warning", &self.warning)
            .finish()
    }
}

impl DotEnv {
    /// The value the file gives `name` (the last line that sets it).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Variable names the file sets, each once, in file order.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for (key, _) in &self.pairs {
            if !names.contains(&key.as_str()) {
                names.push(key);
            }
        }
        names
    }

    /// Set every variable of the file that the process environment does not have yet;
    /// returns the names set. Call before any other thread starts (setting the environment
    /// is not thread-safe on every platform).
    pub fn apply_to_process(&self) -> Vec<String> {
        let mut applied = Vec::new();
        for name in self.names() {
            if std::env::var_os(name).is_none() {
                if let Some(value) = self.get(name) {
                    std::env::set_var(name, value);
                    applied.push(name.to_string());
                }
            }
        }
        applied
    }
}

/// Read `<project>/.env`. A missing file is an empty result; an unreadable or malformed one
/// is an empty result with a warning.
pub fn read(project: &Path) -> DotEnv {
    let path = project.join(".env");
    match std::fs::read(&path) {
        Ok(bytes) => parse(path, &bytes),
        Err(e) if crate::config::is_absent(&e) => DotEnv::default(),
        Err(e) => DotEnv {
            warning: Some(format!(
                "could not read {}: {e}; no variables were loaded from it",
                path.display()
            )),
            path: Some(path),
            pairs: Vec::new(),
        },
    }
}

/// Parse the file's bytes (pure).
pub fn parse(path: PathBuf, bytes: &[u8]) -> DotEnv {
    match parse_pairs(bytes) {
        Ok(pairs) => DotEnv {
            path: Some(path),
            pairs,
            warning: None,
        },
        Err(line) => DotEnv {
            warning: Some(format!(
                "{} line {line}: expected KEY=VALUE (KEY a variable name, optionally after `export `; blank lines and # comments allowed); no variables were loaded from it",
                path.display()
            )),
            path: Some(path),
            pairs: Vec::new(),
        },
    }
}

/// The pairs, or the 1-based number of the first bad line.
fn parse_pairs(bytes: &[u8]) -> Result<Vec<(String, String)>, usize> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut pairs = Vec::new();
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_no = index + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = std::str::from_utf8(raw).map_err(|_| line_no)?.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once('=').ok_or(line_no)?;
        let key = key.trim();
        let key = match key.strip_prefix("export") {
            Some(rest) if rest.starts_with(char::is_whitespace) => rest.trim_start(),
            _ => key,
        };
        let value = unquote(value.trim());
        if !is_variable_name(key) || value.contains('\0') {
            return Err(line_no);
        }
        pairs.push((key.to_string(), value.to_string()));
    }
    Ok(pairs)
}

/// One pair of matching surrounding quotes removed, as in a parameters file.
fn unquote(value: &str) -> &str {
    let quoted = value.len() >= 2
        && ((value.starts_with('"') && value.ends_with('"'))
            || (value.starts_with('\'') && value.ends_with('\'')));
    if quoted {
        &value[1..value.len() - 1]
    } else {
        value
    }
}

fn is_variable_name(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(text: &str) -> DotEnv {
        parse(PathBuf::from("/p/.env"), text.as_bytes())
    }

    #[test]
    fn pairs_export_quotes_and_comments() {
        let d = env("# db\nPGHOST=db.example.com\nexport PGUSER = 'deployer'\n\nPGPASSWORD=\"a b\"\nPGHOST=later\n");
        assert_eq!(d.warning, None);
        assert_eq!(d.get("PGHOST"), Some("later"));
        assert_eq!(d.get("PGUSER"), Some("deployer"));
        assert_eq!(d.get("PGPASSWORD"), Some("a b"));
        assert_eq!(d.names(), ["PGHOST", "PGUSER", "PGPASSWORD"]);
        // `exported=1` is a key, not an export.
        assert_eq!(env("exported=1\n").get("exported"), Some("1"));
    }

    #[test]
    fn malformed_files_apply_nothing_and_never_echo() {
        for (text, line) in [
            (&b"PGHOST=h\nPGPASSWORD secretpw\n"[..], 2),
            (b"PGHOST=h\n=secretpw\n", 2),
            (b"PG HOST=secretpw\n", 1),
            (b"A=1\nexport B C=secretpw\n", 2),
            (b"A=1\nB=secret\0pw\n", 2),
            (b"A=1\r\nB=secret\xffpw\r\n", 2),
        ] {
            let d = parse(PathBuf::from("/p/.env"), text);
            let warning = d.warning.clone().expect("a warning");
            assert!(warning.contains(&format!("line {line}:")), "{warning}");
            assert!(warning.contains("KEY=VALUE"), "{warning}");
            assert!(warning.contains("/p/.env"), "{warning}");
            assert!(!warning.contains("secret"), "{warning}");
            assert!(d.names().is_empty());
            assert!(!format!("{d:?}").contains("secret"));
        }
    }

    #[test]
    fn missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()), DotEnv::default());
        std::fs::write(dir.path().join(".env"), "PGMI_TEST_DOTENV_X=1\n").unwrap();
        let d = read(dir.path());
        assert_eq!(d.get("PGMI_TEST_DOTENV_X"), Some("1"));
        assert_eq!(d.path, Some(dir.path().join(".env")));
    }
}
