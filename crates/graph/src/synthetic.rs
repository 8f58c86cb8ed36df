//! A cheap, deterministic synthetic input for benchmarks: `accounts` accounts spread over
//! `databases` databases, people with one to three accounts each, and `memberships` group
//! memberships. It is shaped like a firm (shared logins and emails across databases) but has none
//! of the simulator's realism; use the simulator for accuracy, this for speed and memory.

use crate::{IndexedInput, Input};
use model::{Account, Group};

/// A small deterministic generator (SplitMix64).
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Builds the input; the same arguments give the same input. The string-keyed form of
/// [`synthetic_indexed_input`].
pub fn synthetic_input(accounts: usize, memberships: usize, databases: usize, seed: u64) -> Input {
    synthetic_indexed_input(accounts, memberships, databases, seed).into()
}

/// Builds the input with memberships as index pairs: `accounts` accounts in `databases`
/// databases (in key order, as the store delivers them), about one group per 70 accounts per
/// database, and exactly `memberships` distinct memberships (at most half of the possible
/// account-group pairs within each database), each joining an account to a group of its own database, sorted by group
/// and then account. The same arguments give the same input.
pub fn synthetic_indexed_input(
    accounts: usize,
    memberships: usize,
    databases: usize,
    seed: u64,
) -> IndexedInput {
    let databases = databases.max(1);
    let mut rng = Mix(seed);
    let db_names: Vec<String> = (0..databases).map(|d| format!("db{d:02}")).collect();
    let mut out = Vec::with_capacity(accounts);
    let mut person = 0usize;
    while out.len() < accounts {
        let copies = 1 + rng.below(3) as usize;
        let first_db = rng.below(databases as u64) as usize;
        let first = format!("First{}", person % 5000);
        let last = format!("Last{person}");
        for c in 0..copies.min(databases) {
            if out.len() == accounts {
                break;
            }
            let db = (first_db + c) % databases;
            let n = out.len();
            out.push(Account {
                database: db_names[db].clone(),
                user_id: format!("u{n:08x}"),
                login_name: Some(if c == 1 {
                    format!("ACME\\user{person}")
                } else {
                    format!("user{person}")
                }),
                email: (rng.below(10) != 0).then(|| format!("user{person}@acme.com")),
                first_name: Some(first.clone()),
                last_name: Some(last.clone()),
                display_name: Some(format!("{first} {last}")),
                active: rng.below(50) != 0,
                user_type: Some("full".into()),
                ..Account::default()
            });
        }
        person += 1;
    }
    // The store delivers rows in key order; so does this generator.
    out.sort_by(|a, b| (&a.database, &a.user_id).cmp(&(&b.database, &b.user_id)));
    // Groups: about one per 70 accounts per database, at least one.
    let per_db = (accounts / databases / 70).max(1);
    let mut groups = Vec::with_capacity(per_db * databases);
    for db in &db_names {
        for g in 0..per_db {
            groups.push(Group {
                database: db.clone(),
                group_id: format!("g{g:05}"),
                name: Some(format!("Group {g}")),
                ..Group::default()
            });
        }
    }
    let db_of: std::collections::HashMap<&str, usize> = db_names
        .iter()
        .enumerate()
        .map(|(i, d)| (d.as_str(), i))
        .collect();
    let account_db: Vec<usize> = out.iter().map(|a| db_of[a.database.as_str()]).collect();
    // Random memberships, drawn again for duplicates until there are enough distinct ones.
    let mut members: Vec<(u32, u32)> = Vec::with_capacity(memberships);
    let capacity = (0..databases)
        .map(|d| account_db.iter().filter(|&&x| x == d).count() * per_db)
        .sum::<usize>();
    // Random draws fill at most half of the possible pairs quickly; more would take long.
    let wanted = memberships.min(capacity / 2);
    while members.len() < wanted {
        for _ in members.len()..wanted {
            let a = rng.below(out.len() as u64) as usize;
            let g = account_db[a] * per_db + rng.below(per_db as u64) as usize;
            members.push((a as u32, g as u32));
        }
        // The store's order: by group, then account.
        members.sort_unstable_by_key(|&(a, g)| (g, a));
        members.dedup();
    }
    IndexedInput {
        accounts: out,
        groups,
        memberships: members,
        ..IndexedInput::default()
    }
}

/// What [`scale_run`] measured.
#[derive(Debug, Clone)]
pub struct ScaleReport {
    pub accounts: usize,
    /// Memberships in the input (distinct).
    pub memberships: usize,
    pub databases: usize,
    pub persons: usize,
    pub groups: usize,
    pub conflicts: usize,
    /// Wall time of [`crate::resolve_indexed`], from the input to the finished graph (the
    /// input's freeing included).
    pub resolve_seconds: f64,
    /// CPU time (all threads, user and system) the process used while resolving: with two
    /// cores to itself, wall time is at least half of this.
    pub resolve_cpu_seconds: f64,
    /// The build's phases and their wall time in seconds ([`crate::Graph::build_phases`]).
    pub phases: Vec<(&'static str, f64)>,
    /// Resident set size (bytes) before the input was generated.
    pub rss_before: u64,
    /// With the input generated, before resolving.
    pub rss_with_input: u64,
    /// With the graph built and the input freed, before handing freed heap back.
    pub rss_after_untrimmed: u64,
    /// The same after [`crate::memory::release_free_memory`]: what the graph really holds.
    pub rss_after: u64,
    /// `(rss_after - rss_before) / accounts`.
    pub bytes_per_account: f64,
    /// The graph's own estimate of its heap ([`crate::GraphStats::bytes`]) per account.
    pub heap_estimate_per_account: f64,
    /// Whether freed heap could be handed back (glibc); if not, `rss_after` is untrimmed.
    pub memory_released: bool,
}

impl std::fmt::Display for ScaleReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (phase, seconds) in &self.phases {
            writeln!(f, "phase {phase}: {seconds:.3} s")?;
        }
        writeln!(
            f,
            "resolve: {} accounts, {} memberships, {} databases -> {} persons, {} groups, {} conflicts",
            self.accounts, self.memberships, self.databases, self.persons, self.groups, self.conflicts
        )?;
        writeln!(
            f,
            "resolve_seconds={:.3} resolve_cpu_seconds={:.2}",
            self.resolve_seconds, self.resolve_cpu_seconds
        )?;
        let mb = |b: u64| b as f64 / 1e6;
        writeln!(
            f,
            "rss_before_input_mb={:.1} rss_with_input_mb={:.1} rss_after_graph_untrimmed_mb={:.1} rss_after_graph_mb={:.1} (freed heap returned: {})",
            mb(self.rss_before),
            mb(self.rss_with_input),
            mb(self.rss_after_untrimmed),
            mb(self.rss_after),
            self.memory_released
        )?;
        write!(
            f,
            "resident_bytes_per_account={:.0} heap_estimate_bytes_per_account={:.0}",
            self.bytes_per_account, self.heap_estimate_per_account
        )
    }
}

/// Resolves a synthetic firm (seed 42, login domain `ACME`) of `accounts` accounts,
/// `memberships` memberships and `databases` databases with [`crate::resolve_indexed`], and
/// measures time and resident memory.
///
/// Memory is measured on the whole process: the resident set before the input exists, and after
/// the graph is built, the input dropped and the freed heap handed back to the system
/// ([`crate::memory::release_free_memory`]); so the difference is what the graph holds (nodes,
/// interned strings, adjacency, indexes) plus whatever else the process allocated meanwhile.
/// Run it in a fresh process that does nothing else at the same time (the benchmark suite runs
/// it in a child process), or the figures include other work's memory. Resident figures are 0
/// where `/proc/self/status` is unavailable. Takes about 10 seconds and 3 GB at the default
/// scale of 1,000,000 accounts and 10,000,000 memberships, most of it generating the input.
pub fn scale_run(accounts: usize, memberships: usize, databases: usize) -> ScaleReport {
    use crate::memory::{release_free_memory, resident_bytes};
    release_free_memory();
    let rss_before = resident_bytes().unwrap_or(0);
    let input = synthetic_indexed_input(accounts, memberships, databases, 42);
    let memberships = input.memberships.len();
    let rss_with_input = resident_bytes().unwrap_or(0);
    // The synthetic firm writes some logins as `ACME\user`: ACME is the firm's login domain.
    let config = crate::ResolveConfig {
        login_domain_aliases: vec![vec!["ACME".into()]],
        ..crate::ResolveConfig::default()
    };
    let cpu_before = crate::memory::cpu_seconds().unwrap_or(0.0);
    let started = std::time::Instant::now();
    let graph = crate::resolve_indexed(input, &config);
    let resolve_seconds = started.elapsed().as_secs_f64();
    let resolve_cpu_seconds = crate::memory::cpu_seconds().unwrap_or(0.0) - cpu_before;
    let rss_after_untrimmed = resident_bytes().unwrap_or(0);
    let memory_released = release_free_memory();
    let rss_after = resident_bytes().unwrap_or(0);
    let stats = graph.stats();
    let per_account = |bytes: f64| bytes / accounts.max(1) as f64;
    let report = ScaleReport {
        accounts: stats.accounts,
        memberships,
        databases,
        persons: stats.persons,
        groups: stats.groups,
        conflicts: stats.conflicts,
        resolve_seconds,
        resolve_cpu_seconds,
        phases: graph
            .build_phases()
            .iter()
            .map(|(name, took)| (*name, took.as_secs_f64()))
            .collect(),
        rss_before,
        rss_with_input,
        rss_after_untrimmed,
        rss_after,
        bytes_per_account: per_account(rss_after.saturating_sub(rss_before) as f64),
        heap_estimate_per_account: per_account(stats.bytes as f64),
        memory_released,
    };
    // The graph is dropped only now, after every measurement.
    drop(graph);
    report
}
