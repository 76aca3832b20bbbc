//! New `<pgmi-meta>` blocks for SQL files that have none (`metadata scaffold`).
//!
//! Invariants:
//! * A block's only sort key is the file's own path, so adding it keeps the file exactly
//!   where `pgmi_plan_view` already ordered it (a file without metadata is ordered by its
//!   path). Scaffolding changes identity and idempotency, never the execution order. (The
//!   original pgmi writes `generated/<basename>` instead, which moves every scaffolded file
//!   after all `./…` paths and merges same-named files from different directories.)
//! * The block is the first thing in the file (after a UTF-8 BOM, which stays first), uses
//!   the file's own line ending, and is followed by one line ending; nothing else changes.
//! * The key is XML-escaped, and every `*` is written as `&#42;`, so no path can end the
//!   comment early (`*/`) or open a nested one (`/*`).
//! * [`plan`] proves each result by parsing it back with [`meta::extract`], the parser the
//!   deploy uses: a path the XML cannot carry is refused, never written wrongly.

use crate::meta::{self, Metadata, Uuid};

/// Why a file cannot be given a block automatically.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot add a <pgmi-meta> block to {path}: {reason}")]
pub struct ScaffoldError {
    /// The file, in `./` form.
    pub path: String,
    pub reason: String,
}

/// A block planned for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addition {
    /// The file, in `./` form.
    pub path: String,
    /// The comment to prepend, without the line ending that follows it.
    pub block: String,
    /// The line ending used inside and after the block (`"\n"` or `"\r\n"`).
    pub newline: &'static str,
    /// What the deploy will read from the block.
    pub metadata: Metadata,
}

impl Addition {
    /// `original` (the file's bytes as on disk, BOM included) with the block in front.
    pub fn apply(&self, original: &[u8]) -> Vec<u8> {
        const BOM: &[u8] = b"\xEF\xBB\xBF";
        let (bom, rest) = match original.strip_prefix(BOM) {
            Some(rest) => (BOM, rest),
            None => (&b""[..], original),
        };
        let mut out = Vec::with_capacity(original.len() + self.block.len() + 2);
        out.extend_from_slice(bom);
        out.extend_from_slice(self.block.as_bytes());
        out.extend_from_slice(self.newline.as_bytes());
        out.extend_from_slice(rest);
        out
    }
}

/// A version-4 UUID from 16 random bytes (RFC 9562 §5.4: version nibble 4, variant `10`).
pub fn uuid_v4(mut random: [u8; 16]) -> Uuid {
    random[6] = (random[6] & 0x0f) | 0x40;
    random[8] = (random[8] & 0x3f) | 0x80;
    Uuid(random)
}

/// Plans the block for the file `path` whose text (BOM stripped) is `content` and which has
/// no block yet, and checks that the deploy would read back exactly `id`, `idempotent` and
/// the path as the only sort key.
pub fn plan(
    path: &str,
    content: &str,
    id: Uuid,
    idempotent: bool,
) -> Result<Addition, ScaffoldError> {
    let newline = line_ending(content);
    let block = [
        "/*".to_owned(),
        format!("<pgmi-meta id=\"{id}\" idempotent=\"{idempotent}\">"),
        "  <sortKeys>".to_owned(),
        format!("    <key>{}</key>", escape(path)),
        "  </sortKeys>".to_owned(),
        "</pgmi-meta>".to_owned(),
        "*/".to_owned(),
    ]
    .join(newline);
    let addition = Addition {
        path: path.to_owned(),
        block,
        newline,
        metadata: Metadata {
            id,
            idempotent,
            sort_keys: vec![path.to_owned()],
            description: String::new(),
        },
    };
    let refuse = |reason: String| ScaffoldError {
        path: path.to_owned(),
        reason,
    };
    let text = String::from_utf8(addition.apply(content.as_bytes()))
        .map_err(|_| refuse("the result is not UTF-8".to_owned()))?;
    match meta::extract(path, &text) {
        Ok(Some(read)) if read == addition.metadata => Ok(addition),
        Ok(Some(_)) => Err(refuse(
            "the block would not read back as written (its path cannot be written as an XML sort key); add one by hand".to_owned(),
        )),
        Ok(None) => Err(refuse("the block would not be found".to_owned())),
        Err(e) => Err(refuse(format!(
            "{} (its path cannot be written as an XML sort key); add one by hand",
            e.reason.trim_end()
        ))),
    }
}

/// `\r\n` when the file's first line ends with it, else `\n`.
fn line_ending(content: &str) -> &'static str {
    match content.find('\n') {
        Some(i) if content[..i].ends_with('\r') => "\r\n",
        _ => "\n",
    }
}

/// XML character data for a `<key>`: markup characters as entities; `*` and the line-break
/// characters (which XML would normalise) as numeric references.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '*' => out.push_str("&#42;"),
            c if c.is_control() => out.push_str(&format!("&#{};", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: Uuid = Uuid([
        0x6f, 0x1c, 0x1f, 0x0e, 0x6a, 0x39, 0x4a, 0x55, 0x9a, 0x65, 0x2d, 0x1b, 0x8c, 0x4e, 0x0a,
        0x11,
    ]);

    #[test]
    fn version_and_variant_bits() {
        let id = uuid_v4([0xff; 16]);
        assert_eq!(id.to_string(), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let id = uuid_v4([0; 16]);
        assert_eq!(id.to_string(), "00000000-0000-4000-8000-000000000000");
    }

    #[test]
    fn block_text_and_placement() {
        let a = plan("./migrations/001.sql", "SELECT 1;\n", ID, true).unwrap();
        assert_eq!(
            String::from_utf8(a.apply(b"SELECT 1;\n")).unwrap(),
            "/*\n\
             <pgmi-meta id=\"6f1c1f0e-6a39-4a55-9a65-2d1b8c4e0a11\" idempotent=\"true\">\n  \
             <sortKeys>\n    \
             <key>./migrations/001.sql</key>\n  \
             </sortKeys>\n\
             </pgmi-meta>\n\
             */\n\
             SELECT 1;\n"
        );
        assert_eq!(a.metadata.sort_keys, ["./migrations/001.sql"]);
        assert!(a.metadata.idempotent);
        let b = plan("./x.sql", "SELECT 1;", ID, false).unwrap();
        assert!(!b.metadata.idempotent);
        assert!(b.block.contains("idempotent=\"false\""));
    }

    #[test]
    fn bom_stays_first_and_crlf_is_kept() {
        let content = "-- header\r\nSELECT 1;\r\n";
        let a = plan("./w.sql", content, ID, true).unwrap();
        assert_eq!(a.newline, "\r\n");
        let mut raw = b"\xEF\xBB\xBF".to_vec();
        raw.extend_from_slice(content.as_bytes());
        let out = a.apply(&raw);
        assert!(out.starts_with(b"\xEF\xBB\xBF/*\r\n<pgmi-meta "));
        let text = std::str::from_utf8(&out[3..]).unwrap();
        assert!(text.ends_with("*/\r\n-- header\r\nSELECT 1;\r\n"));
        assert_eq!(text.matches('\n').count(), text.matches("\r\n").count());
        assert_eq!(meta::extract("./w.sql", text).unwrap().unwrap(), a.metadata);
    }

    #[test]
    fn existing_comments_and_strings_are_left_alone() {
        // A leading comment, a `/*` inside a string and a dollar body: still one block.
        let content = "/* old header */\nSELECT '/* not a comment';\nDO $$ BEGIN /* x */ END $$;\n";
        let a = plan("./c.sql", content, ID, true).unwrap();
        let text = String::from_utf8(a.apply(content.as_bytes())).unwrap();
        assert!(text.ends_with(content));
        assert_eq!(meta::extract("./c.sql", &text).unwrap().unwrap().id, ID);
    }

    #[test]
    fn awkward_paths_round_trip() {
        for path in [
            "./a&b/<x>.sql",
            "./star*/x.sql",
            "./x/*y.sql",
            "./a*/b*/c.sql",
            "./tab\there.sql",
            "./caf\u{e9}/\u{1F600}.sql",
            "./quote\"'.sql",
            "./line\nbreak.sql",
            "./cr\rhere.sql",
        ] {
            let a = plan(path, "SELECT 1;\n", ID, true).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            assert!(!a.block[2..a.block.len() - 2].contains("*/"), "{path:?}");
            assert!(!a.block[2..].contains("/*"), "{path:?}");
            assert_eq!(a.metadata.sort_keys, [path]);
        }
    }

    #[test]
    fn paths_xml_cannot_carry_are_refused() {
        let e = plan("./bell\u{7}.sql", "SELECT 1;\n", ID, true).unwrap_err();
        assert_eq!(e.path, "./bell\u{7}.sql");
        assert!(e
            .to_string()
            .starts_with("cannot add a <pgmi-meta> block to "));
        assert!(e.reason.contains("add one by hand"), "{}", e.reason);
    }

    #[test]
    fn a_file_that_already_has_a_block_is_refused() {
        let content =
            "/* <pgmi-meta id=\"6f1c1f0e-6a39-4a55-9a65-2d1b8c4e0a11\" idempotent=\"true\"/> */\n";
        let e = plan("./m.sql", content, ID, true).unwrap_err();
        assert!(
            e.reason.contains("Multiple metadata blocks"),
            "{}",
            e.reason
        );
    }
}
