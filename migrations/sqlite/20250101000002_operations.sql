-- Write operations against iManage (offboard a person, provision a person, sync a group), kept in
-- step with migrations/postgres/20250101000002_operations.sql.
--
-- An operation is planned first: one row here and one `operation_steps` row per discrete API call,
-- status `planned`. Applying it runs the steps one at a time in `step` order: a step is marked
-- `started` before its call and `done` or `failed` after it, in the same transaction as the audit
-- entry recording the call. A step left `started` is one whose outcome is unknown (the process
-- died between the call and the record); a re-run checks iManage's real state before repeating it.
--
-- `lease_token` and `heartbeat_at` say who is applying the operation now: a `running` operation
-- whose heartbeat is recent belongs to a live process, one whose heartbeat is old was abandoned
-- and may be taken over. JSON columns are TEXT, as in the first migration.

CREATE TABLE operations (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('planned', 'running', 'completed', 'failed')),
    summary      TEXT NOT NULL,
    -- The request the plan was made from, and the problems found while planning (JSON).
    request      TEXT NOT NULL,
    problems     TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    created_by   TEXT,
    -- The actor of the latest apply, how many applies there were, and when the first started and
    -- the latest finished.
    applied_by   TEXT,
    apply_count  BIGINT NOT NULL DEFAULT 0,
    started_at   BIGINT,
    finished_at  BIGINT,
    lease_token  TEXT,
    heartbeat_at BIGINT
);
CREATE INDEX operations_status_idx ON operations (status, id);

CREATE TABLE operation_steps (
    operation_id    BIGINT NOT NULL REFERENCES operations (id),
    step            BIGINT NOT NULL,
    database        TEXT NOT NULL,
    -- The call as JSON (what the plan listed) and a note for people.
    call            TEXT NOT NULL,
    note            TEXT,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'started', 'done', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    started_at      BIGINT,
    finished_at     BIGINT,
    -- The outcome (JSON) of a done step, the error (JSON) of a failed one.
    result          TEXT,
    error           TEXT,
    -- The id a `create user` step got, for the later steps that refer to it.
    created_user_id TEXT,
    PRIMARY KEY (operation_id, step)
) WITHOUT ROWID;
