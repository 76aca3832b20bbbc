use super::*;

const ID: &str = "550e8400-e29b-41d4-a716-446655440000";
const P: &str = "./migrations/001.sql";

fn block(attrs: &str, inner: &str) -> String {
    format!("/* <pgmi-meta {attrs}>{inner}</pgmi-meta> */")
}

fn valid() -> String {
    block(&format!(r#"id="{ID}" idempotent="true""#), "")
}

fn get(content: &str) -> Option<Metadata> {
    match extract(P, content) {
        Ok(m) => m,
        Err(e) => panic!("{content:?}: {e}"),
    }
}

fn err(content: &str) -> MetaError {
    match extract(P, content) {
        Err(e) => e,
        Ok(m) => panic!("{content:?}: expected an error, got {m:?}"),
    }
}

#[test]
fn metadata_is_found_in_any_top_level_block_comment_only() {
    let m = get(&format!("SELECT 1; {}", valid())).unwrap();
    assert_eq!(m.id.to_string(), ID);
    assert!(m.idempotent);
    assert_eq!(m.description, "");
    assert!(m.sort_keys.is_empty());
    // Any top-level block comment counts, not just the first.
    assert!(get(&format!("/* header */ SELECT 1; {}", valid())).is_some());
    // Never in line comments, strings, dollar bodies or quoted identifiers.
    let tag = format!(r#"<pgmi-meta id="{ID}" idempotent="true"/>"#);
    assert_eq!(get(&format!("-- /* {tag} */\nSELECT 1;")), None);
    assert_eq!(get(&format!("DO $$ /* {tag} */ $$;")), None);
    assert_eq!(get(&format!("SELECT '/* {tag} */';")), None);
    assert_eq!(get(&format!("SELECT \"/* {tag} */\";")), None);
    // Case-sensitive element name; `<pgmi-meta/>` lacks the space/`>` the detector needs.
    assert_eq!(get(&valid().replace("pgmi-meta", "PGMI-META")), None);
    assert_eq!(get("/* <pgmi-meta/> */"), None);
    assert_eq!(get("SELECT 1;"), None);
    // Nested comments belong to their outermost comment, whose whole text is the block.
    let m = get(&format!("/* <pgmi-meta id=\"{ID}\" idempotent=\"false\"><description>a /* b */ c</description></pgmi-meta> */"));
    assert_eq!(m.unwrap().description, "a /* b */ c");
}

#[test]
fn two_blocks_and_the_old_namespaced_format_are_rejected() {
    let e = err(&format!("{}\n{}", valid(), valid()));
    assert_eq!(e.kind, MetaErrorKind::MultipleBlocks);
    assert_eq!(
        e.message,
        "metadata error in ./migrations/001.sql: Multiple metadata blocks found\n\n\
         Hint: Only one <pgmi-meta> block is allowed per file. Remove duplicates."
    );
    let e = err(&format!("{}\n/* <pgmi:meta xmlns:pgmi=\"x\"> */", valid()));
    assert_eq!(e.kind, MetaErrorKind::OldFormat);
    assert!(e.message.starts_with("metadata error in ./migrations/001.sql: Found old metadata format with namespace\n\nHint: The metadata format changed"));
    assert!(e.to_string().contains("change <pgmi:meta> to <pgmi-meta>."));
    // Two elements inside one comment are not detected; only the first is parsed.
    assert!(get(&format!(
        "/* <pgmi-meta id=\"{ID}\" idempotent=\"true\"/> <pgmi-meta > */"
    ))
    .is_some());
}

#[test]
fn id_and_idempotent_are_required_and_idempotent_parses_as_go_bool() {
    let e = err(&block(r#"idempotent="true""#, ""));
    assert_eq!(e.kind, MetaErrorKind::Invalid);
    assert!(e.message.starts_with(
        "invalid PGMI metadata in ./migrations/001.sql:\n  1. id attribute is required and cannot be the nil UUID (00000000-0000-0000-0000-000000000000).\n"
    ));
    let e = err(&block(&format!(r#"id="{ID}""#), ""));
    assert!(e.message.contains(
        "  1. idempotent attribute is required (idempotent=\"true\" or idempotent=\"false\").\n"
    ));
    let e = err(&block(&format!(r#"id="{ID}" idempotent="yes""#), ""));
    assert_eq!(e.kind, MetaErrorKind::XmlValue);
    assert_eq!(
        e.message,
        "metadata error in ./migrations/001.sql: strconv.ParseBool: parsing \"yes\": invalid syntax\n\n\
         Hint: Verify the metadata XML structure matches the expected format.\n\
         See: docs/session-api.md in the pgmi repository, or run `pgmi ai session-api`."
    );
    for (value, expected) in [("1", true), ("TRUE", true), ("", false), ("f", false)] {
        let m = get(&block(&format!(r#"id="{ID}" idempotent="{value}""#), "")).unwrap();
        assert_eq!(m.idempotent, expected, "{value:?}");
    }
}

#[test]
fn validation_message_is_numbered_and_exact() {
    let e = err(&block(
        "",
        "<sortKeys><key>ok</key><key> </key></sortKeys><description>  </description>",
    ));
    let expected = [
        "invalid PGMI metadata in ./migrations/001.sql:",
        "  1. id attribute is required and cannot be the nil UUID (00000000-0000-0000-0000-000000000000).",
        "  Each script must have a unique identifier.",
        "  Generate with: uuidgen (Linux/Mac), [guid]::NewGuid() (PowerShell), or https://www.uuidgenerator.net/",
        "  2. idempotent attribute is required (idempotent=\"true\" or idempotent=\"false\").",
        "  true: the script is safe to rerun every deploy (CREATE OR REPLACE, IF NOT EXISTS).",
        "  false: the script runs once per id (tracked one-time migration).",
        "  3. sortKeys[1] cannot be empty or whitespace-only.",
        "  Provide meaningful sort keys for execution ordering.",
        "  Recommended format: \"phase/sequence\" (e.g., \"10-utils/0010\", \"30-core/2000\")",
        "  4. description element contains only whitespace.",
        "  Consider removing it or providing a meaningful description.",
        "",
        "See metadata format documentation:",
        "  Reference: docs/session-api.md in the pgmi repository, or run `pgmi ai session-api`",
        "  Generate template: pgmi metadata scaffold <path>",
        "",
    ]
    .join("\n");
    assert_eq!(e.message, expected);
    assert_eq!(e.to_string(), expected);
    assert!(e.reason.starts_with("  1. id attribute"));
}

#[test]
fn id_accepts_the_uuid_forms_go_accepts() {
    for form in [
        format!("{{{ID}}}"),
        format!("urn:uuid:{ID}"),
        ID.replace('-', ""),
        ID.to_uppercase(),
    ] {
        let m = get(&block(&format!(r#"id="{form}" idempotent="true""#), "")).unwrap();
        assert_eq!(m.id.to_string(), ID, "{form}");
    }
    let v0 = "12345678-1234-0234-0234-123456789abc";
    assert_eq!(
        get(&block(&format!(r#"id="{v0}" idempotent="true""#), ""))
            .unwrap()
            .id
            .to_string(),
        v0
    );
    let e = err(&block(r#"id="zzz" idempotent="true""#, ""));
    assert_eq!(e.reason, "invalid UUID length: 3");
    assert!(e
        .message
        .starts_with("metadata error in ./migrations/001.sql: invalid UUID length: 3\n\nHint: "));
    assert_eq!(
        err(&block(r#"id="" idempotent="true""#, "")).reason,
        "invalid UUID length: 0"
    );
}

#[test]
fn blank_sort_keys_and_descriptions_are_rejected_others_kept_verbatim() {
    let attrs = format!(r#"id="{ID}" idempotent="false""#);
    let m = get(&block(&attrs, "<sortKeys><key> 001/000 </key></sortKeys>")).unwrap();
    assert_eq!(m.sort_keys, [" 001/000 "]);
    let e = err(&block(&attrs, "<sortKeys><key>   </key></sortKeys>"));
    assert!(e
        .message
        .contains("  1. sortKeys[0] cannot be empty or whitespace-only.\n"));
    let e = err(&block(&attrs, "<description>  </description>"));
    assert!(e
        .message
        .contains("  1. description element contains only whitespace.\n"));
    let m = get(&block(&attrs, "<description> d </description>")).unwrap();
    assert_eq!(m.description, " d ");
    assert!(get(&block(&attrs, "")).unwrap().sort_keys.is_empty());
}

#[test]
fn blocks_over_the_size_limit_are_rejected() {
    let attrs = format!(r#"id="{ID}" idempotent="true""#);
    let fits = format!("<pgmi-meta {attrs}><description>x</description></pgmi-meta>");
    let pad = MAX_METADATA_BYTES - fits.len();
    let at_limit = fits.replace(">x<", &format!(">{}<", "x".repeat(pad + 1)));
    assert_eq!(at_limit.len(), MAX_METADATA_BYTES);
    assert!(get(&format!("/*\n{at_limit}\n*/")).is_some());
    let over = at_limit.replace(">x", ">xx");
    let e = err(&format!("/* {over} */"));
    assert_eq!(e.kind, MetaErrorKind::TooLarge);
    assert!(e.message.starts_with(
        "metadata error in ./migrations/001.sql: Metadata block exceeds maximum size of 10240 bytes (got 10241 bytes)\n\nHint: "
    ));
}

#[test]
fn syntax_errors_name_the_line() {
    let content = "SELECT 1;\n\n/*\n  <pgmi-meta id=\"x\"\n     idempotent=true>\n*/";
    let e = err(content);
    assert_eq!(e.kind, MetaErrorKind::XmlSyntax);
    assert_eq!(e.line, Some(2));
    assert_eq!(e.file_line, Some(5));
    assert_eq!(
        e.message,
        "metadata error in ./migrations/001.sql (line 2): unquoted or missing attribute value in element\n\n\
         Hint: Check that all XML tags are properly closed and attributes are quoted.\n\n\
         Expected format:\n  <pgmi-meta id=\"UUID\" idempotent=\"true|false\" sortKey=\"...\">\n    \
         <description>...</description>\n  </pgmi-meta>"
    );
    assert_eq!(e.reason, "unquoted or missing attribute value in element");
    assert!(e
        .hint
        .as_deref()
        .unwrap()
        .starts_with("Check that all XML tags"));
}

#[test]
fn unterminated_comments() {
    // The original pgmi drops the last two bytes of an unterminated comment.
    let open = format!("/* <pgmi-meta id=\"{ID}\" idempotent=\"true\"></pgmi-meta>xy");
    assert!(get(&open).is_some());
    let open = format!("/* <pgmi-meta id=\"{ID}\" idempotent=\"true\"/>");
    assert_eq!(err(&open).reason, "unexpected EOF");
    // Where the original pgmi crashed: `/*` plus fewer than two bytes at EOF.
    for tail in ["SELECT 1; /*", "/*x", "/*é", "/**"] {
        assert_eq!(get(tail), None, "{tail:?}");
    }
    assert_eq!(get("/*xy"), None);
}

#[test]
fn duplicate_ids_are_listed_in_id_and_path_order() {
    let a = Uuid::parse(ID.as_bytes()).unwrap();
    let b = Uuid::parse(b"00000000-0000-0000-0000-0000000000ff").unwrap();
    let c = Uuid::parse(b"ffffffff-0000-0000-0000-000000000000").unwrap();
    assert!(check_unique_ids([
        ("./a.sql", a),
        ("./b.sql", b),
        ("./n1.sql", Uuid::NIL),
        ("./n2.sql", Uuid::NIL)
    ])
    .is_ok());
    let e = check_unique_ids([
        ("./z.sql", a),
        ("./c.sql", c),
        ("./a.sql", a),
        ("./y.sql", b),
        ("./B.sql", c),
        ("./x.sql", b),
        ("./only.sql", Uuid([7; 16])),
    ])
    .unwrap_err();
    assert_eq!(
        e.message,
        "duplicate <pgmi-meta id> across files; each script must have a unique id:\n  \
         00000000-0000-0000-0000-0000000000ff: ./x.sql, ./y.sql\n  \
         550e8400-e29b-41d4-a716-446655440000: ./a.sql, ./z.sql\n  \
         ffffffff-0000-0000-0000-000000000000: ./B.sql, ./c.sql"
    );
    assert_eq!(e.to_string(), e.message);
    assert_eq!(e.duplicates.len(), 3);
    assert_eq!(
        e.duplicates[0],
        (b, vec!["./x.sql".to_owned(), "./y.sql".to_owned()])
    );
}

#[test]
fn generic_ids() {
    assert_eq!(
        generic_id("./migrations/001.sql").to_string(),
        "18a606ed-2992-a4e9-70c1-b9c7044ab9b8"
    );
    assert_eq!(
        generic_id("./migrations/café.sql").to_string(),
        "9bbc3810-8180-8c39-61fd-68b968fbc799"
    );
    assert_ne!(generic_id("./x.sql"), generic_id("x.sql"));
    assert_ne!(generic_id("./X.sql"), generic_id("./x.sql"));
}
