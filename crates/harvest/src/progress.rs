//! Progress of a harvest: bars on a terminal, log lines elsewhere.

use crate::{DatabaseReport, ListKind};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::sync::Mutex;
use tracing::{debug, info};

/// Receives progress while a harvest runs. Every method has a no-op default.
pub trait Progress: Send + Sync {
    fn database_started(&self, _database: &str) {}
    fn page(
        &self,
        _database: &str,
        _kind: ListKind,
        _records: usize,
        _total: Option<u64>,
        _attempts: u32,
    ) {
    }
    fn recrawl(&self, _database: &str, _cause: &str) {}
    fn database_finished(&self, _report: &DatabaseReport) {}
}

impl Progress for () {}

/// Plain log lines: one per database started and finished, pages at debug level.
#[derive(Debug, Default)]
pub struct LogProgress;

impl Progress for LogProgress {
    fn database_started(&self, database: &str) {
        info!(database, "crawl started");
    }

    fn page(
        &self,
        database: &str,
        kind: ListKind,
        records: usize,
        total: Option<u64>,
        attempts: u32,
    ) {
        debug!(database, ?kind, records, ?total, attempts, "page");
    }

    fn recrawl(&self, database: &str, cause: &str) {
        info!(database, cause, "re-crawling after pagination drift");
    }

    fn database_finished(&self, report: &DatabaseReport) {
        info!(database = %report.database, "{}", report.summary_line());
    }
}

#[derive(Default)]
struct Counters {
    pages: u64,
    records: u64,
    retries: u64,
    recrawls: u32,
}

/// One progress line per database on the terminal: pages, records, retries and re-crawls.
pub struct TerminalProgress {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, (ProgressBar, Counters)>>,
}

impl Default for TerminalProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl TerminalProgress {
    pub fn new() -> Self {
        Self {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
        }
    }

    fn with_bar(&self, database: &str, f: impl FnOnce(&ProgressBar, &mut Counters)) {
        let mut bars = match self.bars.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        let (bar, counters) = bars.entry(database.to_string()).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:.bold} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(database.to_string());
            (bar, Counters::default())
        });
        f(bar, counters);
    }
}

impl Progress for TerminalProgress {
    fn database_started(&self, database: &str) {
        self.with_bar(database, |bar, _| bar.set_message("starting"));
    }

    fn page(
        &self,
        database: &str,
        kind: ListKind,
        records: usize,
        _total: Option<u64>,
        attempts: u32,
    ) {
        self.with_bar(database, |bar, c| {
            c.pages += 1;
            c.records += records as u64;
            c.retries += u64::from(attempts.saturating_sub(1));
            bar.set_message(format!(
                "{:?}: {} pages, {} records, {} retries, {} re-crawls",
                kind, c.pages, c.records, c.retries, c.recrawls
            ));
            bar.tick();
        });
    }

    fn recrawl(&self, database: &str, _cause: &str) {
        self.with_bar(database, |_, c| c.recrawls += 1);
    }

    fn database_finished(&self, report: &DatabaseReport) {
        self.with_bar(&report.database, |bar, _| {
            bar.finish_and_clear();
        });
    }
}
