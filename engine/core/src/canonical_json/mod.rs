//! JSON values that borrow from the input buffer, and their canonical serialisation.
//!
//! Spec appendix "Canonical JSON": keys sorted by Unicode code point (= UTF-8 byte order), no
//! insignificant whitespace, raw UTF-8, only the mandatory escapes, integers in ±(2^53−1) and no floats
//! (strictly enforced from room version 6). Objects are kept as sorted vectors, so serialisation needs no
//! sort and lookups are a binary search; duplicate keys are an error, never a silent "last one wins".

mod parse;
pub(crate) mod reader;
pub(crate) mod scan;
mod value;
mod write;

pub(crate) use parse::{InputForm, parse_with_spans};
pub use parse::{parse, parse_noting_canonical, parse_object};
pub(crate) use reader::EntrySpans;
pub use value::{JsonError, JsonObject, JsonValue, NumberPolicy};
pub(crate) use write::write_without_whitespace;
pub use write::{
    CountingSink, Sink, sha256_of, to_canonical_string, to_canonical_vec, write_object,
    write_object_filtered, write_string, write_value,
};

#[cfg(test)]
mod tests {
    use super::value::cmp_key;
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
