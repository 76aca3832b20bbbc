//! The XML subset `<pgmi-meta>` needs, decoded exactly as the original pgmi's Go
//! `encoding/xml` `Decoder.Decode` (strict mode) decodes it into its struct, so the same
//! blocks are accepted and the same errors reported:
//!
//! * tokens before the first start element (text, comments, processing instructions,
//!   directives) are skipped, but still checked — `a < b` or `&nbsp;` there is a syntax error;
//! * the first element is decoded and everything after its end tag is ignored;
//! * its local name must be `pgmi-meta` (any namespace prefix) — else
//!   `expected element type <pgmi-meta> but have <x>`;
//! * attributes are applied in document order (so a duplicate attribute's last value wins and
//!   the first bad value is the error): local name `id` → UUID, `idempotent` → bool, others
//!   ignored;
//! * direct children `description` (character data, untrimmed, nested elements' text dropped,
//!   last one wins) and `sortKeys` (each direct `key` child's character data, in order,
//!   repeated `sortKeys` accumulate); every other element is skipped, but must be well formed;
//! * the five XML entities, numeric character references and CDATA are decoded; `\r\n` and
//!   lone `\r` in text and attribute values become `\n`; characters outside the XML Char range
//!   are errors.
//!
//! Syntax errors carry Go's message and line (1-based, counted in the XML text, i.e. the
//! trimmed comment). Every other failure is an "unmarshal" error with Go's text and no line.
//!
//! One deliberate approximation: XML name validity above ASCII uses Unicode alphabetic /
//! alphanumeric instead of the XML 1.0 Appendix B tables Go embeds; names are ASCII in every
//! real metadata block. The decoder never recurses per nesting level, so deep nesting cannot
//! overflow the stack.

mod raw;

use self::raw::RawToken;
use super::uuid::Uuid;

/// What the `<pgmi-meta>` element said, before validation.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct RawMeta {
    /// Nil when absent.
    pub id: Uuid,
    pub idempotent: Option<bool>,
    pub description: String,
    pub sort_keys: Vec<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum XmlError {
    /// Go's `*xml.SyntaxError`.
    Syntax { msg: String, line: usize },
    /// Any other decoding error (wrong element, bad attribute value, directives, EOF).
    Unmarshal(String),
}

type Result<T> = std::result::Result<T, XmlError>;

/// Decodes the first element of `src` as `<pgmi-meta>`.
pub(super) fn decode(src: &[u8]) -> Result<RawMeta> {
    let mut d = Decoder {
        src,
        pos: 0,
        pending_end: None,
        open: Vec::new(),
        bindings: Vec::new(),
    };
    let (name, attrs) = loop {
        match d.token()? {
            None => return Err(XmlError::Unmarshal("EOF".into())),
            Some(Token::Start(name, attrs)) => break (name, attrs),
            Some(_) => {}
        }
    };
    if name.local != "pgmi-meta" {
        return Err(XmlError::Unmarshal(format!(
            "expected element type <pgmi-meta> but have <{}>",
            name.local
        )));
    }
    let mut meta = RawMeta::default();
    for attr in attrs {
        match attr.name.local.as_str() {
            "id" => {
                meta.id =
                    Uuid::parse(&attr.value).map_err(|e| XmlError::Unmarshal(e.to_string()))?
            }
            "idempotent" => {
                meta.idempotent = Some(
                    super::go_text::parse_bool_attr(&attr.value).map_err(XmlError::Unmarshal)?,
                )
            }
            _ => {}
        }
    }
    loop {
        match d.element_token()? {
            Token::Start(child, _) if child.local == "description" => {
                meta.description = d.text_content()?
            }
            Token::Start(child, _) if child.local == "sortKeys" => loop {
                match d.element_token()? {
                    Token::Start(key, _) if key.local == "key" => {
                        meta.sort_keys.push(d.text_content()?)
                    }
                    Token::Start(..) => d.skip()?,
                    Token::End => break,
                    Token::Text(_) | Token::Other => {}
                }
            },
            Token::Start(..) => d.skip()?,
            Token::End => return Ok(meta),
            Token::Text(_) | Token::Other => {}
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Name {
    space: String,
    local: String,
}

struct Attr {
    name: Name,
    value: Vec<u8>,
}

enum Token {
    Start(Name, Vec<Attr>),
    End,
    Text(Vec<u8>),
    /// Comment, processing instruction or directive.
    Other,
}

/// One open element: its translated name and how many namespace bindings it declared.
struct Open {
    name: Name,
    bindings: usize,
}

struct Decoder<'a> {
    src: &'a [u8],
    pos: usize,
    /// The end half of a self-closing `<x/>`, returned by the next raw token.
    pending_end: Option<Name>,
    open: Vec<Open>,
    /// `(prefix, url)` bindings of the open elements, innermost last ("" = default namespace).
    bindings: Vec<(String, String)>,
}

const XML_URL: &str = "http://www.w3.org/XML/1998/namespace";

impl Decoder<'_> {
    fn syntax(&self, msg: impl Into<String>) -> XmlError {
        let line = 1 + self.src[..self.pos].iter().filter(|&&b| b == b'\n').count();
        XmlError::Syntax {
            msg: msg.into(),
            line,
        }
    }

    fn getc(&mut self) -> Option<u8> {
        let b = *self.src.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    /// A byte that must be there: EOF is the syntax error "unexpected EOF".
    fn mustgetc(&mut self) -> Result<u8> {
        self.getc().ok_or_else(|| self.syntax("unexpected EOF"))
    }

    /// Un-reads the byte just read (only ever called right after a successful read).
    fn ungetc(&mut self) {
        self.pos -= 1;
    }

    fn space(&mut self) {
        while let Some(b) = self.getc() {
            if !matches!(b, b' ' | b'\r' | b'\n' | b'\t') {
                self.ungetc();
                return;
            }
        }
    }

    /// Next token inside the element being decoded (EOF there is an error).
    fn element_token(&mut self) -> Result<Token> {
        match self.token()? {
            Some(t) => Ok(t),
            None => Err(self.syntax("unexpected EOF")),
        }
    }

    /// Character data of the element just started; nested elements are skipped.
    fn text_content(&mut self) -> Result<String> {
        let mut data = Vec::new();
        loop {
            match self.element_token()? {
                Token::Text(t) => data.extend_from_slice(&t),
                Token::Start(..) => self.skip()?,
                Token::End => break,
                Token::Other => {}
            }
        }
        // Text tokens were checked to be valid UTF-8, so this never replaces anything.
        Ok(String::from_utf8_lossy(&data).into_owned())
    }

    /// Skips to the end of the element just started.
    fn skip(&mut self) -> Result<()> {
        let mut depth = 0usize;
        loop {
            match self.element_token()? {
                Token::Start(..) => depth += 1,
                Token::End if depth == 0 => return Ok(()),
                Token::End => depth -= 1,
                Token::Text(_) | Token::Other => {}
            }
        }
    }

    /// Go's `Decoder.Token`: raw token plus namespace translation and start/end matching.
    fn token(&mut self) -> Result<Option<Token>> {
        let Some(raw) = self.raw_token()? else {
            if self.open.is_empty() {
                return Ok(None);
            }
            return Err(self.syntax("unexpected EOF"));
        };
        Ok(Some(match raw {
            RawToken::Start(mut name, mut attrs) => {
                // The element's own xmlns attributes apply to its own name, so bind first.
                let before = self.bindings.len();
                for a in &attrs {
                    let value = String::from_utf8_lossy(&a.value).into_owned();
                    if a.name.space == "xmlns" {
                        self.bindings.push((a.name.local.clone(), value));
                    } else if a.name.space.is_empty() && a.name.local == "xmlns" {
                        self.bindings.push((String::new(), value));
                    }
                }
                self.translate(&mut name, true);
                for a in &mut attrs {
                    self.translate(&mut a.name, false);
                }
                self.open.push(Open {
                    name: name.clone(),
                    bindings: self.bindings.len() - before,
                });
                Token::Start(name, attrs)
            }
            RawToken::End(mut name) => {
                self.translate(&mut name, true);
                match self.open.last() {
                    None => {
                        return Err(self.syntax(format!("unexpected end element </{}>", name.local)))
                    }
                    Some(top) if top.name.local != name.local => {
                        let msg =
                            format!("element <{}> closed by </{}>", top.name.local, name.local);
                        return Err(self.syntax(msg));
                    }
                    Some(top) if top.name.space != name.space => {
                        // Go's text, missing space before "closed" included.
                        let msg = format!(
                            "element <{}> in space {}closed by </{}> in space {}",
                            top.name.local, top.name.space, name.local, name.space
                        );
                        return Err(self.syntax(msg));
                    }
                    Some(_) => {}
                }
                if let Some(closed) = self.open.pop() {
                    self.bindings
                        .truncate(self.bindings.len() - closed.bindings);
                }
                Token::End
            }
            RawToken::Text(t) => Token::Text(t),
            RawToken::Other => Token::Other,
        }))
    }

    fn lookup_ns(&self, prefix: &str) -> Option<&str> {
        self.bindings
            .iter()
            .rev()
            .find(|(p, _)| p == prefix)
            .map(|(_, url)| url.as_str())
    }

    /// Go's namespace translation; the default namespace applies to element names only.
    fn translate(&self, n: &mut Name, is_element: bool) {
        if n.space == "xmlns" || (n.space.is_empty() && (!is_element || n.local == "xmlns")) {
            return;
        }
        if n.space == "xml" {
            n.space = XML_URL.into();
        }
        if let Some(url) = self.lookup_ns(&n.space) {
            n.space = url.to_owned();
        }
    }
}

#[cfg(test)]
mod tests;
