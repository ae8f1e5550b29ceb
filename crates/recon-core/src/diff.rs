//! Field-level differences between two states of an object, for drift
//! records: `status: "active" → "past_due"` rather than two whole documents.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One field that differs between two states of an object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// Where, as a dotted path with array indexes: `status`,
    /// `items.data[0].price.id`. Keys that are not plain names are quoted
    /// (`metadata["plan tier"]`).
    pub path: String,
    /// The value before (`None`: the field was absent; in JSON the key is
    /// left out, so an absent field and a `null` one read differently).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// The value after (`None`: the field is gone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

impl std::fmt::Display for FieldChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<Value>| v.as_ref().map_or("(absent)".to_string(), Value::to_string);
        write!(
            f,
            "{}: {} → {}",
            self.path,
            show(&self.before),
            show(&self.after)
        )
    }
}

/// The fields that differ between `before` and `after`, in path order:
/// objects are compared key by key and arrays element by element, down to
/// the values that differ. Two whole documents where one side is missing
/// (an object created or deleted) have no field changes: the drift's cause
/// says what happened.
pub fn changed_fields(before: Option<&Value>, after: Option<&Value>) -> Vec<FieldChange> {
    let mut out = Vec::new();
    if let (Some(b), Some(a)) = (before, after) {
        walk(&mut String::new(), Some(b), Some(a), &mut out);
    }
    out
}

fn walk(
    path: &mut String,
    before: Option<&Value>,
    after: Option<&Value>,
    out: &mut Vec<FieldChange>,
) {
    if before == after {
        return;
    }
    let len = path.len();
    match (before, after) {
        (Some(Value::Object(b)), Some(Value::Object(a))) => {
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                push_key(path, k);
                walk(path, b.get(k), a.get(k), out);
                path.truncate(len);
            }
        }
        (Some(Value::Array(b)), Some(Value::Array(a))) => {
            for i in 0..b.len().max(a.len()) {
                path.push_str(&format!("[{i}]"));
                walk(path, b.get(i), a.get(i), out);
                path.truncate(len);
            }
        }
        _ => out.push(FieldChange {
            path: if path.is_empty() {
                "(the object)".to_string()
            } else {
                path.clone()
            },
            before: before.cloned(),
            after: after.cloned(),
        }),
    }
}

fn push_key(path: &mut String, key: &str) {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
    } else {
        path.push_str(&format!("[{}]", Value::String(key.to_string())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths(b: Value, a: Value) -> Vec<String> {
        changed_fields(Some(&b), Some(&a))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn only_what_differs_down_to_the_leaf() {
        let before = json!({"id": "sub_1", "status": "active", "delinquent": false,
            "items": {"data": [{"price": {"id": "price_a"}, "quantity": 1}]},
            "metadata": {"plan tier": "gold", "gone": "x"}});
        let after = json!({"id": "sub_1", "status": "past_due", "delinquent": true,
            "items": {"data": [{"price": {"id": "price_b"}, "quantity": 1}, {"price": null}]},
            "metadata": {"plan tier": "silver", "new": 1}});
        assert_eq!(
            paths(before, after),
            [
                "delinquent: false → true",
                "items.data[0].price.id: \"price_a\" → \"price_b\"",
                "items.data[1]: (absent) → {\"price\":null}",
                "metadata.gone: \"x\" → (absent)",
                "metadata.new: (absent) → 1",
                "metadata[\"plan tier\"]: \"gold\" → \"silver\"",
                "status: \"active\" → \"past_due\"",
            ]
        );
    }

    #[test]
    fn json_tells_absent_from_null() {
        let gone =
            serde_json::to_string(&changed_fields(Some(&json!({"a": null})), Some(&json!({}))));
        let came =
            serde_json::to_string(&changed_fields(Some(&json!({})), Some(&json!({"a": null}))));
        assert_eq!(gone.unwrap(), r#"[{"path":"a","before":null}]"#);
        assert_eq!(came.unwrap(), r#"[{"path":"a","after":null}]"#);
    }

    #[test]
    fn equal_missing_and_retyped() {
        assert!(paths(json!({"a": [1, {"b": 2}]}), json!({"a": [1, {"b": 2}]})).is_empty());
        assert!(changed_fields(None, Some(&json!({"a": 1}))).is_empty());
        assert!(changed_fields(Some(&json!({"a": 1})), None).is_empty());
        assert_eq!(
            paths(json!({"a": {"b": 1}}), json!({"a": [1]})),
            ["a: {\"b\":1} → [1]"]
        );
        assert_eq!(
            paths(json!("x"), json!("y")),
            ["(the object): \"x\" → \"y\""]
        );
    }
}
