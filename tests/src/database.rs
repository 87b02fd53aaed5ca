//! What a test gateway keeps between runs: a fresh database per test, on
//! the engine chosen by `FRONTDESK_TEST_DB` (`sqlite`, the default, or
//! `postgres`; CI runs the whole suite once per engine), and its own
//! temporary data directory (uploaded files, the link-signing key, the
//! SQLite file). A test that restarts a gateway hands the same [`TestDb`]
//! to the next one, so the restart sees the same data; no test gateway
//! ever writes into the source tree.

use std::path::{Path, PathBuf};

use sqlx::Connection;

/// Where the PostgreSQL test databases are created.
pub fn postgres_admin_url() -> String {
    std::env::var("FRONTDESK_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The database engine of a [`TestDb`] (also a command-line value of the
/// benchmarks: `sqlite`, `postgres`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DbEngine {
    Sqlite,
    Postgres,
}

impl std::fmt::Display for DbEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DbEngine::Sqlite => "sqlite",
            DbEngine::Postgres => "postgres",
        })
    }
}

impl DbEngine {
    /// The engine `FRONTDESK_TEST_DB` names (SQLite when unset).
    pub fn from_env() -> anyhow::Result<DbEngine> {
        match std::env::var("FRONTDESK_TEST_DB").as_deref() {
            Ok("sqlite") | Err(_) => Ok(DbEngine::Sqlite),
            Ok("postgres") => Ok(DbEngine::Postgres),
            Ok(other) => anyhow::bail!("FRONTDESK_TEST_DB={other:?}: use sqlite or postgres"),
        }
    }
}

/// Whether a test of several gateway nodes runs in this run: nodes share
/// PostgreSQL only, so only when `FRONTDESK_TEST_DB=postgres` (the suite's
/// PostgreSQL run); otherwise it says it is skipped and the test returns.
pub fn several_nodes_run() -> bool {
    let postgres = matches!(DbEngine::from_env(), Ok(DbEngine::Postgres));
    if !postgres {
        eprintln!("skipped: several nodes share PostgreSQL only (FRONTDESK_TEST_DB=postgres)");
    }
    postgres
}

/// A test database and the gateway's data directory; the directory (with
/// a SQLite database in it) is removed on drop, a PostgreSQL database by
/// [`TestDb::drop_db`].
pub struct TestDb {
    dir: tempfile::TempDir,
    /// The admin URL of the server and the database's name.
    postgres: Option<(String, String)>,
    /// Another node's view of a database it does not own (never dropped).
    shared: bool,
}

impl TestDb {
    /// On the engine `FRONTDESK_TEST_DB` names.
    pub async fn create() -> anyhow::Result<TestDb> {
        Self::create_on(DbEngine::from_env()?).await
    }

    pub async fn create_on(engine: DbEngine) -> anyhow::Result<TestDb> {
        let dir = tempfile::Builder::new()
            .prefix("frontdesk-test-")
            .tempdir()?;
        match engine {
            DbEngine::Sqlite => Ok(TestDb {
                dir,
                postgres: None,
                shared: false,
            }),
            DbEngine::Postgres => Self::create_in(dir, &postgres_admin_url()).await,
        }
    }

    /// A fresh database on the PostgreSQL server of `admin_url` (a
    /// [`crate::postgres::PgServer`] of the test's own).
    pub async fn create_on_server(admin_url: &str) -> anyhow::Result<TestDb> {
        let dir = tempfile::Builder::new()
            .prefix("frontdesk-test-")
            .tempdir()?;
        Self::create_in(dir, admin_url).await
    }

    async fn create_in(dir: tempfile::TempDir, admin_url: &str) -> anyhow::Result<TestDb> {
        let name = format!("fd_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(admin_url).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        Ok(TestDb {
            dir,
            postgres: Some((admin_url.to_owned(), name)),
            shared: false,
        })
    }

    /// The same PostgreSQL database for a second gateway node, with a data
    /// directory of its own; dropping it leaves the database to its owner.
    pub fn sharing(&self) -> anyhow::Result<TestDb> {
        anyhow::ensure!(self.postgres.is_some(), "nodes share PostgreSQL only");
        Ok(TestDb {
            dir: tempfile::Builder::new()
                .prefix("frontdesk-test-")
                .tempdir()?,
            postgres: self.postgres.clone(),
            shared: true,
        })
    }

    pub fn url(&self) -> String {
        match &self.postgres {
            None => format!(
                "sqlite://{}?mode=rwc",
                self.dir.path().join("frontdesk.db").display()
            ),
            Some((admin, name)) => {
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
                format!("{base}/{name}")
            }
        }
    }

    /// The gateway's `server.data_dir`: uploads under `files/`, the
    /// signing key, and (on SQLite) the database.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A path for the test's own files (a config to hand a gateway
    /// process), next to the data.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Drops a PostgreSQL database (the directory goes on drop).
    pub async fn drop_db(self) -> anyhow::Result<()> {
        if self.shared {
            return Ok(());
        }
        if let Some((admin, name)) = &self.postgres {
            let mut conn = sqlx::PgConnection::connect(admin).await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await?;
        }
        Ok(())
    }
}
