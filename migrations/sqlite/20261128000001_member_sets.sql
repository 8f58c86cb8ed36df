-- Each account's present memberships of a database, transposed (kept in step with
-- migrations/postgres/20261128000001_member_sets.sql).
--
-- A harvest changes a few memberships spread over nearly every group, but touches only a few
-- users. A commit compares each user's digest of its groups in the snapshot with the one stored
-- here and reads the stored group list only of the users whose digest differs, instead of every
-- stored membership. A row exists for every user with at least one present membership;
-- `group_ids` is a JSON array of those group ids, sorted, and `digest` their 64-bit hash.
--
-- `databases.member_sets` says the rows of that database are complete. Memberships stored
-- before this migration have none; the next commit of such a database reads every stored
-- membership, as before, and fills them in.

CREATE TABLE member_sets (
    database  TEXT NOT NULL,
    user_id   TEXT NOT NULL,
    digest    BIGINT NOT NULL,
    group_ids TEXT NOT NULL,
    PRIMARY KEY (database, user_id)
) WITHOUT ROWID;

ALTER TABLE databases ADD COLUMN member_sets BOOLEAN NOT NULL DEFAULT FALSE;
