//! Files and folders only the gateway's user may read: the database, the
//! uploaded files and the link-signing key hold visitors' data and secrets,
//! so what the gateway creates is 0700 (folders) and 0600 (files),
//! whatever the process umask.

use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` and its missing parents with mode 0700.
pub fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Sets mode 0600 on `file` if it exists.
pub fn make_private(file: &Path) -> io::Result<()> {
    match std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_gateway_creates_is_for_its_user_only() {
        let base = tempfile_dir();
        let dir = base.join("a/b");
        create_private_dir_all(&dir).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&base.join("a")), 0o700);
        assert_eq!(mode(&dir), 0o700);
        let file = dir.join("f");
        std::fs::write(&file, b"x").unwrap();
        make_private(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        make_private(&dir.join("missing")).unwrap();
        std::fs::remove_dir_all(&base).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        std::env::temp_dir().join(format!("frontdesk-fsutil-{}", uuid::Uuid::new_v4()))
    }
}
