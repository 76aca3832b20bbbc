//! `pgmi-upload bundle`: one self-contained SQL script with which `psql -X -v
//! ON_ERROR_STOP=1 -d <db> -f <script>` performs the same deploy as `pgmi-upload deploy`.
//!
//! The script, in order:
//! 1. psql settings (`ON_ERROR_STOP`, `client_encoding = UTF8`: the data below is UTF-8
//!    whatever the database encoding) and checks that every `--param-var` psql variable is
//!    set, before anything is touched;
//! 2. the deploy lock (the uploader's key, so scripts and the uploader exclude each other);
//! 3. the session, in one transaction: for `portable`, the `sql/` files the uploader sends and
//!    the rows as text-format `COPY … FROM stdin` blocks (the same [`rows`] the uploader
//!    sends in binary); for `extension`, the bundle as one COPY row handed to `pgmi_load`;
//!    then the `--param-var` parameters, read from psql variables when the script runs;
//! 4. deploy.sql, macro forms rewritten as for `deploy`, split into the same execution units:
//!    psql sends a statement at each `;`, so inside a unit every top-level `;` but the last is
//!    written `\;`, which makes psql send the whole unit as one message — the atomic head
//!    stays atomic, tail statements stay one per message.
//!
//! Secrets: parameter keys that look secret (`pgmi_core::params::looks_secret`) are refused
//! as values; `--param-var key=VAR` makes the script read them from `:'VAR'` instead.
//!
//! psql reads the script through its own lexer: it interprets backslash commands and
//! `:name` variables outside quotes. SQL has no backslash outside string literals and the
//! script defines no variables of its own but `pgmi_reload`/`pgmi_install`/`pgmi_schema`, so
//! deploy.sql passes through unchanged; COPY data lines are never interpreted.

use std::fmt::Write as _;

use pgmi_core::lexer;
use pgmi_core::project::Project;
use pgmi_core::split::Unit;

use crate::portable::{self, rows};
use rows::{Value, TABLES};

/// A `--param-var KEY=VAR`: parameter `key` takes the value of psql variable `var`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamVar {
    pub key: String,
    pub var: String,
}

/// Which session the script builds.
pub enum Session<'a> {
    Portable { project: &'a Project },
    Extension { bundle: &'a [u8] },
}

/// Everything a script is made of.
pub struct Parts<'a> {
    pub session: Session<'a>,
    /// Parameters written into the script (none of them secret-looking).
    pub params: &'a [(String, String)],
    pub param_vars: &'a [ParamVar],
    /// deploy.sql, rewritten and split.
    pub units: &'a [Unit],
    /// `SET lock_timeout` before deploy.sql: `Some(None)` turns it off (0), `None` leaves
    /// the server's setting.
    pub lock_timeout: Option<Option<std::time::Duration>>,
    /// For the header comment.
    pub files: usize,
    pub project_name: &'a str,
}

const LOCK: &str = concat!(
    "DO $pgmi$
BEGIN
    IF NOT pg_catalog.pg_try_advisory_lock(",
    crate::session::deploy_lock_key!(),
    ") THEN
        RAISE EXCEPTION 'concurrent deployment in progress: another pgmi deployment is already running against \"%\"',
                        pg_catalog.current_database()
            USING ERRCODE = '55P03', HINT = 'wait for it to finish, then deploy again';
    END IF;
END
$pgmi$;
"
);

/// temp_buffers can only change before the session's first temporary table (as in
/// `session::load_portable`); a script run a second time in one psql session skips it.
const TEMP_BUFFERS: &str = concat!(
    "DO $pgmi$
BEGIN
    IF pg_catalog.pg_my_temp_schema() OPERATOR(pg_catalog.=) 0 THEN
        PERFORM ",
    crate::session::raise_temp_buffers!(),
    ";
    END IF;
END
$pgmi$;
"
);

/// Writes the script.
pub fn write(parts: &Parts<'_>) -> String {
    let mut out = String::new();
    let kind = match parts.session {
        Session::Portable { .. } => "portable",
        Session::Extension { .. } => "extension",
    };
    let _ = write!(
        out,
        "-- pgmi deploy script for project {name:?} ({files} file(s), {kind} session), written by pgmi-upload {version}.\n\
         -- Run: psql -X -v ON_ERROR_STOP=1 -d <database>{vars} -f <this file>\n\
         -- It does what `pgmi-upload deploy --session {kind}` does: load the project into a\n\
         -- session, then run deploy.sql (the atomic head as one transaction, then each statement).\n\n",
        name = parts.project_name,
        files = parts.files,
        version = env!("CARGO_PKG_VERSION"),
        vars = parts
            .param_vars
            .iter()
            .map(|v| format!(" -v {}=...", v.var))
            .collect::<String>(),
    );
    out.push_str("\\set ON_ERROR_STOP on\nSET client_encoding = 'UTF8';\n");
    for v in parts.param_vars {
        let _ = write!(
            out,
            "\\if :{{?{var}}}\n\\else\nDO $pgmi$ BEGIN RAISE EXCEPTION 'psql variable {var} is not set: it holds parameter {key}' USING ERRCODE = '22023', HINT = 'run psql with -v {var}=<value>'; END $pgmi$;\n\\endif\n",
            var = v.var,
            key = v.key,
        );
    }
    out.push_str("\n-- The deploy lock.\n");
    out.push_str(LOCK);
    out.push_str("\n-- The session.\n");
    out.push_str(TEMP_BUFFERS);
    match parts.session {
        Session::Portable { project } => portable_session(&mut out, project, parts),
        Session::Extension { bundle } => extension_session(&mut out, bundle, parts),
    }
    if let Some(timeout) = parts.lock_timeout {
        let ms = timeout.map_or(0, |d| d.as_millis());
        let _ = write!(out, "\n-- --lock-timeout\nSET lock_timeout = '{ms}ms';\n");
    }
    out.push_str("\n-- deploy.sql\n");
    for unit in parts.units {
        out.push_str(&psql_unit(&unit.text));
    }
    out.push_str(OPEN_TRANSACTION_CHECK);
    out
}

/// As `pgmi-upload deploy` does: a deploy.sql that ends inside a transaction block fails
/// (psql would roll it back silently at exit). The check statement runs inside that block
/// when one is open, so its statement and transaction timestamps differ.
const OPEN_TRANSACTION_CHECK: &str = "
-- deploy.sql must not end inside an open transaction.
SELECT pg_catalog.statement_timestamp() OPERATOR(pg_catalog.<>) pg_catalog.transaction_timestamp() AS pgmi_open_transaction \\gset
\\if :pgmi_open_transaction
DO $pgmi$ BEGIN RAISE EXCEPTION 'deploy.sql ended inside an open transaction; it is rolled back, so the statements since its BEGIN are not committed' USING ERRCODE = '25001', HINT = 'end deploy.sql with COMMIT (or an explicit ROLLBACK if not committing is intended)'; END $pgmi$;
\\endif
";

fn portable_session(out: &mut String, project: &Project, parts: &Parts<'_>) {
    out.push_str("BEGIN;\n");
    out.push_str(
        "SELECT pg_catalog.to_regclass('pg_temp._pgmi_source') IS NOT NULL AS pgmi_reload \\gset\n\\if :pgmi_reload\n",
    );
    push_sql(out, portable::SESSION_DROP_SQL);
    out.push_str("\\endif\n");
    push_sql(out, portable::SESSION_SQL);
    push_sql(out, portable::SESSION_PORTABLE_SQL);
    for table in TABLES {
        if rows::row_count(table, project, parts.params) == 0 {
            continue;
        }
        out.push_str(&table.copy_statement(""));
        out.push_str(";\n");
        rows::each_row(table, project, parts.params, |values| text_row(out, values));
        out.push_str("\\.\n");
    }
    push_sql(out, portable::SESSION_CONSTRAINTS_SQL);
    param_vars(out, parts.param_vars);
    if !parts.params.is_empty() || !parts.param_vars.is_empty() {
        set_parameters(out);
    }
    if project.files_loaded > 0 {
        out.push_str(portable::ANALYZE_SQL);
        out.push_str(";\n");
    }
    out.push_str("COMMIT;\n");
}

fn extension_session(out: &mut String, bundle: &[u8], parts: &Parts<'_>) {
    out.push_str(
        "SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'pgmi') AS pgmi_install \\gset\n\\if :pgmi_install\nCREATE EXTENSION pgmi;\n\\endif\n",
    );
    out.push_str(concat!(
        "SELECT pg_catalog.quote_ident(n.nspname) AS pgmi_schema FROM ",
        pgmi_core::extension_schema_from!(),
        " \\gset\n"
    ));
    out.push_str("BEGIN;\n");
    out.push_str(crate::session::CREATE_UPLOAD_TABLE);
    out.push_str(";\n");
    out.push_str("COPY pg_temp._pgmi_upload (data) FROM stdin;\n\\\\x");
    for b in bundle {
        let _ = write!(out, "{b:02x}");
    }
    out.push_str("\n\\.\n");
    out.push_str("SELECT files, sql_files, test_files, bytes, parameters FROM :pgmi_schema.pgmi_load((SELECT data FROM pg_temp._pgmi_upload));\n");
    param_vars(out, parts.param_vars);
    if !parts.param_vars.is_empty() {
        set_parameters(out);
    }
    out.push_str("COMMIT;\n");
}

/// `sql/` text, ending in a newline.
fn push_sql(out: &mut String, sql: &str) {
    out.push_str(sql);
    if !sql.ends_with('\n') {
        out.push('\n');
    }
}

fn param_vars(out: &mut String, vars: &[ParamVar]) {
    for v in vars {
        // The key is validated (`\w+`, lower case); psql quotes the variable's value.
        let _ = writeln!(
            out,
            "INSERT INTO pg_temp._pgmi_parameter (key, value) VALUES ('{}', :'{}');",
            v.key, v.var
        );
    }
}

fn set_parameters(out: &mut String) {
    let _ = writeln!(
        out,
        "DO $pgmi$ BEGIN PERFORM {}; END $pgmi$;",
        portable::SET_PARAMETERS_SQL.trim_start_matches("SELECT ")
    );
}

/// One row of text-format COPY (PostgreSQL docs, "COPY — Text Format").
fn text_row(out: &mut String, values: &[Value<'_>]) {
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.push('\t');
        }
        match *value {
            Value::Null => out.push_str("\\N"),
            Value::Text(text) => copy_escape(out, text),
            Value::Int4(n) => {
                let _ = write!(out, "{n}");
            }
            Value::Int8(n) => {
                let _ = write!(out, "{n}");
            }
            Value::Bool(b) => out.push(if b { 't' } else { 'f' }),
            Value::Uuid(bytes) => {
                for (j, b) in bytes.iter().enumerate() {
                    if matches!(j, 4 | 6 | 8 | 10) {
                        out.push('-');
                    }
                    let _ = write!(out, "{b:02x}");
                }
            }
            Value::TextArray(items) => {
                // The array literal (every element double-quoted, `"` and `\` escaped),
                // then escaped again as a COPY value.
                let mut literal = String::from("{");
                for (j, item) in items.iter().enumerate() {
                    if j > 0 {
                        literal.push(',');
                    }
                    literal.push('"');
                    for c in item.chars() {
                        if c == '"' || c == '\\' {
                            literal.push('\\');
                        }
                        literal.push(c);
                    }
                    literal.push('"');
                }
                literal.push('}');
                copy_escape(out, &literal);
            }
        }
    }
    out.push('\n');
}

/// COPY text escaping: backslash, newline, carriage return and tab (the delimiter) are
/// written as backslash sequences; every other character stands for itself.
fn copy_escape(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
}

/// One execution unit as psql must read it to send it as one message: every top-level `;`
/// but the unit's final one becomes `\;`, and a unit that does not end in `;` gets one.
/// The uploader's padding (leading newlines and spaces, there for error positions) is
/// dropped.
fn psql_unit(text: &str) -> String {
    let text = text.trim_start_matches(['\n', ' ']);
    let mask = lexer::mask_bytes(text.as_bytes());
    let last_code = mask.iter().rposition(|b| !b.is_ascii_whitespace());
    let ends_with_semicolon = last_code.is_some_and(|i| mask[i] == b';');
    let mut out = String::with_capacity(text.len() + 16);
    let mut copied = 0;
    for (i, b) in mask.iter().enumerate() {
        if *b == b';' && !(ends_with_semicolon && Some(i) == last_code) {
            out.push_str(&text[copied..i]);
            out.push_str("\\;");
            copied = i + 1;
        }
    }
    out.push_str(&text[copied..]);
    if !ends_with_semicolon {
        out.push_str("\n;");
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_become_one_psql_message_each() {
        assert_eq!(
            psql_unit("CREATE TABLE a(); CREATE TABLE b();"),
            "CREATE TABLE a()\\; CREATE TABLE b();\n"
        );
        assert_eq!(psql_unit("\n\n   SELECT 1;"), "SELECT 1;\n");
        assert_eq!(psql_unit("SELECT ';'; -- x;\n"), "SELECT ';'; -- x;\n\n");
        assert_eq!(psql_unit("SELECT 1; SELECT 2"), "SELECT 1\\; SELECT 2\n;\n");
        assert_eq!(
            psql_unit("DO $$ BEGIN PERFORM 1; END $$; SELECT 1;"),
            "DO $$ BEGIN PERFORM 1; END $$\\; SELECT 1;\n"
        );
    }

    #[test]
    fn copy_text_escapes() {
        let mut out = String::new();
        let parts = vec![".".to_string(), "a\"b\\c\td".to_string()];
        let id = [0xAB; 16];
        text_row(
            &mut out,
            &[
                Value::Text("a\\b\nc\rd\te"),
                Value::Null,
                Value::Int4(-1),
                Value::Bool(false),
                Value::Uuid(&id),
                Value::TextArray(&parts),
                Value::TextArray(&[]),
            ],
        );
        assert_eq!(
            out,
            "a\\\\b\\nc\\rd\\te\t\\N\t-1\tf\tabababab-abab-abab-abab-abababababab\t{\".\",\"a\\\\\"b\\\\\\\\c\\td\"}\t{}\n"
        );
    }
}
