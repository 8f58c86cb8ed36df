//! Harvest: crawl every configured iManage database into the store.
//!
//! Each database is crawled on its own (users, groups, every group's members, and, where the
//! deployment offers them, the workspaces and every workspace's security), all of them at once
//! under the client's shared concurrency cap. Within a database the three chains that need
//! nothing from each other (the users; the groups, then their members; the workspaces, then
//! their security) run at once too, and the client asks for every page of a list at once once
//! its first page gave the total, so the cap stays full until the work runs out. The harvester
//! does not know which API profile the [`Directory`] speaks. A crawl is committed to the store in
//! one transaction (on a blocking thread of its own, [`spawn_commit`], so a commit never holds
//! up the other databases' crawls) and only when it is complete and consistent; a crawl that
//! fails, or whose pages
//! drifted more often than the bounded number of re-crawls allows, is recorded as incomplete and
//! leaves the database's last complete state untouched. This crate decides nothing about identity.

pub mod crawl;
pub mod progress;

use crawl::{collect, min_calls, Drift, PageObserver};
use futures::{stream, StreamExt, TryStreamExt};
use hashbrown::{DefaultHashBuilder, HashTable};
use imanage::{Directory, WorkspaceListing};
use model::{DatabaseSnapshot, Membership, Workspace, WorkspaceEntry};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::{ChangeCounts, CrawlStats, RunId, Store};
use tokio_util::task::AbortOnDropHandle;
use tracing::{info, instrument, warn};

pub use progress::{LogProgress, Progress, TerminalProgress};

/// Runs a database's commit on a blocking thread of its own, driven by the runtime's handle so
/// its I/O still goes through the runtime's drivers. Hashing, diffing and encoding a database's
/// rows is CPU work in runs of tens of milliseconds between awaits; on a runtime worker it held
/// up the HTTP exchanges of the databases still crawling (tasks queued behind it on that
/// worker), while on a thread of its own the OS shares the cores between it and the workers. A
/// C=64 benchmark harvest: crawl 3.20 -> 3.12 s, harvest 5.73 -> 5.41 s (medians of eight runs
/// each, alternating builds). Public so the store benchmark commits the way a harvest does.
pub fn spawn_commit<F>(commit: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(commit))
}

/// Errors that stop a whole harvest (as opposed to one database's crawl).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("store: {0}")]
    Store(#[from] store::Error),
    #[error("no databases to harvest")]
    NothingToHarvest,
    #[error("interrupted: {0}")]
    Interrupted(String),
}

/// Which list a page belongs to, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    Users,
    Groups,
    Members,
    Workspaces,
    /// One workspace's security (one call, not paged).
    Security,
}

/// How a harvest runs.
#[derive(Debug, Clone)]
pub struct HarvestOptions {
    /// The customer_ids (databases) to crawl.
    pub databases: Vec<String>,
    /// `max_results` the client asks for; used to spot short pages and count the minimum calls.
    pub page_size: u32,
    /// How many times a database is crawled again after pagination drift before its crawl is
    /// given up as incomplete.
    pub max_recrawls: u32,
    /// Group member listings (and workspace security calls) of one database started at once.
    /// Each waits for the client's shared cap, which bounds the requests actually on the wire
    /// across all databases; this only bounds the memory of the waiting ones, and should not be
    /// below the client's cap or the cap cannot be kept full.
    pub member_listings_in_flight: usize,
}

impl Default for HarvestOptions {
    fn default() -> Self {
        Self {
            databases: Vec::new(),
            page_size: 1000,
            max_recrawls: 3,
            member_listings_in_flight: 1024,
        }
    }
}

/// What happened to one database in a harvest.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Crawled completely and committed.
    Complete {
        changes: ChangeCounts,
        accounts: usize,
        groups: usize,
        memberships: usize,
        /// Workspaces and security entries, `None` when the deployment offers no workspace
        /// security.
        workspaces: Option<(usize, usize)>,
    },
    /// Not committed; the database keeps its last complete state.
    Incomplete { cause: String },
}

/// One database's part of a harvest report.
#[derive(Debug, Clone)]
pub struct DatabaseReport {
    pub database: String,
    pub outcome: Outcome,
    pub stats: CrawlStats,
    /// When the database's snapshot was assembled from its last API answers, from the start of
    /// the harvest.
    pub crawled_at: Duration,
    /// The store's commit (or failure record) of this database: when it started, from the
    /// start of the harvest, and how long it took.
    pub commit_started_at: Duration,
    pub commit_time: Duration,
}

impl DatabaseReport {
    pub fn is_complete(&self) -> bool {
        matches!(self.outcome, Outcome::Complete { .. })
    }

    /// The one-line summary printed at the end of `idgraph harvest`.
    pub fn summary_line(&self) -> String {
        let s = &self.stats;
        let cost = format!(
            "{} calls (minimum {}), {} retries, {} re-crawls, {:.1} s",
            s.api_calls,
            s.min_calls,
            s.retries,
            s.recrawls,
            s.duration_ms as f64 / 1000.0
        );
        match &self.outcome {
            Outcome::Complete {
                changes,
                accounts,
                groups,
                memberships,
                workspaces,
            } => {
                let workspaces = match workspaces {
                    Some((w, e)) => format!(", {w} workspaces ({e} security entries)"),
                    None => ", no workspace security offered".to_string(),
                };
                format!(
                    "{}: complete: {accounts} accounts, {groups} groups, {memberships} \
                     memberships{workspaces}; {} changes logged; {cost}",
                    self.database, changes.total
                )
            }
            Outcome::Incomplete { cause } => format!(
                "{}: INCOMPLETE, last complete state kept: {cause}; {cost}",
                self.database
            ),
        }
    }
}

/// The result of one harvest over every configured database.
#[derive(Debug, Clone)]
pub struct HarvestReport {
    pub run_id: RunId,
    pub databases: Vec<DatabaseReport>,
    pub duration: Duration,
}

impl HarvestReport {
    pub fn all_complete(&self) -> bool {
        self.databases.iter().all(DatabaseReport::is_complete)
    }

    /// Databases that were not crawled completely.
    pub fn incomplete(&self) -> impl Iterator<Item = &DatabaseReport> {
        self.databases.iter().filter(|d| !d.is_complete())
    }

    /// From the start of the harvest to the last database's snapshot, assembled from its last
    /// API answers: the part of the harvest the API's latency and the concurrency cap decide.
    pub fn crawl_time(&self) -> Duration {
        self.databases
            .iter()
            .map(|d| d.crawled_at)
            .max()
            .unwrap_or_default()
    }

    /// The time the store spent committing: the union of the databases' commit intervals
    /// (commits of different databases may overlap).
    pub fn commit_time(&self) -> Duration {
        let mut spans: Vec<(Duration, Duration)> = self
            .databases
            .iter()
            .map(|d| (d.commit_started_at, d.commit_started_at + d.commit_time))
            .collect();
        spans.sort();
        let mut total = Duration::ZERO;
        let mut open: Option<(Duration, Duration)> = None;
        for (from, to) in spans {
            open = match open {
                Some((a, b)) if from <= b => Some((a, b.max(to))),
                Some((a, b)) => {
                    total += b - a;
                    Some((from, to))
                }
                None => Some((from, to)),
            };
        }
        if let Some((a, b)) = open {
            total += b - a;
        }
        total
    }
}

/// Crawls databases through a [`Directory`] into a [`Store`].
pub struct Harvester<D> {
    directory: Arc<D>,
    store: Store,
    options: HarvestOptions,
}

impl<D: Directory + 'static> Harvester<D> {
    pub fn new(directory: Arc<D>, store: Store, options: HarvestOptions) -> Self {
        Self {
            directory,
            store,
            options,
        }
    }

    /// One harvest of every configured database. Returns an error only when the store itself
    /// fails; a database that cannot be crawled is reported in its [`DatabaseReport`].
    #[instrument(skip_all, fields(databases = self.options.databases.len()))]
    pub async fn run(&self, progress: &dyn Progress) -> Result<HarvestReport, Error> {
        if self.options.databases.is_empty() {
            return Err(Error::NothingToHarvest);
        }
        let started = Instant::now();
        let run_id = self.store.start_run(&self.options.databases).await?;
        info!(run_id, "harvest started");
        let crawls = self
            .options
            .databases
            .iter()
            .map(|db| self.harvest_database(run_id, db, started, progress));
        let results = futures::future::join_all(crawls).await;
        let mut databases = Vec::with_capacity(results.len());
        for r in results {
            match r {
                Ok(db) => databases.push(db),
                Err(e) => {
                    // Close the run even so (best effort: the store may be what failed), so it
                    // does not look under way and hold back readers waiting for whole harvests.
                    if let Err(finish) = self.store.finish_run(run_id).await {
                        warn!(error = %finish, run_id, "could not close the failed run");
                    }
                    return Err(e);
                }
            }
        }
        self.store.finish_run(run_id).await?;
        let report = HarvestReport {
            run_id,
            databases,
            duration: started.elapsed(),
        };
        info!(
            run_id,
            complete = report.all_complete(),
            duration_ms = report.duration.as_millis() as u64,
            "harvest finished"
        );
        Ok(report)
    }

    /// Crawls one database without committing it: the snapshot of a complete, consistent pass
    /// (after as many re-crawls as drift needs), or why there is none; and what it cost. For
    /// benchmarks and checks that measure the store apart from the crawl.
    pub async fn crawl(
        &self,
        database: &str,
        progress: &dyn Progress,
    ) -> (Result<DatabaseSnapshot, String>, CrawlStats) {
        let started = Instant::now();
        let mut stats = CrawlStats::default();
        let crawled = self.crawl_database(database, &mut stats, progress).await;
        stats.duration_ms = started.elapsed().as_millis() as u64;
        stats.retries = stats.api_calls.saturating_sub(stats.pages);
        (crawled, stats)
    }

    #[instrument(skip(self, progress), fields(run_id))]
    async fn harvest_database(
        &self,
        run_id: RunId,
        database: &str,
        run_started: Instant,
        progress: &dyn Progress,
    ) -> Result<DatabaseReport, Error> {
        progress.database_started(database);
        let started = Instant::now();
        let mut stats = CrawlStats::default();
        let crawled = self.crawl_database(database, &mut stats, progress).await;
        let crawled_at = run_started.elapsed();
        stats.duration_ms = started.elapsed().as_millis() as u64;
        stats.retries = stats.api_calls.saturating_sub(stats.pages);
        let commit_started = Instant::now();
        let mut report = match crawled {
            Ok(snapshot) => {
                let (accounts, groups, memberships) = (
                    snapshot.accounts.len(),
                    snapshot.groups.len(),
                    snapshot.memberships.len(),
                );
                let workspaces = snapshot.workspaces.as_ref().map(|w| {
                    (
                        w.len(),
                        snapshot.workspace_entries.as_ref().map_or(0, Vec::len),
                    )
                });
                let store = self.store.clone();
                let commit =
                    spawn_commit(
                        async move { store.commit_database(run_id, &snapshot, &stats).await },
                    );
                let changes = match commit.await {
                    Ok(changes) => changes?,
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(e) => {
                        return Err(Error::Interrupted(format!("committing {database}: {e}")))
                    }
                };
                DatabaseReport {
                    database: database.to_string(),
                    outcome: Outcome::Complete {
                        changes,
                        accounts,
                        groups,
                        memberships,
                        workspaces,
                    },
                    stats,
                    crawled_at,
                    commit_started_at: Duration::ZERO,
                    commit_time: Duration::ZERO,
                }
            }
            Err(cause) => {
                warn!(database, %cause, "crawl incomplete; keeping the last complete state");
                self.store
                    .fail_database(run_id, database, &stats, &cause)
                    .await?;
                DatabaseReport {
                    database: database.to_string(),
                    outcome: Outcome::Incomplete { cause },
                    stats,
                    crawled_at,
                    commit_started_at: Duration::ZERO,
                    commit_time: Duration::ZERO,
                }
            }
        };
        report.commit_started_at = commit_started.saturating_duration_since(run_started);
        report.commit_time = commit_started.elapsed();
        progress.database_finished(&report);
        Ok(report)
    }

    /// Crawls one database until one pass is free of drift, at most `1 + max_recrawls` passes.
    async fn crawl_database(
        &self,
        database: &str,
        stats: &mut CrawlStats,
        progress: &dyn Progress,
    ) -> Result<DatabaseSnapshot, String> {
        let mut last_drift = None;
        for pass in 0..=self.options.max_recrawls {
            if pass > 0 {
                stats.recrawls += 1;
            }
            match self.crawl_once(database, stats, progress).await? {
                Ok(snapshot) => return Ok(snapshot),
                Err(drift) => {
                    warn!(database, pass, %drift, "pagination drift; crawling the database again");
                    progress.recrawl(database, &drift.to_string());
                    last_drift = Some(drift);
                }
            }
        }
        Err(format!(
            "pagination kept drifting after {} re-crawls (last: {})",
            self.options.max_recrawls,
            last_drift.map(|d| d.to_string()).unwrap_or_default()
        ))
    }

    /// One pass over a database. The outer error is a failed call (the client already retried
    /// it as far as its policy allows); the inner one is drift, which a new pass may heal.
    ///
    /// The users, the groups with their members, and the workspaces with their security are
    /// three chains that need nothing from each other, so they run at once; the checks that
    /// relate them (a member or a security entry the listings did not have) come after.
    async fn crawl_once(
        &self,
        database: &str,
        stats: &mut CrawlStats,
        progress: &dyn Progress,
    ) -> Result<Result<DatabaseSnapshot, CrawlDrift>, String> {
        let page_size = self.options.page_size;
        let in_flight = self.options.member_listings_in_flight.max(1);
        let dir = &*self.directory;
        let observer = Observer {
            progress,
            database,
            kind: ListKind::Users,
        };
        let groups_observer = Observer {
            kind: ListKind::Groups,
            ..observer
        };
        let members_observer = Observer {
            kind: ListKind::Members,
            ..observer
        };
        let workspaces_observer = Observer {
            kind: ListKind::Workspaces,
            ..observer
        };

        let users = async {
            collect(dir.users(database), page_size, |u| u.id.as_str(), &observer)
                .await
                .map_err(|e| format!("listing users: {e}"))
        };
        let groups_and_members = async {
            let groups = collect(
                dir.groups(database),
                page_size,
                |g| g.id.as_str(),
                &groups_observer,
            )
            .await
            .map_err(|e| format!("listing groups: {e}"))?;
            if groups.drift.is_some() {
                return Ok((groups, Vec::new()));
            }
            let group_ids: Vec<String> = groups.items.iter().map(|g| g.id.clone()).collect();
            let member_lists: Vec<(String, crawl::Listing<imanage::Member>)> =
                stream::iter(group_ids.into_iter().map(|gid| {
                    let observer = &members_observer;
                    async move {
                        let listing = collect(
                            dir.group_members(database, &gid),
                            page_size,
                            |m: &imanage::Member| m.user_id.as_str(),
                            observer,
                        )
                        .await
                        .map_err(|e| format!("listing members of group {gid}: {e}"))?;
                        Ok::<_, String>((gid, listing))
                    }
                }))
                .buffer_unordered(in_flight)
                .try_collect()
                .await?;
            Ok::<_, String>((groups, member_lists))
        };
        let workspaces = self.fetch_workspaces(database, &workspaces_observer);
        let (users, (groups, member_lists), workspaces) =
            futures::try_join!(users, groups_and_members, workspaces)?;

        // Every call made counts, whichever list drifted.
        stats.api_calls += users.calls + groups.calls;
        stats.pages += users.pages + groups.pages;
        for (_, listing) in &member_lists {
            stats.api_calls += listing.calls;
            stats.pages += listing.pages;
        }
        if let Some(w) = &workspaces {
            stats.api_calls += w.calls;
            stats.pages += w.pages;
        }
        if let Some(d) = users.drift {
            return Ok(Err(CrawlDrift::Users(d)));
        }
        if let Some(d) = groups.drift {
            return Ok(Err(CrawlDrift::Groups(d)));
        }

        // Relating the lists and building the snapshot is CPU work in proportion to the
        // database (a million memberships): on a blocking thread of its own, so that the
        // databases whose crawls end together assemble their snapshots side by side instead of
        // one after another in the task that drives them all.
        let database_owned = database.to_string();
        let mut counted = *stats;
        let assembling = tokio::task::spawn_blocking(move || {
            let assembled = assemble(
                &database_owned,
                page_size,
                users,
                groups,
                member_lists,
                workspaces,
                &mut counted,
            );
            (assembled, counted)
        });
        let (assembled, counted) = match assembling.await {
            Ok(done) => done,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => return Err(format!("assembling the snapshot: {e}")),
        };
        *stats = counted;
        assembled
    }

    /// The workspaces of a database and every workspace's security, one security call per
    /// workspace, concurrently like the member listings; `None` when the deployment offers no
    /// workspace security. A drifting workspace list is returned without its security calls.
    async fn fetch_workspaces(
        &self,
        database: &str,
        observer: &Observer<'_>,
    ) -> Result<Option<WorkspaceFetch>, String> {
        let page_size = self.options.page_size;
        let dir = &*self.directory;
        let mut listing = Box::pin(dir.workspaces(database));
        let first = match listing.next().await {
            Some(Ok(WorkspaceListing::Page(page))) => page,
            Some(Ok(WorkspaceListing::NotOffered)) => return Ok(None),
            Some(Err(e)) => return Err(format!("listing workspaces: {e}")),
            None => return Err("listing workspaces: the list ended without a page".into()),
        };
        let pages = stream::once(async { Ok(first) }).chain(listing.map(|item| match item {
            Ok(WorkspaceListing::Page(page)) => Ok(page),
            Ok(WorkspaceListing::NotOffered) => {
                Err("workspaces stopped being offered in the middle of the list".to_string())
            }
            Err(e) => Err(e.to_string()),
        }));
        let workspaces = collect(pages, page_size, |w| w.id.as_str(), observer)
            .await
            .map_err(|e| format!("listing workspaces: {e}"))?;
        let mut fetch = WorkspaceFetch {
            calls: workspaces.calls,
            pages: workspaces.pages,
            drift: workspaces.drift,
            min_calls: min_calls(workspaces.items.len(), page_size) + workspaces.items.len() as u64,
            read: Vec::new(),
        };
        if fetch.drift.is_some() {
            return Ok(Some(fetch));
        }
        let security_observer = Observer {
            kind: ListKind::Security,
            ..*observer
        };
        fetch.read = stream::iter(workspaces.items.into_iter().map(|ws| {
            let observer = &security_observer;
            // Each call in a task of its own, as list pages are: the answer is read and
            // decoded (and the concurrency permit handed on) on whichever worker is free, not
            // queued behind everything else the task driving this harvest has to do.
            let call = AbortOnDropHandle::new(tokio::spawn({
                let directory = self.directory.clone();
                let (database, id) = (database.to_string(), ws.id.clone());
                async move { directory.workspace_security(&database, &id).await }
            }));
            async move {
                let answer = match call.await {
                    Ok(answer) => answer,
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(e) => {
                        return Err(format!("reading the security of workspace {}: {e}", ws.id))
                    }
                };
                match answer {
                    Ok(security) => {
                        observer.page(security.members.len(), None, security.attempts);
                        Ok((ws, Some(security)))
                    }
                    // Deleted since the list was read: drift, which a new pass heals.
                    Err(e) if e.is_not_found() => Ok((ws, None)),
                    Err(e) => Err(format!("reading the security of workspace {}: {e}", ws.id)),
                }
            }
        }))
        .buffer_unordered(self.options.member_listings_in_flight.max(1))
        .try_collect()
        .await?;
        Ok(Some(fetch))
    }
}

/// Relates one pass's lists (members and security entries against the users and groups
/// listed) and builds the database's snapshot, or the drift that voids the pass.
#[allow(clippy::too_many_arguments)]
fn assemble(
    database: &str,
    page_size: u32,
    users: crawl::Listing<imanage::User>,
    groups: crawl::Listing<imanage::Group>,
    member_lists: Vec<(String, crawl::Listing<imanage::Member>)>,
    workspaces: Option<WorkspaceFetch>,
    stats: &mut CrawlStats,
) -> Result<Result<DatabaseSnapshot, CrawlDrift>, String> {
    let mut min =
        min_calls(users.items.len(), page_size) + min_calls(groups.items.len(), page_size);
    let user_ids = IdSet::new(users.items.iter().map(|u| u.id.as_str()));
    let mut memberships = Vec::with_capacity(member_lists.iter().map(|(_, l)| l.items.len()).sum());
    let mut drift = None;
    // Groups in id order and each group's members in user id order give the memberships in
    // key order without sorting a million rows at the end.
    let mut member_lists = member_lists;
    member_lists.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (gid, mut listing) in member_lists {
        listing
            .items
            .sort_unstable_by(|a, b| a.user_id.cmp(&b.user_id));
        min += min_calls(listing.items.len(), page_size);
        if drift.is_none() {
            if let Some(d) = listing.drift {
                drift = Some(CrawlDrift::Members(gid.clone(), d));
            }
        }
        for m in listing.items {
            if drift.is_none() && !user_ids.contains(&m.user_id) {
                // A member the users list did not have: the user was added or removed
                // between the two listings.
                drift = Some(CrawlDrift::UnknownMember(gid.clone(), m.user_id.clone()));
            }
            memberships.push(Membership {
                database: database.to_string(),
                group_id: gid.clone(),
                user_id: m.user_id,
            });
        }
    }
    if let Some(d) = drift {
        return Ok(Err(d));
    }

    let group_ids = IdSet::new(groups.items.iter().map(|g| g.id.as_str()));
    let security = match check_workspaces(database, workspaces, &user_ids, &group_ids, stats)? {
        Ok(security) => security,
        Err(d) => return Ok(Err(d)),
    };
    let (workspaces, workspace_entries) = match security {
        Some(found) => {
            min += found.min_calls;
            (Some(found.workspaces), Some(found.entries))
        }
        // The one call that found no workspace endpoints was needed to find that out.
        None => {
            min += 1;
            (None, None)
        }
    };
    stats.min_calls = min;
    debug_assert!(memberships.windows(2).all(|w| w[0] < w[1]));
    Ok(Ok(DatabaseSnapshot {
        database: database.to_string(),
        accounts: users
            .items
            .into_iter()
            .map(|u| u.into_account(database))
            .collect(),
        groups: groups
            .items
            .into_iter()
            .map(|g| g.into_group(database))
            .collect(),
        memberships,
        workspaces,
        workspace_entries,
    }))
}

/// What [`Harvester::fetch_workspaces`] read of a database's workspaces.
struct WorkspaceFetch {
    /// Calls and pages of the workspace list (the security calls are counted from `read`).
    calls: u64,
    pages: u64,
    drift: Option<Drift>,
    /// The fewest calls the list and one security call per listed workspace take.
    min_calls: u64,
    /// Every listed workspace with its security, `None` where it was gone by then.
    read: Vec<(imanage::Workspace, Option<imanage::WorkspaceSecurity>)>,
}

/// Checks what [`Harvester::fetch_workspaces`] read against the users and groups listings.
/// `Ok(Ok(None))` when the deployment offers no workspace security. Drift, as for the other
/// lists: the workspace list's own signals, a workspace gone before its security was read, or an
/// entry naming a user or group the listings did not have.
fn check_workspaces(
    database: &str,
    fetch: Option<WorkspaceFetch>,
    user_ids: &IdSet,
    group_ids: &IdSet,
    stats: &mut CrawlStats,
) -> Result<Result<Option<SecurityCrawl>, CrawlDrift>, String> {
    let Some(fetch) = fetch else {
        stats.api_calls += 1;
        stats.pages += 1;
        return Ok(Ok(None));
    };
    if let Some(d) = fetch.drift {
        return Ok(Err(CrawlDrift::Workspaces(d)));
    }
    let min_calls = fetch.min_calls;
    let mut rows = Vec::with_capacity(fetch.read.len());
    let mut entries = Vec::new();
    let mut drift = None;
    for (ws, security) in fetch.read {
        let Some(security) = security else {
            stats.api_calls += 1;
            drift.get_or_insert(CrawlDrift::WorkspaceGone(ws.id.clone()));
            continue;
        };
        stats.api_calls += u64::from(security.attempts.max(1));
        stats.pages += 1;
        let id = ws.id.clone();
        let row = ws
            .into_workspace(database, &security)
            .map_err(|e| e.to_string())?;
        for e in security.into_entries(database, &id) {
            let known = if e.is_group {
                group_ids.contains(&e.principal_id)
            } else {
                user_ids.contains(&e.principal_id)
            };
            if !known && drift.is_none() {
                // Added or removed between the listings and this call.
                drift = Some(CrawlDrift::UnknownPrincipal(
                    id.clone(),
                    e.principal_id.clone(),
                ));
            }
            entries.push(e);
        }
        rows.push(row);
    }
    if let Some(d) = drift {
        return Ok(Err(d));
    }
    rows.sort_by(|a, b| a.workspace_id.cmp(&b.workspace_id));
    entries.sort_by(|a, b| {
        (&a.workspace_id, !a.is_group, &a.principal_id).cmp(&(
            &b.workspace_id,
            !b.is_group,
            &b.principal_id,
        ))
    });
    Ok(Ok(Some(SecurityCrawl {
        workspaces: rows,
        entries,
        min_calls,
    })))
}

/// The ids of a database's users (or groups), to check every membership and security entry
/// against: a million lookups in a large firm's crawl.
///
/// The ids are copied side by side into one buffer (the layout of the graph's string interner,
/// which this crate does not depend on). Looked up where they were decoded, each among its
/// record's other fields and raw object, nearly every comparison missed the cache: the lookups
/// took more time than the rest of assembling a snapshot.
struct IdSet {
    text: String,
    /// `(start, end)` of each id in `text`, hashed by the id.
    spans: HashTable<(usize, usize)>,
    hasher: DefaultHashBuilder,
}

impl IdSet {
    fn new<'a>(ids: impl ExactSizeIterator<Item = &'a str>) -> Self {
        let mut set = IdSet {
            text: String::new(),
            spans: HashTable::with_capacity(ids.len()),
            hasher: DefaultHashBuilder::default(),
        };
        for id in ids {
            let hash = set.hasher.hash_one(id);
            if set.find(hash, id) {
                continue;
            }
            let start = set.text.len();
            set.text.push_str(id);
            let span = (start, set.text.len());
            let IdSet {
                text,
                spans,
                hasher,
            } = &mut set;
            spans.insert_unique(hash, span, |&(s, e)| hasher.hash_one(&text[s..e]));
        }
        set
    }

    fn contains(&self, id: &str) -> bool {
        self.find(self.hasher.hash_one(id), id)
    }

    fn find(&self, hash: u64, id: &str) -> bool {
        self.spans
            .find(hash, |&(s, e)| &self.text[s..e] == id)
            .is_some()
    }
}

/// What one pass found of a database's workspace security.
struct SecurityCrawl {
    workspaces: Vec<Workspace>,
    entries: Vec<WorkspaceEntry>,
    /// The fewest calls the workspace list and the security calls take.
    min_calls: u64,
}

/// Drift somewhere in one pass over a database.
#[derive(Debug)]
enum CrawlDrift {
    Users(Drift),
    Groups(Drift),
    Members(String, Drift),
    UnknownMember(String, String),
    Workspaces(Drift),
    WorkspaceGone(String),
    UnknownPrincipal(String, String),
}

impl std::fmt::Display for CrawlDrift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CrawlDrift::Users(d) => write!(f, "users: {d}"),
            CrawlDrift::Groups(d) => write!(f, "groups: {d}"),
            CrawlDrift::Members(g, d) => write!(f, "members of {g}: {d}"),
            CrawlDrift::UnknownMember(g, u) => {
                write!(f, "group {g} lists {u}, which the users list did not have")
            }
            CrawlDrift::Workspaces(d) => write!(f, "workspaces: {d}"),
            CrawlDrift::WorkspaceGone(w) => {
                write!(f, "workspace {w} was gone before its security was read")
            }
            CrawlDrift::UnknownPrincipal(w, p) => write!(
                f,
                "workspace {w}'s security names {p}, which the users and groups lists did not have"
            ),
        }
    }
}

#[derive(Clone, Copy)]
struct Observer<'a> {
    progress: &'a dyn Progress,
    database: &'a str,
    kind: ListKind,
}

impl PageObserver for Observer<'_> {
    fn page(&self, records: usize, total: Option<u64>, attempts: u32) {
        self.progress
            .page(self.database, self.kind, records, total, attempts);
    }
}

#[cfg(test)]
mod tests {
    use super::IdSet;

    #[test]
    fn an_id_set_holds_exactly_its_ids() {
        let ids: Vec<String> = (0..5000).map(|i| format!("usr_{i:06}")).collect();
        let with_repeat: Vec<&str> = ids
            .iter()
            .map(String::as_str)
            .chain(["usr_000007", ""])
            .collect();
        let set = IdSet::new(with_repeat.into_iter());
        for id in &ids {
            assert!(set.contains(id), "{id}");
        }
        assert!(set.contains(""), "the empty id is an id like any other");
        for absent in [
            "usr_005000",
            "usr_00000",
            "usr_0000001",
            "USR_000001",
            "usr_000001 ",
        ] {
            assert!(!set.contains(absent), "{absent}");
        }
        // A repeated id is kept once: the buffer holds each id one time.
        let distinct: usize = ids.iter().map(String::len).sum();
        assert_eq!(set.text.len(), distinct);
    }
}
