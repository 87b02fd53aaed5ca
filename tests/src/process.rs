//! Child processes of throwaway servers, killed with their whole process
//! group (servers that fork workers leave them behind otherwise).

use std::process::{Child, Command};

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
