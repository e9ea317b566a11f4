//! JSON values that borrow from the input buffer, and their canonical serialisation.
//!
//! Spec appendix "Canonical JSON": keys sorted by Unicode code point (= UTF-8 byte order), no
//! insignificant whitespace, raw UTF-8, only the mandatory escapes, integers in ±(2^53−1) and no floats
//! (strictly enforced from room version 6). Objects are kept as sorted vectors, so serialisation needs no
//! sort and lookups are a binary search; duplicate keys are an error, never a silent "last one wins".

use std::borrow::Cow;

pub(crate) use crate::json_reader::EntrySpans;
use crate::room_version::MAX_SAFE_INT;
use crate::scan::first_special;

/// A JSON value whose strings borrow from the parsed buffer where they contain no escapes.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonValue<'a> {
    Null,
    Bool(bool),
    /// An integer that fits `i64`.
    Int(i64),
    /// A non-negative integer above `i64::MAX` (only tolerated where canonical JSON is not enforced).
    UInt(u64),
    /// A number with a fraction or exponent, or beyond the integer range.
    Float(f64),
    String(Cow<'a, str>),
    Array(Vec<JsonValue<'a>>),
    Object(JsonObject<'a>),
}

/// A JSON object as a vector of entries sorted by key bytes, keys unique.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JsonObject<'a> {
    entries: Vec<(Cow<'a, str>, JsonValue<'a>)>,
}

/// How strictly numbers are checked when parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberPolicy {
    /// Room versions 1–5: floats and integers of any size are tolerated and kept.
    Lenient,
    /// Room versions 6+: floats and integers outside ±(2^53−1) are errors.
    Strict,
    /// The spec appendix's canonicalisation: `-0` → `0`, `1e10` → `10000000000`; numbers that are not
    /// integers in range are errors.
    Normalise,
}

/// Why a buffer is not acceptable JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("invalid JSON: {0}")]
    Syntax(String),
    #[error("JSON value at `{path}` is not an object")]
    NotAnObject { path: String },
    #[error("float {value} at `{path}` is not allowed in canonical JSON")]
    Float { path: String, value: String },
    #[error("integer {value} at `{path}` is outside the canonical JSON range ±(2^53−1)")]
    IntegerRange { path: String, value: String },
}

/// Compares two keys by their bytes (the canonical order), as `<[u8]>::cmp` does. Inlined and eight
/// bytes at a time: keys are short and a call to `memcmp` per comparison cost more than the comparison
/// (a tenth of the PDU path, before).
#[inline]
pub(crate) fn cmp_key(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 8 <= n {
        let mut x = [0u8; 8];
        let mut y = [0u8; 8];
        x.copy_from_slice(&a[i..i + 8]);
        y.copy_from_slice(&b[i..i + 8]);
        if x != y {
            return u64::from_be_bytes(x).cmp(&u64::from_be_bytes(y));
        }
        i += 8;
    }
    while i < n {
        if a[i] != b[i] {
            return a[i].cmp(&b[i]);
        }
        i += 1;
    }
    a.len().cmp(&b.len())
}

impl JsonObject<'static> {
    /// The empty object.
    pub const EMPTY: JsonObject<'static> = JsonObject {
        entries: Vec::new(),
    };
}

impl<'a> JsonObject<'a> {
    pub fn new() -> Self {
        JsonObject {
            entries: Vec::new(),
        }
    }

    /// Wraps entries that are already sorted by key bytes and unique (the JSON reader checks this).
    pub(crate) fn from_sorted_unique(entries: Vec<(Cow<'a, str>, JsonValue<'a>)>) -> Self {
        debug_assert!(entries.is_sorted_by(|a, b| a.0.as_bytes() < b.0.as_bytes()));
        JsonObject { entries }
    }

    /// Builds an object from entries in any order; `None` if a key repeats.
    pub fn from_entries(mut entries: Vec<(Cow<'a, str>, JsonValue<'a>)>) -> Option<Self> {
        entries.sort_unstable_by(|a, b| cmp_key(a.0.as_bytes(), b.0.as_bytes()));
        if entries.windows(2).any(|w| w[0].0 == w[1].0) {
            return None;
        }
        Some(JsonObject { entries })
    }

    pub fn get(&self, key: &str) -> Option<&JsonValue<'a>> {
        self.entries
            .binary_search_by(|(k, _)| cmp_key(k.as_bytes(), key.as_bytes()))
            .ok()
            .map(|i| &self.entries[i].1)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut JsonValue<'a>> {
        match self
            .entries
            .binary_search_by(|(k, _)| cmp_key(k.as_bytes(), key.as_bytes()))
        {
            Ok(i) => Some(&mut self.entries[i].1),
            Err(_) => None,
        }
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Inserts or replaces `key`, keeping the order; returns the previous value.
    pub fn insert(&mut self, key: Cow<'a, str>, value: JsonValue<'a>) -> Option<JsonValue<'a>> {
        match self
            .entries
            .binary_search_by(|(k, _)| cmp_key(k.as_bytes(), key.as_bytes()))
        {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (key, value));
                None
            }
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<JsonValue<'a>> {
        match self
            .entries
            .binary_search_by(|(k, _)| cmp_key(k.as_bytes(), key.as_bytes()))
        {
            Ok(i) => Some(self.entries.remove(i).1),
            Err(_) => None,
        }
    }

    /// Keeps only the entries for which `keep(key)` holds.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &mut JsonValue<'a>) -> bool) {
        self.entries.retain_mut(|(k, v)| keep(k, v));
    }

    /// Entries in canonical (sorted) order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &JsonValue<'a>)> {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Copies every borrowed string so the object no longer refers to the input buffer.
    pub fn into_owned(self) -> JsonObject<'static> {
        JsonObject {
            entries: self
                .entries
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k.into_owned()), v.into_owned()))
                .collect(),
        }
    }
}

impl<'a> JsonValue<'a> {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            JsonValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&JsonObject<'a>> {
        match self {
            JsonValue::Object(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[JsonValue<'a>]> {
        match self {
            JsonValue::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            JsonValue::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            JsonValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// A short name of the value's JSON type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            JsonValue::Null => "null",
            JsonValue::Bool(_) => "boolean",
            JsonValue::Int(_) | JsonValue::UInt(_) => "integer",
            JsonValue::Float(_) => "float",
            JsonValue::String(_) => "string",
            JsonValue::Array(_) => "array",
            JsonValue::Object(_) => "object",
        }
    }

    pub fn into_owned(self) -> JsonValue<'static> {
        match self {
            JsonValue::Null => JsonValue::Null,
            JsonValue::Bool(b) => JsonValue::Bool(b),
            JsonValue::Int(i) => JsonValue::Int(i),
            JsonValue::UInt(u) => JsonValue::UInt(u),
            JsonValue::Float(f) => JsonValue::Float(f),
            JsonValue::String(s) => JsonValue::String(Cow::Owned(s.into_owned())),
            JsonValue::Array(a) => {
                JsonValue::Array(a.into_iter().map(JsonValue::into_owned).collect())
            }
            JsonValue::Object(o) => JsonValue::Object(o.into_owned()),
        }
    }
}

/// Parses a JSON document, borrowing strings from `input`, and applies `policy` to its numbers.
pub fn parse(input: &[u8], policy: NumberPolicy) -> Result<JsonValue<'_>, JsonError> {
    parse_noting_canonical(input, policy).map(|(value, _)| value)
}

/// Like [`parse`], and also tells whether `input` already is exactly the canonical JSON of the value.
pub fn parse_noting_canonical(
    input: &[u8],
    policy: NumberPolicy,
) -> Result<(JsonValue<'_>, bool), JsonError> {
    parse_with_spans(input, policy, None).map(|(value, form)| (value, form == InputForm::Canonical))
}

/// Like [`parse_noting_canonical`], recording the entry ranges of the top level and of `content` in
/// `spans` (see [`EntrySpans`]).
pub(crate) fn parse_with_spans<'a>(
    input: &'a [u8],
    policy: NumberPolicy,
    spans: Option<&mut EntrySpans>,
) -> Result<(JsonValue<'a>, InputForm), JsonError> {
    let read = crate::json_reader::read_with_spans(input, spans).map_err(JsonError::Syntax)?;
    let mut value = read.value;
    // The reader saw every number: when all are integers in range, no policy has anything to do.
    if !read.numbers_plain {
        apply_policy(&mut value, policy)?;
    }
    let form = if read.canonical {
        InputForm::Canonical
    } else if read.canonical_but_whitespace {
        InputForm::CanonicalButWhitespace
    } else {
        InputForm::Other
    };
    Ok((value, form))
}

/// How parsed input relates to the canonical JSON of its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InputForm {
    /// The input is the canonical JSON.
    Canonical,
    /// The input is the canonical JSON with whitespace between tokens ([`write_without_whitespace`]
    /// turns it into the canonical JSON).
    CanonicalButWhitespace,
    /// Anything else (keys out of order, optional escapes, number spellings): serialise the value.
    Other,
}

/// Parses a JSON document that must be an object.
pub fn parse_object(input: &[u8], policy: NumberPolicy) -> Result<JsonObject<'_>, JsonError> {
    match parse(input, policy)? {
        JsonValue::Object(o) => Ok(o),
        _ => Err(JsonError::NotAnObject { path: "$".into() }),
    }
}

/// Applies `policy` to every number. The path of an offending value is built only on the error path,
/// so a valid document costs one allocation-free walk.
fn apply_policy(value: &mut JsonValue<'_>, policy: NumberPolicy) -> Result<(), JsonError> {
    if policy == NumberPolicy::Lenient {
        return Ok(());
    }
    let mut segments = Vec::new();
    match check_numbers(value, policy, &mut segments) {
        Ok(()) => Ok(()),
        Err(kind) => {
            let path: String = segments.iter().rev().map(String::as_str).collect();
            let path = display_path(&path);
            Err(match kind {
                NumberFault::Float(value) => JsonError::Float { path, value },
                NumberFault::Range(value) => JsonError::IntegerRange { path, value },
            })
        }
    }
}

enum NumberFault {
    Float(String),
    Range(String),
}

/// Checks (and for `Normalise`, rewrites) numbers; on failure `segments` holds the path, innermost first.
fn check_numbers(
    value: &mut JsonValue<'_>,
    policy: NumberPolicy,
    segments: &mut Vec<String>,
) -> Result<(), NumberFault> {
    match value {
        JsonValue::Int(i) => {
            if !(-MAX_SAFE_INT..=MAX_SAFE_INT).contains(i) {
                return Err(NumberFault::Range(i.to_string()));
            }
        }
        JsonValue::UInt(u) => return Err(NumberFault::Range(u.to_string())),
        JsonValue::Float(f) => {
            let f = *f;
            if policy == NumberPolicy::Normalise
                && f.fract() == 0.0
                && f.abs() <= MAX_SAFE_INT as f64
            {
                *value = JsonValue::Int(f as i64);
            } else if policy == NumberPolicy::Normalise && f.fract() == 0.0 && f.is_finite() {
                return Err(NumberFault::Range(f.to_string()));
            } else {
                return Err(NumberFault::Float(f.to_string()));
            }
        }
        JsonValue::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                if let Err(e) = check_numbers(item, policy, segments) {
                    segments.push(format!("[{i}]"));
                    return Err(e);
                }
            }
        }
        JsonValue::Object(obj) => {
            for (k, v) in obj.entries.iter_mut() {
                if let Err(e) = check_numbers(v, policy, segments) {
                    segments.push(format!(".{k}"));
                    return Err(e);
                }
            }
        }
        JsonValue::Null | JsonValue::Bool(_) | JsonValue::String(_) => {}
    }
    Ok(())
}

fn display_path(path: &str) -> String {
    if path.is_empty() {
        "$".to_owned()
    } else {
        format!("${path}")
    }
}

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
            if buf.capacity() > 4 * crate::pdu::MAX_PDU_BYTES {
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
                    i = crate::scan::first_special(json, i);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(input: &str) -> Result<String, JsonError> {
        parse(input.as_bytes(), NumberPolicy::Normalise).map(|v| to_canonical_string(&v))
    }

    /// Spec appendix "Canonical JSON" examples.
    #[test]
    fn spec_test_vectors() {
        let cases = [
            ("{}", "{}"),
            (r#"{"one": 1, "two": "Two"}"#, r#"{"one":1,"two":"Two"}"#),
            (r#"{"b": "2", "a": "1"}"#, r#"{"a":"1","b":"2"}"#),
            (
                r#"{"auth": {"success": true, "mxid": "@john.doe:example.com", "profile": {"display_name": "John Doe", "three_pids": [{"medium": "email", "address": "john.doe@example.org"}, {"medium": "msisdn", "address": "123456789"}]}}}"#,
                r#"{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}}"#,
            ),
            (r#"{"a": "日本語"}"#, r#"{"a":"日本語"}"#),
            (r#"{"本": 2, "日": 1}"#, r#"{"日":1,"本":2}"#),
            (r#"{"a": "\u65E5"}"#, r#"{"a":"日"}"#),
            (r#"{"a": null}"#, r#"{"a":null}"#),
            (r#"{"a": -0, "b": 1e10}"#, r#"{"a":0,"b":10000000000}"#),
        ];
        for (input, expected) in cases {
            assert_eq!(canon(input).as_deref(), Ok(expected), "input {input}");
        }
    }

    #[test]
    fn escapes_only_what_is_required() {
        let input =
            "{\"a\":\"\\u0000\\u0001\\b\\t\\n\\u000b\\f\\r\\u001f \\\" \\\\ / \\u007f \\u00e9\"}";
        assert_eq!(
            canon(input).as_deref(),
            Ok("{\"a\":\"\\u0000\\u0001\\b\\t\\n\\u000b\\f\\r\\u001f \\\" \\\\ / \u{7f} é\"}")
        );
    }

    /// The word-at-a-time escape scan must find specials at every offset, in the last partial word too.
    #[test]
    fn write_string_escapes_at_every_offset() {
        for len in 0..40 {
            for at in 0..len.max(1) {
                for special in ["\"", "\\", "\n", "\u{1}", "\u{1f}", "\u{7f}", "é", "\u{0}"] {
                    let mut text: String =
                        (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
                    if len > 0 {
                        text.replace_range(at..at + 1, special);
                    }
                    let mut ours = Vec::new();
                    write_string(&text, &mut ours);
                    let theirs = serde_json::to_string(&text).expect("serialises");
                    assert_eq!(String::from_utf8(ours).expect("utf8"), theirs);
                }
            }
        }
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let err = canon(r#"{"a": 1, "b": 2, "a": 3}"#).expect_err("duplicate accepted");
        assert!(err.to_string().contains("duplicate key `a`"), "{err}");
        assert!(canon(r#"{"x": {"k": 1, "k": 1}}"#).is_err());
    }

    #[test]
    fn strict_policy_rejects_floats_and_big_integers() {
        let strict =
            |s: &str| parse(s.as_bytes(), NumberPolicy::Strict).map(|v| to_canonical_string(&v));
        assert!(
            matches!(strict(r#"{"a": {"b": [1, 2.5]}}"#), Err(JsonError::Float { path, .. }) if path == "$.a.b[1]")
        );
        assert!(matches!(
            strict(r#"{"a": 9007199254740992}"#),
            Err(JsonError::IntegerRange { .. })
        ));
        assert!(matches!(
            strict(r#"{"a": -9007199254740992}"#),
            Err(JsonError::IntegerRange { .. })
        ));
        assert_eq!(
            strict(r#"{"a": 9007199254740991}"#).as_deref(),
            Ok(r#"{"a":9007199254740991}"#)
        );
        assert!(matches!(
            strict(r#"{"a": 1e3}"#),
            Err(JsonError::Float { .. })
        ));
        assert!(matches!(
            strict(r#"{"a": 18446744073709551615}"#),
            Err(JsonError::IntegerRange { .. })
        ));
    }

    #[test]
    fn lenient_policy_keeps_numbers() {
        let lenient =
            |s: &str| parse(s.as_bytes(), NumberPolicy::Lenient).map(|v| to_canonical_string(&v));
        assert_eq!(lenient(r#"{"a": 50.57}"#).as_deref(), Ok(r#"{"a":50.57}"#));
        assert_eq!(
            lenient(r#"{"a": 9007199254740993}"#).as_deref(),
            Ok(r#"{"a":9007199254740993}"#)
        );
    }

    #[test]
    fn syntax_errors_are_reported_not_panicked() {
        for bad in [
            "",
            "{",
            "{\"a\":}",
            "[1,]",
            "{\"a\":1} x",
            "\u{feff}{}",
            "{'a':1}",
            "nul",
        ] {
            assert!(matches!(canon(bad), Err(JsonError::Syntax(_))), "{bad:?}");
        }
        let deep = "[".repeat(10_000);
        assert!(canon(&deep).is_err());
    }

    #[test]
    fn cmp_key_is_byte_order() {
        let keys = [
            "",
            "a",
            "ab",
            "abcdefgh",
            "abcdefgi",
            "abcdefgh1",
            "abcdefghij",
            "b",
            "é",
            "日本",
            "\u{7f}",
            "@user00001:server1.example.org",
            "@user00001:server1.example.org2",
            "@user00010:x",
        ];
        for a in keys {
            for b in keys {
                assert_eq!(
                    cmp_key(a.as_bytes(), b.as_bytes()),
                    a.as_bytes().cmp(b.as_bytes()),
                    "{a:?} {b:?}"
                );
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn cmp_key_agrees_with_slice_order(a in proptest::collection::vec(0u8..4, 0..20), b in proptest::collection::vec(0u8..4, 0..20)) {
            proptest::prop_assert_eq!(cmp_key(&a, &b), a.cmp(&b));
        }
    }

    #[test]
    fn object_api_keeps_order() {
        let mut obj = JsonObject::new();
        obj.insert("b".into(), JsonValue::Int(2));
        obj.insert("a".into(), JsonValue::Int(1));
        obj.insert("c".into(), JsonValue::Null);
        assert_eq!(
            obj.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert_eq!(obj.remove("b"), Some(JsonValue::Int(2)));
        assert_eq!(
            to_canonical_string(&JsonValue::Object(obj)),
            r#"{"a":1,"c":null}"#
        );
        assert!(
            JsonObject::from_entries(vec![
                ("a".into(), JsonValue::Null),
                ("a".into(), JsonValue::Null)
            ])
            .is_none()
        );
    }
}
