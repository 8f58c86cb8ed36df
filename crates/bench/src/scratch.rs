//! A PostgreSQL database of one benchmark run: created empty on the server the run is given,
//! dropped at the end (with `FORCE`, so a server process still connected does not keep it).

use anyhow::Context;
use sqlx::Connection;

pub(crate) struct ScratchDatabase {
    admin_url: String,
    name: String,
    /// The URL of the new database.
    pub(crate) url: String,
}

impl ScratchDatabase {
    /// Creates `idgraph_bench_{section}_{pid}_{nanos}` through `admin_url`.
    pub(crate) async fn create(admin_url: &str, section: &str) -> anyhow::Result<ScratchDatabase> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos();
        let name = format!("idgraph_bench_{section}_{}_{nanos}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(admin_url)
            .await
            .context("connecting to PostgreSQL (set IDGRAPH_TEST_PG_URL or --database-url)")?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let mut url = url::Url::parse(admin_url)?;
        url.set_path(&format!("/{name}"));
        Ok(ScratchDatabase {
            admin_url: admin_url.to_string(),
            name,
            url: url.to_string(),
        })
    }

    /// Drops the database.
    pub(crate) async fn drop_database(self) -> anyhow::Result<()> {
        let mut conn = sqlx::PgConnection::connect(&self.admin_url).await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut conn)
        .await?;
        conn.close().await?;
        Ok(())
    }
}
