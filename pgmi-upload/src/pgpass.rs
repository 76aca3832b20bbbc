//! The password file (`.pgpass`), read with libpq's rules, because the `postgres` crate
//! reads none (README, "Connecting").
//!
//! * Which file: the connection string's `passfile`, else `PGPASSFILE`, else `~/.pgpass`
//!   (`%APPDATA%\postgresql\pgpass.conf` on Windows). A missing file is no error.
//! * On Unix a file that is not a regular file, or that the group or others may access at
//!   all, is ignored with a warning, as libpq does (it may have been readable by others, so
//!   it is not trusted to be the user's own).
//! * Lines are `host:port:database:username:password`. Lines starting with `#` and empty
//!   lines are skipped; a backslash makes the next character literal (`\:`, `\\`); a field
//!   that is exactly `*` matches anything; the password runs to the next unescaped `:` or the
//!   end of the line; a line with fewer than five fields never matches.
//! * Matching: the first matching line wins. The host compared is the one connected to,
//!   except that a connection over the default Unix socket directory (or with no host at all)
//!   is looked up as `localhost`, which is how libpq documents it: "A host name of localhost
//!   matches both TCP (host name localhost) and Unix domain socket (pghost empty or the
//!   default socket directory) connections coming from the local machine." Any other socket
//!   directory is compared as written.
//! * The database compared is the one being connected to, so the maintenance connection
//!   that creates a missing target matches its own line ([`PassFile::lookup`] takes it).
//!
//! Passwords never appear in `Debug` output or messages; a match is reported by file and
//! line number only.

use std::path::{Path, PathBuf};

use crate::conninfo::{EnvLookup, DEFAULT_SOCKET_DIR};

/// The parsed file: every line that could match, in file order.
#[derive(Clone, PartialEq, Eq)]
pub struct PassFile {
    pub path: PathBuf,
    entries: Vec<Entry>,
}

#[derive(Clone, PartialEq, Eq)]
struct Entry {
    /// 1-based line number.
    line: usize,
    /// `None`: the field was `*`.
    fields: [Option<String>; 4],
    password: String,
}

/// A password found in the file, with where it came from.
#[derive(Clone, PartialEq, Eq)]
pub struct Found {
    pub password: String,
    pub line: usize,
}

impl std::fmt::Debug for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Found {{ line: {}, password: <hidden> }}", self.line)
    }
}

impl std::fmt::Debug for PassFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PassFile {{ path: {:?}, entries: {} }}",
            self.path,
            self.entries.len()
        )
    }
}

impl PassFile {
    /// Parse the file's text (pure).
    pub fn parse(path: PathBuf, text: &str) -> PassFile {
        let entries = text
            .split('\n')
            .enumerate()
            .filter_map(|(index, line)| {
                let line_no = index + 1;
                let line = line.strip_suffix('\r').unwrap_or(line);
                if line.is_empty() || line.starts_with('#') {
                    return None;
                }
                parse_line(line).map(|(fields, password)| Entry {
                    line: line_no,
                    fields,
                    password,
                })
            })
            .collect();
        PassFile { path, entries }
    }

    /// The password of the first line matching this connection; `None` when no line
    /// matches or the matching line's password is empty.
    pub fn lookup(&self, host: &str, port: u16, database: &str, user: &str) -> Option<Found> {
        let host = if host.is_empty() || host == DEFAULT_SOCKET_DIR {
            "localhost"
        } else {
            host
        };
        let port = port.to_string();
        let wanted = [host, port.as_str(), database, user];
        let entry = self.entries.iter().find(|e| {
            e.fields
                .iter()
                .zip(wanted)
                .all(|(field, value)| field.as_deref().is_none_or(|f| f == value))
        })?;
        (!entry.password.is_empty()).then(|| Found {
            password: entry.password.clone(),
            line: entry.line,
        })
    }
}

/// Split one line into four match fields and the password, resolving escapes; `None` for a
/// line with fewer than five fields.
fn parse_line(line: &str) -> Option<([Option<String>; 4], String)> {
    let mut fields: Vec<Option<String>> = Vec::with_capacity(4);
    let mut current = String::new();
    let mut escaped_any = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next) => {
                    current.push(next);
                    escaped_any = true;
                }
                None => current.push('\\'),
            },
            ':' if fields.len() < 4 => {
                let wildcard = current == "*" && !escaped_any;
                fields.push((!wildcard).then(|| std::mem::take(&mut current)));
                current.clear();
                escaped_any = false;
            }
            // The password ends at the next unescaped ':'; anything after it is ignored.
            ':' => break,
            _ => current.push(c),
        }
    }
    let fields: [Option<String>; 4] = fields.try_into().ok()?;
    Some((fields, current))
}

/// Which file to read: `passfile` from the connection string, `PGPASSFILE`, or the platform
/// default under the home directory. `None` when no home directory is known.
pub fn location(passfile: Option<&str>, env: EnvLookup<'_>) -> Option<PathBuf> {
    if let Some(path) = passfile.map(str::to_string).or_else(|| env("PGPASSFILE")) {
        return Some(PathBuf::from(path));
    }
    if cfg!(windows) {
        return env("APPDATA").map(|d| Path::new(&d).join("postgresql").join("pgpass.conf"));
    }
    env("HOME").map(|home| Path::new(&home).join(".pgpass"))
}

/// The outcome of reading the file: the entries, or why it was skipped.
pub enum Loaded {
    File(PassFile),
    /// No such file (nothing to say).
    Missing,
    /// Present but not used; the text is a warning for stderr.
    Ignored(String),
}

/// Read and parse `path`, applying the permission rule.
pub fn load(path: &Path) -> Loaded {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::Missing,
        Err(e) => {
            return Loaded::Ignored(format!(
                "could not read password file \"{}\": {e}",
                path.display()
            ))
        }
    };
    if !meta.is_file() {
        return Loaded::Ignored(format!(
            "password file \"{}\" is not a plain file; it is not used",
            path.display()
        ));
    }
    if let Some(warning) = permission_problem(path, &meta) {
        return Loaded::Ignored(warning);
    }
    match std::fs::read(path) {
        Ok(bytes) => Loaded::File(PassFile::parse(
            path.to_path_buf(),
            &String::from_utf8_lossy(&bytes),
        )),
        Err(e) => Loaded::Ignored(format!(
            "could not read password file \"{}\": {e}",
            path.display()
        )),
    }
}

#[cfg(unix)]
fn permission_problem(path: &Path, meta: &std::fs::Metadata) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    (meta.permissions().mode() & 0o077 != 0).then(|| {
        format!(
            "password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
            path.display()
        )
    })
}

#[cfg(not(unix))]
fn permission_problem(_path: &Path, _meta: &std::fs::Metadata) -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> PassFile {
        PassFile::parse(PathBuf::from("/home/u/.pgpass"), text)
    }

    fn pw(f: &PassFile, host: &str, port: u16, db: &str, user: &str) -> Option<String> {
        f.lookup(host, port, db, user).map(|found| found.password)
    }

    #[test]
    fn first_match_wins_and_wildcards() {
        let f = file("# comment\n\ndb1:5432:app:alice:one\n*:*:*:alice:two\n*:*:*:*:three\n");
        assert_eq!(pw(&f, "db1", 5432, "app", "alice").as_deref(), Some("one"));
        assert_eq!(
            pw(&f, "db1", 5432, "other", "alice").as_deref(),
            Some("two")
        );
        assert_eq!(pw(&f, "db2", 6000, "x", "bob").as_deref(), Some("three"));
        assert_eq!(f.lookup("db1", 5432, "app", "alice").unwrap().line, 3);
    }

    #[test]
    fn escapes() {
        let f = file("h\\:x:5432:d\\\\b:u:p\\:a\\\\ss:ignored\n\\*:5432:*:u:star\n");
        assert_eq!(pw(&f, "h:x", 5432, "d\\b", "u").as_deref(), Some("p:a\\ss"));
        // An escaped star is a literal star, not a wildcard.
        assert_eq!(pw(&f, "*", 5432, "d", "u").as_deref(), Some("star"));
        assert_eq!(pw(&f, "h", 5432, "d", "u"), None);
    }

    #[test]
    fn socket_connections_match_localhost() {
        let f = file("localhost:5432:*:u:local\n/tmp:5432:*:u:tmp\n");
        assert_eq!(
            pw(&f, "/var/run/postgresql", 5432, "d", "u").as_deref(),
            Some("local")
        );
        assert_eq!(
            pw(&f, "localhost", 5432, "d", "u").as_deref(),
            Some("local")
        );
        assert_eq!(pw(&f, "/tmp", 5432, "d", "u").as_deref(), Some("tmp"));
        assert_eq!(pw(&f, "127.0.0.1", 5432, "d", "u"), None);
    }

    #[test]
    fn per_database_lookup() {
        let f = file("*:*:postgres:u:admin\n*:*:app:u:apppw\n");
        assert_eq!(pw(&f, "h", 5432, "postgres", "u").as_deref(), Some("admin"));
        assert_eq!(pw(&f, "h", 5432, "app", "u").as_deref(), Some("apppw"));
    }

    #[test]
    fn short_lines_crlf_and_empty_passwords() {
        let f = file("h:5432:d:u\r\nh:5432:d:v:\r\nh:5432:d:w:pw\r\n");
        assert_eq!(pw(&f, "h", 5432, "d", "u"), None);
        assert_eq!(pw(&f, "h", 5432, "d", "v"), None);
        assert_eq!(pw(&f, "h", 5432, "d", "w").as_deref(), Some("pw"));
        // A leading space makes a line a normal line, as in libpq.
        let f = file(" #h:5432:d:u:x\n");
        assert_eq!(pw(&f, " #h", 5432, "d", "u").as_deref(), Some("x"));
    }

    #[test]
    fn debug_hides_passwords() {
        let f = file("*:*:*:*:secretpw\n");
        assert!(!format!("{f:?}").contains("secretpw"));
        let found = f.lookup("h", 1, "d", "u").unwrap();
        assert!(!format!("{found:?}").contains("secretpw"));
    }

    #[test]
    fn file_location() {
        let env = |k: &str| match k {
            "HOME" => Some("/home/u".to_string()),
            "PGPASSFILE" => Some("/etc/pgpass".to_string()),
            _ => None,
        };
        assert_eq!(location(Some("/p"), &env), Some(PathBuf::from("/p")));
        assert_eq!(location(None, &env), Some(PathBuf::from("/etc/pgpass")));
        let home_only = |k: &str| (k == "HOME").then(|| "/home/u".to_string());
        if cfg!(unix) {
            assert_eq!(
                location(None, &home_only),
                Some(PathBuf::from("/home/u/.pgpass"))
            );
        }
        assert_eq!(location(None, &|_| None), None);
    }

    #[cfg(unix)]
    #[test]
    fn group_readable_file_is_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(&path, "*:*:*:*:pw\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        match load(&path) {
            Loaded::Ignored(w) => assert!(w.contains("group or world access"), "{w}"),
            _ => panic!("a group-readable file must be ignored"),
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(load(&path), Loaded::File(_)));
        assert!(matches!(load(&dir.path().join("none")), Loaded::Missing));
        assert!(matches!(load(dir.path()), Loaded::Ignored(_)));
    }
}
