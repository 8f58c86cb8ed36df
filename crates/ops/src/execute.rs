//! Making one planned call against iManage, and what came of it.
//!
//! Every call aims at a state (an account inactive, a membership there or gone), so an answer
//! that says the state is in place already counts as success: a 404 on a removal, a 409 on
//! adding a member. A step whose earlier attempt left no record (the process died between the
//! call and the record) is *verified* first: the real state is read, and the call is made only
//! if it is still needed, so a re-run never creates a second user or membership.

use crate::plan::{Call, UserRef};
use imanage::{AddOutcome, Client, NewUser, Removal, User, UserPatch};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;

/// What a successful step did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CallResult {
    /// The account is now inactive.
    Deactivated,
    /// The account was inactive already (found when verifying).
    AlreadyInactive,
    /// The account is now active.
    Activated,
    /// The account was active already (found when verifying).
    AlreadyActive,
    /// The account was created with this id.
    Created {
        /// The new user id.
        user_id: String,
    },
    /// An earlier attempt of this step had created the account, found by its login.
    FoundCreated {
        /// The user id found.
        user_id: String,
    },
    /// The account was deleted.
    Deleted,
    /// The account does not exist (any more): deactivating or deleting it is moot.
    AlreadyAbsent,
    /// The membership was added.
    Added,
    /// The account was a member already.
    AlreadyMember,
    /// The membership was removed.
    Removed,
    /// The account was not a member (any more).
    NotAMember,
}

impl CallResult {
    /// True when the call changed iManage's state; false when the state was in place already.
    pub fn changed(&self) -> bool {
        matches!(
            self,
            CallResult::Deactivated
                | CallResult::Activated
                | CallResult::Created { .. }
                | CallResult::Deleted
                | CallResult::Added
                | CallResult::Removed
        )
    }

    /// The user id a create step produced.
    pub fn created_user_id(&self) -> Option<&str> {
        match self {
            CallResult::Created { user_id } | CallResult::FoundCreated { user_id } => Some(user_id),
            _ => None,
        }
    }
}

impl fmt::Display for CallResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallResult::Deactivated => f.write_str("deactivated"),
            CallResult::AlreadyInactive => f.write_str("already inactive"),
            CallResult::Activated => f.write_str("activated"),
            CallResult::AlreadyActive => f.write_str("already active"),
            CallResult::Created { user_id } => write!(f, "created {user_id}"),
            CallResult::FoundCreated { user_id } => {
                write!(f, "found {user_id}, created by an earlier attempt")
            }
            CallResult::Deleted => f.write_str("deleted"),
            CallResult::AlreadyAbsent => f.write_str("already absent"),
            CallResult::Added => f.write_str("added"),
            CallResult::AlreadyMember => f.write_str("already a member"),
            CallResult::Removed => f.write_str("removed"),
            CallResult::NotAMember => f.write_str("not a member"),
        }
    }
}

/// Why a step failed: the upstream error, as the client reported it after its retries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallError {
    /// `forbidden` (403: the token lacks the `admin` scope), `unauthorized`, `not_found`,
    /// `conflict`, `rate_limited`, `upstream` (another status), `transport`, `decode`,
    /// `pagination`, `invalid_input`, `config`, `unresolved_user` (a step needed the user an
    /// earlier create step should have recorded), or `other`.
    pub kind: String,
    /// The HTTP status, when the error came from one.
    pub status: Option<u16>,
    /// The client's message (the API's own message; never a token or secret).
    pub message: String,
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "{} (HTTP {status}): {}", self.kind, self.message),
            None => write!(f, "{}: {}", self.kind, self.message),
        }
    }
}

impl From<imanage::Error> for CallError {
    fn from(e: imanage::Error) -> Self {
        let kind = match &e {
            imanage::Error::Auth { .. } => "unauthorized",
            imanage::Error::Forbidden { .. } => "forbidden",
            imanage::Error::NotFound { .. } => "not_found",
            imanage::Error::Conflict { .. } => "conflict",
            imanage::Error::RateLimited { .. } => "rate_limited",
            imanage::Error::Upstream { .. } => "upstream",
            imanage::Error::Decode { .. } => "decode",
            imanage::Error::Transport { .. } => "transport",
            imanage::Error::Pagination { .. } => "pagination",
            imanage::Error::InvalidInput(_) => "invalid_input",
            imanage::Error::Config(_) => "config",
            _ => "other",
        };
        CallError {
            kind: kind.to_string(),
            status: e.status(),
            message: e.to_string(),
        }
    }
}

/// True when `user` is the account a create with these details made: the same login (as
/// iManage compares logins) and nothing it shows contradicting the rest.
fn same_details(user: &User, login: &str, email: &str, first: &str, last: &str) -> bool {
    let agrees = |ours: &str, theirs: &Option<String>| {
        theirs
            .as_deref()
            .is_none_or(|t| t.trim().eq_ignore_ascii_case(ours.trim()))
    };
    user.login_name
        .as_deref()
        .is_some_and(|l| l.trim().eq_ignore_ascii_case(login.trim()))
        && agrees(email, &user.email)
        && agrees(first, &user.first_name)
        && agrees(last, &user.last_name)
}

/// True when the group's member list has `user_id`.
async fn is_member(
    client: &Client,
    database: &str,
    group_id: &str,
    user_id: &str,
) -> imanage::Result<bool> {
    use futures::StreamExt;
    let mut pages = std::pin::pin!(client.list_group_members(database, group_id));
    while let Some(page) = pages.next().await {
        if page?.items.iter().any(|m| m.user_id == user_id) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Sets `active` on an account, reading it first when `verify` asks for it.
async fn set_active(
    client: &Client,
    database: &str,
    user_id: &str,
    active: bool,
    verify: bool,
) -> Result<CallResult, CallError> {
    let (done, already) = if active {
        (CallResult::Activated, CallResult::AlreadyActive)
    } else {
        (CallResult::Deactivated, CallResult::AlreadyInactive)
    };
    if verify {
        match client.get_user(database, user_id).await {
            Ok(u) if u.is_active() == active => return Ok(already),
            Ok(_) => {}
            // An account that is gone is not active: deactivating it is moot. Activating it
            // is impossible, and that is a failure.
            Err(e) if e.is_not_found() && !active => return Ok(CallResult::AlreadyAbsent),
            Err(e) => return Err(e.into()),
        }
    }
    match client
        .update_user(database, user_id, &UserPatch::default().active(active))
        .await
    {
        Ok(_) => Ok(done),
        Err(e) if e.is_not_found() && !active => Ok(CallResult::AlreadyAbsent),
        Err(e) => Err(e.into()),
    }
}

/// Makes `call`. `created` maps create steps to the user ids they recorded; `verify` reads the
/// real state first (for a step whose earlier attempt has no recorded outcome).
pub(crate) async fn execute(
    client: &Client,
    call: &Call,
    created: &HashMap<u32, String>,
    verify: bool,
) -> Result<CallResult, CallError> {
    match call {
        Call::DeactivateUser { database, user_id } => {
            set_active(client, database, user_id, false, verify).await
        }
        Call::ActivateUser { database, user_id } => {
            set_active(client, database, user_id, true, verify).await
        }
        Call::DeleteUser { database, user_id } => match client.delete_user(database, user_id).await
        {
            Ok(Removal::Removed) => Ok(CallResult::Deleted),
            Ok(Removal::AlreadyAbsent) => Ok(CallResult::AlreadyAbsent),
            Err(e) if e.is_not_found() => Ok(CallResult::AlreadyAbsent),
            Err(e) => Err(e.into()),
        },
        Call::RemoveMember {
            database,
            group_id,
            user_id,
        } => match client.remove_member(database, group_id, user_id).await {
            // Repeating a removal is its own check: a 404 means the membership is gone.
            Ok(Removal::Removed) => Ok(CallResult::Removed),
            Ok(Removal::AlreadyAbsent) => Ok(CallResult::NotAMember),
            Err(e) if e.is_not_found() => Ok(CallResult::NotAMember),
            Err(e) => Err(e.into()),
        },
        Call::CreateUser {
            database,
            login,
            email,
            first_name,
            last_name,
        } => {
            if verify {
                let found = client.find_users_by_login(database, login).await?;
                if let Some(u) = found.first() {
                    if same_details(u, login, email, first_name, last_name) {
                        return Ok(CallResult::FoundCreated {
                            user_id: u.id.clone(),
                        });
                    }
                    return Err(CallError {
                        kind: "conflict".into(),
                        status: None,
                        message: format!(
                            "another account ({}) holds the login {login:?} with other details",
                            u.id
                        ),
                    });
                }
            }
            let user = NewUser::new(login, email, first_name, last_name);
            let created = client.create_user(database, &user).await?;
            Ok(CallResult::Created {
                user_id: created.id,
            })
        }
        Call::AddMember {
            database,
            group_id,
            user,
        } => {
            let user_id = match user {
                UserRef::Existing(id) => id.clone(),
                UserRef::CreatedInStep(step) => {
                    created.get(step).cloned().ok_or_else(|| CallError {
                        kind: "unresolved_user".into(),
                        status: None,
                        message: format!("step {step} has not recorded the user it created"),
                    })?
                }
            };
            if verify && is_member(client, database, group_id, &user_id).await? {
                return Ok(CallResult::AlreadyMember);
            }
            match client.add_member(database, group_id, &user_id).await? {
                AddOutcome::Added => Ok(CallResult::Added),
                AddOutcome::AlreadyMember => Ok(CallResult::AlreadyMember),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_keep_kind_status_and_message() {
        let e: CallError = imanage::Error::Forbidden {
            message: "the token lacks the admin scope".into(),
        }
        .into();
        assert_eq!(e.kind, "forbidden");
        assert_eq!(e.status, Some(403));
        assert!(e.message.contains("admin scope"), "{e}");
        assert_eq!(
            e.to_string(),
            "forbidden (HTTP 403): forbidden: the token lacks the admin scope"
        );
        let e: CallError = imanage::Error::Upstream {
            status: 503,
            code: Some("unavailable".into()),
            message: "database down".into(),
        }
        .into();
        assert_eq!((e.kind.as_str(), e.status), ("upstream", Some(503)));
    }

    #[test]
    fn only_state_changes_count_as_changed() {
        assert!(CallResult::Removed.changed());
        assert!(!CallResult::NotAMember.changed());
        assert!(!CallResult::FoundCreated {
            user_id: "u".into()
        }
        .changed());
        assert_eq!(
            CallResult::FoundCreated {
                user_id: "u1".into()
            }
            .created_user_id(),
            Some("u1")
        );
        assert_eq!(CallResult::Added.created_user_id(), None);
    }
}
