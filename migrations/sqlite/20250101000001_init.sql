-- idgraph store schema, SQLite. Kept in step with migrations/postgres/: same tables, same
-- columns, same meaning. Timestamps are unix milliseconds (BIGINT) throughout.
--
-- Harvested rows (accounts, groups, memberships, workspaces, workspace_entries) are never deleted:
-- `present` says whether the last complete harvest of their database found them. A present row's
-- last-seen time is its database's `last_complete_at` (derived on read, so an unchanged row is
-- never rewritten); `last_seen_at` and `removed_at` are written when a harvest finds it gone.
-- `hash` is a content hash that lets a harvest skip unchanged rows; `updated_run` is the run that
-- last wrote the row. JSON is kept as TEXT: the store writes and reads it whole, and TEXT keeps
-- the API's own key order and loads fastest with COPY.
--
-- SQLite specifics: BOOLEAN columns hold 0/1; ids are AUTOINCREMENT so they are never reused;
-- small tables keyed by their primary key are WITHOUT ROWID, so each row is stored once, in the
-- key's b-tree, instead of in a table plus an index.

CREATE TABLE databases (
    database              TEXT PRIMARY KEY,
    first_seen_at         BIGINT NOT NULL,
    last_attempt_at       BIGINT,
    last_complete_at      BIGINT,
    complete              BOOLEAN NOT NULL DEFAULT FALSE,
    last_error            TEXT,
    account_count         BIGINT NOT NULL DEFAULT 0,
    group_count           BIGINT NOT NULL DEFAULT 0,
    membership_count      BIGINT NOT NULL DEFAULT 0,
    has_workspaces        BOOLEAN NOT NULL DEFAULT FALSE,
    has_workspace_entries BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    -- A random number per store instance; see Store::start_run for how orphans are found.
    owner       BIGINT NOT NULL,
    status      TEXT NOT NULL
                CHECK (status IN ('running', 'complete', 'partial', 'failed', 'abandoned')),
    started_at  BIGINT NOT NULL,
    finished_at BIGINT,
    -- JSON array of the databases the run set out to crawl.
    requested   TEXT NOT NULL
);
CREATE INDEX runs_running_idx ON runs (owner) WHERE status = 'running';

CREATE TABLE run_databases (
    run_id           BIGINT NOT NULL REFERENCES runs (id),
    database         TEXT NOT NULL,
    outcome          TEXT NOT NULL CHECK (outcome IN ('complete', 'failed')),
    at               BIGINT NOT NULL,
    api_calls        BIGINT NOT NULL,
    min_calls        BIGINT NOT NULL,
    retries          BIGINT NOT NULL,
    pages            BIGINT NOT NULL,
    recrawls         BIGINT NOT NULL,
    duration_ms      BIGINT NOT NULL,
    -- ChangeCounts as JSON, so new counters need no migration.
    change_counts    TEXT NOT NULL,
    account_count    BIGINT,
    group_count      BIGINT,
    membership_count BIGINT,
    cause            TEXT,
    PRIMARY KEY (run_id, database)
);

CREATE TABLE accounts (
    database         TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    login_name       TEXT,
    email            TEXT,
    first_name       TEXT,
    last_name        TEXT,
    display_name     TEXT,
    active           BOOLEAN NOT NULL,
    user_type        TEXT,
    group_ids        TEXT NOT NULL,
    default_database TEXT,
    phone            TEXT,
    department       TEXT,
    title            TEXT,
    created_date     TEXT,
    raw              TEXT NOT NULL,
    hash             BIGINT NOT NULL,
    present          BOOLEAN NOT NULL,
    first_seen_at    BIGINT NOT NULL,
    last_seen_at     BIGINT,
    removed_at       BIGINT,
    updated_run      BIGINT NOT NULL,
    PRIMARY KEY (database, user_id)
);

CREATE TABLE groups (
    database      TEXT NOT NULL,
    group_id      TEXT NOT NULL,
    name          TEXT,
    member_count  BIGINT,
    raw           TEXT NOT NULL,
    hash          BIGINT NOT NULL,
    present       BOOLEAN NOT NULL,
    first_seen_at BIGINT NOT NULL,
    last_seen_at  BIGINT,
    removed_at    BIGINT,
    updated_run   BIGINT NOT NULL,
    PRIMARY KEY (database, group_id)
);

-- No foreign keys to accounts or groups: a crawl may list a member the users list did not (drift
-- while paging), and the store keeps what the harvest saw rather than failing the commit.
CREATE TABLE memberships (
    database      TEXT NOT NULL,
    group_id      TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    present       BOOLEAN NOT NULL,
    first_seen_at BIGINT NOT NULL,
    last_seen_at  BIGINT,
    removed_at    BIGINT,
    updated_run   BIGINT NOT NULL,
    PRIMARY KEY (database, group_id, user_id)
) WITHOUT ROWID;

CREATE TABLE workspaces (
    database         TEXT NOT NULL,
    workspace_id     TEXT NOT NULL,
    name             TEXT,
    default_security TEXT NOT NULL,
    raw              TEXT NOT NULL,
    hash             BIGINT NOT NULL,
    present          BOOLEAN NOT NULL,
    first_seen_at    BIGINT NOT NULL,
    last_seen_at     BIGINT,
    removed_at       BIGINT,
    updated_run      BIGINT NOT NULL,
    PRIMARY KEY (database, workspace_id)
);

CREATE TABLE workspace_entries (
    database       TEXT NOT NULL,
    workspace_id   TEXT NOT NULL,
    principal_kind TEXT NOT NULL CHECK (principal_kind IN ('user', 'group')),
    principal_id   TEXT NOT NULL,
    access         TEXT NOT NULL,
    present        BOOLEAN NOT NULL,
    first_seen_at  BIGINT NOT NULL,
    last_seen_at   BIGINT,
    removed_at     BIGINT,
    updated_run    BIGINT NOT NULL,
    PRIMARY KEY (database, workspace_id, principal_kind, principal_id)
) WITHOUT ROWID;

-- Change-log ids are handed out in commit order (a lock serializes the appends), so a reader
-- paging by id never skips a row committed later with a smaller id.
CREATE TABLE changes (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id       BIGINT NOT NULL REFERENCES runs (id),
    at           BIGINT NOT NULL,
    database     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    user_id      TEXT,
    group_id     TEXT,
    workspace_id TEXT,
    field        TEXT,
    old_value    TEXT,
    new_value    TEXT
);
CREATE INDEX changes_database_idx ON changes (database, id);
CREATE INDEX changes_user_idx ON changes (database, user_id, id) WHERE user_id IS NOT NULL;
CREATE INDEX changes_at_idx ON changes (at);

CREATE TABLE overrides (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL CHECK (kind IN ('MUST_LINK', 'CANNOT_LINK')),
    a_database TEXT NOT NULL,
    a_user_id  TEXT NOT NULL,
    b_database TEXT NOT NULL,
    b_user_id  TEXT NOT NULL,
    reason     TEXT,
    created_by TEXT,
    created_at BIGINT NOT NULL,
    -- Removed overrides are kept for the record.
    removed_at BIGINT,
    removed_by TEXT
);

-- General audit log: overrides now, write operations against iManage later.
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      BIGINT NOT NULL,
    actor   TEXT,
    action  TEXT NOT NULL,
    target  TEXT,
    detail  TEXT NOT NULL,
    outcome TEXT NOT NULL
);
CREATE INDEX audit_log_at_idx ON audit_log (at);
CREATE INDEX audit_log_target_idx ON audit_log (target, id);

-- Person ids, computed by the graph crate and only persisted here.
CREATE TABLE persons (
    person_id   TEXT PRIMARY KEY,
    created_seq BIGINT NOT NULL
) WITHOUT ROWID;

CREATE TABLE person_accounts (
    database  TEXT NOT NULL,
    user_id   TEXT NOT NULL,
    person_id TEXT NOT NULL,
    PRIMARY KEY (database, user_id)
) WITHOUT ROWID;

CREATE TABLE person_aliases (
    old_id    TEXT PRIMARY KEY,
    person_id TEXT NOT NULL
) WITHOUT ROWID;

-- Small settings (the persons' next sequence number, for one).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
