//! Persisting person ids. The graph crate decides them; the store keeps them across restarts so
//! that ids stay stable, writing only what changed since the last save.

use std::collections::HashMap;
use std::hash::Hash;

use futures::TryStreamExt;
use model::AccountKey;

use crate::error::{Error, Result};
use crate::sql::{on_tx, Mode, Tx, Val};
use crate::tables;
use crate::types::PersonIds;
use crate::{Store, LOCK_NAMESPACE, LOCK_PERSONS};

const NEXT_SEQ_KEY: &str = "persons.next_seq";

async fn pairs(tx: &mut Tx, sql: &str) -> Result<Vec<(String, String)>> {
    let rows = on_tx!(tx, c => {
        sqlx::query_as::<_, (String, String)>(sql).fetch(c).try_collect().await?
    });
    Ok(rows)
}

async fn account_rows(tx: &mut Tx) -> Result<Vec<(String, String, String)>> {
    let rows = on_tx!(tx, c => {
        sqlx::query_as::<_, (String, String, String)>(
            "SELECT database, user_id, person_id FROM person_accounts ORDER BY database, user_id",
        )
        .fetch(c)
        .try_collect()
        .await?
    });
    Ok(rows)
}

async fn created_rows(tx: &mut Tx) -> Result<Vec<(String, i64)>> {
    let rows = on_tx!(tx, c => {
        sqlx::query_as::<_, (String, i64)>(
            "SELECT person_id, created_seq FROM persons ORDER BY created_seq, person_id",
        )
        .fetch(c)
        .try_collect()
        .await?
    });
    Ok(rows)
}

async fn next_seq(tx: &mut Tx) -> Result<Option<i64>> {
    let v: Option<String> = on_tx!(tx, c => {
        sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(NEXT_SEQ_KEY)
            .fetch_optional(c)
            .await?
    });
    v.map(|s| {
        s.parse::<i64>()
            .map_err(|e| Error::corrupt("meta.persons.next_seq", e))
    })
    .transpose()
}

/// The stored person ids, ordered by key.
pub(crate) async fn load(tx: &mut Tx) -> Result<PersonIds> {
    let by_account = account_rows(tx)
        .await?
        .into_iter()
        .map(|(d, u, p)| (AccountKey::new(d, u), p))
        .collect();
    let aliases = pairs(
        tx,
        "SELECT old_id, person_id FROM person_aliases ORDER BY old_id",
    )
    .await?;
    let created = created_rows(tx).await?;
    // Without a stored counter, continue after the largest sequence number handed out.
    let next_seq = match next_seq(tx).await? {
        Some(n) => n,
        None => created.iter().map(|(_, s)| s + 1).max().unwrap_or(0),
    };
    Ok(PersonIds {
        by_account,
        aliases,
        created,
        next_seq,
    })
}

/// The difference between a stored map and a wanted one: keys to write (split by whether they
/// exist yet) and keys to delete.
struct MapDiff<K, V> {
    fresh: Vec<(K, V)>,
    changed: Vec<(K, V)>,
    gone: Vec<K>,
}

fn diff_maps<K: Hash + Eq + Clone, V: PartialEq + Clone>(
    stored: &HashMap<K, V>,
    wanted: &HashMap<K, V>,
) -> MapDiff<K, V> {
    let mut d = MapDiff {
        fresh: Vec::new(),
        changed: Vec::new(),
        gone: Vec::new(),
    };
    for (k, v) in wanted {
        match stored.get(k) {
            None => d.fresh.push((k.clone(), v.clone())),
            Some(old) if old != v => d.changed.push((k.clone(), v.clone())),
            Some(_) => {}
        }
    }
    d.gone = stored
        .keys()
        .filter(|k| !wanted.contains_key(*k))
        .cloned()
        .collect();
    d
}

fn fill_account<'a>(r: &'a ((String, String), String), out: &mut Vec<Val<'a>>) {
    out.extend([
        Val::Text(Some(&r.0 .0)),
        Val::Text(Some(&r.0 .1)),
        Val::Text(Some(&r.1)),
    ]);
}

fn fill_pair<'a>(r: &'a (String, String), out: &mut Vec<Val<'a>>) {
    out.extend([Val::Text(Some(&r.0)), Val::Text(Some(&r.1))]);
}

fn fill_created<'a>(r: &'a (String, i64), out: &mut Vec<Val<'a>>) {
    out.extend([Val::Text(Some(&r.0)), Val::Int(Some(r.1))]);
}

impl Store {
    /// Replaces the stored person ids with `persons`, in one transaction, writing only the
    /// difference. A key repeated within `persons` keeps its last value.
    pub async fn save_persons(&self, persons: &PersonIds) -> Result<()> {
        let mut tx = self.begin_write().await?;
        if let Tx::Postgres(t) = &mut tx {
            // Two replicas saving at once would each diff against the same old state.
            sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
                .bind(LOCK_NAMESPACE)
                .bind(LOCK_PERSONS)
                .execute(&mut **t)
                .await?;
        }

        let stored: HashMap<(String, String), String> = account_rows(&mut tx)
            .await?
            .into_iter()
            .map(|(d, u, p)| ((d, u), p))
            .collect();
        let wanted: HashMap<(String, String), String> = persons
            .by_account
            .iter()
            .map(|(k, p)| ((k.database.clone(), k.user_id.clone()), p.clone()))
            .collect();
        let d = diff_maps(&stored, &wanted);
        drop((stored, wanted));
        tx.write_rows(
            &tables::PERSON_ACCOUNTS,
            &[],
            &d.fresh,
            Mode::Fresh,
            fill_account,
        )
        .await?;
        tx.write_rows(
            &tables::PERSON_ACCOUNTS,
            &[],
            &d.changed,
            Mode::Upsert,
            fill_account,
        )
        .await?;
        let gone: Vec<Vec<&str>> = d
            .gone
            .iter()
            .map(|(a, b)| vec![a.as_str(), b.as_str()])
            .collect();
        tx.delete_keys("person_accounts", &["database", "user_id"], &gone)
            .await?;

        let stored: HashMap<String, String> =
            pairs(&mut tx, "SELECT old_id, person_id FROM person_aliases")
                .await?
                .into_iter()
                .collect();
        let wanted: HashMap<String, String> = persons.aliases.iter().cloned().collect();
        let d = diff_maps(&stored, &wanted);
        tx.write_rows(
            &tables::PERSON_ALIASES,
            &[],
            &d.fresh,
            Mode::Fresh,
            fill_pair,
        )
        .await?;
        tx.write_rows(
            &tables::PERSON_ALIASES,
            &[],
            &d.changed,
            Mode::Upsert,
            fill_pair,
        )
        .await?;
        let gone: Vec<Vec<&str>> = d.gone.iter().map(|k| vec![k.as_str()]).collect();
        tx.delete_keys("person_aliases", &["old_id"], &gone).await?;

        let stored: HashMap<String, i64> = created_rows(&mut tx).await?.into_iter().collect();
        let wanted: HashMap<String, i64> = persons.created.iter().cloned().collect();
        let d = diff_maps(&stored, &wanted);
        tx.write_rows(&tables::PERSONS, &[], &d.fresh, Mode::Fresh, fill_created)
            .await?;
        tx.write_rows(
            &tables::PERSONS,
            &[],
            &d.changed,
            Mode::Upsert,
            fill_created,
        )
        .await?;
        let gone: Vec<Vec<&str>> = d.gone.iter().map(|k| vec![k.as_str()]).collect();
        tx.delete_keys("persons", &["person_id"], &gone).await?;

        let seq = persons.next_seq.to_string();
        on_tx!(&mut tx, c => {
            sqlx::query(
                "INSERT INTO meta (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(NEXT_SEQ_KEY)
            .bind(&seq)
            .execute(c)
            .await?
            .rows_affected()
        });
        tx.commit().await
    }

    /// The stored person ids, ordered by key.
    pub async fn persons(&self) -> Result<PersonIds> {
        let mut tx = self.begin_read().await?;
        let p = load(&mut tx).await?;
        tx.commit().await?;
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_diff_splits_fresh_changed_and_gone() {
        let stored: HashMap<&str, i32> = [("a", 1), ("b", 2), ("c", 3)].into_iter().collect();
        let wanted: HashMap<&str, i32> = [("a", 1), ("b", 5), ("d", 4)].into_iter().collect();
        let d = diff_maps(&stored, &wanted);
        assert_eq!(d.fresh, [("d", 4)]);
        assert_eq!(d.changed, [("b", 5)]);
        assert_eq!(d.gone, ["c"]);
    }
}
