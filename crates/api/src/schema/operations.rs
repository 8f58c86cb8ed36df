//! The admin scenarios over GraphQL: offboard, provision and sync a group as planned, audited
//! operations (the `ops` crate), and queries for past operations and the audit log.

use super::mutation::AdminOnly;
use super::{graph_of, request_data, ApiError, Code};
use async_graphql::{Context, InputObject, Json, Object, Result, SimpleObject, ID};

/// The largest page of operations or audit entries.
const MAX_LIST: usize = 500;

fn operator<'c>(ctx: &Context<'c>) -> Result<std::sync::Arc<ops::Operator>, ApiError> {
    request_data(ctx)?.state.operator().ok_or_else(|| {
        ApiError::new(
            Code::UpstreamError,
            "operations need iManage configured (IMANAGE_BASE_URL and client credentials)",
        )
    })
}

fn ops_error(e: ops::Error) -> ApiError {
    match e {
        ops::Error::UnknownPerson(_)
        | ops::Error::UnknownGroup { .. }
        | ops::Error::UnknownOperation(_) => ApiError::not_found(e.to_string()),
        ops::Error::Store(s) => ApiError::store(s),
        other => ApiError::bad_input(other.to_string()),
    }
}

fn parse_id(id: &ID) -> Result<ops::OperationId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::bad_input(format!("{:?} is not an operation id", id.as_str())))
}

/// One discrete iManage call of an operation and where it stands.
#[derive(SimpleObject)]
pub(crate) struct OperationStep {
    /// Position in the plan, from 0.
    index: i32,
    /// The call, e.g. `PATCH /api/v1/customers/acme/users/usr_1 {"active":false}`.
    request: String,
    /// Why the call is in the plan.
    note: String,
    /// `pending`, `started`, `done`, `failed`, `not_attempted` or `interrupted`.
    state: String,
    /// The upstream error of a failed call.
    error: Option<String>,
}

/// A planned, audited operation against iManage: the plan, every call's outcome, and a
/// summary of what is done, failed and not attempted.
pub(crate) struct Operation(ops::OperationReport);

/// A planned, audited operation against iManage: the plan, every call's outcome, and a
/// summary of what is done, failed and not attempted.
#[Object]
impl Operation {
    /// The operation id (for `applyOperation` and the audit log's `operation:ID`).
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// `OFFBOARD`, `PROVISION` or `SYNC_GROUP`.
    async fn kind(&self) -> String {
        json_str(&self.0.kind)
    }

    /// `planned`, `running`, `completed` or `failed`.
    async fn status(&self) -> String {
        json_str(&self.0.status)
    }

    /// One line for people.
    async fn summary(&self) -> &str {
        &self.0.summary
    }

    /// Steps done.
    async fn done(&self) -> i64 {
        self.0.done as i64
    }

    /// Steps failed (a failure stops the apply).
    async fn failed(&self) -> i64 {
        self.0.failed as i64
    }

    /// Steps not attempted.
    async fn not_attempted(&self) -> i64 {
        self.0.not_attempted as i64
    }

    /// Every discrete call of the plan, in order.
    async fn steps(&self) -> Vec<OperationStep> {
        self.0
            .steps
            .iter()
            .map(|s| OperationStep {
                index: s.index as i32,
                request: s.request.clone(),
                note: s.note.clone(),
                state: s.state.as_str().to_string(),
                error: s
                    .error
                    .as_ref()
                    .map(|e| serde_json::to_string(e).unwrap_or_else(|_| "upstream error".into())),
            })
            .collect()
    }

    /// What planning could not settle (unresolved or ambiguous entries, nothing to do, ...).
    async fn problems(&self) -> Vec<String> {
        self.0
            .problems
            .iter()
            .map(|p| serde_json::to_string(p).unwrap_or_default())
            .collect()
    }

    /// The whole report as JSON (request, times, actors, the re-harvest of touched databases).
    async fn report(&self) -> Json<serde_json::Value> {
        Json(serde_json::to_value(&self.0).unwrap_or_default())
    }
}

fn json_str<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// One entry of the audit log: who did what, when, to what, with which outcome.
#[derive(SimpleObject)]
pub(crate) struct AuditEntry {
    id: ID,
    /// RFC 3339.
    at: String,
    actor: Option<String>,
    action: String,
    target: Option<String>,
    outcome: String,
    detail: Json<serde_json::Value>,
}

/// A group to add a provisioned person to.
#[derive(InputObject)]
pub(crate) struct GroupTargetInput {
    database: String,
    group_id: String,
}

/// Who to provision, where.
#[derive(InputObject)]
pub(crate) struct ProvisionPersonInput {
    login: String,
    email: String,
    first_name: String,
    last_name: String,
    /// The databases the person needs an account in; an existing account is reused.
    databases: Vec<String>,
    /// Groups to add the person's account to.
    #[graphql(default)]
    groups: Vec<GroupTargetInput>,
}

/// Runs a plan (or only records it, for a dry run) on its own task, so a dropped request
/// cannot stop an apply halfway, then publishes the re-harvested graph.
async fn run(ctx: &Context<'_>, plan: ops::Plan, dry_run: bool) -> Result<Operation> {
    let data = request_data(ctx)?;
    let op = operator(ctx)?;
    let actor = data.caller.actor.clone();
    let state = data.state.clone();
    let report = tokio::spawn(async move {
        let report = op.run(&plan, &actor, dry_run, &()).await;
        if matches!(&report, Ok(r) if r.harvest.is_some()) {
            if let Err(e) = crate::reload(&state).await {
                tracing::error!(error = %e, "publishing the graph after an operation failed");
            }
        }
        report
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ops_error)?;
    Ok(Operation(report))
}

/// Admin scenarios. Each plans every discrete iManage call first; `dryRun` returns the plan
/// and calls nothing (it is recorded, to be applied later with `applyOperation`). Apply runs
/// the calls one at a time, audits each, and re-harvests the touched databases so the graph
/// shows the result.
#[derive(Default)]
pub struct OperationMutation;

/// Admin scenarios. Each plans every discrete iManage call first; `dryRun` returns the plan
/// and calls nothing (it is recorded, to be applied later with `applyOperation`). Apply runs
/// the calls one at a time, audits each, and re-harvests the touched databases so the graph
/// shows the result.
#[Object]
impl OperationMutation {
    /// Deactivates every active account of the person in every database, then removes each of
    /// their group memberships (deactivation does not cascade); deletes the accounts only with
    /// `delete: true`.
    #[graphql(guard = "AdminOnly")]
    async fn offboard_person(
        &self,
        ctx: &Context<'_>,
        person_id: ID,
        #[graphql(default = true)] remove_from_groups: bool,
        #[graphql(default = false)] delete: bool,
        #[graphql(default = false)] dry_run: bool,
    ) -> Result<Operation> {
        let plan = operator(ctx)?
            .plan_offboard(
                graph_of(ctx)?,
                &person_id,
                ops::OffboardOptions {
                    remove_from_groups,
                    delete,
                },
            )
            .map_err(ops_error)?;
        run(ctx, plan, dry_run).await
    }

    /// Creates the person's account in each database where they have none (reusing, and if
    /// needed reactivating, an existing one), then adds it to the groups.
    #[graphql(guard = "AdminOnly")]
    async fn provision_person(
        &self,
        ctx: &Context<'_>,
        input: ProvisionPersonInput,
        #[graphql(default = false)] dry_run: bool,
    ) -> Result<Operation> {
        let input = ops::ProvisionInput {
            login: input.login,
            email: input.email,
            first_name: input.first_name,
            last_name: input.last_name,
            databases: input.databases,
            groups: input
                .groups
                .into_iter()
                .map(|g| ops::GroupTarget {
                    database: g.database,
                    group_id: g.group_id,
                })
                .collect(),
        };
        let plan = operator(ctx)?
            .plan_provision(graph_of(ctx)?, input)
            .map_err(ops_error)?;
        run(ctx, plan, dry_run).await
    }

    /// Makes the group's membership equal the authoritative list of logins or emails: each
    /// entry resolves through the graph to that database's account; one that resolves to no
    /// account, or to several, is reported and never guessed.
    #[graphql(guard = "AdminOnly")]
    async fn sync_group(
        &self,
        ctx: &Context<'_>,
        database: String,
        group_id: String,
        members: Vec<String>,
        #[graphql(default = false)] dry_run: bool,
    ) -> Result<Operation> {
        if members.len() > 100_000 {
            return Err(ApiError::limit("at most 100,000 members a call").into());
        }
        let plan = operator(ctx)?
            .plan_sync_group(graph_of(ctx)?, &database, &group_id, &members)
            .map_err(ops_error)?;
        run(ctx, plan, dry_run).await
    }

    /// Applies a recorded operation, or re-runs one after a failure or a crash: steps already
    /// done are skipped, and a step whose outcome is unknown is checked before it is repeated.
    #[graphql(guard = "AdminOnly")]
    async fn apply_operation(&self, ctx: &Context<'_>, id: ID) -> Result<Operation> {
        let id = parse_id(&id)?;
        let data = request_data(ctx)?;
        let op = operator(ctx)?;
        let actor = data.caller.actor.clone();
        let state = data.state.clone();
        let report = tokio::spawn(async move {
            let report = op.apply(id, &actor).await;
            if matches!(&report, Ok(r) if r.harvest.is_some()) {
                if let Err(e) = crate::reload(&state).await {
                    tracing::error!(error = %e, "publishing the graph after an operation failed");
                }
            }
            report
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ops_error)?;
        Ok(Operation(report))
    }
}

/// Past operations and the audit log.
#[derive(Default)]
pub struct OperationQuery;

/// Past operations and the audit log.
#[Object]
impl OperationQuery {
    /// One operation with every step; null when there is none with this id.
    async fn operation(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Operation>> {
        let id = parse_id(&id)?;
        let store = request_data(ctx)?.state.store();
        Ok(report_from(store, id).await?.map(Operation))
    }

    /// Operations, newest first; `before` is the id to page back from.
    async fn operations(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: i32,
        before: Option<ID>,
    ) -> Result<Vec<Operation>> {
        let first = check_first(first)?;
        let before = before.as_ref().map(parse_id).transpose()?;
        let store = request_data(ctx)?.state.store();
        let summaries = store
            .operations(&store::OperationQuery {
                before_id: before,
                limit: first as u32,
                ..store::OperationQuery::default()
            })
            .await
            .map_err(ApiError::store)?;
        let mut out = Vec::with_capacity(summaries.len());
        for record in summaries {
            out.push(Operation(
                ops::OperationReport::from_record(record, None).map_err(ops_error)?,
            ));
        }
        Ok(out)
    }

    /// The audit log, oldest first from `after` (an entry id): every call an operation made,
    /// every override change, who asked and what came of it.
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 100)] first: i32,
        after: Option<ID>,
        target: Option<String>,
    ) -> Result<Vec<AuditEntry>> {
        let first = check_first(first)?;
        let after = match after {
            Some(a) => Some(
                a.parse::<i64>()
                    .map_err(|_| ApiError::bad_input("after is an audit entry id"))?,
            ),
            None => None,
        };
        let store = request_data(ctx)?.state.store();
        let entries = store
            .audit(&store::AuditQuery {
                after_id: after,
                target,
                limit: first as u32,
                ..store::AuditQuery::default()
            })
            .await
            .map_err(ApiError::store)?;
        Ok(entries
            .into_iter()
            .map(|e| AuditEntry {
                id: ID(e.id.to_string()),
                at: ops::format_time(e.at),
                actor: e.actor,
                action: e.action,
                target: e.target,
                outcome: e.outcome,
                detail: Json(e.detail),
            })
            .collect())
    }
}

async fn report_from(
    store: &store::Store,
    id: ops::OperationId,
) -> Result<Option<ops::OperationReport>, ApiError> {
    match store.operation(id).await.map_err(ApiError::store)? {
        Some(record) => Ok(Some(
            ops::OperationReport::from_record(record, None).map_err(ops_error)?,
        )),
        None => Ok(None),
    }
}

fn check_first(first: i32) -> Result<usize, ApiError> {
    if first < 1 {
        return Err(ApiError::bad_input("first must be at least 1"));
    }
    if first as usize > MAX_LIST {
        return Err(ApiError::limit(format!("first is at most {MAX_LIST}")));
    }
    Ok(first as usize)
}
