//! PostgreSQL's binary COPY format for exactly one row of one `bytea` column: how the
//! bundle reaches the server (`COPY pg_temp._pgmi_upload (data) FROM STDIN (FORMAT binary)`).
//!
//! Layout (PostgreSQL docs, "COPY — Binary Format"): the 11-byte signature
//! `PGCOPY\n\377\r\n\0`, an int32 flags field (0: no OIDs), an int32 header-extension
//! length (0); one tuple: int16 field count (1), int32 byte length, the bytes; then the
//! int16 trailer -1. All integers are big-endian.
//!
//! The bundle is streamed in [`CHUNK_BYTES`] pieces: the `postgres` crate's COPY writer
//! copies whatever it is handed into its own buffer, so one `write_all` of the whole bundle
//! would hold a second full copy in memory.

use std::io::{self, Write};

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// One CopyData message per chunk; 64 KiB keeps messages large (few round trips through
/// the client's buffer) while bounding the extra memory to one chunk.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// A bytea value is at most 1 GB including its 4-byte varlena header (PostgreSQL's
/// `MaxAllocSize` is 0x3fffffff); the int32 length field alone would allow 2 GiB - 1.
pub const MAX_FIELD_BYTES: usize = 0x3fff_ffff - 4;

/// Everything before the value: signature, flags, header extension, field count, length.
pub fn prefix(len: usize) -> io::Result<Vec<u8>> {
    let len = i32::try_from(len)
        .ok()
        .filter(|l| *l as usize <= MAX_FIELD_BYTES)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bundle is {len} bytes; a bytea value holds at most {MAX_FIELD_BYTES}"),
            )
        })?;
    let mut out = Vec::with_capacity(SIGNATURE.len() + 4 + 4 + 2 + 4);
    out.extend_from_slice(SIGNATURE);
    out.extend_from_slice(&0i32.to_be_bytes()); // flags
    out.extend_from_slice(&0i32.to_be_bytes()); // header extension length
    out.extend_from_slice(&1i16.to_be_bytes()); // fields in the tuple
    out.extend_from_slice(&len.to_be_bytes());
    Ok(out)
}

/// The file trailer.
pub const TRAILER: [u8; 2] = (-1i16).to_be_bytes();

/// Write one row holding `value`, in chunks.
pub fn write_single_bytea<W: Write>(out: &mut W, value: &[u8]) -> io::Result<()> {
    out.write_all(&prefix(value.len())?)?;
    for chunk in value.chunks(CHUNK_BYTES) {
        out.write_all(chunk)?;
    }
    out.write_all(&TRAILER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_one_row_exactly() {
        let mut out = Vec::new();
        write_single_bytea(&mut out, b"abc").unwrap();
        let expected: Vec<u8> = [
            &b"PGCOPY\n\xff\r\n\0"[..],
            &[0, 0, 0, 0],
            &[0, 0, 0, 0],
            &[0, 1],
            &[0, 0, 0, 3],
            b"abc",
            &[0xff, 0xff],
        ]
        .concat();
        assert_eq!(out, expected);
    }

    #[test]
    fn empty_value_and_chunked_large_value() {
        let mut out = Vec::new();
        write_single_bytea(&mut out, b"").unwrap();
        assert_eq!(out.len(), 11 + 4 + 4 + 2 + 4 + 2);
        assert_eq!(&out[21..25], &[0, 0, 0, 0]);

        struct CountingWriter(Vec<usize>);
        impl Write for CountingWriter {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.push(buf.len());
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let value = vec![7u8; CHUNK_BYTES * 2 + 5];
        let mut w = CountingWriter(Vec::new());
        write_single_bytea(&mut w, &value).unwrap();
        assert!(w.0.iter().all(|n| *n <= CHUNK_BYTES));
        assert_eq!(w.0.iter().sum::<usize>(), 25 + value.len() + 2);
    }

    #[test]
    fn refuses_values_over_one_gigabyte() {
        assert!(prefix(MAX_FIELD_BYTES).is_ok());
        assert!(prefix(MAX_FIELD_BYTES + 1).is_err());
    }
}
