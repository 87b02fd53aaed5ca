//! Tidy checks, as tests (after rust-analyzer's): every Rust file of the
//! workspace says why it exists in a `//!` module doc, and none carries a
//! banned pattern (unfinished code, ignored tests, debugging leftovers,
//! trailing whitespace).

use std::path::{Path, PathBuf};

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
