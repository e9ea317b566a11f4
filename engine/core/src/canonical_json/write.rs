//! The canonical writer: keys in byte order (the objects keep them so), no insignificant whitespace,
//! raw UTF-8 with only the mandatory escapes. It writes to a [`Sink`]: a buffer or a byte counter.

use super::scan::first_special;
use super::value::{JsonObject, JsonValue};
use crate::limits::MAX_PDU_BYTES;

/// A destination for canonical JSON bytes: a buffer, or a hash function fed directly.
pub trait Sink {
    fn put(&mut self, bytes: &[u8]);

    /// Puts `"`, `bytes`, `"`.
    #[inline]
    fn put_quoted(&mut self, bytes: &[u8]) {
        self.put(b"\"");
        self.put(bytes);
        self.put(b"\"");
    }
}

impl Sink for Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    #[inline]
    fn put_quoted(&mut self, bytes: &[u8]) {
        self.reserve(bytes.len() + 2);
        self.push(b'"');
        self.extend_from_slice(bytes);
        self.push(b'"');
    }
}

/// Hashes what `write` emits with SHA-256. The bytes are gathered in a per-thread scratch buffer and
/// hashed in one call: the per-call overhead of the hash function would otherwise dominate, as the
/// canonical writer emits many small pieces.
pub fn sha256_of(write: impl FnOnce(&mut Vec<u8>)) -> [u8; 32] {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(4096));
    }
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            write(&mut buf);
            let digest = <sha2::Sha256 as sha2::Digest>::digest(buf.as_slice()).into();
            // Keep the buffer for the next event, unless an oversized input grew it.
            if buf.capacity() > 4 * MAX_PDU_BYTES {
                *buf = Vec::with_capacity(4096);
            }
            digest
        }
        // Re-entrant use (never expected): fall back to a fresh buffer.
        Err(_) => {
            let mut buf = Vec::new();
            write(&mut buf);
            <sha2::Sha256 as sha2::Digest>::digest(buf.as_slice()).into()
        }
    })
}

/// Counts bytes without storing them (used for the PDU size limit).
#[derive(Debug, Default)]
pub struct CountingSink(pub usize);

impl Sink for CountingSink {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

/// Writes `value` as canonical JSON.
pub fn write_value(value: &JsonValue<'_>, out: &mut impl Sink) {
    match value {
        JsonValue::Null => out.put(b"null"),
        JsonValue::Bool(true) => out.put(b"true"),
        JsonValue::Bool(false) => out.put(b"false"),
        JsonValue::Int(i) => out.put(itoa::Buffer::new().format(*i).as_bytes()),
        JsonValue::UInt(u) => out.put(itoa::Buffer::new().format(*u).as_bytes()),
        JsonValue::Float(f) => write_float(*f, out),
        JsonValue::String(s) => write_string(s, out),
        JsonValue::Array(items) => {
            out.put(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.put(b",");
                }
                write_value(item, out);
            }
            out.put(b"]");
        }
        JsonValue::Object(obj) => write_object(obj, out),
    }
}

/// Writes `obj` as canonical JSON.
pub fn write_object(obj: &JsonObject<'_>, out: &mut impl Sink) {
    write_object_filtered(obj, out, |_, v| Some(v));
}

/// Writes the entries of `obj` for which `select` returns a value (possibly a replacement), in order.
pub fn write_object_filtered<'v, 'a: 'v>(
    obj: &'v JsonObject<'a>,
    out: &mut impl Sink,
    mut select: impl FnMut(&str, &'v JsonValue<'a>) -> Option<&'v JsonValue<'a>>,
) {
    out.put(b"{");
    let mut first = true;
    for (k, v) in obj.entries.iter() {
        let Some(v) = select(k, v) else { continue };
        if !first {
            out.put(b",");
        }
        first = false;
        write_string(k, out);
        out.put(b":");
        write_value(v, out);
    }
    out.put(b"}");
}

/// For each byte: 0 when it is written as is, otherwise the character after the backslash of its escape
/// (`u` for the `\u00XX` form). Canonical JSON escapes only `"`, `\\` and control characters.
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Writes `json` without the whitespace between its tokens. `json` must be valid JSON text (or a run of
/// whole tokens of one, such as an object entry); for input that is canonical but for whitespace this
/// writes its canonical form, copying runs of bytes instead of serialising values.
pub(crate) fn write_without_whitespace(json: &[u8], out: &mut impl Sink) {
    let mut run = 0;
    let mut i = 0;
    while let Some(&b) = json.get(i) {
        match b {
            b'"' => {
                // Skip the string: its body may hold spaces; escapes are two bytes (`\u` is followed
                // by hex digits only).
                i += 1;
                loop {
                    i = first_special(json, i);
                    match json.get(i) {
                        Some(b'\\') => i += 2,
                        Some(_) => {
                            i += 1;
                            break;
                        }
                        None => break,
                    }
                }
            }
            b' ' | b'\t' | b'\n' | b'\r' => {
                out.put(json.get(run..i).unwrap_or_default());
                i += 1;
                while let Some(b' ' | b'\t' | b'\n' | b'\r') = json.get(i) {
                    i += 1;
                }
                run = i;
            }
            _ => i += 1,
        }
    }
    out.put(json.get(run..).unwrap_or_default());
}

/// Writes a JSON string with exactly the escapes canonical JSON requires.
pub fn write_string(s: &str, out: &mut impl Sink) {
    let bytes = s.as_bytes();
    let mut special = first_special(bytes, 0);
    if special == bytes.len() {
        // Most strings in events need no escapes at all.
        out.put_quoted(bytes);
        return;
    }
    out.put(b"\"");
    let mut start = 0;
    while special < bytes.len() {
        out.put(&bytes[start..special]);
        let b = bytes[special];
        match ESCAPE[b as usize] {
            b'u' => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.put(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(b >> 4) as usize],
                    HEX[(b & 0xf) as usize],
                ]);
            }
            escape => out.put(&[b'\\', escape]),
        }
        start = special + 1;
        special = first_special(bytes, start);
    }
    out.put(&bytes[start..]);
    out.put(b"\"");
}

fn write_float(f: f64, out: &mut impl Sink) {
    // Only reachable for room versions 1–5, where canonical JSON is not enforced; integral values are
    // written as integers (as Synapse's encoder does for whole floats read from the wire), others in the
    // shortest round-trip form.
    if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
        out.put(itoa::Buffer::new().format(f as i64).as_bytes());
    } else if f.is_finite() {
        out.put(ryu::Buffer::new().format_finite(f).as_bytes());
    } else {
        out.put(b"null");
    }
}

/// Canonical JSON of `value` as a byte vector.
pub fn to_canonical_vec(value: &JsonValue<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_value(value, &mut out);
    out
}

/// Canonical JSON of `value` as a string.
pub fn to_canonical_string(value: &JsonValue<'_>) -> String {
    // The writer only emits valid UTF-8: input strings are `str` and escapes are ASCII.
    String::from_utf8(to_canonical_vec(value)).unwrap_or_default()
}
