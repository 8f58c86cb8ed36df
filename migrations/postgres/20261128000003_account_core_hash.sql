-- Each account's hash without its group list (kept in step with
-- migrations/sqlite/20261128000003_account_core_hash.sql).
--
-- `core_hash` covers what a commit compares and logs of an account: every field and the raw
-- object except `groups`, which mirrors the memberships (logged as memberships). When an
-- account's `hash` differs from the snapshot's but its `core_hash` does not, only its groups
-- changed: the row is rewritten without being read and compared.
--
-- `core_for` is the `hash` the row had when `core_hash` was written. A binary older than
-- this column rewrites `hash` but not `core_hash`; a commit trusts `core_hash` only when
-- `core_for = hash`, and otherwise reads and compares the whole row as before. Rows stored
-- before this migration have neither, and are compared in full once.

ALTER TABLE accounts ADD COLUMN core_hash BIGINT;
ALTER TABLE accounts ADD COLUMN core_for BIGINT;
