//! Writes the seed corpora of the fuzz targets: `seedgen <corpus dir>` creates
//! `<dir>/<target>/<name>` for every seed below (overwriting, never deleting).
//!
//! Seeds are small and each shows the fuzzer one feature of its input format; the fuzzer
//! combines them. Bundle seeds come from `pgmi_core::bundle::write` (real uploads) plus
//! hand-made tar streams with the entry kinds a `tar czf` can produce or an attacker can
//! craft. The bundle target gzips any input that does not start with the gzip magic, so
//! plain tar streams are seeds too.

use std::fs;
use std::io::Read;
use std::path::Path;

use pgmi_core::bundle;
use pgmi_core::project::RawFile;

const ID: &str = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";

fn main() {
    let dir = std::env::args().nth(1).expect("usage: seedgen <corpus dir>");
    let dir = Path::new(&dir);
    let put = |target: &str, name: &str, bytes: &[u8]| {
        let d = dir.join(target);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(name), bytes).unwrap();
    };

    for (name, sql) in sql_seeds() {
        put("lexer_split", name, sql.as_bytes());
    }
    for (name, sql) in meta_seeds() {
        put("meta_extract", name, sql.as_bytes());
    }
    for (name, text) in params_seeds() {
        put("params_file", name, text.as_bytes());
    }
    for (name, p) in path_seeds() {
        put("path_rules", name, p.as_bytes());
    }
    for (name, bytes) in bundle_seeds() {
        put("bundle_read", name, &bytes);
    }
}

fn sql_seeds() -> Vec<(&'static str, String)> {
    vec![
        ("plain", "SELECT 1;\nSELECT 2;\n".into()),
        (
            "head-and-tail",
            "BEGIN;\nCREATE TABLE t (a int);\nCOMMIT;\nCREATE INDEX CONCURRENTLY i ON t (a);\n\
             VACUUM t;\n-- trailing comment\n"
                .into(),
        ),
        (
            "terminator-forms",
            "begin; select 1; end work and no chain; rollback transaction to savepoint s;\n\
             abort; commit prepared 'x'; COMMIT1; commit_x;\r\nselect 'done';"
                .into(),
        ),
        (
            "dollar-quotes",
            "DO $$ BEGIN RAISE NOTICE 'x;'; END $$;\nCOMMIT;\nCREATE FUNCTION f() RETURNS text \
             AS $body$ SELECT $x$;$x$ $body$ LANGUAGE sql;\nSELECT a$b$c$b$, $1, $é$;\n$tag$ \
             unterminated ;"
                .into(),
        ),
        (
            "strings-and-escapes",
            "SELECT 'it''s', E'a\\'b;', e'\\\\', x'1;', U&'d\\0061t;', \"q\"\"i;\";\nCOMMIT;\n\
             SELECT 1e'x'; SELECT _e'y;'; SELECT E'unterminated \\"
                .into(),
        ),
        (
            "comments",
            "/* outer /* nested ; */ still ; */ SELECT 1; -- line ; comment\r\n\
             COMMIT; /* a */ -- b\n/* unterminated ; "
                .into(),
        ),
        (
            "begin-atomic",
            "COMMIT;\nCREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC\n  SELECT CASE \
             WHEN true THEN 1 ELSE 2 END;\n  SELECT 2;\nEND;\nCREATE PROCEDURE p() BEGIN ATOMIC \
             END;\nSELECT begin, atomic FROM t; SELECT (1;2);)\n"
                .into(),
        ),
        (
            "psql-like",
            "\\set ON_ERROR_STOP on\nCOMMIT;\n\\echo done\nSELECT :'var';\n".into(),
        ),
        (
            "multibyte",
            "SELECT 'ünïcödé;', \"Ä;\" -- ß\n; COMMIT; SELECT '€'; /* 日本 */ SELECT 1;".into(),
        ),
        ("demo-deploy", DEMO_DEPLOY.into()),
    ]
}

/// A shortened copy of the demo project's `deploy.sql`.
const DEMO_DEPLOY: &str = "BEGIN;\nCREATE SCHEMA IF NOT EXISTS demo;\nDO $$\nDECLARE\n    m record;\n\
BEGIN\n    FOR m IN SELECT p.path, p.content FROM pgmi_plan_view p ORDER BY p.execution_order\n\
    LOOP\n        RAISE NOTICE 'applying %', m.path;\n        EXECUTE m.content;\n    END LOOP;\n\
END\n$$;\nCOMMIT;\nVACUUM demo.t;\n";

fn meta_seeds() -> Vec<(&'static str, String)> {
    let full = format!(
        "/*\n<pgmi-meta id=\"{ID}\" idempotent=\"true\">\n  <description>Creates the users \
         table &amp; its index</description>\n  <sortKeys>\n    <key>10-core/0010</key>\n    \
         <key>20-data/0100</key>\n  </sortKeys>\n</pgmi-meta>\n*/\nCREATE TABLE users (id int);\n"
    );
    vec![
        ("full", full),
        (
            "self-closing",
            format!("-- header\n/* <pgmi-meta id=\"{ID}\" idempotent=\"false\"/> */\nSELECT 1;"),
        ),
        (
            "id-forms",
            format!(
                "/* <pgmi-meta id=\"urn:uuid:{ID}\" idempotent=\"1\"></pgmi-meta> */\n\
                 /* <other id=\"{{{ID}}}\"/> */"
            ),
        ),
        (
            "xml-features",
            format!(
                "/* <?xml version=\"1.0\"?><!-- c --><!DOCTYPE x>\n<p:pgmi-meta xmlns:p=\"u\" \
                 id='{ID}' idempotent=\"T\" extra=\"&#x41;&#65;&lt;\"><description><![CDATA[a<b]]>\
                 &quot;&apos;<b>bold</b>\r\n</description><sortKeys><key>k</key><junk/><key> x </key>\
                 </sortKeys><sortKeys><key>y</key></sortKeys></p:pgmi-meta> trailing */"
            ),
        ),
        (
            "invalid",
            "/* <pgmi-meta id=\"00000000-0000-0000-0000-000000000000\"><sortKeys><key> </key>\
             </sortKeys><description>  </description></pgmi-meta> */"
                .into(),
        ),
        (
            "syntax-error",
            "SELECT 1;\n\n/*\n  <pgmi-meta id=\"x\"\n     idempotent=true>\n*/".into(),
        ),
        (
            "old-and-multiple",
            format!(
                "/* <pgmi:meta xmlns:pgmi=\"https://example.invalid/v1\"> */\n\
                 /* <pgmi-meta id=\"{ID}\" idempotent=\"true\"/> */ /* < pgmi-meta > */"
            ),
        ),
        (
            "hidden-in-strings",
            format!(
                "SELECT '/* <pgmi-meta id=\"{ID}\"> */', $$ /* <pgmi-meta> */ $$, \"/*\";\n\
                 /* outer /* <pgmi-meta id=\"{ID}\" idempotent=\"true\"/> */ */"
            ),
        ),
        (
            "unterminated",
            format!("SELECT 1; /* <pgmi-meta id=\"{ID}\" idempotent=\"true\"></pgmi-meta>xy"),
        ),
    ]
}

fn params_seeds() -> Vec<(&'static str, String)> {
    vec![
        (
            "basic",
            "# deployment settings\nenv=production\nregion = eu-west-1 \n\n".into(),
        ),
        (
            "quotes",
            "\u{feff}greeting=\"hello world\"\r\nname='x'\r\nodd=\"unbalanced'\nempty=\nurl=a=b=c\n"
                .into(),
        ),
        (
            "keys",
            "Env=1\nenv=2\n_under=3\n9bad=4\nkey-with-dash=5\nDB_PASSWORD=s3cret\n".into(),
        ),
        ("errors", "novalue\n=value\n".into()),
        ("nul", "k=a\0b\n".into()),
    ]
}

fn path_seeds() -> Vec<(&'static str, String)> {
    vec![
        ("simple", "migrations/001_init.sql".into()),
        ("dot-slash", "./schema/tables/users.SQL".into()),
        ("messy", "  .//a\\b//c/./d.ddl  ".into()),
        ("tests", "./__tests__/a/b/_setup.psql".into()),
        ("dunder", "./x/__init__/__test__/__y__/z.sql".into()),
        ("extension", "./d/archive.tar.gz".into()),
        ("control", "./a\tb/\u{7}c\u{85}\"q\".sql".into()),
        ("deep", "d/".repeat(101) + "f.sql"),
        ("trailing", "./dir/".into()),
    ]
}

fn file(path: &str, text: &str) -> RawFile {
    RawFile {
        path: path.into(),
        bytes: text.as_bytes().to_vec(),
    }
}

fn bundle_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let project = vec![
        file(
            "migrations/001_init.sql",
            &format!("/* <pgmi-meta id=\"{ID}\" idempotent=\"false\"/> */\nCREATE TABLE t (a int);\n"),
        ),
        file("migrations/002_data.sql", "INSERT INTO t VALUES (1);\n"),
        file("__test__/_setup.sql", "SELECT 1;\n"),
        file("__test__/test_t.sql", "SELECT count(*) FROM t;\n"),
        file("data/greetings.json", "{\"en\": \"hello\"}\n"),
        file("empty.sql", ""),
    ];
    let params = vec![
        ("env".to_owned(), "test".to_owned()),
        ("greeting".to_owned(), "hi \"there\"".to_owned()),
    ];
    let long = file(&format!("{}long_name.sql", "nested_directory/".repeat(8)), "SELECT 1;\n");
    let gz_project = bundle::write(&project, &params).unwrap();
    let gz_long = bundle::write(&[long], &[]).unwrap();
    let gz_empty = bundle::write(&[], &[]).unwrap();

    let mut seeds = vec![
        ("project.tar.gz", gz_project.clone()),
        ("long-name.tar.gz", gz_long.clone()),
        ("empty.tar.gz", gz_empty),
        ("project.tar", gunzip(&gz_project)),
        ("long-name.tar", gunzip(&gz_long)),
    ];

    // Hand-made archives, uncompressed (the target gzips them).
    let mut hand = |name: &'static str, entries: &[(&str, tar::EntryType, &[u8])]| {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            // Raw names, unchecked: `..` and absolute paths must reach the reader.
            let field = &mut h.as_old_mut().name;
            let n = path.len().min(field.len());
            field[..n].copy_from_slice(&path.as_bytes()[..n]);
            if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
                h.set_link_name("target.sql").unwrap();
            }
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        seeds.push((name, b.into_inner().unwrap()));
    };
    use tar::EntryType as E;
    hand(
        "tar-czf-style.tar",
        &[
            ("./", E::Directory, b""),
            ("./a/", E::Directory, b""),
            ("./a/x.sql", E::Regular, b"SELECT 1;"),
            ("./.git/config", E::Regular, b"[core]"),
            ("./deploy.sql", E::Regular, b"COMMIT;"),
            ("./node_modules/m.sql", E::Regular, b""),
        ],
    );
    hand(
        "hostile.tar",
        &[
            ("../escape.sql", E::Regular, b"x"),
            ("/abs.sql", E::Regular, b"x"),
            ("link.sql", E::Symlink, b""),
            ("hard.sql", E::Link, b""),
            ("dev", E::Char, b""),
        ],
    );
    hand(
        "duplicates-and-params.tar",
        &[
            ("a.sql", E::Regular, b"1"),
            ("./a.sql", E::Regular, b"2"),
            (".pgmi/parameters.json", E::Regular, b"[[\"k\",\"v\"]]"),
            (".pgmi/parameters.json", E::Regular, b"[[\"k\",1]]"),
        ],
    );
    hand(
        "pax.tar",
        &[
            ("pax_global_header", E::XGlobalHeader, b"18 comment=hello\n"),
            ("PaxHeaders/x", E::XHeader, b"25 path=renamed/by/pax\n"),
            ("x.sql", E::Regular, b"SELECT 1;"),
        ],
    );
    seeds
}

fn gunzip(gz: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz).read_to_end(&mut out).unwrap();
    out
}
