use super::*;

fn texts(script: &str) -> Vec<String> {
    split(script).into_iter().map(|u| u.text).collect()
}

fn trimmed(script: &str) -> Vec<String> {
    split(script)
        .into_iter()
        .map(|u| u.text.trim_start_matches(['\n', ' ']).to_owned())
        .collect()
}

#[test]
fn head_through_first_commit_then_one_unit_per_statement() {
    let script = "BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;\nCREATE INDEX CONCURRENTLY i ON t (id);\nANALYZE t;\n";
    let units = split(script);
    assert_eq!(units.len(), 3);
    assert_eq!(units[0].text, "BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;");
    assert_eq!((units[0].first_line, units[0].first_column), (1, 1));
    assert_eq!(units[1].text, "\nCREATE INDEX CONCURRENTLY i ON t (id);");
    assert_eq!((units[1].first_line, units[1].first_column), (3, 8));
    assert_eq!(units[2].text, "\nANALYZE t;");
    assert_eq!((units[2].first_line, units[2].first_column), (4, 39));
}

#[test]
fn tail_statements_are_consecutive_units() {
    let script = "BEGIN; CREATE TABLE head_t(id int); COMMIT; CREATE TABLE tail_before(id int); BEGIN; INSERT INTO tail_before VALUES (1); SELECT 1/0; COMMIT;";
    assert_eq!(
        trimmed(script),
        [
            "BEGIN; CREATE TABLE head_t(id int); COMMIT;",
            "CREATE TABLE tail_before(id int);",
            "BEGIN;",
            "INSERT INTO tail_before VALUES (1);",
            "SELECT 1/0;",
            "COMMIT;"
        ]
    );
    // Units are consecutive slices; the column is where each starts.
    let mut at = 0;
    for unit in split(script) {
        assert_eq!(&script[at..at + unit.text.len()], unit.text);
        assert_eq!((unit.first_line, unit.first_column), (1, at + 1));
        at += unit.text.len();
    }
    assert_eq!(at, script.len());
}

#[test]
fn savepoints_prepared_and_hidden_commits_do_not_end_the_head() {
    for script in [
        "BEGIN; SAVEPOINT s; ROLLBACK TO SAVEPOINT s; SELECT 1;",
        "BEGIN; SAVEPOINT s; ROLLBACK TRANSACTION TO SAVEPOINT s; SELECT 1;",
        "BEGIN; SAVEPOINT s; ROLLBACK WORK TO s; SELECT 1;",
        "COMMIT PREPARED 'x'; SELECT 1;",
        "ROLLBACK PREPARED 'x'; SELECT 1;",
        "SELECT 'COMMIT;'; SELECT 1;",
        "SELECT 1; -- COMMIT;\nSELECT 2;",
        "SELECT 1; /* COMMIT; */ SELECT 2;",
        "DO $$ BEGIN COMMIT; END $$; SELECT 1;",
        "SELECT \"COMMIT;\"; SELECT 1;",
        "SELECT (1); SELECT f(x, (COMMIT)); SELECT 2;",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 1 END; END; SELECT 2;",
        // Whole identifiers: none of these is COMMIT or END.
        "BEGIN; COMMIT1; SELECT 1;",
        "BEGIN; COMMIT_x; SELECT 1;",
        "BEGIN; commit$; SELECT 1;",
    ] {
        assert_eq!(texts(script), [script], "{script:?}");
    }
}

#[test]
fn every_terminator_form_ends_the_head() {
    for (script, head) in [
        ("BEGIN; END; SELECT 1;", "BEGIN; END;"),
        ("BEGIN; ABORT; SELECT 1;", "BEGIN; ABORT;"),
        ("begin; commit; select 1;", "begin; commit;"),
        (
            "BEGIN; COMMIT AND CHAIN; SELECT 1;",
            "BEGIN; COMMIT AND CHAIN;",
        ),
        (
            "BEGIN; COMMIT AND NO CHAIN; SELECT 1;",
            "BEGIN; COMMIT AND NO CHAIN;",
        ),
        ("BEGIN; ROLLBACK WORK; SELECT 1;", "BEGIN; ROLLBACK WORK;"),
        (
            "BEGIN; COMMIT TRANSACTION; SELECT 1;",
            "BEGIN; COMMIT TRANSACTION;",
        ),
        (
            "BEGIN; /* c */ COMMIT /* c */; SELECT 1;",
            "BEGIN; /* c */ COMMIT /* c */;",
        ),
    ] {
        let units = texts(script);
        assert_eq!(units.len(), 2, "{script:?}");
        assert_eq!(units[0], head, "{script:?}");
        assert!(units[1].trim_start().eq_ignore_ascii_case("SELECT 1;"));
    }
}

#[test]
fn atomic_body_in_tail_is_one_statement() {
    let body = "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN true THEN 1 END; SELECT 2; END;";
    let script = format!("COMMIT; {body} SELECT 3;");
    assert_eq!(trimmed(&script), ["COMMIT;", body, "SELECT 3;"]);
    // Empty body closes in the same statement.
    let script = "COMMIT; CREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC END; SELECT 3;";
    assert_eq!(trimmed(script).len(), 3, "{:?}", trimmed(script));
    // Only a CREATE FUNCTION/PROCEDURE has a body: a query selecting `begin` as `atomic` has
    // none, whatever separates the two words.
    for script in [
        "COMMIT; SELECT begin, atomic FROM t; SELECT 3;",
        "COMMIT; SELECT begin atomic FROM t; SELECT 3;",
        "COMMIT; SELECT begin /**/ atomic FROM t; SELECT 3;",
    ] {
        assert_eq!(trimmed(script).len(), 3, "{script:?}");
    }
    // A comment between BEGIN and ATOMIC is white space to the server.
    let body = "CREATE OR REPLACE PROCEDURE p() LANGUAGE sql BEGIN /* c */ ATOMIC SELECT 1; END;";
    assert_eq!(
        trimmed(&format!("COMMIT; {body} SELECT 3;")),
        ["COMMIT;", body, "SELECT 3;"]
    );
    // Words are whole identifiers: `week_end` does not close the body, and `AS end` is a label.
    for body in [
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT week_end FROM t; END;",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1 AS end; SELECT t.case FROM t; END;",
    ] {
        assert_eq!(trimmed(&format!("COMMIT; {body} SELECT 3;")), ["COMMIT;", body, "SELECT 3;"]);
        // In the head, a body's END is not a terminator.
        let script = format!("{body} COMMIT; SELECT 3;");
        assert_eq!(texts(&script)[0], format!("{body} COMMIT;"), "{script:?}");
    }
}

#[test]
fn terminator_without_semicolon_and_trailing_blank() {
    assert_eq!(
        texts("BEGIN; SELECT 1; COMMIT"),
        ["BEGIN; SELECT 1; COMMIT"]
    );
    assert_eq!(
        texts("BEGIN; COMMIT; -- done\n/* bye */\n"),
        ["BEGIN; COMMIT; -- done\n/* bye */\n"]
    );
    assert_eq!(texts("SELECT 1;"), ["SELECT 1;"]);
    assert_eq!(texts("  \n"), ["  \n"]);
    assert!(split("").is_empty());
}

#[test]
fn tail_segments_blank_dropped_lone_semicolon_kept_comments_carried() {
    let script = "COMMIT;\n;\n  \n-- note\nSELECT 1;\n\n";
    let units = split(script);
    assert_eq!(units.len(), 3);
    assert_eq!(units[1].text, "\n;");
    assert_eq!((units[1].first_line, units[1].first_column), (1, 8));
    assert_eq!(units[2].text, "\n  \n-- note\nSELECT 1;");
    assert_eq!((units[2].first_line, units[2].first_column), (2, 2));
    // A trailing statement without `;` is a unit too.
    assert_eq!(trimmed("COMMIT; SELECT 1"), ["COMMIT;", "SELECT 1"]);
}

#[test]
fn stray_close_parenthesis_does_not_hide_later_semicolons() {
    // psql never lets the depth go below zero; the server rejects the `)` either way.
    assert_eq!(texts("SELECT 1); COMMIT; SELECT 2;").len(), 2);
}

#[test]
fn scans_like_postgres_where_the_original_pgmi_did_not() {
    // `$` inside an identifier opens no dollar quote: the COMMIT is seen.
    assert_eq!(
        trimmed("SELECT 1 AS audit$v1$; COMMIT; SELECT 2;"),
        ["SELECT 1 AS audit$v1$; COMMIT;", "SELECT 2;"]
    );
    // Tags follow the identifier rules, bytes >= 0x80 included: `$é$` is a dollar quote.
    assert_eq!(texts("SELECT $é$ ; COMMIT; $é$; SELECT 2;").len(), 1);
    // A lone `\r` ends a line comment.
    assert_eq!(texts("BEGIN; -- x\rCOMMIT; SELECT 2;").len(), 2);
    // A quote continuation keeps the escape rule of the first segment.
    assert_eq!(texts("SELECT E'a'\n'\\'; COMMIT; '; SELECT 2;").len(), 1);
    // U& strings take no backslash escapes.
    assert_eq!(texts("SELECT U&'a\\'; COMMIT; SELECT 2;").len(), 2);
    // Nested comments.
    assert_eq!(
        texts("SELECT 1 /* a /* COMMIT; */ b */; SELECT 2;").len(),
        1
    );
}

#[test]
fn standard_conforming_strings_off() {
    let script = "SELECT 'a\\'; COMMIT; SELECT 2;";
    assert_eq!(texts(script).len(), 2);
    let off = Options {
        standard_conforming_strings: false,
    };
    let units = split_with(script, off);
    assert_eq!(units.len(), 1, "the string runs to the end: {units:?}");
    // A SET in the tail changes how the following units are scanned, and the units say so.
    let script =
        "COMMIT; SET standard_conforming_strings = off; SELECT 'a\\'; SELECT 3; '; SELECT 4;";
    let units = split(script);
    assert_eq!(units.len(), 4, "{units:?}");
    assert!(units[1].standard_conforming_strings);
    assert!(!units[2].standard_conforming_strings);
    assert_eq!(units[2].text, " SELECT 'a\\'; SELECT 3; ';");
    // RESET returns to the initial value; SET in a head that rolls back is undone.
    let script = "COMMIT; SET SESSION standard_conforming_strings TO 'off'; RESET ALL; SELECT 'a\\'; SELECT 2;";
    assert_eq!(split(script).len(), 5);
    let script = "BEGIN; SET standard_conforming_strings TO off; ROLLBACK; SELECT 'a\\'; SELECT 2;";
    assert_eq!(split(script).len(), 3);
    let script = "BEGIN; SET standard_conforming_strings TO off; COMMIT; SELECT 'a\\'; SELECT 2;";
    assert_eq!(split(script).len(), 2);
    // The head is one message: a SET inside it does not change how the head is scanned.
    let script = "SET standard_conforming_strings = off; SELECT 'a\\'; COMMIT; SELECT 2;";
    assert_eq!(split(script).len(), 2);
}

#[test]
fn unit_locate_maps_to_script_lines_and_character_columns() {
    let script = "COMMIT; SELECT 'é';\nSELECT 'ü'; SELEC 1;";
    let units = split(script);
    assert_eq!(units.len(), 4);
    let last = &units[3];
    assert_eq!(last.text, " SELEC 1;");
    assert_eq!((last.first_line, last.first_column), (2, 12));
    // The server points at `S` (2nd character of the text sent).
    let loc = last.locate(2).unwrap();
    assert_eq!((loc.line, loc.column), (2, 13));
    assert_eq!(loc.source_line, format!("{} SELEC 1;", " ".repeat(11)));
    // Later lines of a unit are the script's lines as they are.
    let script = "COMMIT;\nSELECT 1,\n  2 +;";
    let unit = &split(script)[1];
    let loc = unit.locate(unit.text.len()).unwrap();
    assert_eq!(
        (loc.line, loc.column, loc.source_line.as_str()),
        (3, 6, "  2 +;")
    );
    assert_eq!(unit.locate(0), None);
    assert_eq!(unit.locate(unit.text.chars().count() + 2), None);
}

#[test]
fn tail_bytes_are_linear() {
    // 20,000 one-line statements: the units hold the script's bytes once.
    let mut script = String::from("COMMIT;\n");
    for i in 0..20_000 {
        script.push_str(&format!("SELECT {i};\n"));
    }
    let units = split(&script);
    assert_eq!(units.len(), 20_001);
    let sent: usize = units.iter().map(|u| u.text.len()).sum();
    assert!(sent <= script.len(), "{sent} > {}", script.len());
    assert_eq!(units[20_000].first_line, 20_000);
}

#[test]
fn locate_counts_characters() {
    let text = "SELECT 'é';\r\nSELEC 1;";
    // `S` of SELEC is the 14th character (é counts once, \r and \n count).
    let loc = locate(text, 14).unwrap();
    assert_eq!(
        loc,
        Location {
            line: 2,
            column: 1,
            source_line: "SELEC 1;".into()
        }
    );
    let loc = locate(text, 10).unwrap();
    assert_eq!(
        (loc.line, loc.column, loc.source_line.as_str()),
        (1, 10, "SELECT 'é';")
    );
    assert_eq!(locate("SELEC 1;", 1).unwrap().column, 1);
    // One past the end is "at end of input"; further is out of range; 0 is no position.
    assert_eq!(locate("ab", 3).unwrap().column, 3);
    assert_eq!(locate("ab", 4), None);
    assert_eq!(locate("ab", 0), None);
    assert_eq!(
        locate("", 1).unwrap(),
        Location {
            line: 1,
            column: 1,
            source_line: String::new()
        }
    );
    assert_eq!(locate("a\r\r\n", 2).unwrap().source_line, "a");
}
