//! The gateway's layers read one way: domain ← store ← files ← engine ←
//! {api, bridges} ← server. A module may use the layers to its left, never
//! those to its right; `config` (the typed settings, built on domain
//! values) may be used by any layer from `files` on. This test reads the
//! sources and fails when an import points the wrong way, so the order in
//! ARCHITECTURE.md stays true.

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// Each layer with the modules it may use (besides itself).
    const LAYERS: &[(&str, &[&str])] = &[
        ("domain", &[]),
        ("config", &["domain"]),
        ("store", &["domain"]),
        ("files", &["domain", "store", "config"]),
        ("engine", &["domain", "store", "files", "config"]),
        ("api", &["domain", "store", "files", "engine", "config"]),
        ("bridges", &["domain", "store", "files", "engine", "config"]),
    ];

    const MODULES: &[&str] = &[
        "api",
        "assets",
        "bridges",
        "config",
        "domain",
        "engine",
        "files",
        "ops",
        "server",
        "store",
        "telemetry",
    ];

    fn sources_of(layer: &str) -> Vec<PathBuf> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        let single = src.join(format!("{layer}.rs"));
        if single.exists() {
            files.push(single);
        }
        let mut dirs = vec![src.join(layer)];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    files.push(path);
                }
            }
        }
        files
    }

    /// The `crate::<module>` paths in `source` that `allowed` does not list.
    fn wrong_way(layer: &str, allowed: &[&str], source: &str) -> Vec<String> {
        MODULES
            .iter()
            .filter(|m| **m != layer && !allowed.contains(m))
            .filter(|m| {
                let path = format!("crate::{m}");
                source.match_indices(&path).any(|(at, _)| {
                    let next = source[at + path.len()..].chars().next();
                    !next.is_some_and(|c| c.is_alphanumeric() || c == '_')
                })
            })
            .map(|m| (*m).to_owned())
            .collect()
    }

    #[test]
    fn imports_point_down_the_layers_only() {
        let mut problems = Vec::new();
        for (layer, allowed) in LAYERS {
            let files = sources_of(layer);
            assert!(!files.is_empty(), "no sources found for layer {layer}");
            for file in files {
                let source = std::fs::read_to_string(&file).unwrap();
                for module in wrong_way(layer, allowed, &source) {
                    problems.push(format!("{} uses crate::{module}", file.display()));
                }
            }
        }
        assert!(
            problems.is_empty(),
            "layering broken:\n{}",
            problems.join("\n")
        );
    }

    #[test]
    fn the_check_sees_an_import_that_points_up() {
        let source = "use crate::engine::MessageView;\nuse crate::domain::FileId;";
        assert_eq!(wrong_way("files", &["domain"], source), vec!["engine"]);
        assert!(wrong_way("files", &["domain", "engine"], source).is_empty());
        // A longer name that starts like a module is not that module.
        assert!(wrong_way("store", &["domain"], "crate::engine_x::A").is_empty());
    }
}
