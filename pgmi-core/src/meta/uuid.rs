//! `Uuid`: 16 bytes, printed in canonical lowercase form, parsed the way the original
//! pgmi's google/uuid `Parse`/`UnmarshalText` does — including its error texts, which reach
//! users verbatim.

use std::fmt;

/// A UUID as 16 bytes; `Display` is the canonical lowercase 8-4-4-4-12 form.
/// No version or variant is implied or checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Uuid(pub [u8; 16]);

/// Why a UUID string was rejected; `Display` is google/uuid's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UuidError {
    #[error("invalid UUID length: {0}")]
    Length(usize),
    #[error("invalid UUID format")]
    Format,
    /// A 45-byte value not starting with `urn:uuid:`; holds the Go-quoted first 9 bytes.
    #[error("invalid urn prefix: {0}")]
    UrnPrefix(String),
}

impl Uuid {
    /// `00000000-0000-0000-0000-000000000000`.
    pub const NIL: Uuid = Uuid([0; 16]);

    pub fn is_nil(&self) -> bool {
        *self == Self::NIL
    }

    /// Parses the forms google/uuid accepts, by byte length: 36 (canonical, hex in any case),
    /// 45 (`urn:uuid:` + canonical, prefix case-insensitive), 38 (canonical with one character
    /// on each side, which are not checked — normally braces) and 32 (bare hex).
    pub fn parse(s: &[u8]) -> Result<Uuid, UuidError> {
        let canonical = match s.len() {
            36 => s,
            45 => {
                if !s[..9].eq_ignore_ascii_case(b"urn:uuid:") {
                    return Err(UuidError::UrnPrefix(super::go_text::quote(&s[..9])));
                }
                &s[9..]
            }
            38 => &s[1..37],
            32 => {
                let mut out = [0u8; 16];
                for (i, byte) in out.iter_mut().enumerate() {
                    *byte = hex_pair(s[2 * i], s[2 * i + 1]).ok_or(UuidError::Format)?;
                }
                return Ok(Uuid(out));
            }
            n => return Err(UuidError::Length(n)),
        };
        if [8, 13, 18, 23].iter().any(|&i| canonical[i] != b'-') {
            return Err(UuidError::Format);
        }
        const PAIRS: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
        let mut out = [0u8; 16];
        for (byte, &at) in out.iter_mut().zip(PAIRS.iter()) {
            *byte = hex_pair(canonical[at], canonical[at + 1]).ok_or(UuidError::Format)?;
        }
        Ok(Uuid(out))
    }
}

fn hex_pair(hi: u8, lo: u8) -> Option<u8> {
    let digit = |c: u8| char::from(c).to_digit(16);
    let value = digit(hi)? << 4 | digit(lo)?;
    u8::try_from(value).ok()
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANON: &str = "550e8400-e29b-41d4-a716-446655440000";

    fn parse(s: &str) -> Result<String, String> {
        Uuid::parse(s.as_bytes())
            .map(|u| u.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn accepted_forms() {
        assert_eq!(parse(CANON).unwrap(), CANON);
        assert_eq!(parse(&CANON.to_uppercase()).unwrap(), CANON);
        assert_eq!(parse(&format!("urn:uuid:{CANON}")).unwrap(), CANON);
        assert_eq!(parse(&format!("URN:UUID:{CANON}")).unwrap(), CANON);
        assert_eq!(parse(&format!("{{{CANON}}}")).unwrap(), CANON);
        // The outer characters of the 38-byte form are not checked.
        assert_eq!(parse(&format!("x{CANON}y")).unwrap(), CANON);
        assert_eq!(parse("550E8400E29B41D4A716446655440000").unwrap(), CANON);
        // No version/variant check: version 0 and the nil UUID parse.
        assert_eq!(
            parse("12345678-1234-0234-0234-123456789abc").unwrap(),
            "12345678-1234-0234-0234-123456789abc"
        );
        assert!(Uuid::parse(b"00000000-0000-0000-0000-000000000000")
            .unwrap()
            .is_nil());
    }

    #[test]
    fn rejected_forms() {
        assert_eq!(parse("").unwrap_err(), "invalid UUID length: 0");
        assert_eq!(parse("zzz").unwrap_err(), "invalid UUID length: 3");
        assert_eq!(
            parse(&format!(" {CANON}")).unwrap_err(),
            "invalid UUID length: 37"
        );
        assert_eq!(
            parse("550e840-0e29b-41d4-a716-446655440000").unwrap_err(),
            "invalid UUID format"
        );
        assert_eq!(
            parse("z50e8400-e29b-41d4-a716-446655440000").unwrap_err(),
            "invalid UUID format"
        );
        assert_eq!(
            parse("550e8400e29b41d4a71644665544000g").unwrap_err(),
            "invalid UUID format"
        );
        assert_eq!(
            parse(&format!("not:uuid:{CANON}")).unwrap_err(),
            r#"invalid urn prefix: "not:uuid:""#
        );
        // Lengths are bytes: 36 characters with one 2-byte character are 37 bytes.
        assert_eq!(
            parse(&format!("é{}", &CANON[1..])).unwrap_err(),
            "invalid UUID length: 37"
        );
        assert_eq!(
            parse("+5+e8400-e29b-41d4-a716-446655440000").unwrap_err(),
            "invalid UUID format"
        );
    }
}
