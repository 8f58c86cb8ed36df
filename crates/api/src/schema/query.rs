//! The root query.

use super::cursor::Cursor;
use super::types::*;
use super::{charge, graph_of, published, request_data, ApiError};
use async_graphql::{Context, Object, Result, ID};

/// Read access to the identity graph. Every answer comes from one graph, the one serving when
/// the request started; `databases` tells how fresh each database in it is.
#[derive(Default)]
pub struct GraphQuery;

/// Read access to the identity graph. Every answer comes from one graph, the one serving when
/// the request started; `databases` tells how fresh each database in it is. Until the first
/// graph is loaded, fields that need it answer `UPSTREAM_ERROR`.
#[Object]
impl GraphQuery {
    /// One person, by exactly one of `login` (any login form: `jdoe`, `ACME\jdoe`,
    /// `jdoe@acme.com`), `email` or `id` (merged ids still resolve). Null when nobody matches.
    ///
    /// When a login or email belongs to more than one person (two different people with the same
    /// login in different databases, or a shared mailbox), this is an error with code
    /// `BAD_USER_INPUT`, message "ambiguous", and the candidate person ids in
    /// `extensions.candidates`; ask again by `id`, or list them with `personCandidates`. Picking
    /// one silently would answer for the wrong person.
    async fn person<'c>(
        &self,
        ctx: &Context<'c>,
        login: Option<String>,
        email: Option<String>,
        id: Option<ID>,
    ) -> Result<Option<Person<'c>>> {
        let graph = graph_of(ctx)?;
        let found = match (login, email, id) {
            (Some(login), None, None) => graph.person_by_login(&login),
            (None, Some(email), None) => graph.person_by_email(&email),
            (None, None, Some(id)) => return Ok(graph.person(&id).map(Person)),
            _ => {
                return Err(
                    ApiError::bad_input("give exactly one of `login`, `email` or `id`").into(),
                )
            }
        };
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(Person(*one))),
            many => {
                let ids: Vec<async_graphql::Value> = many
                    .iter()
                    .map(|p| async_graphql::Value::from(p.id()))
                    .collect();
                Err(
                    ApiError::bad_input("ambiguous: this matches more than one person")
                        .with("candidates", async_graphql::Value::List(ids))
                        .into(),
                )
            }
        }
    }

    /// Every person a login or an email belongs to (exactly one of the two), for the cases
    /// `person` reports as ambiguous. Ordered by id.
    async fn person_candidates<'c>(
        &self,
        ctx: &Context<'c>,
        login: Option<String>,
        email: Option<String>,
    ) -> Result<Vec<Person<'c>>> {
        let graph = graph_of(ctx)?;
        let mut found = match (login, email) {
            (Some(login), None) => graph.person_by_login(&login),
            (None, Some(email)) => graph.person_by_email(&email),
            _ => return Err(ApiError::bad_input("give exactly one of `login` or `email`").into()),
        };
        found.sort_by_key(|p| p.index());
        charge(ctx, found.len())?;
        Ok(found.into_iter().map(Person).collect())
    }

    /// Persons, ordered by id (that is, by creation), a page at a time: `first` (default 50, at most the server's
    /// largest page, 500 by default) after the cursor `after`. Walking `pageInfo.endCursor`
    /// until `hasNextPage` is false visits every matching person once.
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    async fn persons<'c>(
        &self,
        ctx: &Context<'c>,
        filter: Option<PersonFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<PersonConnection<'c>> {
        let graph = graph_of(ctx)?;
        let n = page_size(ctx, first)?;
        let after = after.as_deref().map(Cursor::person).transpose()?;
        let filter = to_graph_filter(filter.unwrap_or_default())?;
        let (total, page, has_next) = match &filter {
            None => super::page_all(graph, after.as_deref(), n)?,
            Some(f) => {
                let matches = graph.filter_persons(f);
                super::page_of(graph, &matches, after.as_deref(), n)?
            }
        };
        charge(ctx, page.len())?;
        let edges: Vec<PersonEdge<'c>> = page
            .into_iter()
            .map(|p| PersonEdge {
                cursor: person_cursor(p),
                node: Person(p),
            })
            .collect();
        Ok(PersonConnection {
            total_count: total,
            page_info: PageInfo {
                has_next_page: has_next,
                has_previous_page: after.is_some(),
                start_cursor: edges.first().map(|e| e.cursor.clone()),
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
        })
    }

    /// Every database in the serving graph or the store, ordered by id, with its size and
    /// freshness.
    async fn databases<'c>(&self, ctx: &Context<'c>) -> Result<Vec<Database<'c>>> {
        let published = published(ctx)?;
        let mut out: Vec<Database<'c>> = published
            .graph
            .databases()
            .map(|info| Database {
                id: info.id,
                status: published.status(info.id),
                info: Some(info),
            })
            .collect();
        // A database whose first harvest never completed has a status but no graph content;
        // list it too, so its failure is visible.
        for status in &published.statuses {
            if !out.iter().any(|d| d.id == status.database) {
                out.push(Database {
                    id: &status.database,
                    info: None,
                    status: Some(status),
                });
            }
        }
        out.sort_by(|a, b| a.id.cmp(b.id));
        charge(ctx, out.len())?;
        Ok(out)
    }

    /// One account, or null.
    async fn account<'c>(
        &self,
        ctx: &Context<'c>,
        database: String,
        user_id: String,
    ) -> Result<Option<Account<'c>>> {
        Ok(graph_of(ctx)?.account(&database, &user_id).map(Account))
    }

    /// One group, or null.
    async fn group<'c>(
        &self,
        ctx: &Context<'c>,
        database: String,
        group_id: String,
    ) -> Result<Option<Group<'c>>> {
        Ok(graph_of(ctx)?.group(&database, &group_id).map(Group))
    }

    /// Who can reach a group (its members) or a workspace (every account whose effective access
    /// is above `no_access`), by exactly one of `groupId` and `workspaceId`. `NOT_FOUND` when the
    /// group or workspace is not in the serving graph. Computed from iManage Work's own security
    /// only (no Security Policy Manager).
    async fn who_can_reach<'c>(
        &self,
        ctx: &Context<'c>,
        database: String,
        group_id: Option<String>,
        workspace_id: Option<String>,
    ) -> Result<Vec<Grant<'c>>> {
        let graph = graph_of(ctx)?;
        let grants = match (group_id, workspace_id) {
            (Some(group), None) => {
                if graph.group(&database, &group).is_none() {
                    return Err(ApiError::not_found(format!(
                        "no group {group:?} in database {database:?}"
                    ))
                    .into());
                }
                graph.who_can_reach_group(&database, &group)
            }
            (None, Some(ws)) => {
                if graph.workspace(&database, &ws).is_none() {
                    return Err(ApiError::not_found(format!(
                        "no workspace {ws:?} in database {database:?}"
                    ))
                    .into());
                }
                graph.who_can_reach_workspace(&database, &ws)
            }
            _ => {
                return Err(
                    ApiError::bad_input("give exactly one of `groupId` or `workspaceId`").into(),
                )
            }
        };
        charge(ctx, grants.len())?;
        Ok(grants.into_iter().map(Grant).collect())
    }

    /// The change log: what each harvest found different from the one before, oldest first,
    /// a page at a time (`first` default 50, at most the largest page).
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    async fn changes<'c>(
        &self,
        ctx: &Context<'c>,
        filter: Option<ChangeFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<ChangeConnection<'c>> {
        let data = request_data(ctx)?;
        let n = page_size(ctx, first)?;
        let after_id = after.as_deref().map(Cursor::change).transpose()?;
        let filter = filter.unwrap_or_default();
        let graph = data.snapshot.as_deref().map(|p| &*p.graph);
        let mut accounts: Option<Vec<model::AccountKey>> = None;
        if let Some(person_id) = &filter.person_id {
            let graph = graph_of(ctx)?;
            let person = graph.person(person_id).ok_or_else(|| {
                ApiError::not_found(format!("no person with id {:?}", person_id.as_str()))
            })?;
            accounts = Some(
                person
                    .accounts()
                    .map(|a| model::AccountKey::new(a.database(), a.user_id()))
                    .collect(),
            );
        }
        if let Some(account) = &filter.account {
            let key = account.to_model();
            accounts = Some(match accounts {
                // Both given: the account only counts when it is one of the person's.
                Some(keys) => keys.into_iter().filter(|k| *k == key).collect(),
                None => vec![key],
            });
        }
        let query = store::ChangeQuery {
            databases: filter.database.clone().map(|d| vec![d]),
            accounts,
            kinds: filter
                .kinds
                .as_ref()
                .map(|ks| ks.iter().map(|k| k.to_store()).collect()),
            since: filter.since.as_deref().map(parse_instant).transpose()?,
            until: filter.until.as_deref().map(parse_instant).transpose()?,
            after_id,
            // One more than the page tells whether another page follows.
            limit: u32::try_from(n + 1).unwrap_or(u32::MAX),
        };
        let mut changes = data
            .state
            .store()
            .changes(&query)
            .await
            .map_err(ApiError::store)?;
        let has_next = changes.len() > n;
        changes.truncate(n);
        charge(ctx, changes.len())?;
        let edges: Vec<ChangeEdge<'c>> = changes
            .into_iter()
            .map(|change| ChangeEdge {
                cursor: Cursor::Change(change.id).encode(),
                node: Change { change, graph },
            })
            .collect();
        Ok(ChangeConnection {
            page_info: PageInfo {
                has_next_page: has_next,
                has_previous_page: after_id.is_some(),
                start_cursor: edges.first().map(|e| e.cursor.clone()),
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
        })
    }

    /// What looks wrong in the identity data, optionally of one kind, a page at a time
    /// (`first` default 50). The order is deterministic for one graph; a cursor is a position
    /// in it, so after a new graph is published (see `databases`) a walk should start over.
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    async fn anomalies<'c>(
        &self,
        ctx: &Context<'c>,
        kind: Option<AnomalyKind>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<AnomalyConnection<'c>> {
        let graph = graph_of(ctx)?;
        let n = page_size(ctx, first)?;
        let start = after.as_deref().map(Cursor::anomaly).transpose()?;
        let all: Vec<graph::Anomaly<'c>> = graph
            .anomalies()
            .into_iter()
            .filter(|a| kind.is_none_or(|k| anomaly_kind(a) == k))
            .collect();
        let total = all.len();
        let from = start.unwrap_or(0).min(total);
        let to = from.saturating_add(n).min(total);
        charge(ctx, to - from)?;
        let edges: Vec<AnomalyEdge<'c>> = all
            .into_iter()
            .enumerate()
            .skip(from)
            .take(to - from)
            .map(|(i, a)| AnomalyEdge {
                cursor: Cursor::Anomaly(i + 1).encode(),
                node: Anomaly(a),
            })
            .collect();
        Ok(AnomalyConnection {
            total_count: total,
            page_info: PageInfo {
                has_next_page: to < total,
                has_previous_page: from > 0,
                start_cursor: edges.first().map(|e| e.cursor.clone()),
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
        })
    }

    /// The active analyst overrides, oldest first.
    async fn overrides(&self, ctx: &Context<'_>) -> Result<Vec<Override>> {
        let data = request_data(ctx)?;
        let overrides = data
            .state
            .store()
            .overrides()
            .await
            .map_err(ApiError::store)?;
        charge(ctx, overrides.len())?;
        Ok(overrides
            .into_iter()
            .map(|model| Override {
                model,
                published: data.snapshot.clone(),
            })
            .collect())
    }

    /// The size of the serving graph.
    async fn graph(&self, ctx: &Context<'_>) -> Result<GraphInfo> {
        let s = graph_of(ctx)?.stats();
        Ok(GraphInfo {
            persons: s.persons,
            accounts: s.accounts,
            groups: s.groups,
            memberships: s.memberships,
            workspaces: s.workspaces,
            conflicts: s.conflicts,
        })
    }
}

fn to_graph_filter(f: PersonFilter) -> Result<Option<graph::PersonFilter>, ApiError> {
    if f.group_id.is_some() && f.database.is_none() {
        return Err(ApiError::bad_input(
            "`groupId` needs `database`: group ids are per database",
        ));
    }
    let search = f
        .search
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    if f.database.is_none() && f.active.is_none() && f.has_conflicts.is_none() && search.is_none() {
        return Ok(None);
    }
    Ok(Some(graph::PersonFilter {
        group: match (&f.database, f.group_id) {
            (Some(db), Some(g)) => Some((db.clone(), g)),
            _ => None,
        },
        database: f.database,
        active: f.active,
        has_conflicts: f.has_conflicts,
        search,
    }))
}

/// RFC 3339 to unix milliseconds.
fn parse_instant(s: &str) -> Result<i64, ApiError> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.timestamp_millis())
        .map_err(|_| ApiError::bad_input(format!("{s:?} is not an RFC 3339 instant")))
}
