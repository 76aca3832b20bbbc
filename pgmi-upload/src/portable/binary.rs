//! PostgreSQL's binary COPY format for the session tables' rows (PostgreSQL docs, "COPY —
//! Binary Format", and the types' `*send` functions): the portable session fills its tables
//! with `COPY … FROM STDIN (FORMAT binary)`, which the server stores without parsing text.
//!
//! A file is the 11-byte signature, an int32 flags field (0) and an int32 header-extension
//! length (0); then per row an int16 field count and per field an int32 length (-1 for NULL)
//! and the bytes; then the int16 trailer -1. Integers are big-endian. Text is the UTF-8
//! bytes: the `postgres` crate connects with `client_encoding = UTF8`, and the server
//! converts to the database encoding as it receives each value (so a LATIN1 database stores
//! the same characters, or refuses one it cannot hold with SQLSTATE 22P05). A one-dimensional
//! `text[]` is int32 ndim (1), int32 has-nulls (0), int32 element type OID (25), int32 length
//! and int32 lower bound (1), then each element as a field; an empty array is ndim 0 and no
//! dimension fields.

use super::rows::Value;

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
const TEXT_OID: i32 = 25;

/// The header that starts every binary COPY stream.
pub fn header(out: &mut Vec<u8>) {
    out.extend_from_slice(SIGNATURE);
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
}

/// The trailer that ends it.
pub fn trailer(out: &mut Vec<u8>) {
    out.extend_from_slice(&(-1i16).to_be_bytes());
}

/// A length field: values here are bounded by pgmi-core's file-size limit (at most 1 GiB),
/// so they always fit; a value that did not would be refused by the server anyway.
fn len(n: usize) -> [u8; 4] {
    i32::try_from(n).unwrap_or(i32::MAX).to_be_bytes()
}

/// One row.
pub fn row(out: &mut Vec<u8>, values: &[Value<'_>]) {
    let fields = i16::try_from(values.len()).unwrap_or(i16::MAX);
    out.extend_from_slice(&fields.to_be_bytes());
    for value in values {
        field(out, value);
    }
}

fn field(out: &mut Vec<u8>, value: &Value<'_>) {
    match *value {
        Value::Null => out.extend_from_slice(&(-1i32).to_be_bytes()),
        Value::Text(text) => {
            out.extend_from_slice(&len(text.len()));
            out.extend_from_slice(text.as_bytes());
        }
        Value::Int4(n) => {
            out.extend_from_slice(&4i32.to_be_bytes());
            out.extend_from_slice(&n.to_be_bytes());
        }
        Value::Int8(n) => {
            out.extend_from_slice(&8i32.to_be_bytes());
            out.extend_from_slice(&n.to_be_bytes());
        }
        Value::Bool(b) => {
            out.extend_from_slice(&1i32.to_be_bytes());
            out.push(u8::from(b));
        }
        Value::Uuid(bytes) => {
            out.extend_from_slice(&16i32.to_be_bytes());
            out.extend_from_slice(bytes);
        }
        Value::TextArray(items) => {
            let body: usize = items.iter().map(|s| 4 + s.len()).sum();
            if items.is_empty() {
                out.extend_from_slice(&len(12));
                out.extend_from_slice(&0i32.to_be_bytes());
                out.extend_from_slice(&0i32.to_be_bytes());
                out.extend_from_slice(&TEXT_OID.to_be_bytes());
                return;
            }
            out.extend_from_slice(&len(20 + body));
            out.extend_from_slice(&1i32.to_be_bytes()); // dimensions
            out.extend_from_slice(&0i32.to_be_bytes()); // no NULL elements
            out.extend_from_slice(&TEXT_OID.to_be_bytes());
            out.extend_from_slice(&len(items.len()));
            out.extend_from_slice(&1i32.to_be_bytes()); // lower bound
            for item in items {
                out.extend_from_slice(&len(item.len()));
                out.extend_from_slice(item.as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_each_type() {
        let mut out = Vec::new();
        let parts = vec![".".to_string(), "a.sql".to_string()];
        let id = [7u8; 16];
        row(
            &mut out,
            &[
                Value::Text("é"),
                Value::Null,
                Value::Int4(-2),
                Value::Int8(3),
                Value::Bool(true),
                Value::Uuid(&id),
                Value::TextArray(&parts),
                Value::TextArray(&[]),
            ],
        );
        let mut expected = vec![0, 8];
        expected.extend_from_slice(&[0, 0, 0, 2, 0xC3, 0xA9]);
        expected.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
        expected.extend_from_slice(&[0, 0, 0, 4, 0xFF, 0xFF, 0xFF, 0xFE]);
        expected.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 3]);
        expected.extend_from_slice(&[0, 0, 0, 1, 1]);
        expected.extend_from_slice(&[0, 0, 0, 16]);
        expected.extend_from_slice(&id);
        expected.extend_from_slice(&[0, 0, 0, 34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 25]);
        expected.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 1]);
        expected.extend_from_slice(&[0, 0, 0, 1, b'.', 0, 0, 0, 5]);
        expected.extend_from_slice(b"a.sql");
        expected.extend_from_slice(&[0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 25]);
        assert_eq!(out, expected);
    }

    #[test]
    fn header_and_trailer() {
        let mut out = Vec::new();
        header(&mut out);
        trailer(&mut out);
        assert_eq!(&out[..11], SIGNATURE);
        assert_eq!(out.len(), 11 + 8 + 2);
        assert_eq!(&out[19..], &[0xFF, 0xFF]);
    }
}
