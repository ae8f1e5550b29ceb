//! Provider data that Postgres cannot hold as it is, and how the store keeps
//! it anyway.
//!
//! - `text` cannot hold a NUL character, and `jsonb` refuses a string (or an
//!   object key) with `\u0000` in it, although it is valid JSON.
//! - `jsonb` keeps numbers as `numeric`: `-0.0` comes back as `0.0`, and a
//!   float with an integral value of 1e16 or more (written `1e16` by
//!   serde_json) comes back as an integer.
//!
//! Such a document is stored twice: `data jsonb` gets a copy with each NUL
//! replaced by U+FFFD (what the typed views show), and `exact json` (the
//! `json` type keeps its input text, `\u0000` escapes included, and has no
//! NUL byte in it) keeps the document and the extracted columns exactly.
//! Reads return the exact form. Only documents that need it pay for it.
//!
//! Keys (provider, account, kind, id) and event ids cannot be stored that
//! way: they are compared and indexed. One with a NUL character, or longer
//! than [`MAX_KEY_BYTES`], is refused ([`key_problem`]); the store
//! quarantines such an object instead of writing it.

use std::borrow::Cow;

use serde_json::Value;

pub use recon_core::keys::{MAX_KEY_BYTES, key_problem};

/// The longest `owner_id` kept in its (indexed) column; a longer one is kept
/// in `exact` only.
pub(crate) const MAX_INDEXED_BYTES: usize = 1024;

/// Whether `jsonb` would not give `v` back as it is.
pub(crate) fn needs_exact(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => {
                (f == 0.0 && f.is_sign_negative())
                    || (f == f.trunc() && f.abs() >= 1e16 && f.abs() <= 2e19)
            }
            _ => false,
        },
        Value::Array(a) => a.iter().any(needs_exact),
        Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || needs_exact(v)),
        Value::Null | Value::Bool(_) => false,
    }
}

/// `s` with each NUL replaced by U+FFFD.
pub(crate) fn no_nul(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// `v` with each NUL in a string or key replaced by U+FFFD: what `jsonb`
/// accepts.
pub(crate) fn for_jsonb(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(no_nul(s).into_owned()),
        Value::Array(a) => Value::Array(a.iter().map(for_jsonb).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (no_nul(k).into_owned(), for_jsonb(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A JSON document as bound for a `jsonb` column, plus its exact text when
/// `jsonb` would not keep it.
pub(crate) fn encode_doc(v: &Value) -> serde_json::Result<(String, Option<String>)> {
    let text = serde_json::to_string(v)?;
    if needs_exact(v) {
        Ok((serde_json::to_string(&for_jsonb(v))?, Some(text)))
    } else {
        Ok((text, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn what_needs_the_exact_form() {
        assert!(!needs_exact(
            &json!({"a": "plain", "n": [1, -2, 0.5, 1e15, 1e300]})
        ));
        assert!(needs_exact(&json!({"a": "x\u{0}y"})));
        assert!(needs_exact(&json!({"a\u{0}": 1})));
        assert!(needs_exact(&json!([[{"deep": "\u{0}"}]])));
        assert!(needs_exact(&json!({"z": -0.0})));
        assert!(needs_exact(&json!({"big": 1e16})));
        assert!(needs_exact(&json!({"big": -1.2e17})));
        assert!(!needs_exact(&json!({"big": 10_000_000_000_000_000u64})));
    }

    #[test]
    fn jsonb_copy_has_no_nul() {
        let v = json!({"a\u{0}": ["x\u{0}", 1]});
        let (j, exact) = encode_doc(&v).unwrap();
        assert!(!j.contains("\\u0000"), "{j}");
        assert_eq!(
            serde_json::from_str::<Value>(&exact.unwrap()).unwrap(),
            v,
            "the exact text parses back to the document"
        );
    }

    #[test]
    fn keys() {
        assert_eq!(
            key_problem(&["stripe", "default", "customers", "cus_1"]),
            None
        );
        assert!(key_problem(&["stripe", "default", "customers", "cus_\u{0}"]).is_some());
        let long = "x".repeat(MAX_KEY_BYTES);
        assert!(key_problem(&["stripe", "default", "customers", &long]).is_some());
    }
}

/// SQLSTATE classification against a real server.
#[cfg(test)]
mod classify_tests {
    use recon_core::ErrorKind;

    #[tokio::test]
    async fn data_exceptions_are_permanent_outages_temporary() {
        let store = crate::testing::fresh_store().await;
        for sql in [
            r#"SELECT '"a\u0000b"'::jsonb"#,               // 22P05
            "SELECT convert_from('\\x00'::bytea, 'UTF8')", // 22021
            "SELECT 40000::int2",                          // 22003
            "SELECT 1e400::float8",                        // 22003
        ] {
            let e = sqlx::query(sql).execute(store.pool()).await.unwrap_err();
            let e = crate::classify("test", e);
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{sql}: {e}");
            assert!(!e.is_temporary(), "{sql}");
        }
        let io = crate::classify("test", sqlx::Error::PoolTimedOut);
        assert!(io.is_temporary(), "{io:?}");
    }
}
