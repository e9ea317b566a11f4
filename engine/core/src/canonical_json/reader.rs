//! A JSON reader specialised for PDUs: one UTF-8 validation of the whole buffer, strings borrowed from
//! it unless they contain escapes, objects built directly as sorted vectors, vector/word-at-a-time
//! scanning of string bodies (`scan`). Besides the value it reports whether the input is canonical JSON
//! (or canonical but for whitespace), whether all numbers are safe integers, and optionally where the
//! top-level and `content` entries are. It accepts exactly RFC 8259 JSON (checked against serde_json by
//! a differential property test) and reports errors with line and column.
//!
//! Why not serde_json: parsing is the largest cost of the per-PDU path (parse → event id → canonical
//! bytes), and serde_json's visitor indirection, per-string UTF-8 checks and map building cost about
//! twice what this reader does on typical events.

use std::borrow::Cow;
use std::ops::Range;

use super::scan::first_special;
use super::value::{JsonObject, JsonValue, cmp_key};
use crate::limits::MAX_SAFE_INT;

/// Deepest nesting accepted (serde_json's default limit is the same).
const MAX_DEPTH: u32 = 128;

/// What one read found besides the value.
pub(crate) struct Read<'a> {
    pub value: JsonValue<'a>,
    /// The input is exactly the canonical JSON of `value` (no whitespace, keys sorted, only the
    /// mandatory escapes, plain integers): its bytes can stand for the canonical form.
    pub canonical: bool,
    /// The input is canonical JSON but for insignificant whitespace (pretty-printed canonical JSON):
    /// dropping every whitespace byte outside strings gives the canonical form.
    pub canonical_but_whitespace: bool,
    /// No float and no integer outside ±(2^53−1): a strict or normalising number policy has nothing to
    /// check or rewrite, so its walk over the tree can be skipped.
    pub numbers_plain: bool,
}

/// Byte ranges of the entries (`"key":value`) of the top-level object and of its `content` object (when
/// that is an object), in input order. When the input is canonical (or canonical but for whitespace),
/// input order is the sorted order of the parsed objects and each range is the canonical JSON of its
/// entry (once its whitespace is dropped), so a writer can copy ranges instead of serialising values
/// again (the reference hash does). For other input the ranges are not meaningful and not used.
#[derive(Debug, Default)]
pub(crate) struct EntrySpans {
    pub top: Vec<Range<usize>>,
    pub content: Vec<Range<usize>>,
}

impl EntrySpans {
    /// Frees the buffers when an unusually large document grew them (more entries than a PDU within
    /// the size limit can hold), so a per-thread `EntrySpans` stays small.
    pub(crate) fn shrink_if_large(&mut self) {
        const KEEP: usize = 4096;
        if self.top.capacity() > KEEP {
            self.top = Vec::new();
        }
        if self.content.capacity() > KEEP {
            self.content = Vec::new();
        }
    }
}

/// Reads one JSON document (surrounding whitespace allowed) from `input`.
#[cfg(test)]
pub(crate) fn read(input: &[u8]) -> Result<JsonValue<'_>, String> {
    read_noting_canonical(input).map(|(value, _)| value)
}

/// Reads one JSON document and tells whether `input` is already exactly its canonical JSON (no
/// whitespace, keys sorted, only the mandatory escapes, plain integers): then the input bytes can
/// stand for the canonical form without serialising again.
#[cfg(test)]
pub(crate) fn read_noting_canonical(input: &[u8]) -> Result<(JsonValue<'_>, bool), String> {
    read_with_spans(input, None).map(|r| (r.value, r.canonical))
}

/// Reads one JSON document; with `spans`, records the entry ranges of its top level and `content` there
/// (cleared first).
pub(crate) fn read_with_spans<'a>(
    input: &'a [u8],
    mut spans: Option<&mut EntrySpans>,
) -> Result<Read<'a>, String> {
    let text = std::str::from_utf8(input)
        .map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to()))?;
    if let Some(spans) = spans.as_deref_mut() {
        spans.top.clear();
        spans.content.clear();
    }
    let mut reader = Reader {
        text,
        bytes: input,
        pos: 0,
        depth: 0,
        canonical: true,
        whitespace: false,
        numbers_plain: true,
        content_next: false,
        spans,
    };
    reader.skip_ws();
    let value = reader.value()?;
    reader.skip_ws();
    if reader.pos != reader.bytes.len() {
        return Err(reader.error("trailing characters"));
    }
    Ok(Read {
        value,
        canonical: reader.canonical && !reader.whitespace,
        canonical_but_whitespace: reader.canonical,
        numbers_plain: reader.numbers_plain,
    })
}

/// Reads the value at the reader's position and runs `$then` with it bound to `$v`, once per kind of
/// value. Each arm builds and stores its value directly: with one `JsonValue` returned from a shared
/// `match` (or a call), the compiler copied it through the stack at a byte offset, and each copy stalled
/// on store forwarding (the largest cost of the reader under perf).
macro_rules! read_value {
    ($reader:ident, $v:ident => $then:expr) => {
        match $reader.peek() {
            Some(b'"') => match $reader.plain_string() {
                Ok(s) => {
                    let $v = JsonValue::String(Cow::Borrowed(s));
                    $then;
                }
                Err(start) => {
                    let $v = JsonValue::String($reader.string_rest(start)?);
                    $then;
                }
            },
            Some(b'{') => {
                let $v = JsonValue::Object($reader.object()?);
                $then;
            }
            Some(b'[') => {
                let $v = JsonValue::Array($reader.array()?);
                $then;
            }
            Some(b'-' | b'0'..=b'9') => {
                let $v = $reader.number()?;
                $then;
            }
            Some(b't') => {
                $reader.literal(b"true")?;
                let $v = JsonValue::Bool(true);
                $then;
            }
            Some(b'f') => {
                $reader.literal(b"false")?;
                let $v = JsonValue::Bool(false);
                $then;
            }
            Some(b'n') => {
                $reader.literal(b"null")?;
                let $v = JsonValue::Null;
                $then;
            }
            Some(_) => return Err($reader.error("expected value")),
            None => return Err($reader.error("EOF while parsing a value")),
        }
    };
}

struct Reader<'a, 's> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: u32,
    /// Still true when everything read so far is in canonical form, whitespace aside.
    canonical: bool,
    /// Whitespace was seen between tokens.
    whitespace: bool,
    /// Still true when every number read so far is an integer in ±(2^53−1).
    numbers_plain: bool,
    /// The value about to be read is the top-level `content`.
    content_next: bool,
    spans: Option<&'s mut EntrySpans>,
}

impl<'a> Reader<'a, '_> {
    #[cold]
    fn error(&self, what: &str) -> String {
        let upto = &self.bytes[..self.pos.min(self.bytes.len())];
        let line = upto.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = upto.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
        format!("{what} at line {line} column {column}")
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    #[inline]
    fn skip_ws(&mut self) {
        if let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.skip_ws_run();
        }
    }

    #[inline(never)]
    fn skip_ws_run(&mut self) {
        self.whitespace = true;
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8, what: &str) -> Result<(), String> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else if self.peek().is_none() {
            Err(self.error("EOF while parsing"))
        } else {
            Err(self.error(what))
        }
    }

    /// Reads any value (the document's root; container entries use [`read_value!`] directly).
    #[allow(clippy::needless_return, reason = "every arm of the macro returns")]
    fn value(&mut self) -> Result<JsonValue<'a>, String> {
        read_value!(self, v => return Ok(v));
    }

    #[inline]
    fn literal(&mut self, word: &[u8]) -> Result<(), String> {
        if self.bytes[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.error("expected value"))
        }
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("recursion limit exceeded"));
        }
        Ok(())
    }

    #[inline(never)]
    fn object(&mut self) -> Result<JsonObject<'a>, String> {
        self.enter()?;
        // Entry ranges are kept for the top-level object and for its `content`.
        let recording = self.spans.is_some();
        let record_top = recording && self.depth == 1;
        let record_content = recording && self.depth == 2 && self.content_next;
        self.pos += 1;
        let mut entries: Vec<(Cow<'a, str>, JsonValue<'a>)> = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                self.skip_ws();
                if self.peek() != Some(b'"') {
                    return Err(self.error("key must be a string"));
                }
                let entry_start = self.pos;
                let key = self.string()?;
                self.skip_ws();
                self.expect(b':', "expected `:`")?;
                self.skip_ws();
                if record_top {
                    self.content_next = key == "content";
                }
                if entries.len() == entries.capacity() {
                    // Most objects in events are small: start at 8 to skip the 4 → 8 step; a PDU's
                    // top level has 10–14 keys, so start that at 16.
                    let first = if self.depth == 1 { 16 } else { 8 };
                    entries.reserve(entries.len().max(first));
                }
                read_value!(self, value => entries.push((key, value)));
                if let Some(spans) = self.spans.as_deref_mut() {
                    if record_top {
                        self.content_next = false;
                        spans.top.push(entry_start..self.pos);
                    } else if record_content {
                        spans.content.push(entry_start..self.pos);
                    }
                }
                if self.after_item(b'}', "EOF while parsing an object", "expected `,` or `}`")? {
                    break;
                }
            }
        }
        self.depth -= 1;
        // Canonical input arrives sorted, which makes this a linear check.
        if !entries.is_sorted_by(|a, b| cmp_key(a.0.as_bytes(), b.0.as_bytes()).is_lt()) {
            self.canonical = false;
            entries.sort_by(|a, b| cmp_key(a.0.as_bytes(), b.0.as_bytes()));
            if let Some(w) = entries.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(self.error(&format!("duplicate key `{}`", w[0].0)));
            }
        }
        Ok(JsonObject::from_sorted_unique(entries))
    }

    /// After an entry of an object or list: consumes the `,` before the next one (`false`) or the
    /// closing `close` (`true`).
    #[inline(always)]
    fn after_item(&mut self, close: u8, eof: &str, unexpected: &str) -> Result<bool, String> {
        self.skip_ws();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                Ok(false)
            }
            Some(c) if c == close => {
                self.pos += 1;
                Ok(true)
            }
            None => Err(self.error(eof)),
            Some(_) => Err(self.error(unexpected)),
        }
    }

    #[inline(never)]
    fn array(&mut self) -> Result<Vec<JsonValue<'a>>, String> {
        self.enter()?;
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
        } else {
            loop {
                self.skip_ws();
                read_value!(self, value => items.push(value));
                if self.after_item(b']', "EOF while parsing a list", "expected `,` or `]`")? {
                    break;
                }
            }
        }
        self.depth -= 1;
        Ok(items)
    }

    /// Reads a string starting at its opening quote. The common case (no escapes) borrows from the
    /// input and stays inline; strings with escapes take the out-of-line path.
    #[inline(always)]
    fn string(&mut self) -> Result<Cow<'a, str>, String> {
        match self.plain_string() {
            Ok(s) => Ok(Cow::Borrowed(s)),
            Err(start) => self.string_rest(start),
        }
    }

    /// Reads a string without escapes starting at its opening quote; otherwise returns where its body
    /// starts, for [`Reader::string_rest`]. (Kept apart so that the common case builds its value from
    /// registers, never merged with the owned case through the stack.)
    #[inline(always)]
    fn plain_string(&mut self) -> Result<&'a str, usize> {
        self.pos += 1;
        let start = self.pos;
        self.scan_plain();
        if self.peek() == Some(b'"') {
            let s = &self.text[start..self.pos];
            self.pos += 1;
            Ok(s)
        } else {
            Err(start)
        }
    }

    /// The rest of a string whose plain prefix `start..pos` stopped at a backslash, a control
    /// character or the end of the input.
    #[inline(never)]
    fn string_rest(&mut self, start: usize) -> Result<Cow<'a, str>, String> {
        match self.peek() {
            Some(b'\\') => {
                let mut owned = String::with_capacity(self.pos - start + 16);
                owned.push_str(&self.text[start..self.pos]);
                self.escaped_rest(&mut owned)?;
                Ok(Cow::Owned(owned))
            }
            Some(_) => Err(self.error("control character in string")),
            None => Err(self.error("EOF while parsing a string")),
        }
    }

    /// Advances over string bytes that need no attention; stops at `"`, `\`, a control character or the
    /// end.
    #[inline(always)]
    fn scan_plain(&mut self) {
        self.pos = first_special(self.bytes, self.pos);
    }

    /// Decodes the rest of a string that contains escapes, starting at a backslash.
    fn escaped_rest(&mut self, out: &mut String) -> Result<(), String> {
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let Some(kind) = self.peek() else {
                        return Err(self.error("EOF while parsing a string"));
                    };
                    self.pos += 1;
                    match kind {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => {
                            out.push('/');
                            self.canonical = false;
                        }
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let digits = self.pos;
                            let c = self.unicode_escape()?;
                            // Canonical only for control characters without a short escape, written
                            // as `\u00xx` in lower case.
                            let short = matches!(c, '\u{8}' | '\t' | '\n' | '\u{c}' | '\r');
                            let lower = !self.bytes[digits..self.pos]
                                .iter()
                                .any(u8::is_ascii_uppercase);
                            if (c as u32) >= 0x20 || short || !lower {
                                self.canonical = false;
                            }
                            out.push(c);
                        }
                        _ => return Err(self.error("invalid escape")),
                    }
                }
                Some(0x00..=0x1f) => return Err(self.error("control character in string")),
                Some(_) => {
                    let start = self.pos;
                    self.scan_plain();
                    out.push_str(&self.text[start..self.pos]);
                }
                None => return Err(self.error("EOF while parsing a string")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self
            .bytes
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.error("EOF while parsing a string"))?;
        let mut value = 0u32;
        for &d in digits {
            let v = (d as char)
                .to_digit(16)
                .ok_or_else(|| self.error("invalid escape"))?;
            value = value * 16 + v;
        }
        self.pos += 4;
        Ok(value)
    }

    fn unicode_escape(&mut self) -> Result<char, String> {
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                    return Err(self.error("lone leading surrogate in hex escape"));
                }
                self.pos += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(self.error("lone leading surrogate in hex escape"));
                }
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.error("lone trailing surrogate in hex escape")),
            other => other,
        };
        char::from_u32(code).ok_or_else(|| self.error("invalid unicode code point"))
    }

    /// Reads a number. Integers of up to 15 digits (every canonical-JSON integer but the largest) are
    /// accumulated directly; longer ones, fractions and exponents go through the standard parsers.
    #[inline]
    fn number(&mut self) -> Result<JsonValue<'a>, String> {
        let start = self.pos;
        let bytes = self.bytes;
        let mut i = self.pos;
        let negative = bytes.get(i) == Some(&b'-');
        if negative {
            i += 1;
        }
        let digits_start = i;
        let mut magnitude: u64 = 0;
        match bytes.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                while let Some(&d @ b'0'..=b'9') = bytes.get(i) {
                    magnitude = magnitude.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
                    i += 1;
                }
            }
            _ => {
                self.pos = i;
                return Err(self.error("invalid number"));
            }
        }
        if !matches!(bytes.get(i), Some(b'.' | b'e' | b'E')) && i - digits_start <= 15 {
            self.pos = i;
            if negative && magnitude == 0 {
                // `-0`: the integer 0, but not its canonical spelling.
                self.canonical = false;
            }
            // At most 15 digits: below 2^53, no overflow.
            let value = if negative {
                -(magnitude as i64)
            } else {
                magnitude as i64
            };
            return Ok(JsonValue::Int(value));
        }
        self.number_slow(start, i)
    }

    /// The general number path, from `start`; `i` is the end of the integer part.
    #[inline(never)]
    fn number_slow(&mut self, start: usize, mut i: usize) -> Result<JsonValue<'a>, String> {
        let bytes = self.bytes;
        let mut integer = true;
        if bytes.get(i) == Some(&b'.') {
            integer = false;
            i += 1;
            let digits = i;
            while let Some(b'0'..=b'9') = bytes.get(i) {
                i += 1;
            }
            if i == digits {
                self.pos = i;
                return Err(self.error("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = bytes.get(i) {
            integer = false;
            i += 1;
            if let Some(b'+' | b'-') = bytes.get(i) {
                i += 1;
            }
            let digits = i;
            while let Some(b'0'..=b'9') = bytes.get(i) {
                i += 1;
            }
            if i == digits {
                self.pos = i;
                return Err(self.error("invalid number"));
            }
        }
        let literal = &self.text[start..i];
        self.pos = i;
        if !integer || literal == "-0" {
            self.canonical = false;
        }
        if integer {
            if let Ok(v) = literal.parse::<i64>() {
                if !(-MAX_SAFE_INT..=MAX_SAFE_INT).contains(&v) {
                    self.numbers_plain = false;
                }
                return Ok(JsonValue::Int(v));
            }
            if let Ok(v) = literal.parse::<u64>() {
                self.numbers_plain = false;
                return Ok(JsonValue::UInt(v));
            }
        }
        self.numbers_plain = false;
        match literal.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(JsonValue::Float(f)),
            _ => {
                self.pos = start;
                Err(self.error("number out of range"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Converts our value to serde_json's for comparison (numbers compared as serde_json reads them).
    fn to_serde(v: &JsonValue<'_>) -> serde_json::Value {
        match v {
            JsonValue::Null => serde_json::Value::Null,
            JsonValue::Bool(b) => serde_json::Value::Bool(*b),
            JsonValue::Int(i) => serde_json::Value::from(*i),
            JsonValue::UInt(u) => serde_json::Value::from(*u),
            JsonValue::Float(f) => serde_json::Value::from(*f),
            JsonValue::String(s) => serde_json::Value::String(s.to_string()),
            JsonValue::Array(a) => serde_json::Value::Array(a.iter().map(to_serde).collect()),
            JsonValue::Object(o) => serde_json::Value::Object(
                o.iter().map(|(k, v)| (k.to_owned(), to_serde(v))).collect(),
            ),
        }
    }

    fn has_duplicate_keys(text: &str) -> bool {
        // serde_json keeps the last duplicate; we reject. Detect via a strict parse with our reader.
        read(text.as_bytes())
            .err()
            .is_some_and(|e| e.contains("duplicate key"))
    }

    fn agrees(text: &str) {
        let ours = read(text.as_bytes());
        let theirs = serde_json::from_str::<serde_json::Value>(text);
        match (&ours, &theirs) {
            (Ok(a), Ok(b)) => assert_eq!(&to_serde(a), b, "{text:?}"),
            (Err(_), Err(_)) => {}
            (Err(e), Ok(_)) if has_duplicate_keys(text) => assert!(e.contains("duplicate key")),
            _ => panic!("disagree on {text:?}: ours {ours:?}, serde_json {theirs:?}"),
        }
    }

    #[test]
    fn edge_cases_agree_with_serde_json() {
        for text in [
            "{}",
            "[]",
            " {\"a\" : [1, 0, 0.5, 1e3, -1E-2, 12345678901234567890, -9223372036854775808] } ",
            "\"\\ud83d\\ude00 \\u00e9 \\/ \\b\\f\\n\\r\\t\"",
            "\"\\ud83d\"",
            "\"\\ude00\"",
            "\"\\u12\"",
            "\"\\x\"",
            "01",
            "-",
            "1.",
            ".5",
            "1e",
            "+1",
            "1e400",
            "-1e400",
            "tru",
            "nul",
            "[1,]",
            "{\"a\":1,}",
            "{1:2}",
            "\"a\u{1}b\"",
            "\"abc",
            "[",
            "{\"a\"",
            "{\"a\":",
            "\"\\",
            "[1 2]",
            "{\"a\" 1}",
            "\u{feff}{}",
            "",
            "  ",
            "true false",
            "\"日本語\"",
            "{\"b\":1,\"a\":2}",
            "{\"a\":1,\"a\":2}",
            "1.0",
            "-0.0",
            "[[[[]]]]",
            "18446744073709551616",
            "9223372036854775808",
            "\"long string without any escapes at all, ok\"",
            "999999999999999",
            "-999999999999999",
            "9999999999999999",
            "-9999999999999999",
            "9007199254740993",
            "[-0,0,-1,007]",
            "[-0.0,-01]",
            "123456789012345e1",
            "123456789012345.5",
            "\"abcdefg\\\"hij\\\\klmnop\"",
        ] {
            agrees(text);
        }
        assert!(read("[".repeat(200).as_bytes()).is_err());
        // serde_json reads `-0` as the float -0.0; canonical JSON (and Python, hence Synapse) read the
        // integer 0, which is what the strict number policy must accept.
        assert_eq!(read(b"-0"), Ok(JsonValue::Int(0)));
        assert!(read(&[b'"', 0xff, b'"']).is_err());
    }

    /// The word-at-a-time string scan must stop exactly at the first byte that needs attention, wherever
    /// it falls in a word.
    #[test]
    fn string_scan_stops_at_every_offset() {
        for len in 0..40 {
            for at in 0..len {
                for special in ["\\\"", "\\\\", "\\n", "\u{1}", "\"", "é", "\\u00e9"] {
                    let mut body: String =
                        (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
                    body.replace_range(at..at + 1, special);
                    agrees(&format!("\"{body}\""));
                    agrees(&format!("{{\"{body}\":[\"{body}\"]}}"));
                }
            }
        }
    }

    #[test]
    fn errors_have_positions() {
        let err = read(b"{\n  \"a\": tru\n}").expect_err("invalid");
        assert!(err.contains("line 2 column 8"), "{err}");
    }

    fn json_text() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            any::<i64>().prop_map(|i| i.to_string()),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| format!("{f:e}")),
            "[a-zé\\\\\"\u{1}\u{1F600}/ ]{0,12}"
                .prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
        ];
        leaf.prop_recursive(4, 40, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5)
                    .prop_map(|v| format!("[ {} ]", v.join(" , "))),
                prop::collection::vec(("[a-c]{1,2}", inner), 0..5).prop_map(|v| {
                    let parts: Vec<String> =
                        v.into_iter().map(|(k, x)| format!("\"{k}\":{x}")).collect();
                    format!("{{{}}}", parts.join(","))
                }),
            ]
        })
    }

    /// The canonical flag is true exactly when the input is the canonical form of a float-free value;
    /// the canonical-but-whitespace flag is true when the input is that form with whitespace added.
    fn check_canonical_flag(text: &str) {
        if let Ok(read) = read_with_spans(text.as_bytes(), None) {
            let canonical = crate::canonical_json::to_canonical_string(&read.value);
            if read.canonical_but_whitespace {
                let mut stripped = Vec::new();
                crate::canonical_json::write_without_whitespace(text.as_bytes(), &mut stripped);
                assert_eq!(
                    String::from_utf8(stripped).expect("utf8"),
                    canonical,
                    "flagged canonical but for whitespace, but is not: {text:?}"
                );
            }
            assert!(!read.canonical || read.canonical_but_whitespace);
            // Whitespace added between the tokens of a canonical text keeps the second flag.
            if read.canonical && !canonical.contains(['.', 'e', 'E']) {
                let spaced = canonical.replace(",\"", " ,\n \"").replace(':', ": ");
                if let Ok(again) = read_with_spans(spaced.as_bytes(), None) {
                    assert!(again.canonical_but_whitespace, "{spaced}");
                }
            }
        }
        if let Ok((value, flag)) = read_noting_canonical(text.as_bytes()) {
            let canonical = crate::canonical_json::to_canonical_string(&value);
            if flag {
                assert_eq!(canonical, text, "flagged canonical but is not");
            }
            if let Ok((_, again)) = read_noting_canonical(canonical.as_bytes())
                && !canonical.contains(['.', 'e', 'E'])
            {
                assert!(again, "canonical form not flagged: {canonical}");
            }
        }
    }

    #[test]
    fn canonical_flag_cases() {
        for (text, canonical) in [
            (r#"{"a":1,"b":[true,null,"x"]}"#, true),
            (r#"{"b":1,"a":2}"#, false),
            (r#"{"a": 1}"#, false),
            (r#" {}"#, false),
            (r#"{"a":-0}"#, false),
            (r#"{"a":1.0}"#, false),
            (r#"{"a":"\/"}"#, false),
            (r#"{"a":"\u00e9"}"#, false),
            (r#"{"a":"é"}"#, true),
            (r#"{"a":"\u0001"}"#, true),
            (r#"{"a":"\u001F"}"#, false),
            (r#"{"a":"\b\t\n\f\r\"\\"}"#, true),
            (
                "{\n  \"a\": [1, \"x y\"],\n  \"b\": {\"c\" : \"\\\" :\"}\n}\n",
                false,
            ),
        ] {
            assert_eq!(
                read_noting_canonical(text.as_bytes()).map(|(_, c)| c),
                Ok(canonical),
                "{text}"
            );
            check_canonical_flag(text);
        }
    }

    proptest! {
        #[test]
        fn random_documents_agree_with_serde_json(text in json_text()) {
            agrees(&text);
            check_canonical_flag(&text);
        }

        #[test]
        fn mutated_documents_agree_with_serde_json(text in json_text(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut bytes = text.into_bytes();
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            if let Ok(text) = String::from_utf8(bytes) {
                agrees(&text);
            }
        }
    }
}
