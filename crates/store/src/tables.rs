//! Insert layouts of the tables the bulk writer fills (see `migrations/` for the schema).
//!
//! Harvested tables share their tail: `present`, `first_seen_at` and `updated_run` come from the
//! statement (`$2`, `$3`, `$4`), the database from `$1`. An upsert makes a row present again and
//! rewrites its content, but keeps `first_seen_at`: a row that comes back was first seen long ago.

use crate::sql::{Slot, Table, Ty};

const TEXT: Slot = Slot::Row(Ty::Text);
const INT: Slot = Slot::Row(Ty::Int);
const BOOL: Slot = Slot::Row(Ty::Bool);

/// Shared values of harvested tables: database, present (true), first seen, run.
pub(crate) const DB: Slot = Slot::Shared(0);
pub(crate) const PRESENT: Slot = Slot::Shared(1);
pub(crate) const NOW: Slot = Slot::Shared(2);
pub(crate) const RUN: Slot = Slot::Shared(3);

pub(crate) const ACCOUNTS: Table = Table {
    name: "accounts",
    columns: &[
        ("database", DB),
        ("user_id", TEXT),
        ("login_name", TEXT),
        ("email", TEXT),
        ("first_name", TEXT),
        ("last_name", TEXT),
        ("display_name", TEXT),
        ("active", BOOL),
        ("user_type", TEXT),
        ("group_ids", TEXT),
        ("default_database", TEXT),
        ("phone", TEXT),
        ("department", TEXT),
        ("title", TEXT),
        ("created_date", TEXT),
        ("raw", TEXT),
        ("hash", INT),
        ("core_hash", INT),
        ("core_for", INT),
        ("present", PRESENT),
        ("first_seen_at", NOW),
        ("updated_run", RUN),
    ],
    on_conflict: Some(
        "(database, user_id) DO UPDATE SET login_name = excluded.login_name, \
         email = excluded.email, first_name = excluded.first_name, \
         last_name = excluded.last_name, display_name = excluded.display_name, \
         active = excluded.active, user_type = excluded.user_type, \
         group_ids = excluded.group_ids, default_database = excluded.default_database, \
         phone = excluded.phone, department = excluded.department, title = excluded.title, \
         created_date = excluded.created_date, raw = excluded.raw, hash = excluded.hash, \
         core_hash = excluded.core_hash, core_for = excluded.core_for, \
         present = excluded.present, removed_at = NULL, last_seen_at = NULL, \
         updated_run = excluded.updated_run",
    ),
};

pub(crate) const GROUPS: Table = Table {
    name: "groups",
    columns: &[
        ("database", DB),
        ("group_id", TEXT),
        ("name", TEXT),
        ("member_count", INT),
        ("raw", TEXT),
        ("hash", INT),
        ("present", PRESENT),
        ("first_seen_at", NOW),
        ("updated_run", RUN),
    ],
    on_conflict: Some(
        "(database, group_id) DO UPDATE SET name = excluded.name, \
         member_count = excluded.member_count, raw = excluded.raw, hash = excluded.hash, \
         present = excluded.present, removed_at = NULL, last_seen_at = NULL, \
         updated_run = excluded.updated_run",
    ),
};

pub(crate) const MEMBERSHIPS: Table = Table {
    name: "memberships",
    columns: &[
        ("database", DB),
        ("group_id", TEXT),
        ("user_id", TEXT),
        ("present", PRESENT),
        ("first_seen_at", NOW),
        ("updated_run", RUN),
    ],
    on_conflict: Some(
        "(database, group_id, user_id) DO UPDATE SET present = excluded.present, \
         removed_at = NULL, last_seen_at = NULL, updated_run = excluded.updated_run",
    ),
};

/// Each user's present groups of a database: database shared, no history (see the
/// `member_sets` migration).
pub(crate) const MEMBER_SETS: Table = Table {
    name: "member_sets",
    columns: &[
        ("database", DB),
        ("user_id", TEXT),
        ("digest", INT),
        ("group_ids", TEXT),
    ],
    on_conflict: Some(
        "(database, user_id) DO UPDATE SET digest = excluded.digest, \
         group_ids = excluded.group_ids",
    ),
};

pub(crate) const WORKSPACES: Table = Table {
    name: "workspaces",
    columns: &[
        ("database", DB),
        ("workspace_id", TEXT),
        ("name", TEXT),
        ("default_security", TEXT),
        ("raw", TEXT),
        ("hash", INT),
        ("present", PRESENT),
        ("first_seen_at", NOW),
        ("updated_run", RUN),
    ],
    on_conflict: Some(
        "(database, workspace_id) DO UPDATE SET name = excluded.name, \
         default_security = excluded.default_security, raw = excluded.raw, \
         hash = excluded.hash, present = excluded.present, removed_at = NULL, \
         last_seen_at = NULL, updated_run = excluded.updated_run",
    ),
};

pub(crate) const WORKSPACE_ENTRIES: Table = Table {
    name: "workspace_entries",
    columns: &[
        ("database", DB),
        ("workspace_id", TEXT),
        ("principal_kind", TEXT),
        ("principal_id", TEXT),
        ("access", TEXT),
        ("present", PRESENT),
        ("first_seen_at", NOW),
        ("updated_run", RUN),
    ],
    on_conflict: Some(
        "(database, workspace_id, principal_kind, principal_id) DO UPDATE SET \
         access = excluded.access, present = excluded.present, removed_at = NULL, \
         last_seen_at = NULL, updated_run = excluded.updated_run",
    ),
};

/// The change log: run, time and database shared; append only.
pub(crate) const CHANGES: Table = Table {
    name: "changes",
    columns: &[
        ("run_id", Slot::Shared(0)),
        ("at", Slot::Shared(1)),
        ("database", Slot::Shared(2)),
        ("kind", TEXT),
        ("user_id", TEXT),
        ("group_id", TEXT),
        ("workspace_id", TEXT),
        ("field", TEXT),
        ("old_value", TEXT),
        ("new_value", TEXT),
    ],
    on_conflict: None,
};

pub(crate) const PERSON_ACCOUNTS: Table = Table {
    name: "person_accounts",
    columns: &[("database", TEXT), ("user_id", TEXT), ("person_id", TEXT)],
    on_conflict: Some("(database, user_id) DO UPDATE SET person_id = excluded.person_id"),
};

pub(crate) const PERSONS: Table = Table {
    name: "persons",
    columns: &[("person_id", TEXT), ("created_seq", INT)],
    on_conflict: Some("(person_id) DO UPDATE SET created_seq = excluded.created_seq"),
};

pub(crate) const PERSON_ALIASES: Table = Table {
    name: "person_aliases",
    columns: &[("old_id", TEXT), ("person_id", TEXT)],
    on_conflict: Some("(old_id) DO UPDATE SET person_id = excluded.person_id"),
};
