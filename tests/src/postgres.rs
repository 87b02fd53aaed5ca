//! A throwaway PostgreSQL server for tests that stop and start the
//! database under a running gateway (never the system server other tests
//! share): `initdb` from `/usr/lib/postgresql/*/bin` into a temp dir, trust
//! authentication, its own free loopback port and its Unix socket in the
//! temp dir. Run as root (PostgreSQL refuses to), it runs as the
//! `postgres` system user, which then owns the directory.
//!
//! [`PgServer::stop`] is a fast shutdown (SIGINT: sessions are terminated,
//! committed data is flushed), [`PgServer::start`] starts it again on the
//! same data and port. The server is killed when dropped, and the directory
//! removed (kept, with its path printed, when the test panicked).

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::net::{free_port, wait_for_port};

/// A PostgreSQL server of the test's own.
pub struct PgServer {
    dir: PathBuf,
    bin: PathBuf,
    /// The user the server runs as when the test runs as root.
    run_as: Option<(u32, u32)>,
    child: Option<Child>,
    pub port: u16,
}

/// The newest `/usr/lib/postgresql/<version>/bin` with `initdb`.
fn postgres_bin() -> anyhow::Result<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("no /usr/lib/postgresql: is PostgreSQL installed?")?
        .filter_map(|e| {
            let path = e.ok()?.path();
            let version = path.file_name()?.to_str()?.parse().ok()?;
            let bin = path.join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .context("no initdb under /usr/lib/postgresql/*/bin")
}

/// The uid and gid of the `postgres` system user.
fn postgres_user() -> anyhow::Result<(u32, u32)> {
    let home = Path::new("/var/lib/postgresql");
    let id = |flag: &str| -> anyhow::Result<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output()?;
        if !out.status.success() {
            bail!("no postgres system user to run PostgreSQL as");
        }
        Ok(String::from_utf8(out.stdout)?.trim().parse()?)
    };
    match (id("-u"), id("-g")) {
        (Ok(uid), Ok(gid)) => Ok((uid, gid)),
        // Fall back on the owner of its home, if the `id` tool failed.
        _ => {
            let meta = std::fs::metadata(home).context("no postgres system user")?;
            Ok((meta.uid(), meta.gid()))
        }
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .is_some_and(|uid| uid.trim() == "0")
}

impl PgServer {
    /// Initialises a cluster in a new temp dir and starts it.
    pub async fn start_new() -> anyhow::Result<PgServer> {
        let bin = postgres_bin()?;
        let dir = std::env::temp_dir().join(format!(
            "frontdesk-postgres-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(dir.join("socket"))?;
        let run_as = if running_as_root() {
            let (uid, gid) = postgres_user()?;
            for path in [dir.clone(), dir.join("socket")] {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid))?;
            }
            Some((uid, gid))
        } else {
            None
        };
        let mut server = PgServer {
            dir,
            bin,
            run_as,
            child: None,
            port: free_port()?,
        };
        let mut initdb = server.command("initdb");
        initdb
            .arg("-D")
            .arg(server.data())
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let out = tokio::task::spawn_blocking(move || initdb.output()).await??;
        if !out.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        server.start().await?;
        Ok(server)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A command from PostgreSQL's bin directory, as the server's user.
    fn command(&self, name: &str) -> Command {
        let mut command = Command::new(self.bin.join(name));
        command.current_dir(&self.dir).stdin(Stdio::null());
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid).gid(gid);
        }
        command
    }

    /// Starts the server on its data; returns once it accepts connections.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("PostgreSQL is already running");
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())?;
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(self.log(), Some(uid), Some(gid))?;
        }
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data())
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.dir.join("socket").display()
            ))
            .args(["-c", "max_connections=50", "-c", "shared_buffers=16MB"])
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("cannot start postgres")?;
        self.child = Some(child);
        wait_for_port(self.port, Duration::from_secs(30))
            .await
            .with_context(|| format!("postgres did not listen; see {}", self.log().display()))?;
        // Listening comes a moment before accepting sessions (startup).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let mut ready = self.command("pg_isready");
            ready
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let status = tokio::task::spawn_blocking(move || ready.status()).await??;
            if status.success() {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "postgres never accepted sessions; see {}",
                    self.log().display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Fast shutdown (SIGINT): every session is terminated, the data is
    /// checkpointed; returns once the server has exited.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = child.id().to_string();
        let status = Command::new("kill").args(["-INT", &pid]).status()?;
        if !status.success() {
            bail!("cannot signal postgres");
        }
        tokio::task::spawn_blocking(move || child.wait()).await??;
        Ok(())
    }

    /// Whether the server process runs.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// `postgres://postgres@127.0.0.1:PORT/DB`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The server's log.
    pub fn log(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    fn kill(&mut self) {
        if let Some(child) = self.child.take() {
            crate::process::kill_group(child);
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("postgres test directory kept: {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
