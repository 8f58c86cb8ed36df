//! Offset pagination (`start_index` and `max_results` in v1, `offset`, `limit` and
//! `total=true` in v2) as a stream of pages.
//!
//! Offset pages are not a snapshot: records can move between pages while a list is read. The
//! stream does not try to heal that; it yields each page as served, with its offset and total,
//! and leaves the judgement to the harvester. It does guarantee an end: a list stops at its
//! total, at a short page when there is no total, and with [`Error::Pagination`] when it runs
//! far past what its first total promised or past `max_list_records`.
//!
//! Offsets are known in advance once the first page has given the total, so the rest of a list
//! is asked for at once: after a full first page with a total, every remaining page up to that
//! total is requested concurrently (each waits for the client's shared concurrency cap like any
//! other call) and yielded in offset order. A list that turns out longer than its first total
//! (the last planned page still points further) goes on page by page from there; one that ends
//! early (a planned page reaches its own total, or is empty) ends there. Every page is fetched
//! and decoded in a task of its own, so decoding spreads over the runtime's threads; dropping
//! the stream aborts the fetches still running.

use crate::client::{Attempts, Client};
use crate::config::ApiProfile;
use crate::error::{Error, Result};
use crate::models::Listed;
use futures::Stream;
use reqwest::Method;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tracing::Instrument;

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

#[derive(Clone)]
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
        let mut call = self
            .client
            .call(&self.customer, Method::GET, &segments, &query, None)
            .await?;
        call.opens_list = self.pages == 0;
        let mut st = Attempts::default();
        let (items, total) = self
            .client
            .read_decoded(&call, &mut st, move |body| T::decode_page(body, api))
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

/// What one page fetch gives back: the cursor it ran on (its page count and bound updated) and
/// the page with the offset after it.
type Fetched<T> = (Cursor, Result<(Page<T>, Option<u64>)>);

/// One page fetched in a task of its own, aborted when dropped (the stream that wanted it is
/// gone, or ended on an error).
struct PageTask<T> {
    handle: tokio::task::JoinHandle<Fetched<T>>,
    /// Handed back if the task is cancelled under us (the runtime shutting down).
    fallback: Option<Cursor>,
}

impl<T: Listed> PageTask<T> {
    fn spawn(cursor: Cursor) -> Self {
        let mut task = cursor.clone();
        let handle = tokio::spawn(
            async move {
                let result = task.fetch::<T>().await;
                (task, result)
            }
            .in_current_span(),
        );
        PageTask {
            handle,
            fallback: Some(cursor),
        }
    }
}

impl<T> Drop for PageTask<T> {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

impl<T> Future for PageTask<T> {
    type Output = Fetched<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Fetched<T>> {
        match Pin::new(&mut self.handle).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(fetched)) => Poll::Ready(fetched),
            Poll::Ready(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Poll::Ready(Err(_)) => {
                let cursor = match self.fallback.take() {
                    Some(c) => c,
                    None => unreachable!("a page task is polled after it finished"),
                };
                Poll::Ready((
                    cursor,
                    Err(Error::Transport {
                        message: "the page fetch was cancelled (the runtime is shutting down)"
                            .into(),
                        timeout: false,
                    }),
                ))
            }
        }
    }
}

/// Where a list stream is.
enum State<T> {
    /// Nothing asked yet.
    First(Cursor),
    /// The pages planned from the first total, in flight, in offset order.
    Ahead(Cursor, VecDeque<PageTask<T>>),
    /// Page by page from `cursor.next_start`.
    Next(Cursor),
}

/// The offsets to ask for at once after a first page at 0 of `len` records with `total`: every
/// page start from `next` below the total, as far as the list's page bound allows. Empty when
/// the first page was short (a server serving smaller pages than asked: its offsets are not
/// the ones planned) or gave no total.
fn planned_starts(
    next: u64,
    len: usize,
    total: Option<u64>,
    page_size: u32,
    pages_left: u64,
) -> Vec<u64> {
    match total {
        Some(total) if len == page_size as usize => (next..total)
            .step_by(page_size as usize)
            .take(usize::try_from(pages_left).unwrap_or(usize::MAX))
            .collect(),
        _ => Vec::new(),
    }
}

/// The pages of one database's `{segments}` list in order, in the client's profile: the first
/// page, then every page its total promises at once, then page by page if the list ran on. The
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
    futures::stream::unfold(Some(State::<T>::First(cursor)), |state| async move {
        match state? {
            State::First(cursor) => {
                let (mut cursor, result) = PageTask::<T>::spawn(cursor).await;
                let (page, next) = match result {
                    Ok(fetched) => fetched,
                    Err(e) => return Some((Err(e), None)),
                };
                let Some(next) = next else {
                    return Some((Ok(page), None));
                };
                let starts = planned_starts(
                    next,
                    page.items.len(),
                    page.total_results,
                    cursor.page_size,
                    cursor.max_pages.saturating_sub(cursor.pages),
                );
                if starts.is_empty() {
                    cursor.next_start = next;
                    return Some((Ok(page), Some(State::Next(cursor))));
                }
                let tasks: VecDeque<PageTask<T>> = starts
                    .iter()
                    .map(|&start| {
                        let mut at = cursor.clone();
                        at.next_start = start;
                        PageTask::spawn(at)
                    })
                    .collect();
                cursor.pages += starts.len() as u64;
                Some((Ok(page), Some(State::Ahead(cursor, tasks))))
            }
            State::Ahead(mut cursor, mut tasks) => {
                let task = tasks.pop_front()?;
                let (_, result) = task.await;
                match result {
                    // The remaining fetches are aborted as `tasks` drops.
                    Err(e) => Some((Err(e), None)),
                    // The list ended here, earlier than its first total said.
                    Ok((page, None)) => Some((Ok(page), None)),
                    Ok((page, Some(next))) if tasks.is_empty() => {
                        cursor.next_start = next;
                        Some((Ok(page), Some(State::Next(cursor))))
                    }
                    Ok((page, Some(_))) => Some((Ok(page), Some(State::Ahead(cursor, tasks)))),
                }
            }
            State::Next(cursor) => match PageTask::<T>::spawn(cursor).await {
                (mut cursor, Ok((page, Some(next)))) => {
                    cursor.next_start = next;
                    Some((Ok(page), Some(State::Next(cursor))))
                }
                (_, Ok((page, None))) => Some((Ok(page), None)),
                (_, Err(e)) => Some((Err(e), None)),
            },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::{next_start, planned_starts};

    #[test]
    fn the_rest_of_a_list_is_planned_from_a_full_first_page_and_its_total() {
        // 2500 records in pages of 1000: the pages at 1000 and 2000.
        assert_eq!(
            planned_starts(1000, 1000, Some(2500), 1000, 99),
            vec![1000, 2000]
        );
        // An exact multiple needs no page past the total.
        assert_eq!(
            planned_starts(1000, 1000, Some(3000), 1000, 99),
            vec![1000, 2000]
        );
        // No more than the list's page bound allows.
        assert_eq!(planned_starts(2, 2, Some(100), 2, 3), vec![2, 4, 6]);
        // A short first page or no total: nothing planned, the list goes page by page.
        assert!(planned_starts(500, 500, Some(2500), 1000, 99).is_empty());
        assert!(planned_starts(1000, 1000, None, 1000, 99).is_empty());
    }

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
