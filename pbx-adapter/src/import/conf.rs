//! Asterisk's configuration-file syntax, as `main/config.c` reads it.
//!
//! `queues.conf` and `extensions.conf` share it, so it is read once here
//! into sections of `name = value` / `name => value` lines, each line
//! remembering its file and line number for the import report:
//!
//! - `;` starts a comment, `\;` is a literal semicolon, `;-- … --;` is a
//!   (nestable) block comment;
//! - `[name]` starts a section; `[name](!)` makes it a template that is
//!   not used itself; `[name](tpl1,tpl2)` first copies the lines of those
//!   earlier sections, in that order, so later lines override them as
//!   Asterisk modules read lines in order; `[name](+)` adds lines to the
//!   existing section of that name;
//! - `#include file` and `#tryinclude file` read a file relative to the
//!   import directory (a `*`/`?` pattern reads every match, in name order);
//!   `#exec` runs a program on the PBX, which an import never does.
//!
//! Where Asterisk refuses the whole file (a missing `]`, an unknown parent
//! template, a missing `#include`), we report the line and carry on with
//! the rest, so the admin sees every problem at once.

use std::path::{Path, PathBuf};

use super::{ImportError, Problem};

/// Asterisk's limit on nested `#include`s.
const MAX_INCLUDE_DEPTH: usize = 10;

/// One `name = value` or `name => value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub name: String,
    pub value: String,
    pub file: String,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Section {
    pub name: String,
    pub file: String,
    pub line: usize,
    /// `(!)`: only there to be inherited from.
    pub template: bool,
    pub lines: Vec<Line>,
}

/// A configuration file with its includes, as a list of sections in order.
#[derive(Debug, Default)]
pub(crate) struct ConfFile {
    pub sections: Vec<Section>,
}

impl ConfFile {
    /// The sections Asterisk modules see (templates excluded).
    pub fn used_sections(&self) -> impl Iterator<Item = &Section> {
        self.sections.iter().filter(|s| !s.template)
    }
}

struct Reader<'a> {
    dir: &'a Path,
    conf: ConfFile,
    /// Index of the section lines go to.
    current: Option<usize>,
    problems: &'a mut Vec<Problem>,
    /// Files being read, to refuse include loops.
    stack: Vec<PathBuf>,
    /// After a broken section header: its lines are skipped silently.
    skipping: bool,
}

/// Reads `name` from `dir` with its includes. `Ok(None)` if the file does
/// not exist.
pub(crate) fn read(
    dir: &Path,
    name: &str,
    problems: &mut Vec<Problem>,
) -> Result<Option<ConfFile>, ImportError> {
    let path = dir.join(name);
    let text = match std::fs::read(&path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ImportError::Read { path, source }),
    };
    Ok(Some(parse_str(dir, name, &text, problems)))
}

/// Parses `text` as the file `name` of `dir` (includes are read from
/// `dir`).
pub(crate) fn parse_str(
    dir: &Path,
    name: &str,
    text: &str,
    problems: &mut Vec<Problem>,
) -> ConfFile {
    let mut reader = Reader {
        dir,
        conf: ConfFile::default(),
        current: None,
        problems,
        stack: vec![dir.join(name)],
        skipping: false,
    };
    reader.parse(name, text);
    reader.conf
}

/// Removes comments from one line; `depth` carries block comments across
/// lines.
fn strip_comments(line: &str, depth: &mut usize) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        if *depth > 0 {
            if rest.starts_with("--;") {
                *depth -= 1;
                rest = &rest[3..];
            } else if rest.starts_with(";--") {
                *depth += 1;
                rest = &rest[3..];
            } else {
                rest = &rest[c.len_utf8()..];
            }
            continue;
        }
        if rest.starts_with("\\;") {
            out.push(';');
            rest = &rest[2..];
        } else if rest.starts_with(";--") {
            *depth += 1;
            rest = &rest[3..];
        } else if c == ';' {
            break;
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// `*` and `?` wildcard match of a whole file name.
fn wildcard_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

impl Reader<'_> {
    fn problem(&mut self, file: &str, line: usize, text: impl Into<String>) {
        self.problems.push(Problem::new(file, line, text));
    }

    fn parse(&mut self, file: &str, text: &str) {
        let mut depth = 0;
        for (i, raw) in text.lines().enumerate() {
            let lineno = i + 1;
            let stripped = strip_comments(raw, &mut depth);
            let line = stripped.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix('[') {
                self.section_header(file, lineno, rest);
            } else if let Some(rest) = line.strip_prefix('#') {
                self.directive(file, lineno, rest);
            } else {
                self.assignment(file, lineno, line);
            }
        }
        if depth > 0 {
            self.problem(file, 0, "a `;--` block comment is never closed with `--;`");
        }
    }

    fn section_header(&mut self, file: &str, line: usize, rest: &str) {
        let Some((name, after)) = rest.split_once(']') else {
            self.problem(
                file,
                line,
                "section header without a closing `]` (Asterisk refuses the whole file); \
                 the lines up to the next section are skipped",
            );
            self.current = None;
            self.skipping = true;
            return;
        };
        let name = name.trim().to_owned();
        let after = after.trim();
        self.skipping = false;
        let mut section = Section {
            name: name.clone(),
            file: file.to_owned(),
            line,
            template: false,
            lines: Vec::new(),
        };
        let mut append_to = None;
        if let Some(options) = after.strip_prefix('(') {
            let Some((options, _)) = options.split_once(')') else {
                self.problem(
                    file,
                    line,
                    format!(
                        "section [{name}]: options without a closing `)` \
                         (Asterisk refuses the whole file); the section is skipped"
                    ),
                );
                self.current = None;
                self.skipping = true;
                return;
            };
            for option in options.split(',').map(str::trim) {
                match option {
                    "" => {}
                    "!" => section.template = true,
                    "+" => match self.conf.sections.iter().position(|s| s.name.eq_ignore_ascii_case(&name)) {
                        Some(i) => append_to = Some(i),
                        None => self.problem(
                            file,
                            line,
                            format!("[{name}](+) adds to a section [{name}] that does not exist before it"),
                        ),
                    },
                    parent => match self.conf.sections.iter().find(|s| s.name.eq_ignore_ascii_case(parent)) {
                        Some(base) => section.lines.extend(base.lines.iter().cloned()),
                        None => self.problem(
                            file,
                            line,
                            format!(
                                "[{name}] inherits from [{parent}], which is not defined before it \
                                 (Asterisk refuses the whole file); imported without it"
                            ),
                        ),
                    },
                }
            }
        } else if !after.is_empty() {
            self.problem(
                file,
                line,
                format!("unexpected `{after}` after section header [{name}]; ignored"),
            );
        }
        match append_to {
            Some(i) => {
                self.conf.sections[i].lines.extend(section.lines);
                self.current = Some(i);
            }
            None => {
                self.conf.sections.push(section);
                self.current = Some(self.conf.sections.len() - 1);
            }
        }
    }

    fn directive(&mut self, file: &str, line: usize, rest: &str) {
        let (word, arg) = match rest.split_once(|c: char| c.is_ascii_whitespace()) {
            Some((w, a)) => (w, a.trim()),
            None => (rest, ""),
        };
        let arg = arg.trim_matches(|c| matches!(c, '"' | '<' | '>')).trim();
        let optional = match word.to_ascii_lowercase().as_str() {
            "include" => false,
            "tryinclude" => true,
            "exec" => {
                self.problem(
                    file,
                    line,
                    format!("`#exec {arg}` runs a program on the PBX; not run, its output is not imported"),
                );
                return;
            }
            _ => {
                self.problem(file, line, format!("unknown directive `#{word}`; ignored"));
                return;
            }
        };
        if arg.is_empty() {
            self.problem(file, line, format!("`#{word}` without a file name"));
            return;
        }
        let targets = self.resolve_include(arg);
        if targets.is_empty() && !optional {
            self.problem(
                file,
                line,
                format!("`#include {arg}`: no such file in the import directory"),
            );
        }
        for (path, display) in targets {
            if self.stack.contains(&path) || self.stack.len() > MAX_INCLUDE_DEPTH {
                self.problem(
                    file,
                    line,
                    format!("`#include {arg}` loops back or nests too deep; not read again"),
                );
                continue;
            }
            match std::fs::read(&path) {
                Ok(bytes) => {
                    self.stack.push(path);
                    self.parse(&display, &String::from_utf8_lossy(&bytes));
                    self.stack.pop();
                }
                Err(e) => {
                    if !optional {
                        self.problem(file, line, format!("`#include {arg}`: cannot read: {e}"));
                    }
                }
            }
        }
    }

    /// The files an include names, with the name used in the report.
    fn resolve_include(&self, arg: &str) -> Vec<(PathBuf, String)> {
        let path = self.dir.join(arg);
        let display = |p: &Path| {
            p.strip_prefix(self.dir)
                .unwrap_or(p)
                .to_string_lossy()
                .into_owned()
        };
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !file_name.contains(['*', '?']) {
            return if path.is_file() {
                let d = display(&path);
                vec![(path, d)]
            } else {
                Vec::new()
            };
        }
        let parent = path.parent().unwrap_or(self.dir);
        let mut found: Vec<PathBuf> = std::fs::read_dir(parent)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && p.file_name()
                        .is_some_and(|n| wildcard_match(&file_name, &n.to_string_lossy()))
            })
            .collect();
        found.sort();
        found
            .into_iter()
            .map(|p| {
                let d = display(&p);
                (p, d)
            })
            .collect()
    }

    fn assignment(&mut self, file: &str, line: usize, text: &str) {
        let Some((name, value)) = text.split_once('=') else {
            self.problem(
                file,
                line,
                format!("`{text}` is not `name = value` (Asterisk ignores it too)"),
            );
            return;
        };
        let value = value.strip_prefix('>').unwrap_or(value);
        let Some(current) = self.current else {
            if self.skipping {
                return;
            }
            self.problem(
                file,
                line,
                format!("`{}` is outside any usable [section]; ignored", name.trim()),
            );
            return;
        };
        self.conf.sections[current].lines.push(Line {
            name: name.trim().to_owned(),
            value: value.trim().to_owned(),
            file: file.to_owned(),
            line,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments() {
        let mut depth = 0;
        assert_eq!(strip_comments("a = b ; c", &mut depth), "a = b ");
        assert_eq!(strip_comments(r"a = b\;c", &mut depth), "a = b;c");
        assert_eq!(strip_comments("a ;-- x", &mut depth), "a ");
        assert_eq!(depth, 1);
        assert_eq!(strip_comments("still --; b", &mut depth), " b");
        assert_eq!(depth, 0);
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("queues_*.conf", "queues_additional.conf"));
        assert!(wildcard_match("q?.conf", "q1.conf"));
        assert!(!wildcard_match("queues_*.conf", "queues.conf"));
        assert!(wildcard_match("*", "x"));
    }
}
