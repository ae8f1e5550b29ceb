//! A table of objects with an index sorted by `(time, seq)`, and the page
//! walks both providers' lists need. A page costs O(log n + page), never a
//! scan of the table.

use std::collections::{BTreeMap, HashMap};

/// Sort key: (a time, a global creation sequence number).
pub(crate) type Key = (i64, u64);

/// Something stored in a [`Table`].
pub(crate) trait Row {
    fn id(&self) -> &str;
    /// The listing order key (never changes).
    fn key(&self) -> Key;
    /// Whether list endpoints show it (deleted objects are not listed).
    fn listed(&self) -> bool;
}

/// Objects by id, plus the listed ones by key.
#[derive(Debug, Clone)]
pub(crate) struct Table<T> {
    pub rows: HashMap<String, T>,
    pub index: BTreeMap<Key, String>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            rows: HashMap::new(),
            index: BTreeMap::new(),
        }
    }
}

impl<T: Row> Table<T> {
    pub(crate) fn insert(&mut self, row: T) {
        if row.listed() {
            self.index.insert(row.key(), row.id().to_string());
        }
        self.rows.insert(row.id().to_string(), row);
    }

    pub(crate) fn get(&self, id: &str) -> Option<&T> {
        self.rows.get(id)
    }

    /// Change one row and keep the index right. `None` if there is no such row.
    pub(crate) fn update<R>(&mut self, id: &str, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        let row = self.rows.get_mut(id)?;
        let r = f(row);
        if row.listed() {
            self.index.insert(row.key(), id.to_string());
        } else {
            self.index.remove(&row.key());
        }
        Some(r)
    }

    /// Remove a row entirely (hard delete).
    pub(crate) fn remove(&mut self, id: &str) -> Option<T> {
        let row = self.rows.remove(id)?;
        self.index.remove(&row.key());
        Some(row)
    }

    /// Listed rows.
    pub(crate) fn len_listed(&self) -> usize {
        self.index.len()
    }
}

/// Where a page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cursor {
    /// The newest (or first) objects.
    Start,
    /// Objects after this key in the listing order.
    After(Key),
    /// Objects before this key in the listing order (Stripe `ending_before`).
    Before(Key),
}

/// Inclusive key bounds from inclusive time bounds.
pub(crate) fn time_bounds(lo: Option<i64>, hi: Option<i64>) -> (Key, Key) {
    (
        (lo.unwrap_or(i64::MIN), 0),
        (hi.unwrap_or(i64::MAX), u64::MAX),
    )
}

fn key_before(k: Key) -> Option<Key> {
    if k.1 > 0 {
        Some((k.0, k.1 - 1))
    } else {
        k.0.checked_sub(1).map(|t| (t, u64::MAX))
    }
}

fn key_after(k: Key) -> Option<Key> {
    if k.1 < u64::MAX {
        Some((k.0, k.1 + 1))
    } else {
        k.0.checked_add(1).map(|t| (t, 0))
    }
}

/// Iterate `index` between inclusive bounds, ascending or descending.
fn range<'a>(
    index: &'a BTreeMap<Key, String>,
    lo: Key,
    hi: Key,
    descending: bool,
) -> Box<dyn Iterator<Item = (&'a Key, &'a String)> + 'a> {
    if lo > hi {
        return Box::new(std::iter::empty());
    }
    let r = index.range(lo..=hi);
    if descending {
        Box::new(r.rev())
    } else {
        Box::new(r)
    }
}

/// One Stripe page: newest first, `limit` objects, `has_more`.
///
/// `After(k)` gives the objects older than `k`; `Before(k)` the `limit`
/// objects directly newer than `k`, still newest first, with `has_more`
/// telling whether still newer ones exist.
pub(crate) fn stripe_page(
    index: &BTreeMap<Key, String>,
    (mut lo, mut hi): (Key, Key),
    cursor: Cursor,
    limit: usize,
    mut keep: impl FnMut(&str) -> bool,
) -> (Vec<&str>, bool) {
    let ascending = match cursor {
        Cursor::Start => false,
        Cursor::After(k) => {
            match key_before(k) {
                Some(b) => hi = hi.min(b),
                None => return (Vec::new(), false),
            }
            false
        }
        Cursor::Before(k) => {
            match key_after(k) {
                Some(a) => lo = lo.max(a),
                None => return (Vec::new(), false),
            }
            true
        }
    };
    let mut out: Vec<&str> = range(index, lo, hi, !ascending)
        .map(|(_, id)| id.as_str())
        .filter(|id| keep(id))
        .take(limit + 1)
        .collect();
    let has_more = out.len() > limit;
    out.truncate(limit);
    if ascending {
        out.reverse();
    }
    (out, has_more)
}

/// One Clerk page: `offset` objects skipped, then `limit` objects, in
/// ascending or descending key order, starting after `after` if given.
pub(crate) fn offset_page(
    index: &BTreeMap<Key, String>,
    (mut lo, mut hi): (Key, Key),
    descending: bool,
    after: Option<Key>,
    offset: usize,
    limit: usize,
    mut keep: impl FnMut(&str) -> bool,
) -> Vec<&str> {
    if let Some(k) = after {
        if descending {
            match key_before(k) {
                Some(b) => hi = hi.min(b),
                None => return Vec::new(),
            }
        } else {
            match key_after(k) {
                Some(a) => lo = lo.max(a),
                None => return Vec::new(),
            }
        }
    }
    range(index, lo, hi, descending)
        .map(|(_, id)| id.as_str())
        .filter(|id| keep(id))
        .skip(offset)
        .take(limit)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(n: u64) -> BTreeMap<Key, String> {
        // Two objects per second.
        (0..n)
            .map(|i| (((i / 2) as i64, i), format!("o{i}")))
            .collect()
    }

    #[test]
    fn stripe_walks_both_ways() {
        let idx = index(25);
        let all = time_bounds(None, None);
        let (p, more) = stripe_page(&idx, all, Cursor::Start, 10, |_| true);
        assert_eq!(p[0], "o24");
        assert_eq!(p[9], "o15");
        assert!(more);
        let (p2, _) = stripe_page(&idx, all, Cursor::After(((15 / 2), 15)), 10, |_| true);
        assert_eq!(p2[0], "o14");
        let (b, more) = stripe_page(&idx, all, Cursor::Before((1, 3)), 3, |_| true);
        assert_eq!(b, vec!["o6", "o5", "o4"]);
        assert!(more);
        let (b, more) = stripe_page(&idx, all, Cursor::Before((11, 22)), 3, |_| true);
        assert_eq!(b, vec!["o24", "o23"]);
        assert!(!more);
        let (r, _) = stripe_page(
            &idx,
            time_bounds(Some(2), Some(3)),
            Cursor::Start,
            10,
            |_| true,
        );
        assert_eq!(r, vec!["o7", "o6", "o5", "o4"]);
        let (e, more) = stripe_page(
            &idx,
            time_bounds(Some(5), Some(3)),
            Cursor::Start,
            10,
            |_| true,
        );
        assert!(e.is_empty() && !more);
    }

    #[test]
    fn offsets_and_cursors() {
        let idx = index(10);
        let all = time_bounds(None, None);
        assert_eq!(
            offset_page(&idx, all, false, None, 2, 3, |_| true),
            vec!["o2", "o3", "o4"]
        );
        assert_eq!(
            offset_page(&idx, all, true, Some((4, 8)), 0, 2, |_| true),
            vec!["o7", "o6"]
        );
        assert_eq!(
            offset_page(&idx, all, false, Some((4, 8)), 0, 5, |_| true),
            vec!["o9"]
        );
    }
}
