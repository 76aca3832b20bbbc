//! Where the statements of a project file start, for `pg_temp.pgmi_execute(path)`: it runs
//! a file statement by statement so that a failure can name the file's line and column.
//!
//! The statements are [`split::statements`]' top-level statements (PostgreSQL's own token
//! rules, one `standard_conforming_strings` value for the whole file, as when the file is
//! one `EXECUTE`). Statements that hold only white space, comments and `;` are dropped; each
//! kept one runs from its first token to the first token of the next (the comments between
//! two statements go with the earlier one, which the server skips), the last one to the
//! end of the file. Both session kinds use these: the extension computes them when
//! `pgmi_execute` runs (`pgmi-ext/src/execute.rs`), the portable session stores them at load
//! time (`pgmi-upload/src/portable/rows.rs`).
//!
//! Invariants: starts are strictly increasing byte offsets on char boundaries, each the
//! first byte of a token that is not blank; line and column are 1-based, the column counted
//! in characters. One pass over the text.

use crate::lexer::postgres::{self, TokenKind};
use crate::split::{self, Options};

/// One statement of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStatement {
    /// Byte offset (0-based) of the statement's first token.
    pub start: usize,
    /// Byte offset where its text ends: the next statement's start, or the file's length.
    pub end: usize,
    /// 1-based line of `start`.
    pub line: usize,
    /// 1-based column of `start`, in characters.
    pub column: usize,
}

/// The statements of `content` (see the module doc).
pub fn file_statements(content: &str, options: Options) -> Vec<FileStatement> {
    let src = content.as_bytes();
    let mut out: Vec<FileStatement> = Vec::new();
    let (mut pos, mut line, mut column) = (0usize, 1usize, 1usize);
    for range in split::statements(content, options) {
        let first = postgres::tokens(&src[range.clone()], options.standard_conforming_strings)
            .find(|t| !t.kind.is_blank());
        let Some(first) = first else { continue };
        if first.kind == TokenKind::Semicolon {
            // `;` ends a statement, so a first token `;` is the whole (empty) statement
            continue;
        }
        let start = range.start + first.range.start;
        let gap = &src[pos..start];
        let newlines = gap.iter().filter(|&&b| b == b'\n').count();
        let on_last_line = match gap.iter().rposition(|&b| b == b'\n') {
            Some(at) => {
                line += newlines;
                column = 1;
                &gap[at + 1..]
            }
            None => gap,
        };
        // characters: every byte but UTF-8 continuation bytes
        column += on_last_line.iter().filter(|&&b| b & 0xC0 != 0x80).count();
        pos = start;
        if let Some(last) = out.last_mut() {
            last.end = start;
        }
        out.push(FileStatement {
            start,
            end: src.len(),
            line,
            column,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn starts(content: &str, scs: bool) -> Vec<(String, usize, usize)> {
        file_statements(
            content,
            Options {
                standard_conforming_strings: scs,
            },
        )
        .into_iter()
        .map(|s| (content[s.start..s.end].to_string(), s.line, s.column))
        .collect()
    }

    #[test]
    fn statements_with_lines_and_columns() {
        let text = "-- header\n/* c */ SELECT 1;  -- one\n\n  SELEC 2;\n;\nCREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN PERFORM 1; RETURN 1; END $$;\n  é; SELECT 'x;'\n";
        assert_eq!(
            starts(text, true),
            vec![
                ("SELECT 1;  -- one\n\n  ".to_string(), 2, 9),
                ("SELEC 2;\n;\n".to_string(), 4, 3),
                (
                    "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN PERFORM 1; RETURN 1; END $$;\n  "
                        .to_string(),
                    6,
                    1
                ),
                ("é; ".to_string(), 7, 3),
                ("SELECT 'x;'\n".to_string(), 7, 6),
            ]
        );
    }

    #[test]
    fn blank_files_have_no_statements() {
        assert!(starts("", true).is_empty());
        assert!(starts("  -- only a comment\n/* and another */\n ; ;\n", true).is_empty());
    }

    #[test]
    fn standard_conforming_strings_decides_backslashes() {
        let text = "SELECT 'a\\'; SELECT 2; -- ';\nSELECT 3;";
        // on: the backslash is a character, the string ends after it
        assert_eq!(starts(text, true).len(), 3);
        // off: \' escapes the quote, the string runs to the `'` in the comment
        assert_eq!(
            starts(text, false),
            vec![
                ("SELECT 'a\\'; SELECT 2; -- ';\n".to_string(), 1, 1),
                ("SELECT 3;".to_string(), 2, 1)
            ]
        );
    }
}
