//! What a file is, judged from its first bytes, never from its name or the
//! type the client claimed.
//!
//! `infer` recognises binary formats by their magic numbers (and HTML, XML,
//! shell scripts); on top of it, SVG is told apart from other XML (it can
//! carry scripts), and anything else that is valid UTF-8 without NUL bytes
//! is plain text. The rest is `application/octet-stream`.

/// How many leading bytes are enough to decide.
pub const SNIFF_BYTES: usize = 8 * 1024;

/// The sniffed media type of a file, with the usual extension if known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sniffed {
    pub media_type: String,
    pub extension: Option<String>,
}

/// Decides the type of a file from its first bytes (up to [`SNIFF_BYTES`];
/// `complete` says whether `head` is the whole file).
pub fn sniff(head: &[u8], complete: bool) -> Sniffed {
    let found = infer::get(head).map(|t| (t.mime_type(), t.extension()));
    let text = looks_like_text(head, complete);
    let is_svg = |head: &[u8]| {
        let lower = String::from_utf8_lossy(head).to_ascii_lowercase();
        lower.contains("<svg")
    };
    let (media_type, extension) = match found {
        Some(("text/xml", _)) if is_svg(head) => ("image/svg+xml", Some("svg")),
        Some((mime, ext)) => (mime, Some(ext)),
        None if text && is_svg(head) => ("image/svg+xml", Some("svg")),
        None if text => ("text/plain", Some("txt")),
        None => ("application/octet-stream", None),
    };
    Sniffed {
        media_type: media_type.to_owned(),
        extension: extension.map(str::to_owned),
    }
}

/// UTF-8 without NUL bytes; a multi-byte character cut by the end of an
/// incomplete head still counts.
fn looks_like_text(head: &[u8], complete: bool) -> bool {
    if head.contains(&0) {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => !complete && e.error_len().is_none() && head.len() - e.valid_up_to() < 4,
    }
}

/// The configured denylist of media types, compared case-insensitively
/// and without parameters.
#[derive(Debug, Clone, Default)]
pub struct Denylist(Vec<String>);

impl Denylist {
    pub fn new(types: &[String]) -> Denylist {
        Denylist(types.iter().map(|t| essence(t)).collect())
    }

    pub fn denies(&self, media_type: &str) -> bool {
        let media_type = essence(media_type);
        self.0.contains(&media_type)
    }
}

fn essence(media_type: &str) -> String {
    media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media(head: &[u8]) -> String {
        sniff(head, true).media_type
    }

    #[test]
    fn binary_formats_are_recognised_by_content() {
        assert_eq!(media(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), "image/png");
        assert_eq!(media(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"), "application/pdf");
        assert_eq!(
            media(b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0"),
            "application/vnd.microsoft.portable-executable"
        );
        let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
        elf.resize(64, 0);
        assert_eq!(media(&elf), "application/x-executable");
    }

    #[test]
    fn text_html_svg_and_scripts() {
        assert_eq!(media("Bonjour, été".as_bytes()), "text/plain");
        assert_eq!(media(b"<!DOCTYPE html><html><body>x"), "text/html");
        assert_eq!(
            media(b"<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"/>"),
            "image/svg+xml"
        );
        assert_eq!(media(b"<svg onload=alert(1)>"), "image/svg+xml");
        assert_eq!(media(b"#!/bin/sh\nrm -rf /\n"), "text/x-shellscript");
        assert_eq!(media(b"\0\x01\x02garbage"), "application/octet-stream");
    }

    #[test]
    fn a_cut_multibyte_character_is_still_text() {
        let head = "aé".as_bytes();
        assert_eq!(sniff(&head[..2], false).media_type, "text/plain");
        assert_eq!(
            sniff(&head[..2], true).media_type,
            "application/octet-stream"
        );
    }

    #[test]
    fn the_denylist_ignores_case_and_parameters() {
        let deny = Denylist::new(&["Text/HTML".to_owned()]);
        assert!(deny.denies("text/html; charset=utf-8"));
        assert!(!deny.denies("text/plain"));
    }
}
