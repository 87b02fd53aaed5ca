//! RFC 3994 "is composing" documents (`application/im-iscomposing+xml`):
//! the typing indicator of SIP MESSAGE conversations (A7).
//!
//! Built and read with quick-xml, never with string formatting, so the
//! document is well-formed whatever the input. Reading is lenient in what it
//! ignores (unknown elements, namespace prefixes) and strict in what it
//! needs: an `isComposing` root with a `state` of `active` or `idle`.

use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::{Reader, Writer};

/// The MIME type of an is-composing document.
pub const CONTENT_TYPE: &str = "application/im-iscomposing+xml";
const NAMESPACE: &str = "urn:ietf:params:xml:ns:im-iscomposing";
/// How long (seconds) an `active` state holds unless refreshed (RFC 3994
/// §3: the sender refreshes before it runs out; we ask for the default).
const REFRESH_SECS: &str = "60";

/// Why an is-composing body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IsComposingError {
    #[error("not well-formed XML: {0}")]
    Xml(String),
    #[error("the root element is not isComposing")]
    NotIsComposing,
    #[error("no state element, or a state other than active/idle")]
    State,
}

/// Serialises the document for `active` (typing) or `idle`.
pub fn build(active: bool) -> Vec<u8> {
    let mut writer = Writer::new(Vec::new());
    let state = if active { "active" } else { "idle" };
    let written: std::io::Result<()> = (|| {
        writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        writer
            .create_element("isComposing")
            .with_attribute(("xmlns", NAMESPACE))
            .write_inner_content(|w| {
                w.create_element("state")
                    .write_text_content(BytesText::new(state))?;
                w.create_element("contenttype")
                    .write_text_content(BytesText::new("text/plain"))?;
                if active {
                    w.create_element("refresh")
                        .write_text_content(BytesText::new(REFRESH_SECS))?;
                }
                Ok(())
            })?;
        Ok(())
    })();
    // Writing to a Vec cannot fail.
    written.expect("writing XML into memory");
    writer.into_inner()
}

/// Reads the state: `Ok(true)` for `active`, `Ok(false)` for `idle`.
pub fn parse(body: &[u8]) -> Result<bool, IsComposingError> {
    let text = std::str::from_utf8(body).map_err(|e| IsComposingError::Xml(e.to_string()))?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let mut depth = 0usize;
    let mut in_state = false;
    let mut state = None;
    loop {
        match reader.read_event() {
            Err(e) => return Err(IsComposingError::Xml(e.to_string())),
            Ok(Event::Eof) => break,
            Ok(Event::Start(e)) => {
                let name = e.local_name();
                if depth == 0 && name.as_ref() != b"isComposing" {
                    return Err(IsComposingError::NotIsComposing);
                }
                in_state = depth == 1 && name.as_ref() == b"state";
                depth += 1;
            }
            Ok(Event::Empty(e)) => {
                if depth == 0 && e.local_name().as_ref() != b"isComposing" {
                    return Err(IsComposingError::NotIsComposing);
                }
            }
            Ok(Event::End(_)) => {
                depth = depth.saturating_sub(1);
                in_state = false;
            }
            Ok(Event::Text(t)) if in_state => {
                let value = t
                    .unescape()
                    .map_err(|e| IsComposingError::Xml(e.to_string()))?;
                state = match value.trim() {
                    "active" => Some(true),
                    "idle" => Some(false),
                    _ => return Err(IsComposingError::State),
                };
            }
            Ok(_) => {}
        }
    }
    state.ok_or(IsComposingError::State)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_both_states() {
        assert_eq!(parse(&build(true)), Ok(true));
        assert_eq!(parse(&build(false)), Ok(false));
        let doc = String::from_utf8(build(true)).unwrap();
        assert!(doc.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
        assert!(doc.contains("<isComposing xmlns=\"urn:ietf:params:xml:ns:im-iscomposing\">"));
        assert!(doc.contains("<state>active</state>"));
        assert!(doc.contains("<refresh>60</refresh>"));
    }

    #[test]
    fn reads_what_softphones_send() {
        let linphone = br#"<?xml version="1.0" encoding="UTF-8"?>
<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <state>idle</state>
  <lastactive>2026-11-25T18:00:00Z</lastactive>
  <contenttype>text/plain</contenttype>
</isComposing>"#;
        assert_eq!(parse(linphone), Ok(false));
        let prefixed = br#"<ic:isComposing xmlns:ic="urn:ietf:params:xml:ns:im-iscomposing"><ic:state> active </ic:state></ic:isComposing>"#;
        assert_eq!(parse(prefixed), Ok(true));
    }

    #[test]
    fn refuses_other_documents() {
        assert_eq!(
            parse(b"<presence><state>active</state></presence>"),
            Err(IsComposingError::NotIsComposing)
        );
        assert_eq!(
            parse(b"<isComposing><state>typing</state></isComposing>"),
            Err(IsComposingError::State)
        );
        assert_eq!(
            parse(b"<isComposing></isComposing>"),
            Err(IsComposingError::State)
        );
        assert!(matches!(
            parse(b"<isComposing><state>active</isComposing>"),
            Err(IsComposingError::Xml(_))
        ));
        assert!(parse(&[0xff, 0xfe]).is_err());
    }
}
