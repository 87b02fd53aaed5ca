//! Tidy checks, as tests (after rust-analyzer's): every Rust file of the
//! workspace says why it exists in a `//!` module doc, none carries a
//! banned pattern (unfinished code, ignored tests, debugging leftovers,
//! trailing whitespace), and the tree holds no build or test output.

use std::path::{Path, PathBuf};
use std::process::Command;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !matches!(name.as_str(), "target" | "node_modules" | "fuzz" | ".git") {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

fn workspace_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for krate in ["gateway", "pbx-adapter", "xmpp", "tests"] {
        rust_files(&root.join(krate), &mut files);
    }
    assert!(
        files.len() > 40,
        "the walk found too few files: {}",
        files.len()
    );
    files
}

#[test]
fn every_rust_file_starts_with_a_module_doc() {
    let mut missing = Vec::new();
    for path in workspace_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let first = text
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default();
        if !first.starts_with("//!") {
            missing.push(path.display().to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "files without a `//!` doc:\n{}",
        missing.join("\n")
    );
}

#[test]
fn no_banned_patterns() {
    // Spelled in pieces so this file does not match itself.
    let banned = [
        ["todo", "!("].concat(),
        ["unimplemented", "!("].concat(),
        ["#[", "ignore", "]"].concat(),
        ["dbg", "!("].concat(),
    ];
    let mut hits = Vec::new();
    for path in workspace_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            for pattern in &banned {
                if line.contains(pattern.as_str()) {
                    hits.push(format!("{}:{}: {pattern}", path.display(), n + 1));
                }
            }
            if line.ends_with(' ') || line.ends_with('\t') {
                hits.push(format!("{}:{}: trailing whitespace", path.display(), n + 1));
            }
        }
    }
    assert!(hits.is_empty(), "banned patterns:\n{}", hits.join("\n"));
}

/// Why `path` (relative to the repository root, `/`-separated, a
/// directory ending in `/`) is build or test output rather than source,
/// if it is.
fn output_kind(path: &str) -> Option<&'static str> {
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let name = parts.last().copied().unwrap_or_default();
    let has =
        |dir: &str| parts[..parts.len() - 1].contains(&dir) || path.ends_with(&format!("{dir}/"));
    let is_hex_key = |s: &str| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if has("__pycache__") || name.ends_with(".pyc") || name.ends_with(".pyo") {
        Some("Python bytecode")
    } else if path.starts_with("tests/data/") || path == "tests/data" {
        Some("a test gateway's data directory")
    } else if name.ends_with(".key") {
        Some("a signing key")
    } else if parts.len() >= 2 && parts[parts.len() - 2] == "files" && is_hex_key(name) {
        Some("an uploaded file (a gateway's file store)")
    } else if [".db", ".db-wal", ".db-shm", ".db-journal", ".sqlite"]
        .iter()
        .any(|ext| name.ends_with(ext))
    {
        Some("a SQLite database")
    } else if has("target") {
        Some("build output")
    } else if has("node_modules") {
        Some("installed npm packages")
    } else if has("test-artifacts") {
        Some("browser test screenshots")
    } else if parts[0] == ".run" || parts[0] == "data" {
        Some("`scripts/run` or a gateway's default data directory")
    } else {
        None
    }
}

/// Output that may lie in a working tree, ignored by git: build output,
/// npm packages, and what `scripts/run` and the browser tests write at
/// the root. Anything else a test writes inside the tree is a bug (tests
/// write into their own temp dirs).
fn allowed_in_working_tree(path: &str) -> bool {
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    parts.contains(&"target")
        || parts.contains(&"node_modules")
        || matches!(parts[0], ".run" | "data" | "test-artifacts")
}

/// The output among `tracked` (files git tracks: none may be output) and
/// `on_disk` (untracked files, ignored or not: only the allowed kinds).
fn misplaced_output<'a>(
    tracked: impl IntoIterator<Item = &'a str>,
    on_disk: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    let mut found = Vec::new();
    for path in tracked {
        if let Some(kind) = output_kind(path) {
            found.push(format!("{path}: {kind}, tracked by git"));
        }
    }
    for path in on_disk {
        if let Some(kind) = output_kind(path).filter(|_| !allowed_in_working_tree(path)) {
            found.push(format!("{path}: {kind}, written into the source tree"));
        }
    }
    found
}

fn git_ls_files(args: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("git")
        .arg("-C")
        .arg(&root)
        .args(["ls-files", "-z"])
        .args(args)
        .output()
        .expect("git runs (the tidy check reads the checkout)");
    assert!(
        out.status.success(),
        "git ls-files failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("paths are UTF-8")
        .split('\0')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_tree_holds_no_build_or_test_output() {
    let tracked = git_ls_files(&["--cached"]);
    assert!(
        tracked.len() > 100,
        "too few tracked files: {}",
        tracked.len()
    );
    // Untracked files, and ignored ones (directories collapsed, so
    // `target/` is one line).
    let mut on_disk = git_ls_files(&["--others", "--exclude-standard"]);
    on_disk.extend(git_ls_files(&[
        "--others",
        "--ignored",
        "--exclude-standard",
        "--directory",
    ]));
    let found = misplaced_output(
        tracked.iter().map(String::as_str),
        on_disk.iter().map(String::as_str),
    );
    assert!(
        found.is_empty(),
        "build or test output in the tree (delete it; tests write into temp dirs):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_output_check_recognises_every_kind_of_output() {
    let tracked = [
        "tests/agents/agent.py",
        "tests/agents/__pycache__/agent.cpython-311.pyc",
        "tools/x.pyc",
        "tests/data/file-signing.key",
        "tests/data/files/2ea4bb62884fee37a33831d1ff17f675",
        "gateway/files/0123456789abcdef0123456789abcdef",
        "somewhere/file-signing.key",
        "frontdesk.db",
        "x/frontdesk.db-wal",
        "x/frontdesk.db-shm",
        "target/debug/frontdesk",
        "widget/node_modules/esbuild/package.json",
        "test-artifacts/chat.png",
        ".run/prosody.json",
        "data/files/0123456789abcdef0123456789abcdef",
        "gateway/src/files/mod.rs",
        "tests/sip/tls/key.pem",
        "pbx-adapter/tests/data/asterisk/queues.conf",
    ];
    let found = misplaced_output(tracked, []);
    let flagged: Vec<&str> = found.iter().map(|f| f.split(':').next().unwrap()).collect();
    let source = [
        "tests/agents/agent.py",
        "gateway/src/files/mod.rs",
        "tests/sip/tls/key.pem",
        "pbx-adapter/tests/data/asterisk/queues.conf",
    ];
    for path in tracked {
        assert_eq!(
            flagged.contains(&path),
            !source.contains(&path),
            "{path}: {found:?}"
        );
    }

    // In a working tree, ignored build output and the root folders of
    // `scripts/run` and the browser tests are expected; what a test wrote
    // into the source folders is not.
    let on_disk = [
        "target/",
        "tests/browser/node_modules/",
        "pbx-adapter/fuzz/target/",
        ".run/",
        "data/",
        "test-artifacts/",
        "tests/data/",
        "tests/agents/__pycache__/",
        "tests/frontdesk.db",
        "gateway/file-signing.key",
        "gateway/src/new_module.rs",
    ];
    let found = misplaced_output([], on_disk);
    assert_eq!(
        found,
        [
            "tests/data/: a test gateway's data directory, written into the source tree",
            "tests/agents/__pycache__/: Python bytecode, written into the source tree",
            "tests/frontdesk.db: a SQLite database, written into the source tree",
            "gateway/file-signing.key: a signing key, written into the source tree",
        ]
    );
}
