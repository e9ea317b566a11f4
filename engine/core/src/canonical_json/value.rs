//! The JSON value model: [`JsonValue`] borrows strings from the parsed buffer, [`JsonObject`] keeps its
//! entries sorted by key bytes, so serialisation needs no sort and lookups are a binary search.

use std::borrow::Cow;

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
    pub(super) entries: Vec<(Cow<'a, str>, JsonValue<'a>)>,
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
#[non_exhaustive]
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
