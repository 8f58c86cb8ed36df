//! The SQL plumbing shared by the store's operations: transactions over either backend and the
//! bulk primitives (insert or upsert many rows, mark many keys removed, delete many keys, fetch
//! rows by key) with one implementation per backend.
//!
//! PostgreSQL gets `COPY` for fresh rows and `UNNEST`-ed arrays for upserts and key lists, so a
//! statement carries a whole batch. SQLite gets multi-row statements with as many parameters as
//! it allows, reusing one prepared statement per batch size; values every row shares (the
//! database, the time, the run) are bound once per statement.
//!
//! Table and column names in the SQL built here are `'static` strings from this crate; data only
//! ever travels as bound parameters or in the `COPY` stream (binary format).

use std::borrow::Cow;

use std::ops::{Deref, DerefMut};

use sqlx::pool::PoolConnection;
use sqlx::{Database, Executor, PgConnection, Postgres, Sqlite, SqliteConnection};
use tokio::sync::OwnedMutexGuard;

use crate::error::Result;

/// SQLite's limit on parameters per statement (`SQLITE_MAX_VARIABLE_NUMBER` since 3.32).
const SQLITE_MAX_PARAMS: usize = 32_766;
/// Rows per SQLite statement at most: larger statements stop paying off and cost memory.
const SQLITE_MAX_ROWS: usize = 2_000;
/// Rows per PostgreSQL `UNNEST` statement.
const PG_BATCH_ROWS: usize = 20_000;
/// Bytes buffered before a `COPY` chunk is sent.
const PG_COPY_CHUNK: usize = 1 << 20;

/// The type of a column, as far as binding goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Text,
    Int,
    Bool,
}

impl Ty {
    fn pg_array(self) -> &'static str {
        match self {
            Ty::Text => "text[]",
            Ty::Int => "int8[]",
            Ty::Bool => "bool[]",
        }
    }

    fn pg_scalar(self) -> &'static str {
        match self {
            Ty::Text => "text",
            Ty::Int => "int8",
            Ty::Bool => "bool",
        }
    }
}

/// One value to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Val<'a> {
    Text(Option<&'a str>),
    Int(Option<i64>),
    Bool(bool),
}

impl Val<'_> {
    fn ty(&self) -> Ty {
        match self {
            Val::Text(_) => Ty::Text,
            Val::Int(_) => Ty::Int,
            Val::Bool(_) => Ty::Bool,
        }
    }
}

/// Where a column's value comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Slot {
    /// The statement-wide value at this index of [`Insert::shared`].
    Shared(usize),
    /// The next value the row supplies.
    Row(Ty),
}

/// A table's insert layout.
#[derive(Debug)]
pub(crate) struct Table {
    pub name: &'static str,
    pub columns: &'static [(&'static str, Slot)],
    /// What follows `ON CONFLICT ` for upserts; `None` for append-only tables.
    pub on_conflict: Option<&'static str>,
}

impl Table {
    fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|(c, _)| *c)
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn row_types(&self) -> Vec<Ty> {
        self.columns
            .iter()
            .filter_map(|(_, s)| match s {
                Slot::Row(t) => Some(*t),
                Slot::Shared(_) => None,
            })
            .collect()
    }
}

/// Whether the rows are known not to exist yet (so PostgreSQL can `COPY` them) or may conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Fresh,
    Upsert,
}

/// A pooled connection inside a transaction this crate opened with its own `BEGIN`.
///
/// sqlx's own transactions are not safe to cancel: a future dropped in the middle of a statement
/// or a `COPY` (a request timing out, a task aborted at shutdown) can put the connection back in
/// the pool with the protocol out of step or, on SQLite, with a `BEGIN` that nobody will ever
/// roll back, still holding the file's write lock. Here, a transaction dropped before its commit
/// finished closes its connection instead: the server (or SQLite) rolls the transaction back, and
/// the pool opens a fresh connection when it needs one. A transaction dropped while its `COMMIT`
/// is already with the database (SQLite's worker thread, or the server) may still commit, a
/// moment after the drop: whole, like any other, with the run outcome it wrote. Errors take the
/// same path, which costs a reconnect on a path that is rare anyway.
///
/// The exception is an in-memory SQLite database, which lives only as long as its one
/// connection: there the connection stays, and the next transaction first rolls back whatever
/// an abandoned one left open.
pub(crate) struct Open<DB: Database> {
    conn: PoolConnection<DB>,
    committed: bool,
    keep_connection: bool,
}

impl<DB: Database> Open<DB> {
    /// Runs `begin` on `conn`. If this future is dropped halfway, the connection closes.
    pub(crate) async fn begin(conn: PoolConnection<DB>, begin: &'static str) -> Result<Self>
    where
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    {
        let mut open = Open {
            conn,
            committed: false,
            keep_connection: false,
        };
        (&mut *open.conn).execute(begin).await?;
        Ok(open)
    }

    /// Like [`Open::begin`], but for a connection that must never be closed (in-memory SQLite).
    pub(crate) async fn begin_keeping(conn: PoolConnection<DB>, begin: &'static str) -> Result<Self>
    where
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    {
        let mut open = Open {
            conn,
            committed: false,
            keep_connection: true,
        };
        // Outside a transaction this fails harmlessly ("no transaction is active").
        let _ = (&mut *open.conn).execute("ROLLBACK").await;
        (&mut *open.conn).execute(begin).await?;
        Ok(open)
    }

    async fn commit(mut self) -> Result<()>
    where
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    {
        (&mut *self.conn).execute("COMMIT").await?;
        self.committed = true;
        Ok(())
    }
}

impl<DB: Database> Deref for Open<DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        &self.conn
    }
}

impl<DB: Database> DerefMut for Open<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.conn
    }
}

impl<DB: Database> Drop for Open<DB> {
    fn drop(&mut self) {
        if !self.committed && !self.keep_connection {
            self.conn.close_on_drop();
        }
    }
}

/// A transaction on either backend. For SQLite it also holds this process's writer lock (for
/// write transactions), so writers queue in-process instead of spinning on `SQLITE_BUSY`.
pub(crate) enum Tx {
    Sqlite(Open<Sqlite>, Option<OwnedMutexGuard<()>>),
    Postgres(Open<Postgres>),
}

/// Runs the same body against whichever backend's connection a [`Tx`] holds. The body is
/// compiled once per backend, so it may use backend-specific types as long as the code reads the
/// same for both.
macro_rules! on_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::sql::Tx::Sqlite(t, _) => {
                let $conn = &mut **t;
                $body
            }
            $crate::sql::Tx::Postgres(t) => {
                let $conn = &mut **t;
                $body
            }
        }
    };
}
pub(crate) use on_tx;

impl Tx {
    pub(crate) async fn commit(self) -> Result<()> {
        match self {
            // The writer lock is released only after the commit.
            Tx::Sqlite(t, _guard) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self, Tx::Postgres(_))
    }

    /// Writes `rows`, each turned into values by `fill` in the order of the table's `Row` slots.
    pub(crate) async fn write_rows<'a, T>(
        &mut self,
        table: &Table,
        shared: &[Val<'a>],
        rows: &'a [T],
        mode: Mode,
        fill: impl Fn(&'a T, &mut Vec<Val<'a>>),
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        match self {
            Tx::Postgres(t) => {
                if mode == Mode::Fresh || table.on_conflict.is_none() {
                    pg_copy(t, table, shared, rows, fill).await
                } else {
                    pg_unnest_upsert(t, table, shared, rows, fill).await
                }
            }
            Tx::Sqlite(t, _) => sqlite_insert(t, table, shared, rows, mode, fill).await,
        }
    }

    /// Runs `UPDATE table SET {set} WHERE {filter} AND (key columns) match one of `keys``.
    /// `set` and `filter` use `$1..$n` for `params`.
    pub(crate) async fn update_keys(
        &mut self,
        table: &'static str,
        set: &'static str,
        filter: &'static str,
        params: &[Val<'_>],
        key_cols: &[&'static str],
        keys: &[Vec<&str>],
    ) -> Result<u64> {
        let head = format!("UPDATE {table} SET {set} WHERE {filter} AND ");
        self.by_keys(head, params, key_cols, keys).await
    }

    /// Runs `DELETE FROM table WHERE (key columns) match one of `keys``.
    pub(crate) async fn delete_keys(
        &mut self,
        table: &'static str,
        key_cols: &[&'static str],
        keys: &[Vec<&str>],
    ) -> Result<u64> {
        let head = format!("DELETE FROM {table} WHERE ");
        self.by_keys(head, &[], key_cols, keys).await
    }

    async fn by_keys(
        &mut self,
        head: String,
        params: &[Val<'_>],
        key_cols: &[&'static str],
        keys: &[Vec<&str>],
    ) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let n = key_cols.len();
        let mut affected = 0;
        match self {
            Tx::Postgres(t) => {
                // (c0, c1) IN (SELECT * FROM UNNEST($k::text[], ...)) keeps one statement per
                // batch whatever its size.
                let first = params.len() + 1;
                let arrays: Vec<String> =
                    (0..n).map(|i| format!("${}::text[]", first + i)).collect();
                let sql = format!(
                    "{head}({}) IN (SELECT * FROM UNNEST({}))",
                    key_cols.join(", "),
                    arrays.join(", ")
                );
                for chunk in keys.chunks(PG_BATCH_ROWS) {
                    let mut q = sqlx::query(&sql);
                    for p in params {
                        q = bind_pg(q, *p);
                    }
                    for i in 0..n {
                        let col: Vec<Cow<'_, str>> = chunk.iter().map(|k| pg_text(k[i])).collect();
                        q = q.bind(col);
                    }
                    affected += q.execute(&mut **t).await?.rows_affected();
                }
            }
            Tx::Sqlite(t, _) => {
                let (head, order) = anonymize(&head);
                let per_stmt = ((SQLITE_MAX_PARAMS - order.len()) / n).clamp(1, SQLITE_MAX_ROWS);
                let mut sql = String::new();
                let mut sql_rows = 0;
                for chunk in keys.chunks(per_stmt) {
                    if sql_rows != chunk.len() {
                        sql = sqlite_keys_sql(&head, key_cols, chunk.len());
                        sql_rows = chunk.len();
                    }
                    // Only full batches repeat; an odd-sized last one is not worth caching.
                    let mut q = sqlx::query(&sql).persistent(chunk.len() == per_stmt);
                    for &i in &order {
                        q = bind_sqlite(q, params.get(i).copied().unwrap_or(Val::Text(None)));
                    }
                    for k in chunk {
                        for v in k {
                            q = q.bind(*v);
                        }
                    }
                    affected += q.execute(&mut **t).await?.rows_affected();
                }
            }
        }
        Ok(affected)
    }
}

fn sqlite_keys_sql(head: &str, key_cols: &[&str], rows: usize) -> String {
    let tuple = format!("({})", vec!["?"; key_cols.len()].join(", "));
    let mut sql = format!("{head}({}) IN (VALUES ", key_cols.join(", "));
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&tuple);
    }
    sql.push(')');
    sql
}

/// Rewrites `$n` parameters as anonymous `?` and returns the parameter index each `?` takes,
/// in order. SQLite looks named and numbered parameters up in a list, linearly, once per
/// parameter when binding, which makes a statement with thousands of them quadratic; anonymous
/// ones are not in that list.
fn anonymize(sql: &str) -> (String, Vec<usize>) {
    let mut out = String::with_capacity(sql.len());
    let mut order = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            let mut n = 0usize;
            while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                n = n * 10 + d as usize;
                chars.next();
            }
            out.push('?');
            order.push(n.saturating_sub(1));
        } else {
            out.push(c);
        }
    }
    (out, order)
}

/// PostgreSQL's text type cannot hold NUL; drop it rather than fail a whole harvest over one
/// odd character.
fn pg_text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', ""))
    } else {
        Cow::Borrowed(s)
    }
}

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;
type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

fn bind_pg<'q>(q: PgQuery<'q>, v: Val<'q>) -> PgQuery<'q> {
    match v {
        Val::Text(s) => q.bind(s.map(pg_text)),
        Val::Int(i) => q.bind(i),
        Val::Bool(b) => q.bind(b),
    }
}

fn bind_sqlite<'q>(q: SqliteQuery<'q>, v: Val<'q>) -> SqliteQuery<'q> {
    match v {
        Val::Text(s) => q.bind(s),
        Val::Int(i) => q.bind(i),
        Val::Bool(b) => q.bind(b),
    }
}

/// The signature, flags and header extension length that open a binary `COPY` stream.
const PG_COPY_BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Appends one field in `COPY`'s binary format: its length in bytes (-1 for NULL), then the
/// value as the column type's binary input reads it (`text`: its UTF-8 bytes, without NUL;
/// `bigint`: 8 bytes big-endian; `boolean`: one byte). Binary fields spare the server parsing
/// text into numbers and booleans and unescaping strings (about a tenth more rows a second in
/// `idgraph-bench store`).
fn copy_value(buf: &mut Vec<u8>, v: &Val<'_>) {
    match v {
        Val::Text(None) | Val::Int(None) => buf.extend_from_slice(&PG_COPY_NULL),
        Val::Text(Some(s)) => {
            let s = pg_text(s);
            // A field cannot exceed PostgreSQL's 1 GB limit anyway; the server refuses it.
            let len = i32::try_from(s.len()).unwrap_or(i32::MAX);
            buf.extend_from_slice(&len.to_be_bytes());
            buf.extend_from_slice(s.as_bytes());
        }
        Val::Int(Some(i)) => {
            buf.extend_from_slice(&8i32.to_be_bytes());
            buf.extend_from_slice(&i.to_be_bytes());
        }
        Val::Bool(b) => {
            buf.extend_from_slice(&1i32.to_be_bytes());
            buf.push(u8::from(*b));
        }
    }
}

/// A NULL field: a length of -1. Also written where a layout bug leaves a column without a
/// value, so that NOT NULL columns make the server reject the row loudly.
const PG_COPY_NULL: [u8; 4] = (-1i32).to_be_bytes();

async fn pg_copy<'a, T>(
    t: &mut PgConnection,
    table: &Table,
    shared: &[Val<'a>],
    rows: &'a [T],
    fill: impl Fn(&'a T, &mut Vec<Val<'a>>),
) -> Result<()> {
    let sql = format!(
        "COPY {} ({}) FROM STDIN (FORMAT binary)",
        table.name,
        table.column_list()
    );
    // The values every row shares, encoded once rather than once a row.
    let shared_fields: Vec<Vec<u8>> = shared
        .iter()
        .map(|v| {
            let mut b = Vec::new();
            copy_value(&mut b, v);
            b
        })
        .collect();
    // Every table has far fewer than i16::MAX columns.
    let field_count = i16::try_from(table.columns.len())
        .unwrap_or(i16::MAX)
        .to_be_bytes();
    let mut copy = t.copy_in_raw(&sql).await?;
    let mut buf: Vec<u8> = Vec::with_capacity(PG_COPY_CHUNK + 4096);
    buf.extend_from_slice(PG_COPY_BINARY_HEADER);
    let mut vals: Vec<Val<'a>> = Vec::with_capacity(table.columns.len());
    for row in rows {
        vals.clear();
        fill(row, &mut vals);
        let mut next = vals.iter();
        buf.extend_from_slice(&field_count);
        for (_, slot) in table.columns {
            match slot {
                Slot::Shared(j) => match shared_fields.get(*j) {
                    Some(field) => buf.extend_from_slice(field),
                    None => buf.extend_from_slice(&PG_COPY_NULL),
                },
                Slot::Row(_) => match next.next() {
                    Some(v) => copy_value(&mut buf, v),
                    None => buf.extend_from_slice(&PG_COPY_NULL),
                },
            }
        }
        debug_assert!(next.next().is_none(), "row supplied too many values");
        if buf.len() >= PG_COPY_CHUNK {
            copy.send(std::mem::take(&mut buf)).await?;
            buf.reserve(PG_COPY_CHUNK + 4096);
        }
    }
    // The trailer: a field count of -1.
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    copy.send(buf).await?;
    copy.finish().await?;
    Ok(())
}

/// One column of an `UNNEST` batch.
enum PgArray<'a> {
    Text(Vec<Option<Cow<'a, str>>>),
    Int(Vec<Option<i64>>),
    Bool(Vec<bool>),
}

async fn pg_unnest_upsert<'a, T>(
    t: &mut PgConnection,
    table: &Table,
    shared: &[Val<'a>],
    rows: &'a [T],
    fill: impl Fn(&'a T, &mut Vec<Val<'a>>),
) -> Result<()> {
    let types = table.row_types();
    let mut exprs = Vec::with_capacity(table.columns.len());
    let mut aliases = Vec::with_capacity(types.len());
    let mut arrays = Vec::with_capacity(types.len());
    let mut r = 0;
    for (_, slot) in table.columns {
        match slot {
            Slot::Shared(j) => {
                let ty = shared.get(*j).map_or(Ty::Text, Val::ty);
                exprs.push(format!("${}::{}", j + 1, ty.pg_scalar()));
            }
            Slot::Row(ty) => {
                exprs.push(format!("u.c{r}"));
                aliases.push(format!("c{r}"));
                arrays.push(format!("${}::{}", shared.len() + 1 + r, ty.pg_array()));
                r += 1;
            }
        }
    }
    let mut sql = format!(
        "INSERT INTO {} ({}) SELECT {} FROM UNNEST({}) AS u({})",
        table.name,
        table.column_list(),
        exprs.join(", "),
        arrays.join(", "),
        aliases.join(", ")
    );
    if let Some(c) = table.on_conflict {
        sql.push_str(" ON CONFLICT ");
        sql.push_str(c);
    }
    let mut vals: Vec<Val<'a>> = Vec::with_capacity(types.len());
    for chunk in rows.chunks(PG_BATCH_ROWS) {
        let mut cols: Vec<PgArray<'a>> = types
            .iter()
            .map(|t| match t {
                Ty::Text => PgArray::Text(Vec::with_capacity(chunk.len())),
                Ty::Int => PgArray::Int(Vec::with_capacity(chunk.len())),
                Ty::Bool => PgArray::Bool(Vec::with_capacity(chunk.len())),
            })
            .collect();
        for row in chunk {
            vals.clear();
            fill(row, &mut vals);
            debug_assert_eq!(
                vals.len(),
                cols.len(),
                "row supplied the wrong number of values"
            );
            for (col, v) in cols.iter_mut().zip(vals.iter()) {
                match (col, v) {
                    (PgArray::Text(c), Val::Text(s)) => c.push(s.map(pg_text)),
                    (PgArray::Int(c), Val::Int(i)) => c.push(*i),
                    (PgArray::Bool(c), Val::Bool(b)) => c.push(*b),
                    // A layout bug: keep the arrays aligned and let NOT NULL catch it.
                    (PgArray::Text(c), _) => c.push(None),
                    (PgArray::Int(c), _) => c.push(None),
                    (PgArray::Bool(c), _) => c.push(false),
                }
            }
        }
        let mut q = sqlx::query(&sql);
        for v in shared {
            q = bind_pg(q, *v);
        }
        for col in cols {
            q = match col {
                PgArray::Text(c) => q.bind(c),
                PgArray::Int(c) => q.bind(c),
                PgArray::Bool(c) => q.bind(c),
            };
        }
        q.execute(&mut *t).await?;
    }
    Ok(())
}

/// `INSERT INTO t (...) VALUES (?, ...), (?, ...) [ON CONFLICT ...]`, all parameters
/// anonymous (see [`anonymize`] for why); shared values are bound again for every row.
fn sqlite_insert_sql(table: &Table, rows: usize, upsert: bool) -> String {
    let tuple = format!("({})", vec!["?"; table.columns.len()].join(", "));
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES ",
        table.name,
        table.column_list()
    );
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&tuple);
    }
    if upsert {
        if let Some(c) = table.on_conflict {
            sql.push_str(" ON CONFLICT ");
            sql.push_str(c);
        }
    }
    sql
}

async fn sqlite_insert<'a, T>(
    t: &mut SqliteConnection,
    table: &Table,
    shared: &[Val<'a>],
    rows: &'a [T],
    mode: Mode,
    fill: impl Fn(&'a T, &mut Vec<Val<'a>>),
) -> Result<()> {
    let per_row = table.row_types().len();
    let per_stmt = (SQLITE_MAX_PARAMS / table.columns.len().max(1)).clamp(1, SQLITE_MAX_ROWS);
    let upsert = mode == Mode::Upsert;
    let mut sql = String::new();
    let mut sql_rows = 0;
    let mut vals: Vec<Val<'a>> = Vec::with_capacity(per_row);
    for chunk in rows.chunks(per_stmt) {
        if sql_rows != chunk.len() {
            sql = sqlite_insert_sql(table, chunk.len(), upsert);
            sql_rows = chunk.len();
        }
        // Only full batches repeat; an odd-sized last one is not worth caching.
        let mut q = sqlx::query(&sql).persistent(chunk.len() == per_stmt);
        for row in chunk {
            vals.clear();
            fill(row, &mut vals);
            debug_assert_eq!(
                vals.len(),
                per_row,
                "row supplied the wrong number of values"
            );
            let mut next = vals.iter();
            for (_, slot) in table.columns {
                let v = match slot {
                    Slot::Shared(j) => shared.get(*j),
                    Slot::Row(_) => next.next(),
                };
                // A missing value is a layout bug; NULL lets NOT NULL catch it.
                q = bind_sqlite(q, v.copied().unwrap_or(Val::Text(None)));
            }
        }
        q.execute(&mut *t).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_binary_fields_drop_nul_and_use_network_order() {
        let mut buf = Vec::new();
        copy_value(&mut buf, &Val::Text(Some("a\tb\0é")));
        copy_value(&mut buf, &Val::Text(None));
        copy_value(&mut buf, &Val::Int(Some(-42)));
        copy_value(&mut buf, &Val::Int(None));
        copy_value(&mut buf, &Val::Bool(true));
        let mut expected = Vec::new();
        expected.extend_from_slice(&[0, 0, 0, 5, b'a', b'\t', b'b', 0xc3, 0xa9]);
        expected.extend_from_slice(&[0xff; 4]);
        expected.extend_from_slice(&[0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xd6]);
        expected.extend_from_slice(&[0xff; 4]);
        expected.extend_from_slice(&[0, 0, 0, 1, 1]);
        assert_eq!(buf, expected);
        assert_eq!(PG_COPY_BINARY_HEADER.len(), 19);
    }

    #[test]
    fn sqlite_sql_uses_anonymous_parameters() {
        const T: Table = Table {
            name: "m",
            columns: &[
                ("database", Slot::Shared(0)),
                ("g", Slot::Row(Ty::Text)),
                ("u", Slot::Row(Ty::Text)),
                ("run", Slot::Shared(1)),
            ],
            on_conflict: Some("(database, g, u) DO NOTHING"),
        };
        assert_eq!(
            sqlite_insert_sql(&T, 2, true),
            "INSERT INTO m (database, g, u, run) VALUES (?, ?, ?, ?), (?, ?, ?, ?) \
             ON CONFLICT (database, g, u) DO NOTHING"
        );
        assert_eq!(
            sqlite_keys_sql("DELETE FROM m WHERE ", &["g", "u"], 2),
            "DELETE FROM m WHERE (g, u) IN (VALUES (?, ?), (?, ?))"
        );
        assert_eq!(
            anonymize("SET a = $2, b = $12 WHERE d = $1 AND "),
            (
                "SET a = ?, b = ? WHERE d = ? AND ".to_owned(),
                vec![1, 11, 0]
            )
        );
    }
}
