//! A provider's kinds as a table, for adapters whose ids name their kind
//! with a prefix (`cus_…`, `user_…`, `ctm_…`): which kind an id is, which
//! kinds exist, and the checks that keep ids safe to put in a URL path.
//!
//! ```
//! use recon_core::kinds::KindTable;
//!
//! const TABLE: &[(&str, &str)] = &[("widgets", "wid"), ("widget_parts", "widpt")];
//! const KINDS: &[&str] = recon_core::kind_names!(TABLE, 0);
//! static ACME: KindTable<(&str, &str)> = KindTable::new("Acme", "acme", TABLE);
//!
//! assert_eq!(KINDS, ["widgets", "widget_parts"]);
//! assert_eq!(ACME.kind_of("widpt_9"), Some("widget_parts"));
//! assert_eq!(ACME.kind_of("wid_../x"), None);
//! assert!(ACME.get("gadgets").unwrap_err().to_string().contains("widgets, widget_parts"));
//! assert!(ACME.check_id(ACME.get("widgets").unwrap(), "widpt_9").is_err());
//! ```

use crate::{Error, Result};

/// One row of a [`KindTable`]: a kind and the prefix of its ids.
pub trait KindRow: Sync + 'static {
    /// The kind (`customers`).
    fn name(&self) -> &'static str;
    /// The prefix of its ids, without the `_` (`cus` for `cus_…`).
    fn prefix(&self) -> &'static str;
}

/// The plainest row: `(kind, id prefix)`.
impl KindRow for (&'static str, &'static str) {
    fn name(&self) -> &'static str {
        self.0
    }
    fn prefix(&self) -> &'static str {
        self.1
    }
}

/// One kind an adapter mirrors, as data: what a listing by id cursor and a
/// snapshot need to know, so that adding a kind is one entry.
#[derive(Debug, Clone, Copy)]
pub struct KindSpec {
    /// The kind (`customers`): its path in the API, its name in the mirror.
    pub name: &'static str,
    /// The prefix of its ids, without the `_` (`ctm` for `ctm_…`).
    pub prefix: &'static str,
    /// Query parameters every listing of it sends (a status filter that
    /// lists every state, where the API's default leaves some out).
    pub filters: &'static [(&'static str, &'static str)],
    /// Listings in turn, each with one more parameter, for a kind whose
    /// plain listing leaves part of it out (Paddle lists `custom` prices
    /// only when asked). Empty: one listing.
    pub walks: &'static [(&'static str, &'static str)],
    /// The largest page the API serves for it (`u32::MAX`: the provider's).
    pub max_page: u32,
    /// Fields that change on every read without being state (signed URLs,
    /// the latest transaction): never stored, so never drift.
    pub volatile: &'static [&'static str],
}

impl KindRow for KindSpec {
    fn name(&self) -> &'static str {
        self.name
    }
    fn prefix(&self) -> &'static str {
        self.prefix
    }
}

impl KindSpec {
    /// `name` with ids `prefix_…`, one listing, no filters, nothing volatile.
    pub const fn new(name: &'static str, prefix: &'static str) -> Self {
        KindSpec {
            name,
            prefix,
            filters: &[],
            walks: &[],
            max_page: u32::MAX,
            volatile: &[],
        }
    }

    /// Where a listing cursor points: the walk (see [`KindSpec::walks`])
    /// and the id it is after (`""`: the walk's start). A cursor is the id
    /// in the first walk and `<walk>:<id>` in the others; anything else (an
    /// empty cursor included: it would restart the listing) is `None`.
    pub fn walk<'c>(&self, cursor: Option<&'c str>) -> Option<(usize, &'c str)> {
        match cursor.map(|c| c.split_once(':')) {
            None => Some((0, "")),
            Some(None) => cursor.filter(|c| !c.is_empty()).map(|c| (0, c)),
            Some(Some((n, after))) => {
                let n = n
                    .parse()
                    .ok()
                    .filter(|n| (1..self.walks.len()).contains(n))?;
                Some((n, after))
            }
        }
    }

    /// The query parameters of `walk`: the filters, then the walk's own.
    pub fn query(&self, walk: usize) -> Vec<(&'static str, String)> {
        let own = self.walks.get(walk).into_iter();
        let params = self.filters.iter().chain(own);
        params.map(|(k, v)| (*k, v.to_string())).collect()
    }

    /// The cursor after a page of `walk` whose next page is `next`: that
    /// page, else the start of the next walk, else `None` (the end).
    pub fn next(&self, walk: usize, next: Option<String>) -> Option<String> {
        match next {
            Some(n) if walk == 0 => Some(n),
            Some(n) => Some(format!("{walk}:{n}")),
            None if walk + 1 < self.walks.len() => Some(format!("{}:", walk + 1)),
            None => None,
        }
    }

    /// `obj` without the [volatile](KindSpec::volatile) fields.
    pub fn strip(&self, obj: &mut serde_json::Value) {
        if let serde_json::Value::Object(m) = obj {
            self.volatile.iter().for_each(|f| drop(m.remove(*f)));
        }
    }
}

/// A provider's kinds, in sweep order.
#[derive(Debug)]
pub struct KindTable<R: 'static> {
    display: &'static str,
    component: &'static str,
    rows: &'static [R],
}

impl<R: KindRow> KindTable<R> {
    /// The table of `rows` for the provider named `display` in messages
    /// (`component` in error metadata).
    pub const fn new(display: &'static str, component: &'static str, rows: &'static [R]) -> Self {
        KindTable {
            display,
            component,
            rows,
        }
    }

    /// The rows, in sweep order.
    pub fn rows(&self) -> &'static [R] {
        self.rows
    }

    /// The row of an id: `<prefix>_<rest>` with a known prefix and a
    /// [plain](is_plain_id) rest. The prefix is everything before the first
    /// `_`, so `org_…` and `orgmem_…` never shadow each other.
    pub fn of_id(&self, id: &str) -> Option<&'static R> {
        let (prefix, rest) = id.split_once('_')?;
        if !is_plain_id(rest) {
            return None;
        }
        self.rows.iter().find(|r| r.prefix() == prefix)
    }

    /// The kind of an id ([`KindTable::of_id`]).
    pub fn kind_of(&self, id: &str) -> Option<&'static str> {
        self.of_id(id).map(R::name)
    }

    /// The row of `kind`, or an invalid-input error naming every kind.
    pub fn get(&self, kind: &str) -> Result<&'static R> {
        let found = self.rows.iter().find(|r| r.name() == kind);
        found.ok_or_else(|| {
            let names: Vec<_> = self.rows.iter().map(R::name).collect();
            let (p, all) = (self.display, names.join(", "));
            self.invalid(format!("{p} has no kind {kind:?}; kinds: {all}"))
        })
    }

    /// `Ok` for an id of `row`'s kind (so safe in a URL path), else an
    /// invalid-input error.
    pub fn check_id(&self, row: &R, id: &str) -> Result<()> {
        if self.kind_of(id) == Some(row.name()) {
            return Ok(());
        }
        let (p, kind, prefix) = (self.display, row.name(), row.prefix());
        Err(self.invalid(format!("{id:?} is not a {p} {kind} id ({prefix}_…)")))
    }

    fn invalid(&self, message: String) -> Error {
        Error::invalid(message).with_component(self.component)
    }
}

/// An id that is safe to send back in a URL path or keep in a cursor:
/// 1 to 255 ASCII letters, digits, `_` and `-`.
pub fn is_plain_id(id: &str) -> bool {
    (1..=255).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The kinds of a constant table, as a constant `[&str; N]`:
/// `kind_names!(TABLE, name)` reads `TABLE[i].name` (`0` for tuples), so
/// the list a provider reports can never drift from its table.
#[macro_export]
macro_rules! kind_names {
    ($table:path, $field:tt) => {
        &{
            let mut names = [""; $table.len()];
            let mut i = 0;
            while i < names.len() {
                names[i] = $table[i].$field;
                i += 1;
            }
            names
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROWS: &[(&str, &str)] = &[("users", "user"), ("orgs", "org"), ("members", "orgmem")];
    static T: KindTable<(&str, &str)> = KindTable::new("Acme", "acme", ROWS);

    #[test]
    fn prefixes_match_whole() {
        assert_eq!(T.kind_of("org_1"), Some("orgs"));
        assert_eq!(T.kind_of("orgmem_1"), Some("members"));
        assert_eq!(T.kind_of("orgx_1"), None);
        assert_eq!(T.kind_of("org_"), None);
        assert_eq!(T.kind_of("org"), None);
        assert_eq!(T.kind_of("user_a-b_C"), Some("users"));
        assert_eq!(T.kind_of("user_a/b"), None);
        assert_eq!(T.kind_of(&format!("user_{}", "a".repeat(256))), None);
    }

    #[test]
    fn walks_are_visited_in_turn() {
        const WALKS: &[(&str, &str)] = &[("type", "standard"), ("type", "custom")];
        let k = KindSpec {
            filters: &[("status", "active,archived")],
            walks: WALKS,
            ..KindSpec::new("prices", "pri")
        };
        assert_eq!(k.walk(None), Some((0, "")));
        assert_eq!(k.walk(Some("pri_1")), Some((0, "pri_1")));
        assert_eq!(k.walk(Some("1:")), Some((1, "")));
        assert_eq!(k.walk(Some("1:pri_2")), Some((1, "pri_2")));
        assert_eq!(k.walk(Some("2:pri_2")), None);
        assert_eq!(k.walk(Some("0:pri_2")), None);
        assert_eq!(k.walk(Some("x:pri_2")), None);
        assert_eq!(k.walk(Some("")), None);
        let q = k.query(1);
        assert_eq!(
            q,
            [
                ("status", "active,archived".into()),
                ("type", "custom".into())
            ]
        );
        assert_eq!(k.next(0, Some("pri_1".into())).as_deref(), Some("pri_1"));
        assert_eq!(k.next(0, None).as_deref(), Some("1:"));
        assert_eq!(k.next(1, Some("pri_9".into())).as_deref(), Some("1:pri_9"));
        assert_eq!(k.next(1, None), None);
        let one = KindSpec::new("customers", "ctm");
        assert_eq!(one.query(0), []);
        assert_eq!(one.next(0, None), None);
        assert_eq!(one.walk(Some("1:ctm_1")), None);
        let mut obj = serde_json::json!({"id": "x", "urls": {}});
        KindSpec {
            volatile: &["urls"],
            ..one
        }
        .strip(&mut obj);
        assert_eq!(obj, serde_json::json!({"id": "x"}));
    }

    #[test]
    fn errors_name_the_choices() {
        let e = T.get("sessions").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("users, orgs, members"), "{e}");
        let users = T.get("users").unwrap();
        assert!(T.check_id(users, "user_1").is_ok());
        let e = T.check_id(users, "org_1").unwrap_err();
        assert!(e.to_string().contains("user_…"), "{e}");
        assert!(T.check_id(users, "user_../../x").is_err());
    }
}
