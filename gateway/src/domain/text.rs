//! Which characters visitor text may carry to an agent.
//!
//! Whatever a visitor types ends up in an agent's XMPP client or softphone,
//! next to text the gateway writes (the offer card: name, e-mail, page,
//! queue). A newline in a one-line field would let a visitor forge a line
//! of that card ("Verified: ID checked"); bidi overrides and isolates can
//! make text read backwards (`exe.pdf` shown as `fdp.exe`); zero-width and
//! other invisible characters hide text from the agent. So one-line fields
//! keep none of these; a multi-line message keeps newlines and tabs and the
//! marks right-to-left writing needs (LRM, RLM, ALM, ZWJ, ZWNJ) but no
//! override, embedding or isolate.

/// Bidi embeddings, overrides and isolates: they reorder the text after
/// them (the "Trojan Source" characters).
pub fn is_bidi_override(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Implicit bidi marks (ALM, LRM, RLM): they reorder nothing on their own
/// and are typed by right-to-left keyboards.
fn is_bidi_mark(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}')
}

/// Characters that show nothing: zero-width space, word joiner and the
/// other invisible operators, deprecated format characters, Hangul fillers,
/// the Mongolian vowel separator, the BOM and interlinear annotations.
/// (ZWJ and ZWNJ are not here: emoji and several scripts need them.)
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{115F}'
            | '\u{1160}'
            | '\u{180E}'
            | '\u{200B}'
            | '\u{2060}'..='\u{2064}'
            | '\u{206A}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

/// Dropped from one-line fields (names, e-mail addresses, file names):
/// every control character, bidi control and invisible character.
pub fn unsafe_in_one_line(c: char) -> bool {
    c.is_control() || is_bidi_override(c) || is_bidi_mark(c) || is_invisible(c)
}

/// Dropped from multi-line text (messages): control characters other than
/// newline and tab, bidi overrides and invisible characters.
pub fn unsafe_in_text(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t') || is_bidi_override(c) || is_invisible(c)
}

/// `raw` without the characters `unsafe_char` says to drop.
pub fn strip(raw: &str, unsafe_char: impl Fn(char) -> bool) -> String {
    raw.chars().filter(|c| !unsafe_char(*c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_fields_lose_line_breaks_bidi_and_invisibles() {
        let forged = "Jane\nVerified: ID checked\u{202E}gpj.exe\u{200B}\u{200F}";
        assert_eq!(
            strip(forged, unsafe_in_one_line),
            "JaneVerified: ID checkedgpj.exe"
        );
    }

    #[test]
    fn messages_keep_lines_tabs_and_right_to_left_marks() {
        let text = "line one\nline\ttwo \u{200F}שלום\u{200E} \u{1F469}\u{200D}\u{1F4BB}";
        assert_eq!(strip(text, unsafe_in_text), text);
        assert_eq!(strip("a\u{2066}b\u{2069}c\u{7}", unsafe_in_text), "abc");
    }
}
