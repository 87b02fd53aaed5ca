//! Child processes of throwaway servers, killed with their whole process
//! group (servers that fork workers leave them behind otherwise), and
//! noticed when they exit early.

use std::process::{Child, Command};
use std::time::Duration;

/// SIGKILLs the process group of `child` (started with `process_group(0)`,
/// so the group id is its pid), or the child alone if that fails, and
/// reaps it.
pub fn kill_group(mut child: Child) {
    let group = format!("-{}", child.id());
    let killed = Command::new("kill").args(["-KILL", "--", &group]).status();
    if !killed.is_ok_and(|s| s.success()) {
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// Resolves when the server in `child` has exited (a config error), with
/// its status; never while it runs. Raced against its port opening.
pub async fn exited(child: &mut Option<Child>) -> String {
    loop {
        match child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => return status.to_string(),
            Some(Err(e)) => return e.to_string(),
            None => return "not started".to_owned(),
            Some(Ok(None)) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}
