//! Two caches on the `/graphql` hot path.
//!
//! - [`ResponseCache`]: finished JSON answers. The served graph is immutable between swaps, so
//!   the answer to a query that reads only the graph is a pure function of (graph, role, request
//!   body). Each published graph has its own cache (it lives in [`crate::state::Published`]), so
//!   a swap starts from an empty one and an answer computed from an older graph can never be
//!   served for a newer one. It is bounded by bytes (`Limits::response_cache_bytes`; 0 turns it
//!   off) and evicts the oldest entries first. Only answers without errors, to queries whose
//!   every root field is one of [`GRAPH_ONLY_FIELDS`], are kept: never a mutation, never a field
//!   that reads the store (changes, overrides, operations, the audit log), whose answer can
//!   change without a new graph. Entries are never shared across roles.
//! - [`DocumentCache`]: parsed GraphQL documents by query text, so that the same query with
//!   other variables is not parsed again. Validation still runs on every request (it depends on
//!   the variables).

use crate::auth::Role;
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationType, Selection,
};
use axum::body::Bytes;
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

/// Root query fields whose answers depend only on the published graph (and the database
/// statuses published with it). A field missing here is simply not cached.
pub(crate) const GRAPH_ONLY_FIELDS: &[&str] = &[
    "person",
    "personCandidates",
    "persons",
    "databases",
    "account",
    "group",
    "whoCanReach",
    "anomalies",
    "graph",
    "__typename",
];

/// Shards of the response cache, so that concurrent requests rarely wait on one lock.
const SHARDS: usize = 16;

/// What an entry costs beyond its key and answer (map slot, queue slot, headers).
const ENTRY_OVERHEAD: usize = 96;

/// One cached answer.
#[derive(Clone)]
pub(crate) struct CachedResponse {
    /// The JSON answer, exactly as sent the first time.
    pub(crate) json: Bytes,
    /// The operation's name for metrics (`anonymous` when it has none).
    pub(crate) operation: Arc<str>,
}

/// Finished answers of one published graph, bounded by bytes.
pub(crate) struct ResponseCache {
    hasher: RandomState,
    shards: Box<[Mutex<Shard>]>,
    shard_capacity: usize,
}

#[derive(Default)]
struct Shard {
    map: HashMap<u64, Entry>,
    /// Insertion order, for eviction: (hash, sequence number of the entry).
    order: VecDeque<(u64, u64)>,
    bytes: usize,
    seq: u64,
}

struct Entry {
    role: Role,
    body: Box<[u8]>,
    response: CachedResponse,
    seq: u64,
    cost: usize,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("capacity", &(self.shard_capacity * self.shards.len()))
            .finish_non_exhaustive()
    }
}

impl ResponseCache {
    /// A cache holding at most about `capacity` bytes of keys and answers; 0 disables it.
    pub(crate) fn new(capacity: usize) -> Self {
        let shards = if capacity == 0 { 0 } else { SHARDS };
        ResponseCache {
            hasher: RandomState::new(),
            shards: (0..shards).map(|_| Mutex::new(Shard::default())).collect(),
            shard_capacity: capacity / SHARDS,
        }
    }

    /// False when the cache is off.
    pub(crate) fn enabled(&self) -> bool {
        !self.shards.is_empty()
    }

    fn slot(&self, role: Role, body: &[u8]) -> (u64, &Mutex<Shard>) {
        let hash = self.hasher.hash_one((role, body));
        // The low bits pick the map bucket; the high bits pick the shard.
        let shard = (hash >> 58) as usize % self.shards.len();
        (hash, &self.shards[shard])
    }

    /// The cached answer to exactly this request body from a caller of this role.
    pub(crate) fn get(&self, role: Role, body: &[u8]) -> Option<CachedResponse> {
        if !self.enabled() {
            return None;
        }
        let (hash, shard) = self.slot(role, body);
        let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        shard
            .map
            .get(&hash)
            .filter(|e| e.role == role && *e.body == *body)
            .map(|e| e.response.clone())
    }

    /// Keeps an answer, evicting the oldest entries of its shard to make room. An answer larger
    /// than a shard's share of the capacity is not kept.
    pub(crate) fn insert(&self, role: Role, body: &[u8], response: CachedResponse) {
        if !self.enabled() {
            return;
        }
        let cost = body.len() + response.json.len() + response.operation.len() + ENTRY_OVERHEAD;
        if cost > self.shard_capacity {
            return;
        }
        let (hash, shard) = self.slot(role, body);
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        let shard = &mut *shard;
        if let Some(old) = shard.map.remove(&hash) {
            shard.bytes -= old.cost;
        }
        while shard.bytes + cost > self.shard_capacity {
            let Some((h, seq)) = shard.order.pop_front() else {
                break;
            };
            if shard.map.get(&h).is_some_and(|e| e.seq == seq) {
                if let Some(e) = shard.map.remove(&h) {
                    shard.bytes -= e.cost;
                }
            }
        }
        shard.seq += 1;
        let seq = shard.seq;
        shard.order.push_back((hash, seq));
        shard.bytes += cost;
        shard.map.insert(
            hash,
            Entry {
                role,
                body: body.into(),
                response,
                seq,
                cost,
            },
        );
    }

    /// Bytes held now (keys, answers and overhead).
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).bytes)
            .sum()
    }
}

/// Longest query text whose parsed document is kept.
const MAX_CACHED_QUERY: usize = 8 * 1024;
/// Most documents kept; past it the cache starts over, so that a client sending ever new
/// queries costs a bounded amount of memory.
const MAX_CACHED_DOCUMENTS: usize = 256;

/// Parsed documents by query text.
#[derive(Default)]
pub(crate) struct DocumentCache {
    documents: RwLock<HashMap<Box<str>, Arc<ExecutableDocument>>>,
}

impl DocumentCache {
    /// The parsed document of `query`, from the cache or parsed now; `None` when it does not
    /// parse (async-graphql then reports the syntax error itself) or is too long to keep.
    pub(crate) fn get(&self, query: &str) -> Option<Arc<ExecutableDocument>> {
        if query.len() > MAX_CACHED_QUERY {
            return None;
        }
        if let Some(doc) = self
            .documents
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(query)
        {
            return Some(doc.clone());
        }
        let doc = Arc::new(async_graphql::parser::parse_query(query).ok()?);
        let mut documents = self
            .documents
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if documents.len() >= MAX_CACHED_DOCUMENTS {
            documents.clear();
        }
        documents.insert(query.into(), doc.clone());
        Some(doc)
    }
}

/// True when the operation a request runs is a query whose every root field reads only the
/// graph (see [`GRAPH_ONLY_FIELDS`]); fragments at the root make it not cacheable.
pub(crate) fn graph_only(doc: &ExecutableDocument, operation_name: Option<&str>) -> bool {
    let operation = match (&doc.operations, operation_name) {
        (DocumentOperations::Single(op), None) => op,
        (DocumentOperations::Multiple(ops), Some(name)) => match ops.get(name) {
            Some(op) => op,
            None => return false,
        },
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => match ops.values().next() {
            Some(op) => op,
            None => return false,
        },
        _ => return false,
    };
    operation.node.ty == OperationType::Query
        && operation
            .node
            .selection_set
            .node
            .items
            .iter()
            .all(|selection| match &selection.node {
                Selection::Field(field) => {
                    GRAPH_ONLY_FIELDS.contains(&field.node.name.node.as_str())
                }
                Selection::FragmentSpread(_) | Selection::InlineFragment(_) => false,
            })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(json: &str) -> CachedResponse {
        CachedResponse {
            json: Bytes::from(json.to_string()),
            operation: Arc::from("Q"),
        }
    }

    #[test]
    fn answers_are_kept_per_role_and_exact_body() {
        let cache = ResponseCache::new(1 << 20);
        cache.insert(Role::Reader, b"{\"query\":\"{a}\"}", answer("{\"data\":1}"));
        let hit = cache.get(Role::Reader, b"{\"query\":\"{a}\"}").unwrap();
        assert_eq!(&hit.json[..], b"{\"data\":1}");
        assert!(cache.get(Role::Admin, b"{\"query\":\"{a}\"}").is_none());
        assert!(cache.get(Role::Reader, b"{\"query\":\"{b}\"}").is_none());
    }

    #[test]
    fn a_zero_capacity_cache_keeps_nothing() {
        let cache = ResponseCache::new(0);
        assert!(!cache.enabled());
        cache.insert(Role::Reader, b"x", answer("y"));
        assert!(cache.get(Role::Reader, b"x").is_none());
    }

    #[test]
    fn the_oldest_answers_make_room_and_the_bound_holds() {
        let capacity = SHARDS * 4 * (ENTRY_OVERHEAD + 200);
        let cache = ResponseCache::new(capacity);
        let big = "x".repeat(150);
        for i in 0..10_000 {
            cache.insert(Role::Reader, format!("{i:08}").as_bytes(), answer(&big));
            assert!(cache.bytes() <= capacity);
        }
        assert!(cache.get(Role::Reader, b"00009999").is_some());
        assert!(cache.get(Role::Reader, b"00000000").is_none());
    }

    #[test]
    fn only_graph_queries_are_cacheable() {
        let doc = |q: &str| async_graphql::parser::parse_query(q).unwrap();
        assert!(graph_only(&doc("{ person(login: \"a\") { id } }"), None));
        assert!(graph_only(
            &doc("query P { person(login: \"a\") { id } databases { id } }"),
            None
        ));
        assert!(!graph_only(&doc("{ changes { edges { cursor } } }"), None));
        assert!(!graph_only(
            &doc("{ person(login: \"a\") { id } overrides { id } }"),
            None
        ));
        assert!(!graph_only(&doc("mutation { addOverride { id } }"), None));
        assert!(!graph_only(
            &doc("{ ...F } fragment F on Query { graph { persons } }"),
            None
        ));
        let two = doc("query A { graph { persons } } query B { overrides { id } }");
        assert!(graph_only(&two, Some("A")));
        assert!(!graph_only(&two, Some("B")));
        assert!(!graph_only(&two, None));
        assert!(!graph_only(&two, Some("C")));
    }

    #[test]
    fn documents_are_parsed_once() {
        let cache = DocumentCache::default();
        let a = cache.get("{ graph { persons } }").unwrap();
        let b = cache.get("{ graph { persons } }").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(cache.get("{ graph {").is_none());
    }
}
