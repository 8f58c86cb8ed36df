//! Crawling one paged listing and checking it for pagination drift.
//!
//! Offset pagination is not a snapshot: while a crawl pages through a list, records can be added
//! or removed before the cursor, so that a record is seen twice (an insertion shifts the rest
//! right) or skipped (a removal shifts the rest left). The API gives three signals, and a listing
//! that shows none of them is taken as consistent:
//! - the `total_results` changed between pages;
//! - an id was seen twice;
//! - a page came back short before the end the total promised, or the count of distinct ids does
//!   not match the final total.

use futures::{Stream, StreamExt};
use std::collections::HashSet;
use std::hash::Hash;

/// Why a listing cannot be trusted as one consistent state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    TotalChanged {
        from: u64,
        to: u64,
    },
    DuplicateId(String),
    ShortPage {
        start_index: u64,
        got: usize,
        total: u64,
    },
    CountMismatch {
        distinct: u64,
        total: u64,
    },
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Drift::TotalChanged { from, to } => {
                write!(
                    f,
                    "total_results changed from {from} to {to} during the crawl"
                )
            }
            Drift::DuplicateId(id) => write!(f, "id {id} was listed twice"),
            Drift::ShortPage {
                start_index,
                got,
                total,
            } => write!(
                f,
                "a short page ({got} records at {start_index}) before the end of {total}"
            ),
            Drift::CountMismatch { distinct, total } => {
                write!(f, "{distinct} distinct records against a total of {total}")
            }
        }
    }
}

/// What one pass over a listing gave.
#[derive(Debug)]
pub struct Listing<T> {
    pub items: Vec<T>,
    /// HTTP attempts, retries included.
    pub calls: u64,
    /// Pages received.
    pub pages: u64,
    /// The first drift signal seen, if any. The items are still returned so that callers can
    /// count and report them, but they must not be committed as a complete state.
    pub drift: Option<Drift>,
}

/// Progress of one listing, reported page by page.
pub trait PageObserver: Sync {
    fn page(&self, records: usize, total: Option<u64>, attempts: u32);
}

impl PageObserver for () {
    fn page(&self, _records: usize, _total: Option<u64>, _attempts: u32) {}
}

/// The most records [`collect`] reserves room for ahead of receiving them.
const MAX_RESERVED_ITEMS: usize = 1 << 20;

/// Drains a page stream into one listing, checking every drift signal.
///
/// `page_size` is the `max_results` the client asked for: a page shorter than that before the
/// promised total is a drift signal.
pub async fn collect<T, K, S, E>(
    pages: S,
    page_size: u32,
    key: impl Fn(&T) -> &K,
    observer: &dyn PageObserver,
) -> Result<Listing<T>, E>
where
    S: Stream<Item = Result<imanage::Page<T>, E>>,
    K: Eq + Hash + ToString + ?Sized,
{
    futures::pin_mut!(pages);
    let mut items = Vec::new();
    let mut calls = 0u64;
    let mut pages_seen = 0u64;
    let mut drift = None;
    let mut first_total: Option<u64> = None;
    let mut last_total: Option<u64> = None;
    while let Some(page) = pages.next().await {
        let page = page?;
        calls += u64::from(page.attempts.max(1));
        pages_seen += 1;
        observer.page(page.items.len(), page.total_results, page.attempts);
        if let Some(total) = page.total_results {
            match first_total {
                None => first_total = Some(total),
                Some(first) if first != total && drift.is_none() => {
                    drift = Some(Drift::TotalChanged {
                        from: first,
                        to: total,
                    });
                }
                Some(_) => {}
            }
            last_total = Some(total);
            let end = page.start_index + page.items.len() as u64;
            if page.items.len() < page_size as usize && end < total && drift.is_none() {
                drift = Some(Drift::ShortPage {
                    start_index: page.start_index,
                    got: page.items.len(),
                    total,
                });
            }
        }
        if items.is_empty() {
            // Room for the whole list up front when its total is known (within reason: a
            // total is the server's word), so the later pages are appended without the
            // vector being copied into fresh memory each time it doubles.
            let whole = page
                .total_results
                .and_then(|t| usize::try_from(t).ok())
                .unwrap_or(0)
                .min(MAX_RESERVED_ITEMS);
            if whole > page.items.len() {
                items = Vec::with_capacity(whole);
                items.extend(page.items);
            } else {
                items = page.items;
            }
        } else {
            items.extend(page.items);
        }
    }
    // Repeated ids, checked once the list is whole, against borrowed keys (no copy of each).
    // The first occurrence stays; later ones are dropped and the first repeat is the drift.
    let mut repeated: Vec<usize> = Vec::new();
    {
        let mut seen: HashSet<&K> = HashSet::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let k = key(item);
            if !seen.insert(k) {
                if drift.is_none() {
                    drift = Some(Drift::DuplicateId(k.to_string()));
                }
                repeated.push(i);
            }
        }
    }
    if !repeated.is_empty() {
        let mut index = 0usize;
        let mut next = repeated.iter().peekable();
        items.retain(|_| {
            let keep = next.peek() != Some(&&index);
            if !keep {
                next.next();
            }
            index += 1;
            keep
        });
    }
    if drift.is_none() {
        if let Some(total) = last_total {
            let distinct = items.len() as u64;
            if distinct != total {
                drift = Some(Drift::CountMismatch { distinct, total });
            }
        }
    }
    Ok(Listing {
        items,
        calls,
        pages: pages_seen,
        drift,
    })
}

/// The fewest calls a listing of `records` records takes at `page_size` a page: an empty list
/// still takes one call to learn that it is empty.
pub fn min_calls(records: usize, page_size: u32) -> u64 {
    let page = u64::from(page_size.max(1));
    (records as u64).div_ceil(page).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_calls_counts_pages() {
        assert_eq!(min_calls(0, 1000), 1);
        assert_eq!(min_calls(1, 1000), 1);
        assert_eq!(min_calls(1000, 1000), 1);
        assert_eq!(min_calls(1001, 1000), 2);
        assert_eq!(min_calls(2500, 1000), 3);
    }
}
