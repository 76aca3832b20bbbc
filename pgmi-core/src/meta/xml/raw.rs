//! The byte-level XML tokenizer: Go `encoding/xml`'s `rawToken` in strict mode, with its
//! error messages and line numbers (see the parent module for what is decoded from it).

use super::super::go_text::{decode_rune, quote};
use super::{Attr, Decoder, Name, Result, XmlError};

pub(super) enum RawToken {
    Start(Name, Vec<Attr>),
    End(Name),
    Text(Vec<u8>),
    Other,
}

impl Decoder<'_> {
    /// Go's `Decoder.rawToken` (strict mode).
    pub(super) fn raw_token(&mut self) -> Result<Option<RawToken>> {
        if let Some(name) = self.pending_end.take() {
            return Ok(Some(RawToken::End(name)));
        }
        let Some(b) = self.getc() else {
            return Ok(None);
        };
        if b != b'<' {
            self.ungetc();
            return Ok(Some(RawToken::Text(self.text(None, false)?)));
        }
        match self.mustgetc()? {
            b'/' => {
                let Some(name) = self.nsname()? else {
                    return Err(self.syntax("expected element name after </"));
                };
                self.space();
                if self.mustgetc()? != b'>' {
                    return Err(
                        self.syntax(format!("invalid characters between </{} and >", name.local))
                    );
                }
                Ok(Some(RawToken::End(name)))
            }
            b'?' => self.proc_inst().map(|()| Some(RawToken::Other)),
            b'!' => self.bang().map(Some),
            _ => {
                self.ungetc();
                self.start_element().map(Some)
            }
        }
    }

    /// `<?target …?>`; an `<?xml …?>` declaration must be version 1.0 and UTF-8.
    fn proc_inst(&mut self) -> Result<()> {
        let Some(target) = self.name()? else {
            return Err(self.syntax("expected target name after <?"));
        };
        self.space();
        let start = self.pos;
        let mut prev = 0u8;
        loop {
            let b = self.mustgetc()?;
            if prev == b'?' && b == b'>' {
                break;
            }
            prev = b;
        }
        if target == "xml" {
            let content = &self.src[start..self.pos - 2];
            let version = pi_param(b"version", content);
            if !version.is_empty() && version != b"1.0" {
                return Err(XmlError::Unmarshal(format!(
                    "xml: unsupported version {}; only version 1.0 is supported",
                    quote(version)
                )));
            }
            let encoding = pi_param(b"encoding", content);
            if !encoding.is_empty() && !encoding.eq_ignore_ascii_case(b"utf-8") {
                return Err(XmlError::Unmarshal(format!(
                    "xml: encoding {} declared but Decoder.CharsetReader is nil",
                    quote(encoding)
                )));
            }
        }
        Ok(())
    }

    /// After `<!`: a comment, a CDATA section or a directive.
    fn bang(&mut self) -> Result<RawToken> {
        match self.mustgetc()? {
            b'-' => {
                if self.mustgetc()? != b'-' {
                    return Err(self.syntax("invalid sequence <!- not part of <!--"));
                }
                let (mut b0, mut b1) = (0u8, 0u8);
                loop {
                    let b = self.mustgetc()?;
                    if b0 == b'-' && b1 == b'-' {
                        if b != b'>' {
                            return Err(
                                self.syntax("invalid sequence \"--\" not allowed in comments")
                            );
                        }
                        return Ok(RawToken::Other);
                    }
                    (b0, b1) = (b1, b);
                }
            }
            b'[' => {
                for &want in b"CDATA[" {
                    if self.mustgetc()? != want {
                        return Err(self.syntax("invalid <![ sequence"));
                    }
                }
                Ok(RawToken::Text(self.text(None, true)?))
            }
            _ => self.directive().map(|()| RawToken::Other),
        }
    }

    /// The rest of `<!DOCTYPE …>`-like directives: quotes, nested `<…>` and `<!--…-->` are
    /// tracked exactly as Go does (the byte after `<!` is not examined).
    fn directive(&mut self) -> Result<()> {
        let mut in_quote = 0u8;
        let mut depth = 0i64;
        loop {
            let mut b = self.mustgetc()?;
            if in_quote == 0 && b == b'>' && depth == 0 {
                return Ok(());
            }
            'handle: loop {
                if b == in_quote {
                    in_quote = 0;
                } else if in_quote != 0 {
                } else if b == b'\'' || b == b'"' {
                    in_quote = b;
                } else if b == b'>' {
                    depth -= 1;
                } else if b == b'<' {
                    for &want in b"!--" {
                        b = self.mustgetc()?;
                        if b != want {
                            depth += 1;
                            continue 'handle;
                        }
                    }
                    let (mut b0, mut b1) = (0u8, 0u8);
                    loop {
                        let c = self.mustgetc()?;
                        if b0 == b'-' && b1 == b'-' && c == b'>' {
                            break;
                        }
                        (b0, b1) = (b1, c);
                    }
                }
                break;
            }
        }
    }

    fn start_element(&mut self) -> Result<RawToken> {
        let Some(name) = self.nsname()? else {
            return Err(self.syntax("expected element name after <"));
        };
        let mut attrs = Vec::new();
        loop {
            self.space();
            let b = self.mustgetc()?;
            if b == b'/' {
                if self.mustgetc()? != b'>' {
                    return Err(self.syntax("expected /> in element"));
                }
                self.pending_end = Some(name.clone());
                break;
            }
            if b == b'>' {
                break;
            }
            self.ungetc();
            let Some(attr_name) = self.nsname()? else {
                return Err(self.syntax("expected attribute name in element"));
            };
            self.space();
            if self.mustgetc()? != b'=' {
                return Err(self.syntax("attribute name without = in element"));
            }
            self.space();
            let quote = self.mustgetc()?;
            if quote != b'"' && quote != b'\'' {
                return Err(self.syntax("unquoted or missing attribute value in element"));
            }
            let value = self.text(Some(quote), false)?;
            attrs.push(Attr {
                name: attr_name,
                value,
            });
        }
        Ok(RawToken::Start(name, attrs))
    }

    /// A name split at its colon: `None` when there is no name, or (like current Go) when it
    /// has more than one colon.
    fn nsname(&mut self) -> Result<Option<Name>> {
        let Some(s) = self.name()? else {
            return Ok(None);
        };
        if s.matches(':').count() > 1 {
            return Ok(None);
        }
        Ok(Some(match s.split_once(':') {
            Some((space, local)) if !space.is_empty() && !local.is_empty() => Name {
                space: space.into(),
                local: local.into(),
            },
            _ => Name {
                space: String::new(),
                local: s,
            },
        }))
    }

    /// A name: `None` if none starts here; a syntax error if its characters are not valid.
    fn name(&mut self) -> Result<Option<String>> {
        let mut buf = Vec::new();
        if !self.read_name(&mut buf)? {
            return Ok(None);
        }
        if !is_name(&buf) {
            return Err(self.syntax(format!(
                "invalid XML name: {}",
                String::from_utf8_lossy(&buf)
            )));
        }
        Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
    }

    /// Appends name bytes (ASCII name bytes and every byte ≥ 0x80) to `buf`; false if the
    /// next byte cannot start one.
    fn read_name(&mut self, buf: &mut Vec<u8>) -> Result<bool> {
        let mut first = true;
        loop {
            let b = self.mustgetc()?;
            if b < 0x80 && !is_name_byte(b) {
                self.ungetc();
                return Ok(!first);
            }
            buf.push(b);
            first = false;
        }
    }

    /// Character data up to `<` (or the closing `quote` of an attribute value, or `]]>` of a
    /// CDATA section), with entities decoded and line ends normalised, then checked for
    /// invalid UTF-8 and characters outside the XML Char range.
    fn text(&mut self, quote: Option<u8>, cdata: bool) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        let (mut b0, mut b1) = (0u8, 0u8);
        let mut trunc = 0;
        loop {
            let Some(b) = self.getc() else {
                if cdata {
                    return Err(self.syntax("unexpected EOF in CDATA section"));
                }
                break;
            };
            if b0 == b']' && b1 == b']' && b == b'>' {
                if cdata {
                    trunc = 2;
                    break;
                }
                return Err(self.syntax("unescaped ]]> not in CDATA section"));
            }
            if b == b'<' && !cdata {
                if quote.is_some() {
                    return Err(self.syntax("unescaped < inside quoted string"));
                }
                self.ungetc();
                break;
            }
            if quote == Some(b) {
                break;
            }
            if b == b'&' && !cdata {
                self.entity(&mut buf)?;
                (b0, b1) = (0, 0);
                continue;
            }
            if b == b'\r' {
                buf.push(b'\n');
            } else if !(b1 == b'\r' && b == b'\n') {
                buf.push(b);
            }
            (b0, b1) = (b1, b);
        }
        buf.truncate(buf.len() - trunc);
        let mut i = 0;
        while i < buf.len() {
            let Some((c, n)) = decode_rune(&buf[i..]) else {
                return Err(self.syntax("invalid UTF-8"));
            };
            if !in_char_range(c) {
                return Err(self.syntax(format!("illegal character code U+{:04X}", u32::from(c))));
            }
            i += n;
        }
        Ok(buf)
    }

    /// Decodes the entity after a `&` into `buf` (`&lt;` `&gt;` `&amp;` `&apos;` `&quot;`,
    /// `&#N;`, `&#xH;`); anything else is "invalid character entity".
    fn entity(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        let before = buf.len();
        buf.push(b'&');
        let mut decoded: Option<char> = None;
        let mut b = self.mustgetc()?;
        if b == b'#' {
            buf.push(b);
            b = self.mustgetc()?;
            let mut radix = 10;
            if b == b'x' {
                radix = 16;
                buf.push(b);
                b = self.mustgetc()?;
            }
            let digits_start = buf.len();
            while b.is_ascii_digit() || (radix == 16 && b.is_ascii_hexdigit()) {
                buf.push(b);
                b = self.mustgetc()?;
            }
            if b == b';' {
                let parsed = std::str::from_utf8(&buf[digits_start..])
                    .ok()
                    .and_then(|digits| u64::from_str_radix(digits, radix).ok());
                buf.push(b';');
                if let Some(n) = parsed {
                    if n <= 0x10FFFF {
                        // Go's string(rune) turns surrogates into U+FFFD.
                        decoded = Some(
                            u32::try_from(n)
                                .ok()
                                .and_then(char::from_u32)
                                .unwrap_or('\u{FFFD}'),
                        );
                    }
                }
            } else {
                self.ungetc();
            }
        } else {
            self.ungetc();
            self.read_name(buf)?;
            if self.mustgetc()? == b';' {
                let name = buf[before + 1..].to_vec();
                buf.push(b';');
                if is_name(&name) {
                    decoded = match name.as_slice() {
                        b"lt" => Some('<'),
                        b"gt" => Some('>'),
                        b"amp" => Some('&'),
                        b"apos" => Some('\''),
                        b"quot" => Some('"'),
                        _ => None,
                    };
                }
            } else {
                self.ungetc();
            }
        }
        if let Some(c) = decoded {
            buf.truncate(before);
            let mut utf8 = [0u8; 4];
            buf.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            return Ok(());
        }
        let mut ent = String::from_utf8_lossy(&buf[before..]).into_owned();
        if !ent.ends_with(';') {
            ent.push_str(" (no semicolon)");
        }
        Err(self.syntax(format!("invalid character entity {ent}")))
    }
}

/// The value of `param="…"` (or `'…'`) in a processing instruction, `""` if absent —
/// Go's deliberately loose `procInst`.
fn pi_param<'a>(param: &[u8], content: &'a [u8]) -> &'a [u8] {
    let mut key = param.to_vec();
    key.push(b'=');
    let Some(at) = content.windows(key.len()).position(|w| w == key.as_slice()) else {
        return b"";
    };
    let v = &content[at + key.len()..];
    let Some(&q) = v.first().filter(|&&q| q == b'"' || q == b'\'') else {
        return b"";
    };
    match v[1..].iter().position(|&b| b == q) {
        Some(end) => &v[1..1 + end],
        None => b"",
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'.' | b'-')
}

/// XML name check: first character a letter, `_` or `:`; the rest also digits, `.`, `-`,
/// `·` (see the module doc for characters above ASCII).
fn is_name(b: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(b) else {
        return false;
    };
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let first_ok = |c: char| c == '_' || c == ':' || c.is_alphabetic();
    first_ok(first)
        && chars
            .all(|c| first_ok(c) || c == '.' || c == '-' || c == '\u{b7}' || c.is_alphanumeric())
}

fn in_char_range(c: char) -> bool {
    matches!(u32::from(c), 0x09 | 0x0A | 0x0D | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}
