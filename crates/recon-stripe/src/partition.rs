//! Splitting a listing into `created` ranges of about equal size, so that
//! several cursors walked at once can use the whole rate budget.
//!
//! Correctness does not depend on the estimates: the ranges always tile the
//! whole time line (the first is open below, the last open above, each
//! `[gte, lt)` starts where the previous one ends), so every object is in
//! exactly one of them. The probes only decide where the cuts fall.
//!
//! Stripe has no counts, so the plan samples the listing with `limit=100`
//! probes, in two rounds:
//! 1. the first page of the whole listing. If nothing follows it, the
//!    listing is one page and stays one range. Otherwise it shows where the
//!    newest objects are and how dense they are there;
//! 2. the rest (everything older) is cut into ranges growing geometrically
//!    away from the objects already seen, starting at the width that held
//!    one page, and all of them are probed at once. A range with fewer than
//!    100 objects is then known exactly; a fuller one shows its newest 100
//!    objects and the local density.
//!
//! What is still unknown after that is assumed uniform at the density seen
//! next to it: an overestimate costs a few empty ranges, an underestimate
//! would leave one range too long for its cursor. The cuts are placed at
//! equal shares of the estimated count (objects seen are exact points),
//! with at least about one page per range. `n` is the number of ranges
//! meant to hold objects: where the objects end inside a probed range, a
//! few more ranges (up to a quarter of `n`) are added, since some of them
//! are likely empty.
//! Servers listing oldest first are handled the same way, mirrored.

use recon_core::{ListScope, Result};

use crate::client::{Client, Query};

const PAGE: f64 = 100.0;
/// 2009-01-01, before Stripe's first object.
const FLOOR: i64 = 1_230_768_000;

/// A `created` range `[gte, lt)`, open where `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Range {
    pub gte: Option<i64>,
    pub lt: Option<i64>,
}

/// What one probe of a range showed.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub range: Range,
    /// `created` of each object on the probe page, in server order.
    pub created: Vec<i64>,
    pub has_more: bool,
}

/// The part of a full range its probe did not show.
#[derive(Debug, Clone, Copy)]
struct Unknown {
    range: Range,
    /// The boundary next to the objects seen.
    edge: i64,
    /// The unknown part lies below `edge` (newest-first server).
    downward: bool,
    /// Objects per second next to `edge`.
    density: f64,
    /// Seconds spanned by the page seen next to `edge`.
    span: i64,
}

fn unknown(s: &Sample) -> Option<Unknown> {
    if !s.has_more || s.created.is_empty() {
        return None;
    }
    let lo = *s.created.iter().min()?;
    let hi = *s.created.iter().max()?;
    let span = hi - lo + 1;
    let density = s.created.len() as f64 / span as f64;
    let oldest_first = s.created.first() < s.created.last();
    if oldest_first {
        let edge = hi + 1;
        (s.range.lt.is_none_or(|lt| lt > edge)).then_some(Unknown {
            range: Range {
                gte: Some(edge),
                lt: s.range.lt,
            },
            edge,
            downward: false,
            density,
            span,
        })
    } else {
        (s.range.gte.is_none_or(|g| g < lo)).then_some(Unknown {
            range: Range {
                gte: s.range.gte,
                lt: Some(lo),
            },
            edge: lo,
            downward: true,
            density,
            span,
        })
    }
}

/// The far end of an unknown part, for estimates (open ends get a bound).
fn far_end(u: &Unknown, now: i64) -> i64 {
    if u.downward {
        // Stripe did not exist before 2009: older objects (test data) still
        // land in the open-below range, but the estimate stops there.
        let floor = if u.edge > FLOOR {
            FLOOR
        } else {
            0.min(u.edge - 1)
        };
        u.range.gte.unwrap_or(floor)
    } else {
        u.range.lt.unwrap_or((now + 3600).max(u.edge + 1))
    }
}

fn width(u: &Unknown, now: i64) -> i64 {
    (far_end(u, now) - u.edge).abs().max(1)
}

fn estimate(u: &Unknown, now: i64) -> f64 {
    u.density * width(u, now) as f64
}

/// Round 2: cut an unknown part into up to `m` ranges growing
/// geometrically away from `edge`, the first as wide as the page seen next
/// to it; the last keeps the part's open end.
fn subdivide(u: &Unknown, m: usize, now: i64) -> Vec<Range> {
    let w = width(u, now);
    let m = m.max(1);
    let first = u.span.clamp(1, w) as f64;
    let ratio = if m > 1 {
        (w as f64 / first).powf(1.0 / (m - 1) as f64)
    } else {
        1.0
    };
    let mut offsets: Vec<i64> = vec![0];
    for j in 1..=m {
        let g = if j == m {
            w
        } else {
            ((first * ratio.powi(j as i32 - 1)).ceil() as i64).clamp(1, w)
        };
        if g > *offsets.last().unwrap_or(&0) {
            offsets.push(g);
        }
    }
    let n = offsets.len() - 1;
    (0..n)
        .map(|j| {
            let (near, far) = (offsets[j], offsets[j + 1]);
            let last = j + 1 == n;
            if u.downward {
                Range {
                    gte: if last {
                        u.range.gte
                    } else {
                        Some(u.edge - far)
                    },
                    lt: Some(u.edge - near),
                }
            } else {
                Range {
                    gte: Some(u.edge + near),
                    lt: if last { u.range.lt } else { Some(u.edge + far) },
                }
            }
        })
        .collect()
}

/// Weight spread uniformly over `[lo, hi)`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Seg {
    lo: i64,
    hi: i64,
    w: f64,
}

fn points(s: &Sample, out: &mut Vec<Seg>) {
    for &c in &s.created {
        out.push(Seg {
            lo: c,
            hi: c + 1,
            w: 1.0,
        });
    }
}

fn uniform(u: &Unknown, now: i64, out: &mut Vec<Seg>) {
    let far = far_end(u, now);
    let (lo, hi) = if u.downward {
        (far, u.edge)
    } else {
        (u.edge, far)
    };
    if hi > lo {
        out.push(Seg {
            lo,
            hi,
            w: estimate(u, now),
        });
    }
}

/// Estimated mass of one sample whose unknown part is not refined. The
/// density next to the objects seen is assumed over the whole unknown part:
/// an overestimate costs a few empty ranges, an underestimate would make one
/// range too long for its cursor.
fn mass(s: &Sample, now: i64, out: &mut Vec<Seg>) {
    points(s, out);
    match unknown(s) {
        Some(u) => uniform(&u, now, out),
        None if s.has_more => {
            // More objects share the page's edge second: weigh it a page more.
            let at = if s.created.first() < s.created.last() {
                s.created.iter().max()
            } else {
                s.created.iter().min()
            };
            if let Some(&t) = at {
                out.push(Seg {
                    lo: t,
                    hi: t + 1,
                    w: PAGE,
                });
            }
        }
        None => {}
    }
}

/// Cut points splitting `segs` into `k` about equal shares, strictly
/// increasing.
fn cuts(mut segs: Vec<Seg>, k: usize) -> Vec<i64> {
    segs.retain(|s| s.w > 0.0 && s.hi > s.lo);
    segs.sort_by_key(|s| s.lo);
    let total: f64 = segs.iter().map(|s| s.w).sum();
    let mut out: Vec<i64> = Vec::new();
    if k <= 1 || total <= 0.0 {
        return out;
    }
    let mut targets = (1..k).map(|j| total * j as f64 / k as f64).peekable();
    let mut cum = 0.0;
    for s in &segs {
        while let Some(&t) = targets.peek() {
            if t > cum + s.w {
                break;
            }
            targets.next();
            let frac = ((t - cum) / s.w).clamp(0.0, 1.0);
            let c = s.lo + (frac * (s.hi - s.lo) as f64).ceil() as i64;
            if out.last().is_none_or(|&l| c > l) {
                out.push(c);
            }
        }
        cum += s.w;
    }
    out
}

/// Ranges tiling the whole time line, cut at `cuts`.
pub(crate) fn scopes(cuts: &[i64]) -> Vec<ListScope> {
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut prev = None;
    for &c in cuts {
        out.push(ListScope {
            created_gte: prev,
            created_lt: Some(c),
        });
        prev = Some(c);
    }
    out.push(ListScope {
        created_gte: prev,
        created_lt: None,
    });
    out
}

/// Plan `n` or fewer scopes from the first page (`top`) and the probes of
/// the rest (`rest`, empty when the rest was not probed).
fn plan(top: &Sample, rest: &[Sample], n: usize, now: i64) -> Vec<ListScope> {
    let n = n.max(1);
    let mut segs = Vec::new();
    // The farthest range that holds objects, when a range beyond it held
    // none, is where the objects end: how much of its unknown part is
    // filled is a guess (half, on average).
    let mut uncertain = 0.0;
    if rest.is_empty() {
        mass(top, now, &mut segs);
    } else {
        points(top, &mut segs);
        for s in rest {
            mass(s, now, &mut segs);
        }
        if let Some(last) = rest.iter().rposition(|s| !s.created.is_empty())
            && last + 1 < rest.len()
            && let Some(u) = unknown(&rest[last])
        {
            uncertain = estimate(&u, now);
        }
    }
    let total: f64 = segs.iter().map(|s| s.w).sum();
    // Size the ranges for n cursors with work, counting the uncertain part
    // at half; cut at that size over the full estimate, so no range is too
    // long, and allow up to a quarter more ranges for the ones likely empty.
    let expected = (total - uncertain / 2.0).max(1.0);
    let working = ((expected / PAGE).ceil() as usize).clamp(1, n);
    // Round each range up to whole pages (with 3% to spare): a range of
    // 1,501 objects costs 16 requests, one of 1,455 costs 15.
    let share = ((expected / working as f64) / (0.97 * PAGE)).ceil() * 0.97 * PAGE;
    let working = ((expected / share).ceil() as usize).clamp(1, n);
    let k = ((total / share).round() as usize).clamp(working, n + n / 4);
    scopes(&cuts(segs, k))
}

/// Probes of the rest per planned range: about 1.5 n, 16 to 48.
fn round_two(n: usize) -> usize {
    (n + n / 2).clamp(16, 48)
}

/// Probe the listing of `path` (with `base` query parameters) and plan up
/// to `n` scopes.
pub(crate) async fn partitions(
    client: &Client,
    op: &str,
    path: &str,
    base: &Query,
    n: usize,
    now: i64,
) -> Result<Vec<ListScope>> {
    if n <= 1 {
        return Ok(vec![ListScope::all()]);
    }
    let all = Range {
        gte: None,
        lt: None,
    };
    let top = probe_all(client, op, path, base, &[all]).await?.remove(0);
    let Some(u) = unknown(&top) else {
        // One page (or one crowded second): nothing to split.
        return Ok(vec![ListScope::all()]);
    };
    let rest = probe_all(client, op, path, base, &subdivide(&u, round_two(n), now)).await?;
    Ok(plan(&top, &rest, n, now))
}

async fn probe_all(
    client: &Client,
    op: &str,
    path: &str,
    base: &Query,
    ranges: &[Range],
) -> Result<Vec<Sample>> {
    futures::future::try_join_all(ranges.iter().map(|r| async move {
        let mut q = base.clone();
        q.push(("limit", "100".into()));
        if let Some(g) = r.gte {
            q.push(("created[gte]", g.to_string()));
        }
        if let Some(l) = r.lt {
            q.push(("created[lt]", l.to_string()));
        }
        let page = client.list(op, path, &q).await?;
        Ok::<_, recon_core::Error>(Sample {
            range: *r,
            created: page
                .data
                .iter()
                .map(|o| {
                    o.get("created")
                        .and_then(serde_json::Value::as_i64)
                        .unwrap_or(0)
                })
                .collect(),
            has_more: page.has_more,
        })
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_scope(s: &ListScope, c: i64) -> bool {
        s.created_gte.is_none_or(|g| c >= g) && s.created_lt.is_none_or(|l| c < l)
    }

    #[test]
    fn subdivisions_tile_the_unknown_part() {
        let now = 1_780_000_000;
        for (u, m) in [
            (
                Unknown {
                    range: Range {
                        gte: Some(1_000),
                        lt: Some(1_000_000),
                    },
                    edge: 1_000_000,
                    downward: true,
                    density: 1.0,
                    span: 100,
                },
                10,
            ),
            (
                Unknown {
                    range: Range {
                        gte: None,
                        lt: Some(50),
                    },
                    edge: 50,
                    downward: true,
                    density: 1.0,
                    span: 100,
                },
                40,
            ),
            (
                Unknown {
                    range: Range {
                        gte: Some(7),
                        lt: None,
                    },
                    edge: 7,
                    downward: false,
                    density: 1.0,
                    span: 3,
                },
                8,
            ),
        ] {
            let r = subdivide(&u, m, now);
            assert!(!r.is_empty() && r.len() <= m);
            if u.downward {
                assert_eq!(r[0].lt, Some(u.edge));
                assert_eq!(r.last().unwrap().gte, u.range.gte);
                for w in r.windows(2) {
                    assert_eq!(w[0].gte, w[1].lt);
                }
            } else {
                assert_eq!(r[0].gte, Some(u.edge));
                assert_eq!(r.last().unwrap().lt, u.range.lt);
                for w in r.windows(2) {
                    assert_eq!(w[0].lt, w[1].gte);
                }
            }
        }
    }

    #[test]
    fn cuts_balance_points_and_scopes_tile() {
        let segs: Vec<Seg> = (0..1000)
            .map(|i| Seg {
                lo: i * 10,
                hi: i * 10 + 1,
                w: 1.0,
            })
            .collect();
        let c = cuts(segs, 10);
        assert_eq!(c.len(), 9);
        let sc = scopes(&c);
        assert_eq!(sc.len(), 10);
        for s in &sc {
            let n = (0..1000).filter(|i| in_scope(s, i * 10)).count();
            assert!((95..=105).contains(&n), "{s:?}: {n}");
        }
        // Every integer is in exactly one scope.
        for x in [-5, 0, 1, 4990, 4991, 100_000] {
            assert_eq!(sc.iter().filter(|s| in_scope(s, x)).count(), 1);
        }
        assert_eq!(scopes(&[]), vec![ListScope::all()]);
    }

    /// A listing of `n` objects one second apart ending at `top`, as a
    /// newest-first server would answer probes of it.
    fn band(n: i64, top: i64) -> (impl Fn(&Range) -> i64, impl Fn(Range) -> Sample) {
        let count = move |r: &Range| {
            let lo = r.gte.unwrap_or(i64::MIN).max(top - n);
            let hi = r.lt.unwrap_or(i64::MAX).min(top);
            (hi - lo).max(0)
        };
        let sample = move |r: Range| {
            let c = count(&r);
            let hi = r.lt.unwrap_or(i64::MAX).min(top);
            Sample {
                range: r,
                created: (0..c.min(100)).map(|i| hi - 1 - i).collect(),
                has_more: c > 100,
            }
        };
        (count, sample)
    }

    #[test]
    fn plan_of_a_narrow_dense_band_spreads_it() {
        // 60,000 objects one second apart, long ago: like the bench's fake.
        let now = 1_780_000_000;
        let (count, sample) = band(60_000, 1_700_060_000);
        let top = sample(Range {
            gte: None,
            lt: None,
        });
        let u = unknown(&top).unwrap();
        let probes = subdivide(&u, round_two(40), now);
        assert!(probes.len() <= 48);
        let rest: Vec<Sample> = probes.into_iter().map(&sample).collect();
        let sc = plan(&top, &rest, 40, now);
        assert!(sc.len() >= 30, "{}", sc.len());
        let sizes: Vec<i64> = sc
            .iter()
            .map(|s| {
                count(&Range {
                    gte: s.created_gte,
                    lt: s.created_lt,
                })
            })
            .collect();
        assert_eq!(sizes.iter().sum::<i64>(), 60_000);
        // A sweep at 100 requests/s lists 60,000 objects in 6 s; at 250 ms
        // per request one cursor reads 24 pages in that time.
        let biggest = *sizes.iter().max().unwrap();
        assert!(biggest <= 2_000, "largest scope holds {biggest}: {sizes:?}");
    }

    #[test]
    fn one_page_stays_whole() {
        let now = 1_780_000_000;
        let (_, sample) = band(80, now);
        let top = sample(Range {
            gte: None,
            lt: None,
        });
        assert!(unknown(&top).is_none());
        assert_eq!(plan(&top, &[], 8, now), vec![ListScope::all()]);
    }
}
