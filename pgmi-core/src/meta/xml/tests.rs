use super::*;

const ID: &str = "550e8400-e29b-41d4-a716-446655440000";

fn ok(xml: &str) -> RawMeta {
    match decode(xml.as_bytes()) {
        Ok(m) => m,
        Err(e) => panic!("{xml:?}: {e:?}"),
    }
}

fn syntax(xml: &str) -> (String, usize) {
    match decode(xml.as_bytes()) {
        Err(XmlError::Syntax { msg, line }) => (msg, line),
        other => panic!("{xml:?}: expected a syntax error, got {other:?}"),
    }
}

fn unmarshal(xml: &str) -> String {
    match decode(xml.as_bytes()) {
        Err(XmlError::Unmarshal(msg)) => msg,
        other => panic!("{xml:?}: expected an unmarshal error, got {other:?}"),
    }
}

fn meta(inner: &str) -> String {
    format!(r#"<pgmi-meta id="{ID}" idempotent="true">{inner}</pgmi-meta>"#)
}

#[test]
fn full_element() {
    let m = ok(&meta(
        "<description>d</description><sortKeys><key>a</key><key>b</key></sortKeys>",
    ));
    assert_eq!(m.id.to_string(), ID);
    assert_eq!(m.idempotent, Some(true));
    assert_eq!(m.description, "d");
    assert_eq!(m.sort_keys, ["a", "b"]);
}

#[test]
fn leading_tokens_are_skipped_but_checked() {
    assert_eq!(
        ok(&format!("some text {}", meta(""))).idempotent,
        Some(true)
    );
    assert!(ok(&format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><!-- c --><!DOCTYPE x [<!ENTITY a 'b'>]>{}",
        meta("")
    ))
    .sort_keys
    .is_empty());
    assert_eq!(
        syntax(&format!("a < b {}", meta(""))),
        ("expected element name after <".into(), 1)
    );
    assert_eq!(
        syntax(&format!("a &nbsp; {}", meta(""))).0,
        "invalid character entity &nbsp;"
    );
    assert_eq!(
        syntax(&format!("]]> {}", meta(""))).0,
        "unescaped ]]> not in CDATA section"
    );
    assert_eq!(
        syntax(&format!("</x>{}", meta(""))).0,
        "unexpected end element </x>"
    );
    assert_eq!(
        syntax("<!-- a -- b --><pgmi-meta/>").0,
        "invalid sequence \"--\" not allowed in comments"
    );
    assert_eq!(syntax("<!-x-->").0, "invalid sequence <!- not part of <!--");
    assert_eq!(syntax("<![CDAT[x]]>").0, "invalid <![ sequence");
    assert_eq!(
        unmarshal(&format!("<?xml version=\"1.1\"?>{}", meta(""))),
        "xml: unsupported version \"1.1\"; only version 1.0 is supported"
    );
    assert_eq!(
        unmarshal(&format!("<?xml encoding='latin1'?>{}", meta(""))),
        "xml: encoding \"latin1\" declared but Decoder.CharsetReader is nil"
    );
    assert_eq!(unmarshal(""), "EOF");
    assert_eq!(unmarshal("<!-- <pgmi-meta > -->"), "EOF");
}

#[test]
fn first_element_only() {
    assert_eq!(
        unmarshal("<other/><pgmi-meta/>"),
        "expected element type <pgmi-meta> but have <other>"
    );
    assert_eq!(
        unmarshal("<PGMI-META/>"),
        "expected element type <pgmi-meta> but have <PGMI-META>"
    );
    assert_eq!(
        ok(&format!("<x:pgmi-meta id=\"{ID}\"/>")).id.to_string(),
        ID
    );
    // Whatever follows the element is ignored, even garbage.
    assert_eq!(
        ok(&format!("{} trailing < & <pgmi-meta>", meta(""))).idempotent,
        Some(true)
    );
    assert_eq!(
        ok(&format!(
            "{}{}",
            meta(""),
            "<pgmi-meta idempotent=\"false\"/>"
        ))
        .idempotent,
        Some(true)
    );
}

#[test]
fn attributes() {
    let m = ok(r#"<pgmi-meta sortKey="legacy" idempotent="" other='x'/>"#);
    assert!(m.id.is_nil());
    assert_eq!(m.idempotent, Some(false));
    let m = ok(r#"<pgmi-meta/>"#);
    assert_eq!(m.idempotent, None);
    // Duplicate attribute: applied in order, last wins; the first bad one is the error.
    let other = "00000000-0000-0000-0000-000000000001";
    assert_eq!(
        ok(&format!(r#"<pgmi-meta id="{ID}" id="{other}"/>"#))
            .id
            .to_string(),
        other
    );
    assert_eq!(
        unmarshal(&format!(r#"<pgmi-meta id="zzz" id="{ID}"/>"#)),
        "invalid UUID length: 3"
    );
    assert_eq!(
        unmarshal(r#"<pgmi-meta idempotent="yes" id="zzz"/>"#),
        "strconv.ParseBool: parsing \"yes\": invalid syntax"
    );
    assert_eq!(
        ok(r#"<pgmi-meta idempotent=" TRUE&#10;"/>"#).idempotent,
        Some(true)
    );
    // Attribute names are matched by local name; the case matters.
    assert_eq!(
        ok(&format!(r#"<pgmi-meta p:id="{ID}" ID="zzz"/>"#))
            .id
            .to_string(),
        ID
    );
    assert_eq!(
        syntax("<pgmi-meta id=x/>").0,
        "unquoted or missing attribute value in element"
    );
    assert_eq!(
        syntax("<pgmi-meta id/>").0,
        "attribute name without = in element"
    );
    assert_eq!(
        syntax("<pgmi-meta id=\"a<b\"/>").0,
        "unescaped < inside quoted string"
    );
    assert_eq!(syntax("<pgmi-meta / >").0, "expected /> in element");
    assert_eq!(
        syntax("<pgmi-meta =\"x\"/>").0,
        "expected attribute name in element"
    );
    assert_eq!(syntax("<1pgmi-meta/>").0, "invalid XML name: 1pgmi-meta");
    assert_eq!(
        syntax("<a:b:pgmi-meta/>").0,
        "expected element name after <"
    );
}

#[test]
fn description_rules() {
    assert_eq!(
        ok(&meta("<description>  spaced  </description>")).description,
        "  spaced  "
    );
    assert_eq!(
        ok(&meta("<description>a<b>x<c>y</c></b>c</description>")).description,
        "ac"
    );
    assert_eq!(
        ok(&meta(
            "<description>1</description><description>2</description>"
        ))
        .description,
        "2"
    );
    assert_eq!(ok(&meta("<description/>")).description, "");
    assert_eq!(
        ok(&meta(
            "<description>&lt;&gt;&amp;&apos;&quot;&#65;&#x42;&#xD800;</description>"
        ))
        .description,
        "<>&'\"AB\u{FFFD}"
    );
    assert_eq!(
        ok(&meta("<description><![CDATA[<b>&amp;]]]></description>")).description,
        "<b>&amp;]"
    );
    assert_eq!(
        ok(&meta("<description>a\r\nb\rc&#13;</description>")).description,
        "a\nb\nc\r"
    );
    assert_eq!(
        ok(&meta("<description>a<!-- x -->b</description>")).description,
        "ab"
    );
    // A description nested deeper than a direct child is not the description.
    assert_eq!(
        ok(&meta("<x><description>no</description></x>")).description,
        ""
    );
    assert_eq!(
        syntax(&meta("<description>&#0;</description>")).0,
        "illegal character code U+0000"
    );
    assert_eq!(
        syntax(&meta("<description>\u{1}</description>")).0,
        "illegal character code U+0001"
    );
    assert_eq!(
        syntax(&meta("<description>&#xFFFE;</description>")).0,
        "illegal character code U+FFFE"
    );
    assert_eq!(
        syntax(&meta("<description>&bogus;</description>")).0,
        "invalid character entity &bogus;"
    );
    assert_eq!(
        syntax(&meta("<description>a & b</description>")).0,
        "invalid character entity & (no semicolon)"
    );
    assert_eq!(
        syntax(&meta("<description>&#x;</description>")).0,
        "invalid character entity &#x;"
    );
    assert_eq!(
        syntax(&meta("<description>&#X41;</description>")).0,
        "invalid character entity &# (no semicolon)"
    );
    assert_eq!(
        syntax(&meta("<description><![CDATA[x</description>")).0,
        "unexpected EOF in CDATA section"
    );
}

#[test]
fn sort_key_rules() {
    let m = ok(&meta(
        "<sortKeys><key> 001/000 </key><other><key>no</key></other><key>b</key></sortKeys>\
         <key>no</key><SortKeys><key>no</key></SortKeys><sortKeys><key>c</key><key>c</key></sortKeys>",
    ));
    assert_eq!(m.sort_keys, [" 001/000 ", "b", "c", "c"]);
    assert_eq!(
        ok(&meta("<sortKeys><key/><key>   </key></sortKeys>")).sort_keys,
        ["", "   "]
    );
}

#[test]
fn structure_errors_and_lines() {
    assert_eq!(
        syntax(&format!(
            "<pgmi-meta id=\"{ID}\"\n  idempotent=\"true\">\n  <description>x"
        )),
        ("unexpected EOF".into(), 3)
    );
    assert_eq!(
        syntax("<pgmi-meta>\n<description></desc>\n</pgmi-meta>"),
        ("element <description> closed by </desc>".into(), 2)
    );
    assert_eq!(
        syntax("<a:pgmi-meta></b:pgmi-meta>").0,
        "element <pgmi-meta> in space aclosed by </pgmi-meta> in space b"
    );
    // The same namespace URL under two prefixes matches.
    ok(r#"<a:pgmi-meta xmlns:a="u" xmlns:b="u"></b:pgmi-meta>"#);
    assert_eq!(
        syntax("<pgmi-meta></pgmi-meta x>").0,
        "invalid characters between </pgmi-meta and >"
    );
    assert_eq!(syntax("<pgmi-meta></>").0, "expected element name after </");
    assert_eq!(syntax("<pgmi-meta").0, "unexpected EOF");
    assert_eq!(syntax("<pgmi-meta><?pi x").0, "unexpected EOF");
    assert_eq!(
        syntax("<pgmi-meta><? x?>").0,
        "expected target name after <?"
    );
}

#[test]
fn deep_nesting_does_not_recurse() {
    let depth = 5000;
    let inner = format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth));
    assert_eq!(ok(&meta(&inner)).idempotent, Some(true));
}
