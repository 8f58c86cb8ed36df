//! The root mutation: analysts' overrides. Admin keys only.

use super::types::{Override, OverrideInput};
use super::{request_data, ApiError, Code};
use crate::auth::Role;
use async_graphql::{Context, Guard, Object, Result, ID};

/// Refuses every caller but an admin with `FORBIDDEN`.
pub(crate) struct AdminOnly;

impl Guard for AdminOnly {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        if request_data(ctx)?.caller.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::new(Code::Forbidden, "mutations need an admin key").into())
        }
    }
}

/// Changes to how accounts are linked. Admin keys only; reader keys get `FORBIDDEN`. Every
/// change is audited (who, when, what) in the store and re-resolves the graph before answering,
/// so the answer, and every request after it, already reflects it.
#[derive(Default)]
pub struct OverrideMutation;

/// Changes to how accounts are linked. Admin keys only; reader keys get `FORBIDDEN`. Every
/// change is audited (who, when, what) in the store and re-resolves the graph before answering,
/// so the answer, and every request after it, already reflects it.
#[Object]
impl OverrideMutation {
    /// Records a must-link or cannot-link override between two different accounts that exist in
    /// the serving graph (`NOT_FOUND` otherwise), with a reason, and re-resolves. Adding an
    /// override that already exists returns the existing one; one that contradicts an existing
    /// override (must-link against cannot-link on the same pair) is `BAD_USER_INPUT`.
    #[graphql(guard = "AdminOnly")]
    async fn add_override(&self, ctx: &Context<'_>, input: OverrideInput) -> Result<Override> {
        let data = request_data(ctx)?;
        let a = input.a.to_model();
        let b = input.b.to_model();
        if a == b {
            return Err(ApiError::bad_input("an override needs two different accounts").into());
        }
        let reason = input.reason.trim();
        if reason.is_empty() {
            return Err(ApiError::bad_input("give a reason for the override").into());
        }
        let graph = super::graph_of(ctx)?;
        for key in [&a, &b] {
            if graph.account(&key.database, &key.user_id).is_none() {
                return Err(ApiError::not_found(format!("no account {key}")).into());
            }
        }
        let store = data.state.store();
        let kind = input.kind.to_model();
        let existing = store.overrides().await.map_err(ApiError::store)?;
        if let Some(contra) = existing
            .iter()
            .find(|o| o.kind != kind && ((o.a == a && o.b == b) || (o.a == b && o.b == a)))
        {
            return Err(ApiError::bad_input(format!(
                "contradicts override {} ({}); remove it first",
                contra.id,
                contra.kind.as_str()
            ))
            .with("conflictingOverride", contra.id.to_string())
            .into());
        }
        let model = store
            .add_override(kind, &a, &b, Some(reason), Some(&data.caller.actor))
            .await
            .map_err(ApiError::store)?;
        tracing::info!(id = model.id, kind = kind.as_str(), actor = %data.caller.actor, "override added");
        reload_detached(&data.state)
            .await
            .map_err(|e| reload_failed(e, model.id))?;
        Ok(Override {
            model,
            published: data.state.snapshot(),
        })
    }

    /// Removes an active override and re-resolves. False when there is no active override
    /// with that id.
    #[graphql(guard = "AdminOnly")]
    async fn remove_override(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let data = request_data(ctx)?;
        let id: i64 = id
            .parse()
            .map_err(|_| ApiError::bad_input("override ids are integers"))?;
        let removed = data
            .state
            .store()
            .remove_override(id, Some(&data.caller.actor))
            .await
            .map_err(ApiError::store)?;
        if removed {
            tracing::info!(id, actor = %data.caller.actor, "override removed");
            reload_detached(&data.state)
                .await
                .map_err(|e| reload_failed(e, id))?;
        }
        Ok(removed)
    }
}

/// Re-resolves in a task of its own: the override is already stored, so the new graph must be
/// published even when the request is dropped meanwhile (a client gone, the request time-out).
async fn reload_detached(state: &crate::AppState) -> Result<graph::GraphStats, crate::Error> {
    let state = state.clone();
    tokio::spawn(async move { crate::reload(&state).await })
        .await
        .map_err(crate::Error::Resolve)?
}

/// The override is stored (and will apply at the next resolution) but the graph could not be
/// re-resolved now.
fn reload_failed(error: crate::Error, id: i64) -> async_graphql::Error {
    tracing::error!(error = %error, override_id = id, "re-resolving after an override failed");
    let code = match error {
        crate::Error::Store(_) => Code::UpstreamError,
        _ => Code::Internal,
    };
    ApiError::new(
        code,
        format!("override {id} is saved but the graph could not be re-resolved yet"),
    )
    .into()
}
