//! The client's file name, made safe to show and to offer back.
//!
//! A name arrives from the visitor's (or agent's) machine and ends up in the
//! widget, in an agent's chat client and in a `Content-Disposition` header.
//! It is never a path on our disk (the store uses random names), but other
//! programs may treat it as one, and bidi overrides can make `exe.pdf` read
//! as `fdp.exe`. So only the last path component is kept, control, bidi and
//! invisible formatting characters are dropped, characters Windows refuses
//! in names are replaced, dots cannot lead or trail, and the length is
//! bounded while keeping the extension.
//!
//! The extension is what the agent's (or visitor's) computer uses to decide
//! what opening the file does, and the client chose it. So a name whose
//! extension runs code or renders active content where it is opened
//! (`.html`, `.svg`, `.js`, `.bat`, `.ps1`, `.hta`, …) is refused, whatever
//! the content, and any other extension that does not fit the sniffed type
//! is replaced by that type's own (`invoice.pdf` holding a PNG is offered
//! as `invoice.png`).

use std::fmt;

use crate::domain::text;

/// Longest display name kept, in characters.
pub const MAX_NAME_CHARS: usize = 150;

/// Longest extension kept intact when a long name is shortened.
const MAX_EXTENSION_CHARS: usize = 16;

/// Extensions refused in a file's name: opening such a file runs code or
/// renders active content (scripts in HTML and SVG) on the machine where it
/// is opened, which the sniffed type cannot rule out (a script is text).
pub const DANGEROUS_EXTENSIONS: &[&str] = &[
    "app",
    "application",
    "bat",
    "chm",
    "cmd",
    "com",
    "cpl",
    "dll",
    "exe",
    "gadget",
    "hta",
    "htm",
    "html",
    "inf",
    "ins",
    "jar",
    "js",
    "jse",
    "lnk",
    "mht",
    "mhtml",
    "mjs",
    "msc",
    "msi",
    "msp",
    "pif",
    "ps1",
    "ps1xml",
    "ps2",
    "psc1",
    "psd1",
    "psm1",
    "reg",
    "scf",
    "scr",
    "sct",
    "settingcontent-ms",
    "shtml",
    "svg",
    "svgz",
    "url",
    "vb",
    "vbe",
    "vbs",
    "ws",
    "wsc",
    "wsf",
    "wsh",
    "xht",
    "xhtml",
    "xsl",
    "xslt",
];

/// Extensions that fit plain text besides `txt`.
const TEXT_EXTENSIONS: &[&str] = &["text", "log", "csv", "tsv", "md", "ini", "cfg", "conf"];

/// Other spellings of a sniffed type's extension.
const ALIASES: &[(&str, &[&str])] = &[
    ("jpg", &["jpeg", "jpe", "jfif"]),
    ("tif", &["tiff"]),
    ("mp4", &["m4v"]),
    ("mpg", &["mpeg"]),
    ("gz", &["tgz"]),
];

/// A file name whose extension is refused (see [`DANGEROUS_EXTENSIONS`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("files named *.{extension} cannot be sent")]
pub struct DangerousName {
    pub extension: String,
}

/// A sanitised file name, for display and downloads only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// Cleans `raw`; an empty result becomes `file`.
    pub fn sanitize(raw: &str) -> DisplayName {
        DisplayName(clean(raw).unwrap_or_else(|| "file".to_owned()))
    }

    /// The name a client gave (if any), cleaned; when nothing usable is
    /// left, `file` with the extension of the sniffed type.
    pub fn from_client(raw: Option<&str>, extension: Option<&str>) -> DisplayName {
        match raw.and_then(clean) {
            Some(name) => DisplayName(name),
            None => Self::unnamed(extension),
        }
    }

    /// The client's name (if any), cleaned, with an extension that fits the
    /// `sniffed` content: a dangerous extension is refused, one that does
    /// not fit is replaced by `sniffed`'s, and a name without one gets it.
    /// Content that only a dangerous name fits (an installer the denylist
    /// lets through, sniffed as `msi`; an SVG where SVG is allowed) is
    /// refused too, so the gateway never makes such a name itself.
    pub fn for_content(
        raw: Option<&str>,
        sniffed: Option<&str>,
    ) -> Result<DisplayName, DangerousName> {
        let name = Self::fitted(raw, sniffed)?;
        match name.0.rsplit_once('.') {
            Some((_, ext)) if DANGEROUS_EXTENSIONS.contains(&ext.to_lowercase().as_str()) => {
                Err(DangerousName {
                    extension: ext.to_lowercase(),
                })
            }
            _ => Ok(name),
        }
    }

    /// [`for_content`](Self::for_content) before the check of the
    /// extension it gave.
    fn fitted(raw: Option<&str>, sniffed: Option<&str>) -> Result<DisplayName, DangerousName> {
        let Some(name) = raw.and_then(clean) else {
            return Ok(Self::unnamed(sniffed));
        };
        let (stem, extension) = match name.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() && !ext.is_empty() => {
                (stem, Some(ext.to_lowercase()))
            }
            _ => (name.as_str(), None),
        };
        if let Some(ext) = extension.as_deref() {
            if DANGEROUS_EXTENSIONS.contains(&ext) {
                return Err(DangerousName {
                    extension: ext.to_owned(),
                });
            }
        }
        let fits = |ext: &str, sniffed: &str| {
            ext == sniffed
                || (sniffed == "txt" && TEXT_EXTENSIONS.contains(&ext))
                || ALIASES
                    .iter()
                    .any(|(canonical, others)| *canonical == sniffed && others.contains(&ext))
        };
        Ok(match (extension.as_deref(), sniffed) {
            (Some(ext), Some(sniffed)) if !fits(ext, sniffed) => {
                Self::sanitize(&format!("{stem}.{sniffed}"))
            }
            (None, Some(sniffed)) => Self::sanitize(&format!("{name}.{sniffed}")),
            _ => DisplayName(name),
        })
    }

    /// A name for a file the client did not name, from its sniffed type.
    pub fn unnamed(extension: Option<&str>) -> DisplayName {
        match extension {
            Some(ext) if !ext.is_empty() => Self::sanitize(&format!("file.{ext}")),
            _ => DisplayName("file".to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// `attachment; filename="ascii"; filename*=UTF-8''percent-encoded`
    /// (RFC 6266 with the RFC 8187 extended form for non-ASCII names).
    pub fn content_disposition(&self) -> String {
        let fallback: String = self
            .0
            .chars()
            .map(|c| {
                if c == ' ' || (c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '%')) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mut encoded = String::with_capacity(self.0.len() * 3);
        for byte in self.0.bytes() {
            if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
                encoded.push(byte as char);
            } else {
                encoded.push_str(&format!("%{byte:02X}"));
            }
        }
        format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The last path component of `raw`, cleaned; `None` if nothing is left.
fn clean(raw: &str) -> Option<String> {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|c| *c == '\t' || !is_hidden_or_dangerous(*c))
        .map(|c| match c {
            '<' | '>' | ':' | '"' | '|' | '?' | '*' => '_',
            c if c.is_whitespace() => ' ',
            c => c,
        })
        .collect();
    let trimmed = cleaned.trim_matches(|c: char| c == '.' || c == ' ');
    (!trimmed.is_empty()).then(|| shorten(trimmed))
}

/// What a one-line field may not carry (see `domain::text`), and ZWJ and
/// ZWNJ too: a file name has no use for them and they can hide a change of
/// extension.
fn is_hidden_or_dangerous(c: char) -> bool {
    text::unsafe_in_one_line(c) || matches!(c, '\u{200C}' | '\u{200D}')
}

/// Cuts a name to [`MAX_NAME_CHARS`], keeping a short extension. The cut
/// never leaves a trailing dot or space: Windows drops them, so
/// `x.html.` would open as `x.html`.
fn shorten(name: &str) -> String {
    if name.chars().count() <= MAX_NAME_CHARS {
        return name.to_owned();
    }
    let extension = name
        .rsplit_once('.')
        .map(|(_, ext)| ext)
        .filter(|ext| !ext.is_empty() && ext.chars().count() <= MAX_EXTENSION_CHARS);
    match extension {
        Some(ext) => {
            let keep = MAX_NAME_CHARS - ext.chars().count() - 1;
            let stem: String = name.chars().take(keep).collect();
            format!("{}.{ext}", stem.trim_end_matches(['.', ' ']))
        }
        None => {
            let cut: String = name.chars().take(MAX_NAME_CHARS).collect();
            cut.trim_end_matches(['.', ' ']).to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(raw: &str) -> String {
        DisplayName::sanitize(raw).into_string()
    }

    #[test]
    fn only_the_last_path_component_is_kept() {
        assert_eq!(clean("../../etc/passwd"), "passwd");
        assert_eq!(clean("..\\..\\windows\\win.ini"), "win.ini");
        assert_eq!(clean("C:\\Users\\jane\\report.pdf"), "report.pdf");
        assert_eq!(clean(".."), "file");
        assert_eq!(clean("../"), "file");
        assert_eq!(clean(""), "file");
        assert_eq!(clean(".bashrc"), "bashrc");
    }

    #[test]
    fn bidi_controls_and_invisibles_are_dropped() {
        assert_eq!(clean("invoice\u{202E}fdp.exe"), "invoicefdp.exe");
        assert_eq!(clean("a\u{2066}b\u{2069}c\u{200B}.txt"), "abc.txt");
        assert_eq!(clean("line\nbreak\0.txt"), "linebreak.txt");
        assert_eq!(clean("tab\there.txt"), "tab here.txt");
    }

    #[test]
    fn extensions_follow_the_content() {
        let named = |raw: &str, sniffed: Option<&str>| {
            DisplayName::for_content(Some(raw), sniffed).map(DisplayName::into_string)
        };
        assert_eq!(named("photo.JPEG", Some("jpg")).unwrap(), "photo.JPEG");
        assert_eq!(named("invoice.pdf", Some("png")).unwrap(), "invoice.png");
        assert_eq!(named("notes.csv", Some("txt")).unwrap(), "notes.csv");
        assert_eq!(named("notes.docx", Some("txt")).unwrap(), "notes.txt");
        assert_eq!(named("README", Some("txt")).unwrap(), "README.txt");
        assert_eq!(named("data.bin", None).unwrap(), "data.bin");
        assert_eq!(
            DisplayName::for_content(None, Some("pdf"))
                .unwrap()
                .as_str(),
            "file.pdf"
        );
    }

    #[test]
    fn names_that_run_code_where_they_are_opened_are_refused() {
        for raw in [
            "invoice.html",
            "logo.SVG",
            "run.js",
            "setup.bat",
            "x.ps1",
            "a.hta",
            "report.pdf.exe",
            "tricky\u{202E}fdp.html",
        ] {
            assert!(
                DisplayName::for_content(Some(raw), Some("txt")).is_err(),
                "{raw:?}"
            );
        }
        assert_eq!(
            DisplayName::for_content(Some("invoice.html"), Some("txt")),
            Err(DangerousName {
                extension: "html".to_owned()
            })
        );
    }

    #[test]
    fn content_that_only_a_dangerous_name_fits_is_refused() {
        // An OLE2 file infer cannot place is sniffed as `msi`; SVG when the
        // operator allows it: the gateway must not name them so itself.
        for (raw, sniffed) in [
            (Some("invoice.pdf"), "msi"),
            (Some("setup"), "msi"),
            (None, "msi"),
            (Some("logo.png"), "svg"),
            (None, "svg"),
            (Some(".."), "html"),
        ] {
            assert_eq!(
                DisplayName::for_content(raw, Some(sniffed)),
                Err(DangerousName {
                    extension: sniffed.to_owned()
                }),
                "{raw:?} holding {sniffed}"
            );
        }
        assert_eq!(
            DisplayName::for_content(None, Some("doc"))
                .unwrap()
                .as_str(),
            "file.doc"
        );
    }

    #[test]
    fn reserved_characters_are_replaced() {
        assert_eq!(clean("what?<b>\"x\"*.txt"), "what__b__x__.txt");
    }

    #[test]
    fn long_names_keep_their_extension() {
        let long = format!("{}.pdf", "a".repeat(400));
        let cut = clean(&long);
        assert_eq!(cut.chars().count(), MAX_NAME_CHARS);
        assert!(cut.ends_with(".pdf"));
        assert_eq!(clean(&"é".repeat(300)).chars().count(), MAX_NAME_CHARS);
    }

    #[test]
    fn a_cut_never_ends_in_a_dot_or_uncovers_a_dangerous_extension() {
        // The last extension is too long to keep, so the name is cut at
        // 150 characters (found by the multipart fuzz target): the cut
        // must not end in a dot, which Windows drops (`x.html.` opens as
        // `x.html`), and an extension it uncovers is judged like any.
        let cut_after_the_dot = format!("{}.html.{}", "x".repeat(144), "5".repeat(20));
        let cut = clean(&cut_after_the_dot);
        assert_eq!(cut, format!("{}.html", "x".repeat(144)));
        let cut_before_the_dot = format!("{}.html.{}", "x".repeat(145), "5".repeat(20));
        for raw in [cut_after_the_dot, cut_before_the_dot] {
            assert_eq!(
                DisplayName::for_content(Some(&raw), None),
                Err(DangerousName {
                    extension: "html".to_owned()
                }),
                "{raw:?}"
            );
        }
        let spaces = format!("{} {}", "a".repeat(149), "b".repeat(20));
        assert_eq!(clean(&spaces), "a".repeat(149));
    }

    #[test]
    fn unicode_names_are_kept_for_display() {
        assert_eq!(
            clean("Relevé de compte – été.pdf"),
            "Relevé de compte – été.pdf"
        );
    }

    #[test]
    fn content_disposition_has_an_ascii_fallback_and_utf8_form() {
        let name = DisplayName::sanitize("été 100%.pdf");
        assert_eq!(
            name.content_disposition(),
            "attachment; filename=\"_t_ 100_.pdf\"; filename*=UTF-8''%C3%A9t%C3%A9%20100%25.pdf"
        );
    }
}
