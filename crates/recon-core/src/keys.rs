//! What a store can key, shared by every store so that they refuse and
//! quarantine the same objects: a key holding a NUL (Postgres `text` cannot
//! hold one) or longer than [`MAX_KEY_BYTES`] (a primary-key index entry
//! must fit in a btree page) is not stored. Such an object is quarantined
//! with its raw bytes ([`Quarantined`]) while the rest of its batch commits;
//! such an event is refused as invalid input.

use crate::types::ProviderEvent;

/// The longest key (provider + account + kind + id, or an event id with its
/// provider and account) a store accepts.
pub const MAX_KEY_BYTES: usize = 1024;

/// Why a key made of `parts` cannot be stored, if it cannot.
pub fn key_problem(parts: &[&str]) -> Option<&'static str> {
    if parts.iter().any(|p| p.contains('\0')) {
        Some("its key holds a NUL character, which Postgres text cannot store")
    } else if parts.iter().map(|p| p.len()).sum::<usize>() > MAX_KEY_BYTES {
        Some("its key is longer than 1024 bytes")
    } else {
        None
    }
}

/// Why the ledger cannot record `e`, if it cannot.
pub fn event_problem(e: &ProviderEvent) -> Option<&'static str> {
    let key = [e.provider.as_str(), e.account.as_str(), e.event_id.as_str()];
    key_problem(&key).or_else(|| {
        e.event_type
            .contains('\0')
            .then_some("its type holds a NUL character, which Postgres text cannot store")
    })
}

/// Key text for a quarantine record: JSON-escaped, without the quotes, cut
/// to [`MAX_KEY_BYTES`] (the raw bytes keep all of it).
pub fn escaped_key(s: &str) -> String {
    let j = serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    let mut inner = j[1..j.len() - 1].to_string();
    if inner.len() > MAX_KEY_BYTES {
        let mut cut = MAX_KEY_BYTES;
        while !inner.is_char_boundary(cut) {
            cut -= 1;
        }
        inner.truncate(cut);
        inner.push('…');
    }
    inner
}

/// An object the store refused to key, kept with its raw snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Quarantined {
    /// Provider (JSON-escaped).
    pub provider: String,
    /// Account (JSON-escaped).
    pub account: String,
    /// Kind (JSON-escaped).
    pub kind: String,
    /// Object id (JSON-escaped, cut to [`MAX_KEY_BYTES`]).
    pub id: String,
    /// Why it could not be stored.
    pub reason: String,
    /// The snapshot as JSON, exactly.
    pub raw: Vec<u8>,
    /// When (unix ms).
    pub detected_at: i64,
}

/// A quarantine table row as read back: provider, account, kind, id,
/// reason, raw, detected_at.
pub type QuarantinedRow = (String, String, String, String, String, Vec<u8>, i64);

impl From<QuarantinedRow> for Quarantined {
    fn from(r: QuarantinedRow) -> Self {
        let (provider, account, kind, id, reason, raw, detected_at) = r;
        Quarantined {
            provider,
            account,
            kind,
            id,
            reason,
            raw,
            detected_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_with_nul_or_too_long_are_refused() {
        assert_eq!(
            key_problem(&["stripe", "default", "customers", "cus_1"]),
            None
        );
        assert!(key_problem(&["stripe", "default", "customers", "cus\u{0}1"]).is_some());
        let long = "x".repeat(MAX_KEY_BYTES);
        assert!(key_problem(&["stripe", &long]).is_some());
        let e = escaped_key(&format!("a\u{0}{long}"));
        assert!(e.starts_with("a\\u0000") && e.ends_with('…'), "{e}");
        assert!(e.len() <= MAX_KEY_BYTES + '…'.len_utf8());
    }
}
