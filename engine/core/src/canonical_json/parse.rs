//! Parsing: the reader ([`super::reader`]) and the number policy of a room version.

use super::reader::{EntrySpans, read_with_spans};
use super::value::{JsonError, JsonObject, JsonValue, NumberPolicy};
use crate::limits::MAX_SAFE_INT;

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
    let read = read_with_spans(input, spans).map_err(JsonError::Syntax)?;
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
