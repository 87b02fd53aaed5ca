//! Typed stanzas the component sends; pure functions, no I/O.

use std::collections::BTreeMap;

use minidom::Element;

use xmpp_parsers::chatstates::ChatState as XChatState;
use xmpp_parsers::displayed_markers::{Displayed, Markable};
use xmpp_parsers::http_upload::{Get, Put, SlotResult};
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::{BareJid, Jid};
use xmpp_parsers::message::{Id, Lang, Message, MessageType};
use xmpp_parsers::nick::Nick;
use xmpp_parsers::ns;
use xmpp_parsers::oob::Oob;
use xmpp_parsers::ping::Ping;
use xmpp_parsers::presence::{Presence, Type as PresenceType};
use xmpp_parsers::receipts::{Received, Request};
use xmpp_parsers::stanza::Stanza;
use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};

use crate::address::VisitorAddress;
use crate::command::{ChatState, Command, OutgoingMessage, UploadRefusal};

/// Removes characters XML 1.0 cannot carry (most C0 controls, U+FFFE,
/// U+FFFF). Visitor text can contain them; the encoder would fail halfway
/// through a stanza and leave the stream corrupt.
pub(crate) fn xml_text(s: &str) -> String {
    s.chars()
        .filter(|c| {
            matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
        })
        .collect()
}

pub(crate) fn to_xmpp_chat_state(state: ChatState) -> XChatState {
    match state {
        ChatState::Active => XChatState::Active,
        ChatState::Composing => XChatState::Composing,
        ChatState::Paused => XChatState::Paused,
        ChatState::Inactive => XChatState::Inactive,
        ChatState::Gone => XChatState::Gone,
    }
}

pub(crate) fn from_xmpp_chat_state(state: XChatState) -> ChatState {
    match state {
        XChatState::Active => ChatState::Active,
        XChatState::Composing => ChatState::Composing,
        XChatState::Paused => ChatState::Paused,
        XChatState::Inactive => ChatState::Inactive,
        XChatState::Gone => ChatState::Gone,
    }
}

fn chat(domain: &BareJid, from: &VisitorAddress, to: &Jid) -> Message {
    let mut message = Message::chat(Some(to.clone()));
    message.from = Some(from.to_jid(domain).into());
    message
}

/// A visitor's chat message: body, `<active/>` (we support chat states),
/// optional nick, OOB link, receipt request and markable.
pub(crate) fn message(domain: &BareJid, m: &OutgoingMessage) -> Message {
    let mut message = chat(domain, &m.from, &m.to)
        .with_body(Lang::new(), xml_text(&m.body))
        .with_payload(XChatState::Active);
    message.id = Some(Id(xml_text(&m.id)));
    if let Some(nick) = &m.nick {
        message.payloads.push(Element::from(Nick(xml_text(nick))));
    }
    if let Some(url) = &m.oob_url {
        message = message.with_payload(Oob {
            url: xml_text(url),
            desc: None,
        });
    }
    if m.request_receipt {
        message = message.with_payload(Request).with_payload(Markable);
    }
    message
}

pub(crate) fn chat_state(
    domain: &BareJid,
    from: &VisitorAddress,
    to: &Jid,
    state: ChatState,
) -> Message {
    chat(domain, from, to).with_payload(to_xmpp_chat_state(state))
}

pub(crate) fn receipt(domain: &BareJid, from: &VisitorAddress, to: &Jid, id: &str) -> Message {
    chat(domain, from, to).with_payload(Received { id: xml_text(id) })
}

pub(crate) fn displayed(domain: &BareJid, from: &VisitorAddress, to: &Jid, id: &str) -> Message {
    chat(domain, from, to).with_payload(Displayed {
        id: Id(xml_text(id)),
    })
}

/// A polite refusal of an agent's message: type `error`, condition `gone`.
pub(crate) fn error_reply(
    domain: &BareJid,
    from: &VisitorAddress,
    to: &Jid,
    id: Option<&str>,
    text: &str,
) -> Message {
    let mut message = Message::error(Some(to.clone()));
    message.from = Some(from.to_jid(domain).into());
    message.id = id.map(|id| Id(xml_text(id)));
    message.with_payload(StanzaError::new(
        ErrorType::Cancel,
        DefinedCondition::Gone { new_address: None },
        "en",
        xml_text(text),
    ))
}

pub(crate) fn presence_to(domain: &BareJid, type_: PresenceType, to: &BareJid) -> Presence {
    Presence::new(type_)
        .with_from(domain.clone())
        .with_to(to.clone())
}

/// Presence of a visitor address, with the visitor's name when known.
pub(crate) fn visitor_presence(
    domain: &BareJid,
    from: &VisitorAddress,
    to: &Jid,
    nick: Option<&str>,
) -> Presence {
    let type_ = if nick.is_some() {
        PresenceType::None
    } else {
        PresenceType::Unavailable
    };
    let mut presence = Presence::new(type_)
        .with_from(from.to_jid(domain))
        .with_to(to.clone());
    if let Some(nick) = nick {
        presence.payloads.push(Element::from(Nick(xml_text(nick))));
    }
    presence
}

pub(crate) fn ping(domain: &BareJid, target: &BareJid, id: String) -> Iq {
    Iq::from_get(id, Ping)
        .with_from(domain.clone().into())
        .with_to(target.clone().into())
}

pub(crate) fn stanza_error(
    type_: ErrorType,
    condition: DefinedCondition,
    text: &str,
) -> StanzaError {
    if text.is_empty() {
        StanzaError {
            type_,
            by: None,
            defined_condition: condition,
            texts: BTreeMap::new(),
            other: None,
        }
    } else {
        StanzaError::new(type_, condition, "en", text)
    }
}

/// The error answer to a message: same id, addresses swapped.
pub(crate) fn message_error(
    from: Option<Jid>,
    to: Option<Jid>,
    id: Option<String>,
    error: StanzaError,
) -> Message {
    let mut message = Message::new_with_type(MessageType::Error, from);
    message.from = to;
    message.id = id.map(Id);
    message.with_payload(error)
}

/// The error answer to an IQ request: same id, addresses swapped.
pub(crate) fn iq_error(from: Option<Jid>, to: Option<Jid>, id: String, error: StanzaError) -> Iq {
    Iq::Error {
        from: to,
        to: from,
        id,
        error,
        payload: None,
    }
}

/// The answer granting an upload slot (XEP-0363 `<slot/>`), from the
/// component domain. The PUT needs no extra headers: the slot id in its URL
/// is the capability.
pub(crate) fn upload_slot(
    domain: &BareJid,
    to: &Jid,
    iq_id: &str,
    put_url: &str,
    get_url: &str,
) -> Iq {
    Iq::Result {
        from: Some(domain.clone().into()),
        to: Some(to.clone()),
        id: iq_id.to_owned(),
        payload: Some(
            SlotResult {
                put: Put {
                    url: xml_text(put_url),
                    headers: Vec::new(),
                },
                get: Get {
                    url: xml_text(get_url),
                },
            }
            .into(),
        ),
    }
}

/// The XEP-0363 application condition that tells the client the limit:
/// `<file-too-large><max-file-size>N</max-file-size></file-too-large>`.
/// xmpp-parsers has no type for it; minidom builds it (still no string XML).
fn file_too_large(max_file_size: u64) -> Element {
    Element::builder("file-too-large", ns::HTTP_UPLOAD)
        .append(
            Element::builder("max-file-size", ns::HTTP_UPLOAD)
                .append(max_file_size.to_string())
                .build(),
        )
        .build()
}

/// The error answer to an upload slot request, from the component domain.
pub(crate) fn upload_refused(
    domain: &BareJid,
    to: &Jid,
    iq_id: &str,
    refusal: UploadRefusal,
    text: &str,
) -> Iq {
    let (type_, condition) = match refusal {
        UploadRefusal::FileTooLarge { .. } | UploadRefusal::NotAcceptable => {
            (ErrorType::Modify, DefinedCondition::NotAcceptable)
        }
        UploadRefusal::Forbidden => (ErrorType::Auth, DefinedCondition::Forbidden),
        UploadRefusal::ResourceConstraint => {
            (ErrorType::Wait, DefinedCondition::ResourceConstraint)
        }
        UploadRefusal::Unavailable => (ErrorType::Cancel, DefinedCondition::ServiceUnavailable),
    };
    let mut error = stanza_error(type_, condition, &xml_text(text));
    if let UploadRefusal::FileTooLarge { max_file_size } = refusal {
        error.other = Some(file_too_large(max_file_size));
    }
    iq_error(
        Some(to.clone()),
        Some(domain.clone().into()),
        iq_id.to_owned(),
        error,
    )
}

/// The stanza a command puts on the wire; `None` for commands that only
/// change the component's own state.
pub(crate) fn command_stanza(domain: &BareJid, command: &Command) -> Option<Stanza> {
    Some(match command {
        Command::SendMessage(m) => message(domain, m).into(),
        Command::ChatState { from, to, state } => chat_state(domain, from, to, *state).into(),
        Command::Receipt { from, to, id } => receipt(domain, from, to, id).into(),
        Command::Displayed { from, to, id } => displayed(domain, from, to, id).into(),
        Command::ErrorReply {
            from, to, id, text, ..
        } => error_reply(domain, from, to, id.as_deref(), text).into(),
        Command::Subscribe { agent } => presence_to(domain, PresenceType::Subscribe, agent).into(),
        Command::Probe { agent } => presence_to(domain, PresenceType::Probe, agent).into(),
        Command::UploadSlot {
            to,
            iq_id,
            put_url,
            get_url,
        } => upload_slot(domain, to, iq_id, put_url, get_url).into(),
        Command::UploadRefused {
            to,
            iq_id,
            condition,
            text,
        } => upload_refused(domain, to, iq_id, *condition, text).into(),
        Command::SetAgents(_)
        | Command::SetNick { .. }
        | Command::ForgetVisitor(_)
        | Command::SetUploadLimit(_)
        | Command::PingAnswered { .. }
        | Command::SetOnline(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain() -> BareJid {
        BareJid::new("chat.example.com").unwrap()
    }

    #[test]
    fn first_message_carries_nick_receipt_request_and_markable() {
        let m = OutgoingMessage {
            outbox_id: 1,
            from: VisitorAddress::new("visitor-1").unwrap(),
            nick: Some("Jane Doe".into()),
            to: Jid::new("101@example.com").unwrap(),
            body: "Hello <there> & co".into(),
            id: "m1".into(),
            oob_url: Some("https://example.com/f/1".into()),
            request_receipt: true,
        };
        let elem = Element::from(message(&domain(), &m));
        assert_eq!(elem.attr("from"), Some("visitor-1@chat.example.com"));
        assert_eq!(elem.attr("to"), Some("101@example.com"));
        assert_eq!(elem.attr("type"), Some("chat"));
        assert_eq!(elem.attr("id"), Some("m1"));
        let body = elem.get_child("body", xmpp_parsers::ns::COMPONENT).unwrap();
        assert_eq!(body.text(), "Hello <there> & co");
        let nick = elem.get_child("nick", xmpp_parsers::ns::NICK).unwrap();
        assert_eq!(nick.text(), "Jane Doe");
        assert!(elem.has_child("request", xmpp_parsers::ns::RECEIPTS));
        assert!(elem.has_child("markable", xmpp_parsers::ns::DISPLAYED_MARKERS));
        assert!(elem.has_child("active", xmpp_parsers::ns::CHATSTATES));
        let oob = elem.get_child("x", xmpp_parsers::ns::OOB).unwrap();
        assert_eq!(
            oob.get_child("url", xmpp_parsers::ns::OOB).unwrap().text(),
            "https://example.com/f/1"
        );
    }

    #[test]
    fn characters_xml_cannot_carry_are_removed() {
        let m = OutgoingMessage {
            outbox_id: 3,
            from: VisitorAddress::new("visitor-1").unwrap(),
            nick: Some("Ja\u{1}ne".into()),
            to: Jid::new("101@example.com").unwrap(),
            body: "a\u{0}b\u{1b}c\td\u{FFFF}é😀".into(),
            id: "m\u{7}3".into(),
            oob_url: None,
            request_receipt: false,
        };
        let stanza: Stanza = message(&domain(), &m).into();
        let xml = tokio_xmpp::PrintRawXml(&stanza).to_string();
        assert!(!xml.contains("failed to serialize"), "{xml}");
        let elem = Element::from(message(&domain(), &m));
        let body = elem.get_child("body", xmpp_parsers::ns::COMPONENT).unwrap();
        assert_eq!(body.text(), "abc\tdé😀");
        assert_eq!(elem.attr("id"), Some("m3"));
    }

    #[test]
    fn later_message_has_no_nick() {
        let m = OutgoingMessage {
            outbox_id: 2,
            from: VisitorAddress::new("visitor-1").unwrap(),
            nick: None,
            to: Jid::new("101@example.com").unwrap(),
            body: "again".into(),
            id: "m2".into(),
            oob_url: None,
            request_receipt: false,
        };
        let elem = Element::from(message(&domain(), &m));
        assert!(!elem.has_child("nick", xmpp_parsers::ns::NICK));
        assert!(!elem.has_child("request", xmpp_parsers::ns::RECEIPTS));
    }

    #[test]
    fn upload_slots_are_typed_results_from_the_domain() {
        let to = Jid::new("101@example.com/phone").unwrap();
        let elem = Element::from(upload_slot(
            &domain(),
            &to,
            "u1",
            "https://gw.example/upload/abc/a%20b.png",
            "https://gw.example/files/f?expires=1&sig=s",
        ));
        assert_eq!(elem.attr("type"), Some("result"));
        assert_eq!(elem.attr("id"), Some("u1"));
        assert_eq!(elem.attr("from"), Some("chat.example.com"));
        assert_eq!(elem.attr("to"), Some("101@example.com/phone"));
        let slot =
            SlotResult::try_from(elem.get_child("slot", ns::HTTP_UPLOAD).unwrap().clone()).unwrap();
        assert_eq!(slot.put.url, "https://gw.example/upload/abc/a%20b.png");
        assert!(slot.put.headers.is_empty());
        assert_eq!(slot.get.url, "https://gw.example/files/f?expires=1&sig=s");
    }

    #[test]
    fn file_too_large_carries_the_limit() {
        let to = Jid::new("101@example.com/phone").unwrap();
        let elem = Element::from(upload_refused(
            &domain(),
            &to,
            "u2",
            UploadRefusal::FileTooLarge {
                max_file_size: 5_242_880,
            },
            "too large",
        ));
        assert_eq!(elem.attr("type"), Some("error"));
        assert_eq!(elem.attr("id"), Some("u2"));
        assert_eq!(elem.attr("from"), Some("chat.example.com"));
        let error = elem.get_child("error", ns::COMPONENT).unwrap();
        assert_eq!(error.attr("type"), Some("modify"));
        assert!(error.has_child("not-acceptable", ns::XMPP_STANZAS));
        let max = error
            .get_child("file-too-large", ns::HTTP_UPLOAD)
            .and_then(|e| e.get_child("max-file-size", ns::HTTP_UPLOAD))
            .unwrap();
        assert_eq!(max.text(), "5242880");

        let elem = Element::from(upload_refused(
            &domain(),
            &to,
            "u3",
            UploadRefusal::Forbidden,
            "",
        ));
        let error = elem.get_child("error", ns::COMPONENT).unwrap();
        assert!(error.has_child("forbidden", ns::XMPP_STANZAS));
        assert!(!error.has_child("file-too-large", ns::HTTP_UPLOAD));
    }

    #[test]
    fn error_reply_is_a_gone_error_echoing_the_id() {
        let elem = Element::from(error_reply(
            &domain(),
            &VisitorAddress::new("visitor-1").unwrap(),
            &Jid::new("101@example.com/phone").unwrap(),
            Some("a1"),
            "This chat has ended.",
        ));
        assert_eq!(elem.attr("type"), Some("error"));
        assert_eq!(elem.attr("id"), Some("a1"));
        let error = elem
            .get_child("error", xmpp_parsers::ns::COMPONENT)
            .unwrap();
        assert!(error.has_child("gone", xmpp_parsers::ns::XMPP_STANZAS));
        assert_eq!(
            error
                .get_child("text", xmpp_parsers::ns::XMPP_STANZAS)
                .unwrap()
                .text(),
            "This chat has ended."
        );
    }
}
