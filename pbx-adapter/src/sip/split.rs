//! Splitting a long text for a UDP-only setup.
//!
//! RFC 3428 §4 keeps MESSAGE bodies over UDP under 1300 bytes so they are
//! never fragmented. When no TCP/TLS transport is configured, a longer text
//! is sent as several MESSAGEs, cut at a whitespace where one is near the
//! limit and never inside a UTF-8 character, so the parts concatenate back
//! to the original exactly.

/// Cuts `text` into parts of at most `max` bytes (`max` ≥ 4, the longest
/// UTF-8 character). Concatenating the parts gives `text` back.
pub fn split_body(text: &str, max: usize) -> Vec<&str> {
    assert!(max >= 4, "a part must hold any UTF-8 character");
    let mut parts = Vec::new();
    let mut rest = text;
    while rest.len() > max {
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        // Prefer ending a part just after whitespace in its last quarter.
        if let Some(space) = rest[..cut].rfind(char::is_whitespace) {
            let after = space + rest[space..].chars().next().map_or(1, char::len_utf8);
            if after > max * 3 / 4 && after <= cut {
                cut = after;
            }
        }
        parts.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    if !rest.is_empty() || parts.is_empty() {
        parts.push(rest);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_text_is_one_part() {
        assert_eq!(split_body("hello", 1300), vec!["hello"]);
        assert_eq!(split_body("", 1300), vec![""]);
    }

    #[test]
    fn cuts_at_whitespace_near_the_limit() {
        let text = "aaaa bbbb cccc dddd";
        let parts = split_body(text, 10);
        assert_eq!(parts, vec!["aaaa bbbb ", "cccc dddd"]);
    }

    #[test]
    fn never_cuts_a_character() {
        let text = "é".repeat(1000);
        let parts = split_body(&text, 1300);
        assert!(parts.iter().all(|p| p.len() <= 1300));
        assert_eq!(parts.concat(), text);
    }

    proptest! {
        #[test]
        fn parts_fit_and_concatenate_back(text in ".{0,3000}", max in 4usize..1400) {
            let parts = split_body(&text, max);
            prop_assert!(parts.iter().all(|p| p.len() <= max));
            prop_assert_eq!(parts.concat(), text);
        }
    }
}
