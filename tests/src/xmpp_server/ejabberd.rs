//! ejabberd's half of [`super::XmppServer`]: a YAML config with the
//! component and its secret, run through `ejabberdctl` as the `ejabberd`
//! user with this instance's own config, spool, cookie home, node name and
//! Erlang distribution port; accounts are registered once it runs.
//!
//! Several gateway nodes may connect for the one component domain with
//! this config as it is (no option needed): ejabberd accepts each
//! connection and spreads the stanzas for the domain over them, the
//! answers to a node's own requests (its pings) included.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::bail;

use super::{Flavor, XmppServer, COMPONENT_DOMAIN, HOST};
use crate::net::free_port;

fn id_of(flag: &str) -> anyhow::Result<u32> {
    let out = Command::new("id").arg(flag).arg("ejabberd").output()?;
    if !out.status.success() {
        bail!("no ejabberd system user");
    }
    Ok(String::from_utf8(out.stdout)?.trim().parse()?)
}

/// Writes the config into `server`'s directory (owned by the ejabberd
/// user) and names the node.
pub(super) fn write_config(server: &XmppServer) -> anyhow::Result<Flavor> {
    let dir = &server.dir;
    let (uid, gid) = (id_of("-u")?, id_of("-g")?);
    std::os::unix::fs::chown(dir, Some(uid), Some(gid))?;
    let dist_port = free_port()?;
    let (c2s_port, component_port, secret) =
        (server.c2s_port, server.component_port, &server.secret);
    // Direct TLS on the component port, with the given PEM (certificate,
    // key and chain) named on the listener itself.
    let (certfiles, component_tls) = match &server.component_tls {
        Some(pem) => {
            let path = dir.join("component.pem");
            std::fs::write(&path, pem)?;
            let quoted = format!("\"{}\"", path.display());
            let listener = format!("\n    tls: true\n    certfile: {quoted}");
            (format!("[{quoted}]"), listener)
        }
        None => ("[]".to_owned(), String::new()),
    };
    let config = format!(
        r#"hosts:
  - {HOST}
loglevel: info
certfiles: {certfiles}
listen:
  -
    port: {c2s_port}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls: false
  -
    port: {component_port}
    ip: "127.0.0.1"
    module: ejabberd_service{component_tls}
    hosts:
      "{COMPONENT_DOMAIN}":
        password: "{secret}"
auth_method: internal
auth_password_format: plain
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  c2s:
    allow: all
shaper_rules:
  c2s_shaper: none
modules:
  mod_disco: {{}}
  mod_ping: {{}}
  mod_roster: {{}}
  mod_offline: {{}}
  mod_version: {{}}
"#
    );
    std::fs::write(dir.join("ejabberd.yml"), config)?;
    std::fs::write(
        dir.join("ctl.cfg"),
        format!(
            "ERL_DIST_PORT={dist_port}\nEJABBERD_PID_PATH={}\n",
            dir.join("ejabberd.pid").display()
        ),
    )?;
    for entry in std::fs::read_dir(dir)? {
        std::os::unix::fs::chown(entry?.path(), Some(uid), Some(gid))?;
    }
    Ok(Flavor::Ejabberd {
        node: format!("fd{}@localhost", uuid::Uuid::new_v4().simple()),
        uid,
        gid,
    })
}

/// `ejabberdctl` with this instance's settings, as the ejabberd user.
fn ctl(server: &XmppServer) -> Command {
    let Flavor::Ejabberd { node, uid, gid } = &server.flavor else {
        unreachable!("ejabberdctl for a server that is not ejabberd")
    };
    let dir = &server.dir;
    let mut cmd = Command::new("ejabberdctl");
    cmd.arg("-c")
        .arg(dir.join("ctl.cfg"))
        .arg("-n")
        .arg(node)
        .arg("-f")
        .arg(dir.join("ejabberd.yml"))
        .arg("-s")
        .arg(dir.join("db"))
        .arg("-l")
        .arg(dir)
        .env("HOME", dir)
        .current_dir(dir)
        .uid(*uid)
        .gid(*gid)
        .stdin(Stdio::null());
    cmd
}

/// ejabberd in the foreground.
pub(super) fn command(server: &XmppServer) -> Command {
    let mut cmd = ctl(server);
    cmd.arg("foreground");
    cmd
}

/// Registers the accounts, retrying while the node's control interface
/// comes up (it can lag behind the listeners). After a SIGKILL ejabberd
/// may have lost recent Mnesia writes, so every start registers them;
/// "already registered" counts as success.
pub(super) async fn register_accounts(server: &XmppServer) -> anyhow::Result<()> {
    for account in &server.accounts {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let out = ctl(server)
                .args(["register", &account.user, HOST, &account.password])
                .output()?;
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if out.status.success() || text.contains("already registered") {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                bail!("ejabberdctl register {} failed: {text}", account.user);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}
