-- The commit that wrote a database's member sets (kept in step with
-- migrations/sqlite/20261128000002_member_sets_at.sql): its `last_complete_at`.
--
-- `databases.member_sets` alone cannot tell whether a later commit changed the memberships
-- without keeping the sets, as a binary older than the sets does (one still harvesting while a
-- newer replica has migrated the store, say). A commit trusts the sets only when they were
-- written by the database's last complete commit, `member_sets_at = last_complete_at`;
-- otherwise it reads every stored membership and writes the sets whole again.

ALTER TABLE databases ADD COLUMN member_sets_at BIGINT;
