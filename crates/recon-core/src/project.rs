//! The app's own tables: projections from the mirror, app-table
//! reconciliation, declared checks and the change feed.
//!
//! A [`Projection`] says which columns of one app table recon owns and how
//! their values follow from the mirror, as SQL over recon's views: a query
//! that returns a column `key` (the app table's key value, e.g. a Stripe
//! customer id) and one column per owned column. recon never names any
//! other column.
//!
//! # Guarantees
//! - **Same transaction.** When a commit changes a mirror object of a kind a
//!   projection depends on, the app rows it affects are recomputed and
//!   written in that commit's transaction ([`project_in_tx`]); a failing
//!   projection fails the commit, so nothing is half-applied and a webhook
//!   answers non-2xx.
//! - **Only what it owns.** Writes name the key column and the owned
//!   columns; nothing else.
//! - **Monotonic.** The desired values are computed from the mirror as it
//!   stands in the transaction, after the monotonic guard, under a lock on
//!   the app keys ([`crate::store::StoreTx::lock_app_keys`]) taken before the
//!   computation: whichever transaction projects a key last computes from a
//!   mirror that includes every earlier committed change, so an app row is
//!   never written from an older mirror state than the one it was written
//!   from.
//! - **Nothing twice.** A row whose values already equal the desired ones
//!   is not written and appends nothing to the change feed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, ErrorKind, Result};
use crate::store::{AppWrite, KeySel, Store, StoreTx};
use crate::types::{
    DriftCause, DriftRecord, ObjectKey, RunCounts, RunKind, RunRecord, RunStatus, Snapshot, Source,
    StoredObject, now_ms,
};

/// An app table as the store sees it: its name, key column and the columns
/// recon owns. Names are checked by [`Projection::validate`] (they are
/// spliced into SQL, quoted).
#[derive(Debug, Clone, Copy)]
pub struct AppTable<'a> {
    /// `table` or `schema.table`.
    pub table: &'a str,
    /// The key column.
    pub key_column: &'a str,
    /// Owned columns.
    pub columns: &'a [String],
}

/// What to do when the provider has an object the app table has no row for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnMissing {
    /// Record it as app drift (`recon drift` shows it); write nothing.
    #[default]
    Report,
    /// Insert a row with the key and the owned columns.
    Insert,
    /// Do nothing.
    Ignore,
}

impl OnMissing {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            OnMissing::Report => "report",
            OnMissing::Insert => "insert",
            OnMissing::Ignore => "ignore",
        }
    }
}

/// What to do with an app row whose provider object is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDelete {
    /// Set the owned columns to the projection's `absent` values.
    #[default]
    Absent,
    /// Delete the row.
    Delete,
}

/// How a changed mirror object maps to the app keys it affects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dependency {
    /// The provider, if not the projection's (an app row that follows a
    /// Clerk user and a Stripe customer).
    #[serde(default)]
    pub provider: Option<String>,
    /// The mirror kind (e.g. `subscriptions`).
    pub kind: String,
    /// Which value of the object is the app key: `id` (the object itself),
    /// `owner` (its owner: a subscription's customer, a membership's user),
    /// or `data.<path>` (a field of its document, dot-separated, e.g.
    /// `data.organization.id` or `data.metadata.clerk_user_id`).
    pub key: String,
}

/// A projection from the mirror into one app table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Projection {
    /// Name (in errors, drift records and the change feed).
    pub name: String,
    /// The provider whose mirror it reads.
    pub provider: String,
    /// The app table (`table` or `schema.table`).
    pub table: String,
    /// Its key column: holds the provider id (e.g. `stripe_customer_id`).
    pub key: String,
    /// The columns recon owns, in the order the query returns them.
    pub columns: Vec<String>,
    /// SQL over recon's views returning `key` and one column per owned
    /// column, one row per app key that should have values.
    pub query: String,
    /// The mirror kinds it depends on and how each maps to app keys.
    pub depends: Vec<Dependency>,
    /// App rows the provider has but the app lacks.
    #[serde(default)]
    pub on_missing: OnMissing,
    /// App rows whose provider object is gone.
    #[serde(default)]
    pub on_delete: OnDelete,
    /// The owned columns' values when the key is not in the query's result
    /// (the provider object is gone); a column not named here becomes null.
    #[serde(default)]
    pub absent: BTreeMap<String, Value>,
}

/// A declared check: SQL over the mirror's views and the app's tables that
/// must return no rows. Each row it returns is a violation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// Name.
    pub name: String,
    /// What a violation means, for people.
    #[serde(default)]
    pub description: String,
    /// The SQL. The column `subject` (else `id`, else the first column by
    /// name) identifies the subject of a violation.
    pub sql: String,
}

/// What a store keeps right beyond the mirror: projections, checks, and
/// whether it writes the change feed.
#[derive(Debug, Clone, Default)]
pub struct AppSync {
    /// Projections, checked by [`AppSync::validate`].
    pub projections: Vec<Projection>,
    /// Declared checks.
    pub checks: Vec<Check>,
    /// Append every change to the change feed (`changes` table).
    pub feed: bool,
}

/// One entry of the change feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeRow {
    /// Sequence number (assigned by the store; the app's idempotency key).
    pub seq: i64,
    /// Provider.
    pub provider: String,
    /// Account.
    pub account: String,
    /// Mirror kind, or the projection's name for an app row.
    pub kind: String,
    /// Mirror object id, or the app key for an app row.
    pub object_id: String,
    /// The app table, for an app row.
    pub app_table: Option<String>,
    /// The app key, for an app row.
    pub app_key: Option<String>,
    /// `webhook`, `replay`, `sweep_repair`, `on_demand`, `fetch` or
    /// `app_drift`.
    pub cause: String,
    /// What changed, before (only the fields that changed).
    pub before: Option<Value>,
    /// What changed, after.
    pub after: Option<Value>,
    /// When (unix ms).
    pub at: i64,
}

/// A name recon splices into SQL: lower-case letters, digits and `_`, not
/// starting with a digit, at most 63 bytes (Postgres's limit).
pub fn valid_ident(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// Quote a checked identifier, `schema.table` as two parts.
pub fn quote_ident(s: &str) -> String {
    s.split('.')
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(".")
}

impl Projection {
    /// The app table as the store sees it.
    pub fn app_table(&self) -> AppTable<'_> {
        AppTable {
            table: &self.table,
            key_column: &self.key,
            columns: &self.columns,
        }
    }

    /// Check what can be checked without a database: names, columns,
    /// dependencies. Errors name the projection.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::config(format!("projection {:?}: {m}", self.name)));
        if self.name.trim().is_empty() {
            return Err(Error::config("a projection has no name"));
        }
        if self.provider.trim().is_empty() {
            return bad("no provider".into());
        }
        let parts: Vec<&str> = self.table.split('.').collect();
        if self.table.is_empty() || parts.len() > 2 || !parts.iter().all(|p| valid_ident(p)) {
            return bad(format!(
                "table {:?}: use `table` or `schema.table`, lower-case letters, digits and _",
                self.table
            ));
        }
        if self.key.is_empty() {
            return bad("no key column (`key`: the app column holding the provider id)".into());
        }
        if !valid_ident(&self.key) {
            return bad(format!(
                "key column {:?}: lower-case letters, digits and _",
                self.key
            ));
        }
        if self.columns.is_empty() {
            return bad("no columns: name the app columns recon owns".into());
        }
        let mut seen = BTreeSet::new();
        for c in &self.columns {
            if !valid_ident(c) {
                return bad(format!("column {c:?}: lower-case letters, digits and _"));
            }
            if c == &self.key {
                return bad(format!(
                    "column {c:?} is the key column; recon never rewrites the key"
                ));
            }
            if !seen.insert(c) {
                return bad(format!("column {c:?} is listed twice"));
            }
        }
        for k in self.absent.keys() {
            if !self.columns.contains(k) {
                return bad(format!(
                    "`absent` names {k:?}, which is not an owned column"
                ));
            }
        }
        if self.query.trim().is_empty() {
            return bad("no query".into());
        }
        if self.depends.is_empty() {
            return bad(
                "no `depends`: name the mirror kinds it reads and how each maps to the app key"
                    .into(),
            );
        }
        for d in &self.depends {
            if d.kind.trim().is_empty() {
                return bad("a dependency has no kind".into());
            }
            match d.key.as_str() {
                "id" | "owner" => {}
                k if k.starts_with("data.") && k.len() > 5 => {}
                k => {
                    return bad(format!(
                        "dependency on {:?}: key {k:?} must be `id`, `owner` or `data.<path>`",
                        d.kind
                    ));
                }
            }
        }
        Ok(())
    }

    /// The app keys a change of `new` (previously `prev`) affects.
    pub fn keys_of(&self, new: &Snapshot, prev: Option<&Snapshot>) -> Vec<String> {
        let mut out = Vec::new();
        for d in &self.depends {
            if d.kind != new.key.kind || self.provider_of(d) != new.key.provider {
                continue;
            }
            for s in std::iter::once(new).chain(prev) {
                if let Some(k) = dependency_key(&d.key, s) {
                    out.push(k);
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Whether a change of `kind` of `provider` can affect this projection.
    pub fn depends_on(&self, provider: &str, kind: &str) -> bool {
        self.depends
            .iter()
            .any(|d| d.kind == kind && self.provider_of(d) == provider)
    }

    fn provider_of<'a>(&'a self, d: &'a Dependency) -> &'a str {
        d.provider.as_deref().unwrap_or(&self.provider)
    }

    /// Whether finding the keys needs the object's document (any provider).
    pub fn needs_data(&self, kind: &str) -> bool {
        self.depends
            .iter()
            .any(|d| d.kind == kind && d.key.starts_with("data."))
    }

    /// The values of the owned columns when the key has no desired row.
    pub fn absent_values(&self) -> Value {
        let mut m = serde_json::Map::new();
        for c in &self.columns {
            m.insert(
                c.clone(),
                self.absent.get(c).cloned().unwrap_or(Value::Null),
            );
        }
        Value::Object(m)
    }
}

fn dependency_key(rule: &str, s: &Snapshot) -> Option<String> {
    match rule {
        "id" => Some(s.key.id.clone()),
        "owner" => s.owner.clone(),
        path => {
            let path = path.strip_prefix("data.")?;
            let mut v = &s.data;
            for part in path.split('.') {
                v = v.get(part)?;
            }
            match v {
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        }
    }
}

impl AppSync {
    /// Check every projection and check (names unique, each valid).
    pub fn validate(&self) -> Result<()> {
        let mut names = BTreeSet::new();
        for p in &self.projections {
            p.validate()?;
            if !names.insert(p.name.as_str()) {
                return Err(Error::config(format!(
                    "two projections are named {:?}",
                    p.name
                )));
            }
        }
        let mut checks = BTreeSet::new();
        for c in &self.checks {
            if c.name.trim().is_empty() {
                return Err(Error::config("a check has no name"));
            }
            if c.sql.trim().is_empty() {
                return Err(Error::config(format!("check {:?}: no sql", c.name)));
            }
            if !checks.insert(c.name.as_str()) {
                return Err(Error::config(format!("two checks are named {:?}", c.name)));
            }
        }
        Ok(())
    }

    /// Whether commits have anything to do here.
    pub fn is_active(&self) -> bool {
        self.feed || !self.projections.is_empty()
    }
}

/// Check the configuration against the database before anything runs:
/// each projection's query runs (no rows) with its key and columns, the app
/// table has the key and owned columns, each check's SQL runs. Inside a
/// transaction that is rolled back; nothing is written. The error names the
/// projection or check.
pub async fn verify(store: &dyn Store, sync: &AppSync) -> Result<()> {
    sync.validate()?;
    let mut tx = store.begin().await?;
    for p in &sync.projections {
        let t = p.app_table();
        let none = KeySel::Page {
            after: None,
            limit: 0,
        };
        tx.app_desired(&t, &p.query, none).await.map_err(|e| {
            Error::config(format!(
                "projection {:?}: its query must return `key` and {}: {e}",
                p.name,
                p.columns.join(", ")
            ))
        })?;
        tx.app_current(&t, none).await.map_err(|e| {
            Error::config(format!(
                "projection {:?}: table {} must have the key column {} and the columns {}: {e}",
                p.name,
                p.table,
                p.key,
                p.columns.join(", ")
            ))
        })?;
    }
    for c in &sync.checks {
        tx.check_rows(&c.sql, 0)
            .await
            .map_err(|e| Error::config(format!("check {:?}: its sql fails: {e}", c.name)))?;
    }
    drop(tx);
    Ok(())
}

/// Whether two column values are the same for reconciliation: equal JSON,
/// or the same number, boolean or text in another representation (SQLite
/// returns booleans as 0/1 and may keep numbers as text).
pub fn same_value(a: &Value, b: &Value) -> bool {
    if a == b {
        return true;
    }
    fn num(v: &Value) -> Option<f64> {
        match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            _ => None,
        }
    }
    fn boolean(v: &Value) -> Option<bool> {
        match v {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s == "true" || s == "t" => Some(true),
            Value::String(s) if s == "false" || s == "f" => Some(false),
            Value::Number(n) if n.as_f64() == Some(1.0) => Some(true),
            Value::Number(n) if n.as_f64() == Some(0.0) => Some(false),
            _ => None,
        }
    }
    if matches!(a, Value::Bool(_)) || matches!(b, Value::Bool(_)) {
        return boolean(a).is_some() && boolean(a) == boolean(b);
    }
    match (a, b) {
        (Value::Null, _) | (_, Value::Null) => false,
        // Two texts are the same only if equal ("007" is not "7").
        (Value::String(_), Value::String(_)) => false,
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w)))
        }
        _ => matches!((num(a), num(b)), (Some(x), Some(y)) if x == y),
    }
}

/// The fields of two JSON objects that differ, as `(before, after)`
/// objects holding only those fields; whole values if either is not an
/// object.
pub fn compact_diff(
    before: Option<&Value>,
    after: Option<&Value>,
) -> (Option<Value>, Option<Value>) {
    match (before, after) {
        (Some(Value::Object(b)), Some(Value::Object(a))) => {
            let mut bo = serde_json::Map::new();
            let mut ao = serde_json::Map::new();
            for (k, v) in b {
                match a.get(k) {
                    Some(w) if w == v => {}
                    other => {
                        bo.insert(k.clone(), v.clone());
                        ao.insert(k.clone(), other.cloned().unwrap_or(Value::Null));
                    }
                }
            }
            for (k, w) in a {
                if !b.contains_key(k) {
                    bo.insert(k.clone(), Value::Null);
                    ao.insert(k.clone(), w.clone());
                }
            }
            (Some(Value::Object(bo)), Some(Value::Object(ao)))
        }
        (b, a) => (b.cloned(), a.cloned()),
    }
}

/// The change-feed cause of a commit path.
pub fn feed_cause(source: Option<Source>) -> &'static str {
    match source {
        Some(Source::Webhook) => "webhook",
        Some(Source::Replay) => "replay",
        Some(Source::Sweep) => "sweep_repair",
        Some(Source::OnDemand) => "on_demand",
        None => "fetch",
    }
}

/// One app row recon changed (or, in a dry run, would change).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppChange {
    /// The projection.
    pub projection: String,
    /// The app table.
    pub table: String,
    /// The app key.
    pub key: String,
    /// `update`, `insert`, `delete` or `missing` (reported, not written).
    pub action: &'static str,
    /// The owned columns before (`None`: no row).
    pub was: Option<Value>,
    /// After (`None`: row deleted).
    pub now: Option<Value>,
}

/// Recompute the app rows of `projection` for `keys` inside `tx` and write
/// those that differ. Returns what changed (or would, with `dry_run`).
pub async fn project_keys(
    tx: &mut dyn StoreTx,
    projection: &Projection,
    keys: &[&str],
    dry_run: bool,
) -> Result<Vec<AppChange>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut keys: Vec<&str> = keys.to_vec();
    keys.sort_unstable();
    keys.dedup();
    tx.lock_app_keys(&projection.name, &keys).await?;
    compute_and_write(tx, projection, &keys, dry_run).await
}

/// [`project_keys`] for keys already locked (sorted, unique).
async fn compute_and_write(
    tx: &mut dyn StoreTx,
    projection: &Projection,
    keys: &[&str],
    dry_run: bool,
) -> Result<Vec<AppChange>> {
    let table = projection.app_table();
    let mut desired = tx
        .app_desired(&table, &projection.query, KeySel::Keys(keys))
        .await
        .map_err(|e| project_error(projection, e))?;
    desired.sort_by(|a, b| a.0.cmp(&b.0));
    unique_keys(projection, "its query", &desired)?;
    let mut current = tx
        .app_current(&table, KeySel::Keys(keys))
        .await
        .map_err(|e| project_error(projection, e))?;
    current.sort_by(|a, b| a.0.cmp(&b.0));
    unique_keys(projection, "the app table", &current)?;
    let desired: HashMap<String, Value> = desired.into_iter().collect();
    let current: HashMap<String, Value> = current.into_iter().collect();
    let keys = keys.to_vec();
    let plan = plan_rows(projection, &keys, &desired, &current);
    apply_plan(tx, projection, plan, dry_run).await
}

fn project_error(p: &Projection, e: Error) -> Error {
    let component = e.component();
    Error::new(
        e.kind(),
        format!("projection {:?} (table {}): {e}", p.name, p.table),
    )
    .with_component(component)
}

/// Refuse a result with two rows for one key (sorted input): which one
/// would be written depends on row order, so the projection is wrong.
fn unique_keys(p: &Projection, what: &str, rows: &[(String, Value)]) -> Result<()> {
    match rows.windows(2).find(|w| w[0].0 == w[1].0) {
        Some(w) => Err(duplicate_key(p, what, &w[0].0)),
        None => Ok(()),
    }
}

fn duplicate_key(p: &Projection, what: &str, key: &str) -> Error {
    Error::config(format!(
        "projection {:?}: {what} has more than one row for key {key:?}; the query must return one row per key (aggregate, or pick one with ORDER BY … LIMIT 1) and the key column must be unique",
        p.name
    ))
}

/// Decide per key what to write: the desired values, the absent values or a
/// deletion; nothing for a row that already matches.
fn plan_rows(
    p: &Projection,
    keys: &[&str],
    desired: &HashMap<String, Value>,
    current: &HashMap<String, Value>,
) -> Vec<AppChange> {
    let mut out = Vec::new();
    for k in keys {
        let cur = current.get(*k);
        match (desired.get(*k), cur) {
            (Some(want), Some(have)) => {
                if !same_value(want, have) {
                    out.push(change(
                        p,
                        k,
                        "update",
                        Some(have.clone()),
                        Some(want.clone()),
                    ));
                }
            }
            (Some(want), None) => match p.on_missing {
                OnMissing::Insert => out.push(change(p, k, "insert", None, Some(want.clone()))),
                OnMissing::Report => out.push(change(p, k, "missing", None, Some(want.clone()))),
                OnMissing::Ignore => {}
            },
            (None, Some(have)) => match p.on_delete {
                OnDelete::Delete => out.push(change(p, k, "delete", Some(have.clone()), None)),
                OnDelete::Absent => {
                    let absent = p.absent_values();
                    if !same_value(&absent, have) {
                        out.push(change(p, k, "update", Some(have.clone()), Some(absent)));
                    }
                }
            },
            (None, None) => {}
        }
    }
    out
}

fn change(
    p: &Projection,
    key: &str,
    action: &'static str,
    was: Option<Value>,
    now: Option<Value>,
) -> AppChange {
    AppChange {
        projection: p.name.clone(),
        table: p.table.clone(),
        key: key.to_string(),
        action,
        was,
        now,
    }
}

async fn apply_plan(
    tx: &mut dyn StoreTx,
    p: &Projection,
    plan: Vec<AppChange>,
    dry_run: bool,
) -> Result<Vec<AppChange>> {
    if dry_run || plan.is_empty() {
        return Ok(plan);
    }
    let table = p.app_table();
    for (action, op) in [
        ("update", AppWrite::Update),
        ("insert", AppWrite::Insert),
        ("delete", AppWrite::Delete),
    ] {
        let rows: Vec<(String, Value)> = plan
            .iter()
            .filter(|c| c.action == action)
            .map(|c| {
                (
                    c.key.clone(),
                    c.now
                        .clone()
                        .or_else(|| c.was.clone())
                        .unwrap_or(Value::Null),
                )
            })
            .collect();
        if !rows.is_empty() {
            tx.app_write(&table, op, &rows)
                .await
                .map_err(|e| project_error(p, e))?;
        }
    }
    Ok(plan)
}

/// Project every change of a commit: for each projection that depends on a
/// changed object's kind, the affected app keys are recomputed. `changed`
/// holds each written snapshot with the stored state it replaced.
pub async fn project_in_tx(
    tx: &mut dyn StoreTx,
    sync: &AppSync,
    changed: &[(&Snapshot, Option<&StoredObject>)],
    dry_run: bool,
) -> Result<Vec<AppChange>> {
    let mut work: Vec<(&Projection, Vec<String>)> = Vec::new();
    for p in &sync.projections {
        let mut keys: Vec<String> = Vec::new();
        for (new, prev) in changed {
            if p.depends_on(&new.key.provider, &new.key.kind) {
                keys.extend(p.keys_of(new, prev.map(|p| &p.snapshot)));
            }
        }
        if !keys.is_empty() {
            work.push((p, keys));
        }
    }
    project_locked(tx, work, dry_run).await
}

/// Lock every `(projection, key)` first, in one global order (projection
/// name, then key), and only then compute and write: two projections may
/// write the same physical row (one table keyed two ways, or two
/// projections owning different columns), so no transaction may hold an
/// app row's lock while it waits for another key lock.
async fn project_locked(
    tx: &mut dyn StoreTx,
    mut work: Vec<(&Projection, Vec<String>)>,
    dry_run: bool,
) -> Result<Vec<AppChange>> {
    work.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    for (p, keys) in &mut work {
        keys.sort_unstable();
        keys.dedup();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        tx.lock_app_keys(&p.name, &refs).await?;
    }
    let mut out = Vec::new();
    for (p, keys) in &work {
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        out.extend(compute_and_write(tx, p, &refs, dry_run).await?);
    }
    Ok(out)
}

/// The change-feed rows for app rows a commit changed (reports of missing
/// rows change nothing and are left out).
pub fn app_feed_rows(
    sync: &AppSync,
    changes: &[AppChange],
    account: &str,
    cause: &str,
    at: i64,
) -> Vec<ChangeRow> {
    changes
        .iter()
        .filter(|c| c.action != "missing")
        .map(|c| {
            let provider = sync
                .projections
                .iter()
                .find(|p| p.name == c.projection)
                .map(|p| p.provider.clone())
                .unwrap_or_default();
            let (before, after) = compact_diff(c.was.as_ref(), c.now.as_ref());
            ChangeRow {
                seq: 0,
                provider,
                account: account.to_string(),
                kind: c.projection.clone(),
                object_id: c.key.clone(),
                app_table: Some(c.table.clone()),
                app_key: Some(c.key.clone()),
                cause: cause.to_string(),
                before,
                after,
                at,
            }
        })
        .collect()
}

/// The key of a drift record about an app row.
pub fn app_drift_key(p: &Projection, account: &str, key: &str) -> ObjectKey {
    ObjectKey::new(p.provider.clone(), account, format!("app:{}", p.name), key)
}

/// How [`reconcile_app`] runs.
#[derive(Debug, Clone)]
pub struct AppSweepOptions {
    /// Count and report; write nothing.
    pub dry_run: bool,
    /// Ignore the circuit breaker.
    pub force: bool,
    /// Largest share of the app rows one pass may rewrite.
    pub breaker_share: f64,
    /// The breaker is armed from this many app rows.
    pub breaker_min_base: u64,
    /// Rows per page.
    pub page: u32,
    /// Account recorded on drift records and the feed.
    pub account: String,
    /// Which path (`Sweep` after scheduled sweeps, `OnDemand` for a
    /// command).
    pub source: Source,
}

impl Default for AppSweepOptions {
    fn default() -> Self {
        AppSweepOptions {
            dry_run: false,
            force: false,
            breaker_share: 0.5,
            breaker_min_base: 20,
            page: 1000,
            account: "default".into(),
            source: Source::Sweep,
        }
    }
}

/// The run-record kind of an app-table reconciliation.
pub fn app_run_kind(p: &Projection) -> String {
    format!("app:{}", p.name)
}

/// Compare every projected column of one projection with its desired value
/// and repair the differences, with a drift record (cause `app_drift`,
/// before/after) and a change-feed entry per repaired row. Recorded as a
/// run of kind `app:<projection>`, so `recon runs`, alerts and the breaker
/// apply as for the mirror.
///
/// Pass one reads (the desired rows and the app's rows as two streams in
/// key order, merged a page of keys at a time) and plans; if the plan would rewrite more than
/// `breaker_share` of the app rows (and there are at least
/// `breaker_min_base`), nothing is written and the run is `circuit_open`.
/// Pass two writes each planned key again under its lock, recomputing the
/// desired value at that moment, so a webhook that moved on in between wins.
pub async fn reconcile_app(
    store: &dyn Store,
    p: &Projection,
    opts: &AppSweepOptions,
) -> Result<(RunRecord, Vec<AppChange>)> {
    let mut run = RunRecord {
        id: format!("app-{}-{}", p.name, uuid_like()),
        provider: p.provider.clone(),
        account: opts.account.clone(),
        kind: app_run_kind(p),
        run_kind: RunKind::Sweep,
        status: RunStatus::Running,
        dry_run: opts.dry_run,
        started_at: now_ms(),
        finished_at: None,
        counts: RunCounts::default(),
        mismatch_ratio: 0.0,
        error: None,
    };
    store.insert_run(&run).await?;
    let result = reconcile_app_inner(store, p, opts, &mut run).await;
    let (status, error, changes) = match result {
        Ok(c) => (RunStatus::Succeeded, None, c),
        Err((e, c)) if e.kind() == ErrorKind::CircuitOpen => {
            (RunStatus::CircuitOpen, Some(e.to_string()), c)
        }
        Err((e, c)) => (RunStatus::Failed, Some(e.to_string()), c),
    };
    run.status = status;
    run.error = error;
    run.finished_at = Some(now_ms());
    let base = run.counts.compared.max(1);
    run.mismatch_ratio = run.counts.drift as f64 / base as f64;
    store.update_run(&run).await?;
    Ok((run, changes))
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{:x}{:04x}",
        now_ms(),
        N.fetch_add(1, Ordering::Relaxed) & 0xffff
    )
}

type Failed = (Error, Vec<AppChange>);

/// See `reconcile_app_inner`: app passes read one at a time.
static APP_READS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

async fn reconcile_app_inner(
    store: &dyn Store,
    p: &Projection,
    opts: &AppSweepOptions,
    run: &mut RunRecord,
) -> std::result::Result<Vec<AppChange>, Failed> {
    let table = p.app_table();
    let page = opts.page.max(1);
    // Pass one: plan.
    let mut plan: Vec<AppChange> = Vec::new();
    let mut app_rows = 0u64;
    // The desired rows and the app's rows are read as two streams in key
    // order (one statement each, outside any transaction: SQLite's writer
    // stays free for webhooks) and merged, a page of keys at a time, with
    // the heartbeat between pages. Memory: one page. Looking keys up
    // instead cost an index probe per key; paging the query evaluated and
    // sorted it once per page. The plan needs no snapshot: pass two
    // recomputes each planned key under its lock.
    let read = async {
        use futures::StreamExt;
        // One app pass reads at a time in this process: each holds two
        // connections while it reads (Postgres: three with the heartbeat),
        // and passes after sweeps of several kinds would otherwise take
        // every reader between them and wait for each other.
        let _reading = APP_READS.acquire().await.expect("never closed");
        let mut want_s = store.app_scan(table, Some(&p.query));
        let mut have_s = store.app_scan(table, None);
        let pe = |e| project_error(p, e);
        let mut w = want_s.next().await.transpose().map_err(pe)?;
        let mut h = have_s.next().await.transpose().map_err(pe)?;
        let mut keys: Vec<String> = Vec::new();
        let mut want: HashMap<String, Value> = HashMap::new();
        let mut have: HashMap<String, Value> = HashMap::new();
        let mut last: Option<String> = None;
        loop {
            let key = match (&w, &h) {
                (None, None) => None,
                (Some((k, _)), None) | (None, Some((k, _))) => Some(k.clone()),
                (Some((a, _)), Some((b, _))) => Some(a.min(b).clone()),
            };
            if let Some(key) = key {
                match last.as_ref().map(|l| l.cmp(&key)) {
                    // The app's duplicates are consumed below: a key seen
                    // again came twice from the query.
                    Some(std::cmp::Ordering::Equal) => {
                        return Err(duplicate_key(p, "its query", &key));
                    }
                    Some(std::cmp::Ordering::Greater) => {
                        return Err(Error::new(
                            ErrorKind::Store,
                            format!(
                                "projection {:?}: the store returned keys out of order ({key:?} after {:?})",
                                p.name,
                                last.as_deref().unwrap_or_default()
                            ),
                        ));
                    }
                    _ => {}
                }
                if w.as_ref().is_some_and(|(k, _)| *k == key) {
                    let (k, v) = w.take().expect("checked");
                    want.insert(k, v);
                    w = want_s.next().await.transpose().map_err(pe)?;
                }
                // A key the app table holds twice: the first row stands
                // for both here; pass two refuses the key if it needs a
                // write.
                while h.as_ref().is_some_and(|(k, _)| *k == key) {
                    let (k, v) = h.take().expect("checked");
                    have.entry(k).or_insert(v);
                    h = have_s.next().await.transpose().map_err(pe)?;
                }
                last = Some(key.clone());
                keys.push(key);
                if keys.len() < page as usize {
                    continue;
                }
            }
            if keys.is_empty() {
                break;
            }
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            app_rows += have.len() as u64;
            run.counts.compared += keys.len() as u64;
            run.counts.pages += 1;
            plan.extend(plan_rows(p, &refs, &want, &have));
            keys.clear();
            want.clear();
            have.clear();
            // The pass is alive: a sweep starting now must not close it
            // as abandoned.
            store.heartbeat_run(&run.id, now_ms()).await?;
        }
        Ok::<(), Error>(())
    };
    if let Err(e) = read.await {
        return Err((e, Vec::new()));
    }
    let writes = plan.iter().filter(|c| c.action != "missing").count() as u64;
    run.counts.drift = plan.len() as u64;
    run.counts.unchanged = run.counts.compared.saturating_sub(plan.len() as u64);
    if !opts.force && app_rows >= opts.breaker_min_base && app_rows > 0 {
        let share = writes as f64 / app_rows as f64;
        if share > opts.breaker_share {
            return Err((
                Error::new(
                    ErrorKind::CircuitOpen,
                    format!(
                        "circuit breaker: projection {:?} would rewrite {writes} of {app_rows} rows of {} ({:.0}%, limit {:.0}%); nothing written. Check the projection's query and the app table, then rerun with --force if this is expected",
                        p.name,
                        p.table,
                        share * 100.0,
                        opts.breaker_share * 100.0
                    ),
                ),
                plan,
            ));
        }
    }
    // Reported rows the app lacks are drift records, written in every mode
    // but a dry run; planned rewrites are redone under their locks.
    let mut done: Vec<AppChange> = plan
        .iter()
        .filter(|c| c.action == "missing")
        .cloned()
        .collect();
    let to_fix: Vec<String> = plan
        .iter()
        .filter(|c| c.action != "missing")
        .map(|c| c.key.clone())
        .collect();
    if opts.dry_run {
        tally(run, &plan);
        return Ok(plan);
    }
    for chunk in to_fix.chunks(page as usize) {
        let keys: Vec<&str> = chunk.iter().map(String::as_str).collect();
        if let Err(e) = store.heartbeat_run(&run.id, now_ms()).await {
            tally(run, &done);
            return Err((e, done));
        }
        let r = async {
            let mut tx = store.begin().await?;
            let changed = project_keys(tx.as_mut(), p, &keys, false).await?;
            let changed: Vec<AppChange> = changed
                .into_iter()
                .filter(|c| c.action != "missing")
                .collect();
            record(tx.as_mut(), store, p, opts, Some(&run.id), &changed).await?;
            tx.commit().await?;
            Ok::<_, Error>(changed)
        };
        match r.await {
            Ok(c) => done.extend(c),
            Err(e) => {
                tally(run, &done);
                return Err((e, done));
            }
        }
    }
    let missing: Vec<AppChange> = done
        .iter()
        .filter(|c| c.action == "missing")
        .cloned()
        .collect();
    if !missing.is_empty() {
        let r = async {
            let mut tx = store.begin().await?;
            record(tx.as_mut(), store, p, opts, Some(&run.id), &missing).await?;
            tx.commit().await
        };
        if let Err(e) = r.await {
            tally(run, &done);
            return Err((e, done));
        }
    }
    tally(run, &done);
    Ok(done)
}

fn tally(run: &mut RunRecord, changes: &[AppChange]) {
    for c in changes {
        match c.action {
            "update" => run.counts.updated += 1,
            "insert" => run.counts.inserted += 1,
            "delete" => run.counts.deleted += 1,
            _ => run.counts.missed += 1,
        }
    }
}

/// Drift records (cause `app_drift`) and feed rows for app rows changed or
/// found missing outside the commit path.
async fn record(
    tx: &mut dyn StoreTx,
    store: &dyn Store,
    p: &Projection,
    opts: &AppSweepOptions,
    run_id: Option<&str>,
    changes: &[AppChange],
) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let at = now_ms();
    let drift: Vec<DriftRecord> = changes
        .iter()
        .map(|c| DriftRecord {
            key: app_drift_key(p, &opts.account, &c.key),
            run_id: run_id.map(str::to_string),
            source: opts.source,
            cause: DriftCause::AppDrift,
            before: c.was.clone(),
            after: c.now.clone(),
            detected_at: at,
        })
        .collect();
    tx.insert_drift(&drift).await?;
    if store.app_sync().is_some_and(|s| s.feed) {
        let sync = AppSync {
            projections: vec![p.clone()],
            ..AppSync::default()
        };
        let rows = app_feed_rows(&sync, changes, &opts.account, "app_drift", at);
        tx.append_changes(&rows).await?;
    }
    Ok(())
}

/// Recompute the app rows that `objects` (mirror objects, e.g. one
/// customer and what it owns) map to, in every projection of the store, and
/// repair those that differ, with drift records (cause `app_drift`). For
/// `recon reconcile <provider> --owner`.
pub async fn refresh_objects(
    store: &dyn Store,
    objects: &[StoredObject],
    opts: &AppSweepOptions,
) -> Result<Vec<AppChange>> {
    let Some(sync) = store.app_sync() else {
        return Ok(Vec::new());
    };
    let mut tx = store.begin().await?;
    let mut work: Vec<(&Projection, Vec<String>)> = Vec::new();
    for p in &sync.projections {
        let mut keys = Vec::new();
        for o in objects {
            if p.depends_on(&o.snapshot.key.provider, &o.snapshot.key.kind) {
                keys.extend(p.keys_of(&o.snapshot, None));
            }
        }
        if !keys.is_empty() {
            work.push((p, keys));
        }
    }
    let all = project_locked(tx.as_mut(), work, opts.dry_run).await?;
    if !opts.dry_run {
        // The feed's lock comes last, after every key lock, as in commit.
        for p in &sync.projections {
            let mine: Vec<AppChange> = all
                .iter()
                .filter(|c| c.projection == p.name)
                .cloned()
                .collect();
            record(tx.as_mut(), store, p, opts, None, &mine).await?;
        }
        tx.commit().await?;
    }
    Ok(all)
}

/// What one declared check found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// The check.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Violating rows (at most the limit asked for).
    pub violations: Vec<Value>,
    /// The check's SQL failed.
    pub error: Option<String>,
}

/// The subject of a check violation: its column `subject`, else `id`,
/// else the first column by name (rows come back as JSON objects, which
/// do not keep the query's column order).
pub fn check_subject(row: &Value) -> String {
    let Some(o) = row.as_object() else {
        return row.to_string();
    };
    let v = o
        .get("subject")
        .or_else(|| o.get("id"))
        .or_else(|| o.values().next());
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// The drift key of a check violation (see [`check_subject`]).
pub fn check_drift_key(check: &Check, row: &Value) -> ObjectKey {
    ObjectKey::new(
        "check",
        "default",
        format!("check:{}", check.name),
        check_subject(row),
    )
}

/// Run declared checks; with `record`, each violation becomes a drift
/// record (cause `check`) of run `run_id`. A check whose SQL fails is
/// reported with its error, and the others still run.
pub async fn run_checks(
    store: &dyn Store,
    checks: &[Check],
    limit: u32,
    record: bool,
    run_id: Option<&str>,
) -> Result<Vec<CheckResult>> {
    let mut out = Vec::new();
    for c in checks {
        let mut tx = store.begin().await?;
        match tx.check_rows(&c.sql, limit).await {
            Ok(rows) => {
                if record && !rows.is_empty() {
                    let at = now_ms();
                    let drift: Vec<DriftRecord> = rows
                        .iter()
                        .map(|r| DriftRecord {
                            key: check_drift_key(c, r),
                            run_id: run_id.map(str::to_string),
                            source: Source::Sweep,
                            cause: DriftCause::Check,
                            before: None,
                            after: Some(r.clone()),
                            detected_at: at,
                        })
                        .collect();
                    tx.insert_drift(&drift).await?;
                    tx.commit().await?;
                }
                out.push(CheckResult {
                    name: c.name.clone(),
                    description: c.description.clone(),
                    violations: rows,
                    error: None,
                });
            }
            Err(e) => out.push(CheckResult {
                name: c.name.clone(),
                description: c.description.clone(),
                violations: Vec::new(),
                error: Some(e.to_string()),
            }),
        }
    }
    Ok(out)
}

/// How the built-in Stripe ↔ Clerk checks link a Stripe customer to a Clerk
/// user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// A metadata key of the customer holds the Clerk user id (e.g.
    /// `clerk_user_id`).
    Metadata(String),
    /// The customer's email is the user's primary email. A deleted Clerk
    /// user keeps no email in the mirror, so with this link the
    /// "deleted with an active subscription" case shows as a customer
    /// naming a user that does not exist.
    Email,
}

/// The built-in cross-provider checks. `app_status`, if given, is
/// `(table, status column, subscription-id column)` of an app table: rows
/// with an active status and no subscription id are violations.
pub fn builtin_checks(link: &Link, app_status: Option<(&str, &str, &str)>) -> Result<Vec<Check>> {
    let (user_of_customer, user_match) = match link {
        Link::Metadata(key) => {
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(Error::config(format!(
                    "link metadata key {key:?}: letters, digits and _"
                )));
            }
            (
                format!("c.data->'metadata'->>'{key}'"),
                format!("u.id = c.data->'metadata'->>'{key}'"),
            )
        }
        Link::Email => (
            "lower(c.email)".to_string(),
            "lower(u.email) = lower(c.email)".to_string(),
        ),
    };
    let mut checks = vec![
        Check {
            name: "clerk_user_deleted_with_active_subscription".into(),
            description: "A Clerk user was deleted while their Stripe customer still has an active subscription".into(),
            sql: format!(
                "SELECT s.id AS subject, c.id AS customer_id, u.id AS clerk_user_id, s.status \
                 FROM stripe_subscriptions s \
                 JOIN stripe_customers c ON c.id = s.customer_id AND c.account = s.account \
                 JOIN objects u ON u.provider = 'clerk' AND u.kind = 'users' AND u.deleted = true AND {user_match} \
                 WHERE s.status IN ('active', 'trialing', 'past_due') \
                 AND NOT EXISTS (SELECT 1 FROM objects l WHERE l.provider = 'clerk' AND l.kind = 'users' AND l.deleted = false AND {})",
                user_match.replace("u.", "l.")
            ),
        },
        Check {
            name: "clerk_user_with_many_customers".into(),
            description: "One Clerk user has more than one Stripe customer".into(),
            sql: format!(
                "SELECT {user_of_customer} AS subject, COUNT(*) AS customers \
                 FROM stripe_customers c WHERE {user_of_customer} IS NOT NULL AND {user_of_customer} <> '' \
                 GROUP BY {user_of_customer} HAVING COUNT(*) > 1"
            ),
        },
        Check {
            name: "customer_names_missing_clerk_user".into(),
            description: "A Stripe customer names a Clerk user that does not exist".into(),
            sql: format!(
                "SELECT c.id AS subject, {user_of_customer} AS clerk_user \
                 FROM stripe_customers c WHERE {user_of_customer} IS NOT NULL AND {user_of_customer} <> '' \
                 AND NOT EXISTS (SELECT 1 FROM objects u WHERE u.provider = 'clerk' AND u.kind = 'users' AND {user_match})"
            ),
        },
    ];
    if let Some((table, status, sub)) = app_status {
        for id in [status, sub] {
            if !valid_ident(id) {
                return Err(Error::config(format!(
                    "column {id:?}: lower-case letters, digits and _"
                )));
            }
        }
        if !table.split('.').all(valid_ident) {
            return Err(Error::config(format!(
                "table {table:?}: lower-case letters, digits and _"
            )));
        }
        let (t, st, sb) = (quote_ident(table), quote_ident(status), quote_ident(sub));
        checks.push(Check {
            name: "app_active_without_subscription".into(),
            description: format!("A row of {table} has an active status but no subscription id"),
            sql: format!(
                "SELECT * FROM {t} WHERE {st} IN ('active', 'trialing', 'past_due') AND ({sb} IS NULL OR {sb} = '')"
            ),
        });
    }
    Ok(checks)
}

/// The built-in check "app rows not verified for longer than `stale`" for
/// one projection, named `app_stale:<projection>`. Its violations:
/// - each app row whose provider object (a dependency keyed by `id`) has
///   not been confirmed within `stale`: no webhook, fetch or sweep state
///   for it, and no completed sweep of its kind since;
/// - the projection itself (subject `app:<name>`) when no app pass has
///   completed within `stale`: then no row was compared with the mirror.
///
/// The SQL is the same on both stores; "now" is the database's clock
/// (`recon_clock`).
pub fn stale_check(p: &Projection, stale: std::time::Duration) -> Check {
    let ms = i64::try_from(stale.as_millis()).unwrap_or(i64::MAX / 2);
    let lit = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let cutoff = format!("(SELECT now_ms FROM recon_clock) - {ms}");
    let run_kind = lit(&app_run_kind(p));
    // The projection's own row first: a check's rows are cut at its limit,
    // and this one says the most.
    let mut parts = vec![format!(
        "SELECT {run_kind} AS subject, NULL AS kind, NULL AS confirmed_at, NULL AS kind_swept_at \
         WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.kind = {run_kind} AND r.status = 'succeeded' \
         AND NOT r.dry_run AND r.started_at >= {cutoff})"
    )];
    for d in p.depends.iter().filter(|d| d.key == "id") {
        let provider = d.provider.as_deref().unwrap_or(&p.provider);
        parts.push(format!(
            "SELECT CAST(t.{key} AS TEXT) AS subject, o.kind AS kind, o.confirmed_at AS confirmed_at, f.updated_at AS kind_swept_at \
             FROM {table} t \
             JOIN objects o ON o.provider = {prov} AND o.kind = {kind} AND o.id = CAST(t.{key} AS TEXT) AND NOT o.deleted \
             LEFT JOIN cursors f ON f.provider = o.provider AND f.account = o.account AND f.name = {floor} \
             WHERE o.confirmed_at < {cutoff} AND COALESCE(f.updated_at, 0) < {cutoff}",
            key = quote_ident(&p.key),
            table = quote_ident(&p.table),
            prov = lit(provider),
            kind = lit(&d.kind),
            floor = lit(&format!("sweep:{}", d.kind)),
        ));
    }
    Check {
        name: format!("app_stale:{}", p.name),
        description: format!(
            "Rows of {} not verified for longer than {}: their provider object unconfirmed, or no app pass of projection {:?}",
            p.table,
            humanize_ms(ms),
            p.name
        ),
        sql: parts.join(" UNION ALL "),
    }
}

fn humanize_ms(ms: i64) -> String {
    match ms {
        m if m % 86_400_000 == 0 => format!("{}d", m / 86_400_000),
        m if m % 3_600_000 == 0 => format!("{}h", m / 3_600_000),
        m if m % 60_000 == 0 => format!("{}m", m / 60_000),
        m => format!("{}s", m / 1000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn proj() -> Projection {
        Projection {
            name: "billing".into(),
            provider: "stripe".into(),
            table: "app_users".into(),
            key: "stripe_customer_id".into(),
            columns: vec!["subscription_status".into(), "plan".into()],
            query:
                "SELECT id AS key, 'x' AS subscription_status, 'p' AS plan FROM stripe_customers"
                    .into(),
            depends: vec![
                Dependency {
                    provider: None,
                    kind: "customers".into(),
                    key: "id".into(),
                },
                Dependency {
                    provider: None,
                    kind: "subscriptions".into(),
                    key: "owner".into(),
                },
                Dependency {
                    provider: None,
                    kind: "memberships".into(),
                    key: "data.organization.id".into(),
                },
            ],
            on_missing: OnMissing::Report,
            on_delete: OnDelete::Absent,
            absent: [("subscription_status".to_string(), json!("none"))].into(),
        }
    }

    #[test]
    fn validation_names_the_projection() {
        assert!(proj().validate().is_ok());
        let mut p = proj();
        p.key = String::new();
        let e = p.validate().unwrap_err().to_string();
        assert!(e.contains("billing") && e.contains("key"), "{e}");
        let mut p = proj();
        p.columns.push("stripe_customer_id".into());
        assert!(p.validate().is_err());
        let mut p = proj();
        p.table = "users; drop table x".into();
        assert!(p.validate().is_err());
        let mut p = proj();
        p.depends[0].key = "customer".into();
        assert!(p.validate().is_err());
        let mut p = proj();
        p.absent.insert("email".into(), json!(""));
        assert!(p.validate().is_err());
    }

    #[test]
    fn keys_follow_the_dependency_rules() {
        let p = proj();
        let sub = Snapshot::live(
            ObjectKey::new("stripe", "default", "subscriptions", "sub_1"),
            1,
            json!({}),
        )
        .with_owner(Some("cus_1"));
        let prev = Snapshot::live(
            ObjectKey::new("stripe", "default", "subscriptions", "sub_1"),
            0,
            json!({}),
        )
        .with_owner(Some("cus_0"));
        assert_eq!(p.keys_of(&sub, Some(&prev)), vec!["cus_0", "cus_1"]);
        let m = Snapshot::live(
            ObjectKey::new("stripe", "default", "memberships", "m"),
            1,
            json!({"organization": {"id": "org_1"}}),
        );
        assert_eq!(p.keys_of(&m, None), vec!["org_1"]);
        let other = Snapshot::live(
            ObjectKey::new("clerk", "default", "customers", "c"),
            1,
            json!({}),
        );
        assert!(p.keys_of(&other, None).is_empty());
    }

    #[test]
    fn loose_equality() {
        assert!(same_value(&json!(true), &json!(1)));
        assert!(same_value(&json!("5"), &json!(5)));
        assert!(!same_value(&json!("active"), &json!("past_due")));
        assert!(!same_value(&json!(null), &json!("")));
        assert!(same_value(
            &json!({"a": 1, "b": "x"}),
            &json!({"a": "1", "b": "x"})
        ));
        assert!(!same_value(&json!({"a": 1}), &json!({"a": 2})));
        assert!(!same_value(&json!("007"), &json!("7")));
        assert!(!same_value(
            &json!(9007199254740993i64),
            &json!(9007199254740992i64)
        ));
    }

    #[test]
    fn plan_writes_only_differences() {
        let p = proj();
        let desired: HashMap<String, Value> = [
            (
                "a".to_string(),
                json!({"subscription_status": "active", "plan": "pro"}),
            ),
            (
                "b".to_string(),
                json!({"subscription_status": "active", "plan": "pro"}),
            ),
            (
                "c".to_string(),
                json!({"subscription_status": "trialing", "plan": "pro"}),
            ),
        ]
        .into();
        let current: HashMap<String, Value> = [
            (
                "a".to_string(),
                json!({"subscription_status": "active", "plan": "pro"}),
            ),
            (
                "b".to_string(),
                json!({"subscription_status": "canceled", "plan": "pro"}),
            ),
            (
                "d".to_string(),
                json!({"subscription_status": "active", "plan": "pro"}),
            ),
        ]
        .into();
        let plan = plan_rows(&p, &["a", "b", "c", "d"], &desired, &current);
        let got: Vec<(&str, &str)> = plan.iter().map(|c| (c.key.as_str(), c.action)).collect();
        assert_eq!(
            got,
            vec![("b", "update"), ("c", "missing"), ("d", "update")]
        );
        assert_eq!(
            plan[2].now,
            Some(json!({"subscription_status": "none", "plan": null}))
        );
    }

    #[test]
    fn diff_is_compact() {
        let (b, a) = compact_diff(
            Some(&json!({"s": "a", "x": 1})),
            Some(&json!({"s": "b", "x": 1})),
        );
        assert_eq!(b, Some(json!({"s": "a"})));
        assert_eq!(a, Some(json!({"s": "b"})));
    }
}
