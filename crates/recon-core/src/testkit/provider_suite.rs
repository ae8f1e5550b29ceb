//! Provider conformance: what every adapter must do, checked against a
//! server whose content the caller knows.

use std::collections::{BTreeMap, BTreeSet};

use crate::provider::{Fetched, ListScope, Provider};

/// List `kind` to the end through one cursor and return every snapshot's id,
/// failing on a repeated id. Also checks every snapshot's key.
pub async fn list_all(
    provider: &dyn Provider,
    kind: &str,
    scope: &ListScope,
) -> BTreeMap<String, i64> {
    let mut seen = BTreeMap::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = provider
            .list_page(kind, scope, cursor.as_deref())
            .await
            .unwrap_or_else(|e| panic!("list {kind} page {pages}: {e}"));
        pages += 1;
        assert!(pages < 100_000, "listing of {kind} does not end");
        for s in page.items {
            assert_eq!(s.key.provider, provider.name(), "snapshot provider");
            assert_eq!(s.key.account, provider.account(), "snapshot account");
            assert_eq!(s.key.kind, kind, "snapshot kind");
            assert!(!s.hash.is_empty(), "snapshot hash");
            let dup = seen.insert(s.key.id.clone(), s.version);
            assert!(dup.is_none(), "{kind} {} listed twice", s.key.id);
        }
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    seen
}

/// The listing walks every page once and yields exactly `expected`.
pub async fn listing_is_complete(provider: &dyn Provider, kind: &str, expected: &BTreeSet<String>) {
    let got: BTreeSet<String> = list_all(provider, kind, &ListScope::all())
        .await
        .into_keys()
        .collect();
    assert_eq!(&got, expected, "single-cursor listing of {kind}");
}

/// `n` partitions together list exactly what one cursor lists, each object once.
pub async fn partitions_equal_single_cursor(provider: &dyn Provider, kind: &str, n: usize) {
    let single: BTreeSet<String> = list_all(provider, kind, &ListScope::all())
        .await
        .into_keys()
        .collect();
    let scopes = provider.partitions(kind, n).await.expect("partitions");
    assert!(!scopes.is_empty(), "at least one scope");
    let mut union = BTreeSet::new();
    for s in &scopes {
        for id in list_all(provider, kind, s).await.into_keys() {
            assert!(union.insert(id.clone()), "{id} listed by two partitions");
        }
    }
    assert_eq!(union, single, "partitions of {kind} differ from one cursor");
}

/// Fetching a deleted object says deleted; a live one is found; an unknown
/// one is not found.
pub async fn fetch_semantics(
    provider: &dyn Provider,
    kind: &str,
    live: &str,
    deleted: &str,
    unknown: &str,
) {
    match provider.fetch(kind, live).await.expect("fetch live") {
        Fetched::Found(s) => {
            assert_eq!(s.key.id, live);
            assert!(!s.deleted);
        }
        other => panic!("live {live}: {other:?}"),
    }
    match provider.fetch(kind, deleted).await.expect("fetch deleted") {
        Fetched::Deleted(s) => {
            assert!(s.deleted);
            assert_eq!(s.key.id, deleted);
        }
        Fetched::NotFound => {}
        other => panic!("deleted {deleted}: {other:?}"),
    }
    match provider.fetch(kind, unknown).await {
        Ok(Fetched::NotFound) | Ok(Fetched::Deleted(_)) => {}
        other => panic!("unknown {unknown}: {other:?}"),
    }
}

/// Every id `kind_of` claims maps to a kind the provider lists.
pub fn kinds_are_consistent(provider: &dyn Provider, sample_ids: &[&str]) {
    for id in sample_ids {
        if let Some(k) = provider.kind_of(id) {
            assert!(provider.kinds().contains(&k), "{id} → {k} not in kinds()");
        }
    }
}
