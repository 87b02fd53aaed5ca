//! A fresh database per test, on the engine chosen by `FRONTDESK_TEST_DB`
//! (`sqlite`, the default, or `postgres`). CI runs the whole suite once
//! per engine.

use std::path::PathBuf;

use sqlx::Connection;

/// Where the PostgreSQL test databases are created.
pub fn postgres_admin_url() -> String {
    std::env::var("FRONTDESK_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

pub enum TestDb {
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres {
        name: String,
    },
}

impl TestDb {
    pub async fn create() -> anyhow::Result<TestDb> {
        match std::env::var("FRONTDESK_TEST_DB").as_deref() {
            Ok("postgres") => {
                let name = format!("fd_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&postgres_admin_url()).await?;
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await?;
                Ok(TestDb::Postgres { name })
            }
            Ok("sqlite") | Err(_) => {
                let dir = tempfile::tempdir()?;
                let path = dir.path().join("frontdesk.db");
                Ok(TestDb::Sqlite { _dir: dir, path })
            }
            Ok(other) => anyhow::bail!("FRONTDESK_TEST_DB={other:?}: use sqlite or postgres"),
        }
    }

    pub fn url(&self) -> String {
        match self {
            TestDb::Sqlite { path, .. } => format!("sqlite://{}?mode=rwc", path.display()),
            TestDb::Postgres { name } => {
                let admin = postgres_admin_url();
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
                format!("{base}/{name}")
            }
        }
    }

    /// Drops a PostgreSQL database (SQLite files go with their temp dir).
    pub async fn drop_db(self) -> anyhow::Result<()> {
        if let TestDb::Postgres { name } = &self {
            let mut conn = sqlx::PgConnection::connect(&postgres_admin_url()).await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await?;
        }
        Ok(())
    }
}
