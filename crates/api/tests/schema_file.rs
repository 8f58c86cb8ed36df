//! The committed `schema.graphql` is exactly what `api::sdl()` prints, and it keeps every name
//! of the external contract (CONTRACTS.md).
//!
//! After changing the schema on purpose, regenerate the file with
//! `UPDATE_SCHEMA=1 cargo test -p api --test schema_file`.

use std::path::PathBuf;

fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schema.graphql")
}

#[test]
fn committed_schema_equals_sdl() {
    let sdl = api::sdl();
    let path = schema_path();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &sdl).unwrap();
    }
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert!(
        committed == sdl,
        "schema.graphql differs from api::sdl(); regenerate it with \
         `UPDATE_SCHEMA=1 cargo test -p api --test schema_file` (or `idgraph schema > schema.graphql`)"
    );
}

/// Collapses whitespace so that contract lines can be found whatever the SDL's layout.
fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn contract_names_are_all_there() {
    let sdl = squash(&api::sdl());
    for needle in [
        "person(login: String, email: String, id: ID): Person",
        "persons(filter: PersonFilter, first: Int, after: String): PersonConnection!",
        "databases: [Database!]!",
        "group(database: String!, groupId: String!): Group",
        "whoCanReach(database: String!, groupId: String, workspaceId: String): [Grant!]!",
        "changes(filter: ChangeFilter, first: Int, after: String): ChangeConnection!",
        "anomalies(kind: AnomalyKind, first: Int, after: String): AnomalyConnection!",
        "overrides: [Override!]!",
        "addOverride(input: OverrideInput!): Override!",
        "removeOverride(id: ID!): Boolean!",
        "type Person {",
        "id: ID!",
        "displayName: String",
        "logins: [String!]!",
        "emails: [String!]!",
        "accounts: [Account!]!",
        "reach: [Grant!]!",
        "evidence: [LinkEvidence!]!",
        "conflicts: [Conflict!]!",
        "type Account {",
        "database: String!",
        "userId: String!",
        "loginName: String",
        "email: String",
        "firstName: String",
        "lastName: String",
        "active: Boolean!",
        "groups: [Group!]!",
        "person: Person!",
        "type Group {",
        "groupId: String!",
        "name: String",
        "members: [Account!]!",
        "type Grant {",
        "account: Account!",
        "group: Group",
        "workspace: Workspace",
        "access: String!",
        "type LinkEvidence {",
        "key: String!",
        "value: String!",
        "type Conflict {",
        "kind: String!",
        "detail: String!",
        "type Database {",
        "accountCount: Int!",
        "groupCount: Int!",
        "lastHarvestedAt: String",
        "complete: Boolean!",
        "type PersonConnection {",
        "totalCount: Int!",
        "edges: [PersonEdge!]!",
        "pageInfo: PageInfo!",
        "type PersonEdge {",
        "cursor: String!",
        "node: Person!",
        "input PersonFilter {",
        "groupId: String",
        "active: Boolean",
        "hasConflicts: Boolean",
        "search: String",
        "PARTLY_ACTIVE",
        "NO_EMAIL",
        "CONFLICT",
        "EXTERNAL_IN_INTERNAL_GROUP",
        "MUST_LINK",
        "CANNOT_LINK",
        "Security Policy Manager",
    ] {
        assert!(sdl.contains(needle), "schema lacks {needle:?}");
    }
}
