//! Domain types shared by providers, stores and the engine.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Identifies one mirrored object: `(provider, account, kind, id)`.
///
/// `account` is the provider account the object lives in (`default`, or a
/// Stripe Connect `acct_…`); the same id in two accounts is two objects.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectKey {
    /// Provider name, e.g. `stripe`, `clerk`.
    pub provider: String,
    /// Provider account, `default` unless a Connect account is used.
    pub account: String,
    /// Object kind, e.g. `customers`, `subscriptions`, `users`.
    pub kind: String,
    /// The provider's object id.
    pub id: String,
}

impl ObjectKey {
    /// Build a key.
    pub fn new(
        provider: impl Into<String>,
        account: impl Into<String>,
        kind: impl Into<String>,
        id: impl Into<String>,
    ) -> Self {
        ObjectKey {
            provider: provider.into(),
            account: account.into(),
            kind: kind.into(),
            id: id.into(),
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.provider, self.account, self.kind, self.id
        )
    }
}

/// The state of one object at one point in time, as a provider reported it.
///
/// `version` orders snapshots of the same object: the monotonic guard never
/// lets a lower version overwrite a higher one. Providers choose the unit
/// (Stripe uses seconds, Clerk milliseconds) and must use the same unit on
/// every path: an event's `created`, an object's `updated_at`, or the time a
/// listing page was requested.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Which object.
    pub key: ObjectKey,
    /// Monotonic version, in the provider's unit.
    pub version: i64,
    /// A tombstone: the provider deleted the object.
    pub deleted: bool,
    /// Extracted status (`active`, `past_due`, `paid`…), if the kind has one.
    pub status: Option<String>,
    /// Extracted owner id (a subscription's customer, a membership's user).
    pub owner: Option<String>,
    /// Extracted e-mail address, if the kind has one.
    pub email: Option<String>,
    /// The full object as the provider sent it (`{}`-like for tombstones).
    pub data: serde_json::Value,
    /// SHA-256 of the canonical JSON of `data` and `deleted`, hex.
    pub hash: String,
}

impl Snapshot {
    /// A live object. Computes the content hash.
    pub fn live(key: ObjectKey, version: i64, data: serde_json::Value) -> Self {
        let hash = content_hash(&data, false);
        Snapshot {
            key,
            version,
            deleted: false,
            status: None,
            owner: None,
            email: None,
            data,
            hash,
        }
    }

    /// A tombstone for a deleted object.
    pub fn tombstone(key: ObjectKey, version: i64) -> Self {
        let data = serde_json::json!({ "id": key.id, "deleted": true });
        let hash = content_hash(&data, true);
        Snapshot {
            key,
            version,
            deleted: true,
            status: None,
            owner: None,
            email: None,
            data,
            hash,
        }
    }

    /// Set the extracted status.
    pub fn with_status(mut self, status: Option<impl Into<String>>) -> Self {
        self.status = status.map(Into::into);
        self
    }

    /// Set the extracted owner.
    pub fn with_owner(mut self, owner: Option<impl Into<String>>) -> Self {
        self.owner = owner.map(Into::into);
        self
    }

    /// Set the extracted e-mail.
    pub fn with_email(mut self, email: Option<impl Into<String>>) -> Self {
        self.email = email.map(Into::into);
        self
    }

    /// Set the extracted status, owner and e-mail at once.
    pub fn with_columns(self, (status, owner, email): Columns) -> Self {
        self.with_status(status).with_owner(owner).with_email(email)
    }
}

/// An object's extracted columns: status, owner and e-mail.
pub type Columns = (Option<String>, Option<String>, Option<String>);

/// Hash of an object's content. `serde_json::Map` keeps keys sorted, so the
/// serialisation is canonical and the same object always hashes the same.
pub fn content_hash(data: &serde_json::Value, deleted: bool) -> String {
    let mut h = Sha256::new();
    h.update(if deleted { b"D" } else { b"L" });
    // Writing into the hasher cannot fail.
    let _ = serde_json::to_writer(HashWriter(&mut h), data);
    hex::encode(&h.finalize()[..16])
}

struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What the mirror holds for one object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredObject {
    /// The stored snapshot.
    pub snapshot: Snapshot,
    /// When it was last confirmed against the provider (unix ms).
    pub confirmed_at: i64,
}

/// A verified, parsed webhook or event-log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderEvent {
    /// Provider name.
    pub provider: String,
    /// Provider account.
    pub account: String,
    /// The provider's event id (Stripe `evt_…`, Svix `msg_…`): the ledger key.
    pub event_id: String,
    /// The event type, e.g. `customer.updated`.
    pub event_type: String,
    /// When the provider created the event, in the provider's version unit.
    pub created: i64,
    /// The object states the event carries. Empty for types recon does not
    /// mirror: those are recorded in the ledger and acknowledged.
    pub snapshots: Vec<Snapshot>,
    /// Webhook deliveries of this event that the provider has not yet
    /// completed (Stripe's `pending_webhooks`), when the provider says so.
    /// Above zero long after `created`: delivery is failing at its side.
    #[serde(default)]
    pub pending_webhooks: Option<u32>,
}

/// Which path found or applied a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A webhook delivery.
    Webhook,
    /// A full sweep.
    Sweep,
    /// An on-demand reconcile.
    OnDemand,
    /// An event-log replay.
    Replay,
}

impl Source {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Webhook => "webhook",
            Source::Sweep => "sweep",
            Source::OnDemand => "on_demand",
            Source::Replay => "replay",
        }
    }

    /// Parse a stable name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "webhook" => Source::Webhook,
            "sweep" => Source::Sweep,
            "on_demand" => Source::OnDemand,
            "replay" => Source::Replay,
            _ => return None,
        })
    }
}

/// What a detected difference was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftCause {
    /// The provider has the object; the mirror did not.
    Missing,
    /// The mirror's content differed from the provider's.
    Changed,
    /// The provider deleted it; the mirror still had it live.
    Deleted,
    /// An app row's owned columns differed from what the mirror implies
    /// (written by hand, by an old bug, or missing); see
    /// [`crate::project`]. The key's kind is `app:<projection>`.
    AppDrift,
    /// A declared check returned this row. The key's kind is
    /// `check:<check>`.
    Check,
    /// A provider's webhook endpoint is missing, points elsewhere, is
    /// disabled or lacks event types recon needs (`recon endpoints check`).
    /// The key's kind is `endpoint`; its id the endpoint's (or, when there
    /// is none, the URL nothing delivers to).
    Endpoint,
}

impl DriftCause {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            DriftCause::Missing => "missing",
            DriftCause::Changed => "changed",
            DriftCause::Deleted => "deleted",
            DriftCause::AppDrift => "app_drift",
            DriftCause::Check => "check",
            DriftCause::Endpoint => "endpoint",
        }
    }

    /// Parse a stable name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "missing" => DriftCause::Missing,
            "changed" => DriftCause::Changed,
            "deleted" => DriftCause::Deleted,
            "app_drift" => DriftCause::AppDrift,
            "check" => DriftCause::Check,
            "endpoint" => DriftCause::Endpoint,
            _ => return None,
        })
    }
}

/// One logged difference between the mirror and the provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftRecord {
    /// Which object.
    pub key: ObjectKey,
    /// Which run found it (sweeps, replays, on-demand).
    pub run_id: Option<String>,
    /// Which path found it.
    pub source: Source,
    /// What kind of difference.
    pub cause: DriftCause,
    /// The mirror's JSON before (None if it did not have the object).
    pub before: Option<serde_json::Value>,
    /// The provider's JSON after.
    pub after: Option<serde_json::Value>,
    /// When it was detected (unix ms).
    pub detected_at: i64,
}

/// What kind of run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// Full sweep of one kind.
    Sweep,
    /// Event-log replay.
    Replay,
    /// On-demand reconcile.
    OnDemand,
}

impl RunKind {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Sweep => "sweep",
            RunKind::Replay => "replay",
            RunKind::OnDemand => "on_demand",
        }
    }

    /// Parse a stable name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "sweep" => RunKind::Sweep,
            "replay" => RunKind::Replay,
            "on_demand" => RunKind::OnDemand,
            _ => return None,
        })
    }
}

/// How a run ended. Only `Succeeded` is a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Still going (or the process died while it was).
    Running,
    /// Everything listed and applied.
    Succeeded,
    /// A provider or store error ended it; nothing was deleted.
    Failed,
    /// The circuit breaker stopped it before it wrote.
    CircuitOpen,
    /// Cancelled (shutdown); nothing was deleted.
    Cancelled,
}

impl RunStatus {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::CircuitOpen => "circuit_open",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// Parse a stable name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => RunStatus::Running,
            "succeeded" => RunStatus::Succeeded,
            "failed" => RunStatus::Failed,
            "circuit_open" => RunStatus::CircuitOpen,
            "cancelled" => RunStatus::Cancelled,
            _ => return None,
        })
    }
}

/// Counts kept by a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunCounts {
    /// Objects (or events) the provider listed.
    pub listed: u64,
    /// Objects compared with the mirror.
    pub compared: u64,
    /// Already identical.
    pub unchanged: u64,
    /// New in the mirror.
    pub inserted: u64,
    /// Content changed in the mirror.
    pub updated: u64,
    /// Marked deleted in the mirror.
    pub deleted: u64,
    /// Skipped because the mirror held a newer version.
    pub stale_skipped: u64,
    /// Version ties resolved by fetching the object.
    pub ties_fetched: u64,
    /// Events applied (replay).
    pub events_applied: u64,
    /// Events skipped as already in the ledger (replay).
    pub events_duplicate: u64,
    /// Missed webhooks (replay): events new to the ledger that carry object
    /// states and are older than the in-flight grace period, so a webhook
    /// should have delivered them. Events still within the grace period or
    /// of types that carry nothing are applied but not counted here.
    pub missed: u64,
    /// Events the provider still reports as undelivered (Stripe
    /// `pending_webhooks > 0`) past the in-flight grace period (replay);
    /// their objects are queued for a refresh.
    pub undelivered: u64,
    /// Events younger than the in-flight grace period, left for a later
    /// replay (replay).
    pub in_flight: u64,
    /// List pages read.
    pub pages: u64,
    /// Differences found (inserted + updated + deleted, or would be in a dry run).
    pub drift: u64,
}

/// A recorded run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Run id (UUID v7, time-ordered).
    pub id: String,
    /// Provider.
    pub provider: String,
    /// Account.
    pub account: String,
    /// Kind swept (`*` for replay and multi-kind runs).
    pub kind: String,
    /// Sweep, replay, on-demand.
    pub run_kind: RunKind,
    /// How it ended.
    pub status: RunStatus,
    /// Dry run: compared and reported, wrote nothing.
    pub dry_run: bool,
    /// Started (unix ms).
    pub started_at: i64,
    /// Finished (unix ms).
    pub finished_at: Option<i64>,
    /// Counts.
    pub counts: RunCounts,
    /// Share of compared objects that differed (0.0–1.0).
    pub mismatch_ratio: f64,
    /// Why it failed, if it did (never contains a secret).
    pub error: Option<String>,
}

/// The current wall-clock time in unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_canonical_and_sensitive() {
        let a: serde_json::Value = serde_json::from_str(r#"{"a":1,"b":{"c":2}}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"b":{"c":2},"a":1}"#).unwrap();
        let c: serde_json::Value = serde_json::from_str(r#"{"b":{"c":3},"a":1}"#).unwrap();
        assert_eq!(content_hash(&a, false), content_hash(&b, false));
        assert_ne!(content_hash(&a, false), content_hash(&c, false));
        assert_ne!(content_hash(&a, false), content_hash(&a, true));
    }
}
