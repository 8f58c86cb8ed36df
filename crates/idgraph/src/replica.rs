//! Several `idgraph serve` replicas on one store: which one harvests, and how every replica keeps
//! serving the newest committed state.
//!
//! - [`harvest_duty`]: a replica harvests only while it holds the store's harvest leadership (a
//!   PostgreSQL advisory lock on a connection of its own; always granted on SQLite). A replica
//!   without it asks again every quarter of the harvest interval (at most every 30 s), so when
//!   the leader dies (its connection drops and PostgreSQL releases the lock) another one takes
//!   over and harvests at the dead leader's cadence, within one interval of its last harvest.
//! - [`follow_changes`]: every replica reloads its graph when the store's state changes: at once
//!   on a `NOTIFY` from the store (sent by whichever process committed, a harvest or an admin
//!   mutation's re-harvest or an override), and every [`GENERATION_CHECK_EVERY`] by comparing the
//!   store's [`store::StateGeneration`] with the one it loaded, for notifications that were lost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use harvest::{Harvester, LogProgress};
use store::{RunStatus, StateGeneration, Store};
use tokio::sync::{watch, Mutex, Notify};
use tokio_util::task::AbortOnDropHandle;
use tracing::{debug, error, info, warn};

/// How often a replica checks the store for a new state without being told.
pub const GENERATION_CHECK_EVERY: Duration = Duration::from_secs(15);

/// A short wait after a notification, so that commits arriving together cost one reload.
const SETTLE: Duration = Duration::from_millis(200);

/// Publishes the store's state when it differs from the one this replica loaded last.
#[derive(Clone)]
pub struct Reloader {
    state: api::AppState,
    loaded: Arc<Mutex<Option<StateGeneration>>>,
}

impl Reloader {
    /// A reloader for `state`, which has loaded nothing yet.
    pub fn new(state: api::AppState) -> Self {
        Self {
            state,
            loaded: Arc::new(Mutex::new(None)),
        }
    }

    fn store(&self) -> &Store {
        self.state.store()
    }

    /// Loads and publishes the store's state if it changed since the last load (and any
    /// database has a complete harvest). Returns whether it did.
    pub async fn reload_if_changed(&self) -> anyhow::Result<bool> {
        let mut loaded = self.loaded.lock().await;
        // Taken before loading: a commit landing during the load makes the next check reload
        // again rather than be missed.
        let now = self.store().state_generation().await?;
        if *loaded == Some(now) || !now.any_complete() {
            return Ok(false);
        }
        // A harvest commits database by database: never publish half of one. Its end is
        // announced (and the periodic check comes round), so the whole of it loads then.
        if self.store().harvest_in_progress().await? {
            debug!("a harvest is under way; loading its state when it ends");
            return Ok(false);
        }
        let stats = api::reload(&self.state).await?;
        debug!(?stats, "graph reloaded from the store");
        *loaded = Some(now);
        Ok(true)
    }
}

/// Harvests while this replica holds the harvest leadership, now and then every `every`; asks
/// for the leadership while it does not. Returns once `stop` turns true: a harvest in flight is
/// dropped (its uncommitted database transactions roll back) and the leadership is released.
pub async fn harvest_duty(
    harvester: Harvester<imanage::Client>,
    reloader: Reloader,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let store = reloader.store().clone();
    let retry = (every / 4).clamp(Duration::from_millis(250), Duration::from_secs(30));
    let mut leadership: Option<store::HarvestLeadership> = None;
    let mut next_harvest = Instant::now();
    let mut first_attempt = true;
    api::record_harvest_leader(false);
    loop {
        if *stop.borrow() {
            break;
        }
        match leadership.as_mut() {
            Some(held) => {
                if !held.is_held().await {
                    warn!("harvest leadership lost (the connection holding it dropped)");
                    api::record_harvest_leader(false);
                    leadership = None;
                }
            }
            None => match store.try_lead_harvest().await {
                Ok(Some(held)) => {
                    // At start-up, harvest at once (as a single process always did); on a
                    // takeover, keep the previous leader's cadence.
                    next_harvest = if first_attempt {
                        Instant::now()
                    } else {
                        takeover_harvest_at(&store, every).await
                    };
                    info!(
                        first_harvest_in_ms = next_harvest
                            .saturating_duration_since(Instant::now())
                            .as_millis() as u64,
                        "harvest leadership acquired"
                    );
                    api::record_harvest_leader(true);
                    leadership = Some(held);
                }
                Ok(None) => {
                    if first_attempt {
                        info!(
                            "another replica holds the harvest leadership; following its harvests"
                        );
                    }
                }
                Err(e) => warn!(error = %e, "could not ask for the harvest leadership"),
            },
        }
        first_attempt = false;
        let wait = if leadership.is_some() {
            let now = Instant::now();
            if next_harvest <= now {
                let started = now;
                tokio::select! {
                    () = harvest_and_publish(&harvester, &reloader) => {}
                    _ = stop.changed() => {
                        info!("stopping: the harvest in flight is abandoned, nothing of it half-written");
                        break;
                    }
                }
                next_harvest = started + every;
                continue;
            }
            (next_harvest - now).min(retry)
        } else {
            retry
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => break,
        }
    }
    if let Some(held) = leadership {
        held.release().await;
        info!("harvest leadership released");
    }
    api::record_harvest_leader(false);
}

/// When a replica that just took the leadership over harvests first: one interval after the
/// latest run started, or at once when that run never finished (its harvester died in it) or
/// there is none.
async fn takeover_harvest_at(store: &Store, every: Duration) -> Instant {
    let now = Instant::now();
    let latest = match store.runs(1).await {
        Ok(mut runs) => runs.pop(),
        Err(e) => {
            warn!(error = %e, "reading the latest run; harvesting at once");
            return now;
        }
    };
    match latest {
        Some(run) if !matches!(run.status, RunStatus::Running | RunStatus::Abandoned) => {
            let due_ms = run
                .started_at
                .saturating_add(i64::try_from(every.as_millis()).unwrap_or(i64::MAX));
            let wait_ms = due_ms.saturating_sub(unix_now_ms());
            now + Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0))
        }
        _ => now,
    }
}

fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// One harvest, its metrics, and a new graph when it committed anything.
async fn harvest_and_publish(harvester: &Harvester<imanage::Client>, reloader: &Reloader) {
    match harvester.run(&LogProgress).await {
        Ok(report) => {
            for db in &report.databases {
                api::record_harvest(&db.database, db.is_complete());
            }
            if report.databases.iter().any(|d| d.is_complete()) {
                if let Err(e) = reloader.reload_if_changed().await {
                    error!(error = %e, "publishing the new graph failed");
                }
            }
        }
        Err(e) => error!(error = %e, "harvest failed"),
    }
}

/// Reloads whenever the store announces a new state (PostgreSQL), and checks every
/// [`GENERATION_CHECK_EVERY`] in any case. Runs until aborted.
pub async fn follow_changes(reloader: Reloader) {
    let wake = Arc::new(Notify::new());
    // Aborted with this task.
    let _listening = (reloader.store().backend() == store::Backend::Postgres).then(|| {
        AbortOnDropHandle::new(tokio::spawn(listen(reloader.store().clone(), wake.clone())))
    });
    let mut check = tokio::time::interval(GENERATION_CHECK_EVERY);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    check.tick().await;
    loop {
        tokio::select! {
            () = wake.notified() => tokio::time::sleep(SETTLE).await,
            _ = check.tick() => {}
        }
        match reloader.reload_if_changed().await {
            Ok(true) => info!("loaded a new state committed to the store"),
            Ok(false) => {}
            Err(e) => warn!(error = %e, "checking the store for a new state failed"),
        }
    }
}

/// Forwards the store's state-change notifications to `wake`, reconnecting as needed; a lost
/// connection wakes too (notifications sent meanwhile are gone).
async fn listen(store: Store, wake: Arc<Notify>) {
    loop {
        let mut changes = match store.state_changes().await {
            Ok(Some(c)) => c,
            Ok(None) => return,
            Err(e) => {
                warn!(error = %e, "cannot listen for state changes; checking periodically");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        // A (re)connection: whatever was missed meanwhile is picked up by a check.
        wake.notify_one();
        loop {
            match changes.next().await {
                Ok(Some(what)) => {
                    debug!(change = %what, "state change announced");
                    wake.notify_one();
                }
                Ok(None) => {
                    warn!("the connection listening for state changes dropped; reconnected");
                    wake.notify_one();
                }
                Err(e) => {
                    warn!(error = %e, "listening for state changes failed; reconnecting");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
