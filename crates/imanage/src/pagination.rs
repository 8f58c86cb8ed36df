//! Offset pagination (`start_index` and `max_results` in v1, `offset`, `limit` and
//! `total=true` in v2) as a stream of pages.
//!
//! Offset pages are not a snapshot: records can move between pages while a list is read. The
//! stream does not try to heal that; it yields each page as served, with its offset and total,
//! and leaves the judgement to the harvester. It does guarantee an end: a list stops at its
//! total, at a short page when there is no total, and with [`Error::Pagination`] when it runs
//! far past what its first total promised or past `max_list_records`.

use crate::client::{Attempts, Client};
use crate::config::ApiProfile;
use crate::error::{Error, Result};
use crate::models::Listed;
use futures::Stream;
use reqwest::Method;

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The `start_index` this page was asked for.
    pub start_index: u64,
    /// The records of this page, in the server's order.
    pub items: Vec<T>,
    /// The list's size as this page's answer gave it, when it did.
    pub total_results: Option<u64>,
    /// HTTP attempts this page took (1 without retries).
    pub attempts: u32,
}

/// A list may run to twice the pages its first total promised, plus this many, before it is
/// declared endless: real drift during a crawl is a few percent.
const SLACK_PAGES: u64 = 8;

struct Cursor {
    client: Client,
    customer: String,
    segments: Vec<String>,
    query: Vec<(String, String)>,
    page_size: u32,
    next_start: u64,
    pages: u64,
    max_pages: u64,
}

/// Where a list goes on after a page at `start` with `len` items, if anywhere.
///
/// With a total, the list ends once the page reaches it (so an exact multiple of the page size
/// needs no empty request); an empty page also ends it, since nothing else would move the
/// offset. A short page before the total does not end it: the server may serve smaller pages
/// than asked for. Without a total, a short or empty page is the end.
pub(crate) fn next_start(start: u64, len: u64, total: Option<u64>, page_size: u32) -> Option<u64> {
    let end = start.saturating_add(len);
    match total {
        Some(total) if end >= total || len == 0 => None,
        Some(_) => Some(end),
        None if len < u64::from(page_size) => None,
        None => Some(end),
    }
}

impl Cursor {
    async fn fetch<T: Listed>(&mut self) -> Result<(Page<T>, Option<u64>)> {
        if self.pages >= self.max_pages {
            return Err(Error::Pagination {
                message: format!(
                    "{} pages read from {} and the list has not ended",
                    self.pages,
                    self.segments.join("/")
                ),
            });
        }
        let start = self.next_start;
        let start_text = start.to_string();
        let size_text = self.page_size.to_string();
        let segments: Vec<&str> = self.segments.iter().map(String::as_str).collect();
        let mut query: Vec<(&str, &str)> = self
            .query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let api = self.client.api();
        match api {
            ApiProfile::V1 => {
                query.push(("start_index", &start_text));
                query.push(("max_results", &size_text));
            }
            ApiProfile::V2 => {
                query.push(("offset", &start_text));
                query.push(("limit", &size_text));
                // Without it a v2 list gives no count, and drift could not be seen.
                query.push(("total", "true"));
            }
        }
        let call = self
            .client
            .call(&self.customer, Method::GET, &segments, &query, None)
            .await?;
        let mut st = Attempts::default();
        let (items, total) = self
            .client
            .read_decoded(&call, &mut st, |body| T::decode_page(body, api))
            .await?;
        // A server that ignores `max_results` is not one whose offsets can be trusted; the page
        // is refused whole rather than cut.
        if items.len() > self.page_size as usize {
            return Err(Error::Decode {
                path: "data".into(),
                message: format!(
                    "{} items in a page, more than the {} asked for",
                    items.len(),
                    self.page_size
                ),
            });
        }
        if self.pages == 0 {
            if let Some(total) = total {
                let promised = total.div_ceil(u64::from(self.page_size));
                self.max_pages = self
                    .max_pages
                    .min(promised.saturating_mul(2).saturating_add(SLACK_PAGES));
            }
        }
        self.pages += 1;
        let next = next_start(start, items.len() as u64, total, self.page_size);
        Ok((
            Page {
                start_index: start,
                items,
                total_results: total,
                attempts: st.attempts,
            },
            next,
        ))
    }
}

/// The pages of one database's `{segments}` list in order, in the client's profile. The
/// stream ends after an error.
pub(crate) fn pages<T: Listed>(
    client: Client,
    customer: &str,
    segments: &[&str],
    query: Vec<(String, String)>,
) -> impl Stream<Item = Result<Page<T>>> + Send + 'static {
    let page_size = client.inner.config.page_size;
    let max_records = client.inner.config.max_list_records;
    let cursor = Cursor {
        customer: customer.to_string(),
        segments: segments.iter().map(|s| (*s).to_string()).collect(),
        query,
        page_size,
        next_start: 0,
        pages: 0,
        max_pages: max_records.div_ceil(u64::from(page_size)).saturating_add(1),
        client,
    };
    futures::stream::unfold(Some(cursor), |state| async move {
        let mut cursor = state?;
        match cursor.fetch::<T>().await {
            Ok((page, Some(next))) => {
                cursor.next_start = next;
                Some((Ok(page), Some(cursor)))
            }
            Ok((page, None)) => Some((Ok(page), None)),
            Err(e) => Some((Err(e), None)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::next_start;

    #[test]
    fn lists_end_at_the_total_without_an_extra_call() {
        // 1000 records, pages of 1000: one page.
        assert_eq!(next_start(0, 1000, Some(1000), 1000), None);
        // 1001 records: a second page of one.
        assert_eq!(next_start(0, 1000, Some(1001), 1000), Some(1000));
        assert_eq!(next_start(1000, 1, Some(1001), 1000), None);
        // 0 records: the first call is the last.
        assert_eq!(next_start(0, 0, Some(0), 1000), None);
        // A page beyond the total ends the list.
        assert_eq!(next_start(5000, 3, Some(10), 1000), None);
    }

    #[test]
    fn short_pages_before_the_total_continue_and_empty_ones_stop() {
        // The server served 500 of the 1000 asked for, with more to come.
        assert_eq!(next_start(0, 500, Some(2500), 1000), Some(500));
        // An empty page can never advance the offset.
        assert_eq!(next_start(500, 0, Some(2500), 1000), None);
    }

    #[test]
    fn without_a_total_a_short_or_empty_page_is_the_end() {
        assert_eq!(next_start(0, 1000, None, 1000), Some(1000));
        assert_eq!(next_start(1000, 999, None, 1000), None);
        assert_eq!(next_start(2000, 0, None, 1000), None);
    }
}
