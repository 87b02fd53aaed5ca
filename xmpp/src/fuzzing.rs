//! The inbound handling without a socket, for the cargo-fuzz target
//! (`xmpp/fuzz`, `xmpp_inbound`) and the property tests: what arrives from
//! the server is the one input of this crate that anybody on the XMPP
//! network can shape, so it is fed arbitrary bytes.
//!
//! [`Inbound::feed`] reads bytes as the inside of a component stream (in
//! its default namespace, `jabber:component:accept`), turns each top-level
//! element into what `stream.rs` would report (a typed stanza and its size,
//! an invalid stanza with its raw header, or something ignored), runs the
//! real `inbound::Directory` on it, and encodes every reply as the stream
//! would write it. [`Handled::check`] states what must hold whatever the
//! input. The directory is fixed and small: the domain [`DOMAIN`], one
//! allowlisted agent [`AGENT`], uploads offered, a stanza limit of
//! [`MAX_STANZA_BYTES`] (low, so the oversized path is reachable).
//!
//! One difference from the wire: bytes that are not well-formed XML are
//! refused whole here, where a connection would first handle the stanzas
//! before the error and then close; those stanzas are inputs of their own.
//!
//! Hidden from the docs and not part of the crate's API.

use minidom::Element;
use tokio_xmpp::xmlstream::RawStanzaHeader;
use tokio_xmpp::{FromElementError, PrintRawXml};
use xmpp_parsers::jid::{BareJid, Jid};
use xmpp_parsers::ns;
use xmpp_parsers::stanza::Stanza;

use crate::address::VisitorAddress;
use crate::event::Event;
use crate::inbound::{Directory, Outcome};
use crate::stream::{serialized_len, StanzaKind};

/// The component domain of the fixed directory.
pub const DOMAIN: &str = "chat.pbx.example";
/// The one allowlisted agent.
pub const AGENT: &str = "101@pbx.example";
/// A visitor address the directory knows a nick for.
pub const VISITOR: &str = "visitor-1";
/// The stanza size limit of the fixed directory.
pub const MAX_STANZA_BYTES: usize = 2048;

/// The component's inbound state, as after connecting and receiving the
/// allowlist, the upload limit and one visitor's nick.
pub struct Inbound {
    dir: Directory,
}

impl Default for Inbound {
    fn default() -> Self {
        Self::new()
    }
}

/// One top-level element of the stream and what the component made of it.
#[derive(Debug)]
pub struct Handled {
    /// The element's `from` and `type` attributes, as sent.
    pub from: Option<String>,
    pub type_: Option<String>,
    /// The serialised size of the typed stanza (`None`: not a valid stanza).
    pub size: Option<usize>,
    /// What the gateway is told.
    pub events: Vec<Event>,
    /// The answers, encoded as the stream writes them.
    pub replies: Vec<String>,
}

impl Inbound {
    pub fn new() -> Self {
        let domain = BareJid::new(DOMAIN).expect("a valid domain");
        let mut dir = Directory::new(
            domain,
            "Frontdesk".to_owned(),
            "fuzz".to_owned(),
            MAX_STANZA_BYTES,
        );
        dir.set_agents(vec![BareJid::new(AGENT).expect("a valid JID")]);
        dir.set_upload_limit(Some(5 * 1024 * 1024));
        let visitor = VisitorAddress::new(VISITOR).expect("a valid localpart");
        dir.set_nick(visitor, "Jane \u{1F469}".to_owned());
        Inbound { dir }
    }

    /// Handles every top-level element of `bytes`, read as the content of
    /// a component stream; nothing if they are not well-formed XML.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Handled> {
        let mut document = Vec::with_capacity(bytes.len() + 128);
        document.extend_from_slice(
            b"<stream:stream xmlns='jabber:component:accept' \
              xmlns:stream='http://etherx.jabber.org/streams'>",
        );
        document.extend_from_slice(bytes);
        document.extend_from_slice(b"</stream:stream>");
        let Ok(root) = Element::from_reader(&document[..]) else {
            return Vec::new();
        };
        root.children()
            .map(|element| self.element(element.clone()))
            .collect()
    }

    /// What `Connection::next` and `Driver::on_incoming` do with one element.
    fn element(&mut self, element: Element) -> Handled {
        let header = RawStanzaHeader {
            from: element.attr("from").map(str::to_owned),
            to: element.attr("to").map(str::to_owned),
            type_: element.attr("type").map(str::to_owned),
            id: element.attr("id").map(str::to_owned),
        };
        let kind = match element.name() {
            "message" => Some(StanzaKind::Message),
            "presence" => Some(StanzaKind::Presence),
            "iq" => Some(StanzaKind::Iq),
            _ => None,
        };
        let mut handled = Handled {
            from: header.from.clone(),
            type_: header.type_.clone(),
            size: None,
            events: Vec::new(),
            replies: Vec::new(),
        };
        let outcomes = match (kind, Stanza::try_from(element)) {
            (_, Ok(stanza)) => {
                let size = serialized_len(&stanza);
                handled.size = Some(size);
                self.dir.handle(stanza, size)
            }
            (Some(kind), Err(FromElementError::Invalid(error))) => {
                self.dir.handle_invalid(kind, &header, &error.to_string())
            }
            // Not a stanza: the stream skips it.
            _ => Vec::new(),
        };
        for outcome in outcomes {
            match outcome {
                Outcome::Emit(event) => handled.events.push(event),
                Outcome::Reply(stanza) => handled.replies.push(PrintRawXml(&*stanza).to_string()),
            }
        }
        handled
    }
}

impl Handled {
    /// What must hold for any input: only the allowlisted agent causes
    /// events; an oversized stanza causes none; an error is never
    /// answered (no error loops between two entities); every answer goes
    /// back to the sender, never to a third party; and every answer can be
    /// encoded and read back (an unencodable one would drop the stream, so
    /// a stranger could cut every agent off).
    pub fn check(&self) -> Result<(), String> {
        let agent = BareJid::new(AGENT).map_err(|e| e.to_string())?;
        for event in &self.events {
            if event_agent(event).as_ref() != Some(&agent) {
                return Err(format!("an event not from the agent: {event:?}"));
            }
        }
        if self.size.is_some_and(|s| s > MAX_STANZA_BYTES) && !self.events.is_empty() {
            return Err(format!("an oversized stanza caused {:?}", self.events));
        }
        if self.type_.as_deref() == Some("error") && !self.replies.is_empty() {
            return Err(format!("an error was answered: {:?}", self.replies));
        }
        let sender = bare(self.from.as_deref());
        for reply in &self.replies {
            let element: Element = reply
                .parse()
                .map_err(|e| format!("reply {reply:?} is not XML: {e}"))?;
            if element.ns() != ns::COMPONENT {
                return Err(format!("reply {reply:?} is outside the stream namespace"));
            }
            let to = bare(element.attr("to"));
            Stanza::try_from(element)
                .map_err(|e| format!("reply {reply:?} is not a valid stanza: {e}"))?;
            if to != sender {
                return Err(format!("reply {reply:?} is not for the sender {sender:?}"));
            }
        }
        Ok(())
    }
}

fn bare(jid: Option<&str>) -> Option<BareJid> {
    jid.and_then(|j| Jid::new(j).ok()).map(|j| j.to_bare())
}

/// The agent an event is about (`None` for connection events).
fn event_agent(event: &Event) -> Option<BareJid> {
    match event {
        Event::AgentMessage { from, .. }
        | Event::AgentChatState { from, .. }
        | Event::AgentReceipt { from, .. }
        | Event::AgentDisplayed { from, .. }
        | Event::UploadSlotRequest { from, .. } => Some(from.to_bare()),
        Event::DeliveryFailed { agent, .. } => Some(agent.to_bare()),
        Event::AgentPresence { agent, .. } | Event::SubscriptionChanged { agent, .. } => {
            Some(agent.clone())
        }
        Event::Connected
        | Event::Disconnected { .. }
        | Event::Sent { .. }
        | Event::StrayPong { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    //! The fuzz target's properties on every `cargo test`, over random
    //! bytes and over stanzas built from the pieces the handling looks at.

    use proptest::prelude::*;

    use super::*;

    /// `text` as XML character data or an attribute value. A carriage
    /// return goes as a reference: rxml 0.14 refuses a raw one followed by
    /// another character in an attribute value (see docs/fuzzing.md).
    fn escape(text: &str) -> String {
        text.replace('&', "&amp;")
            .replace('\r', "&#13;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('\'', "&apos;")
            .replace('"', "&quot;")
    }

    fn attr(name: &str, value: &Option<String>) -> String {
        value
            .as_ref()
            .map(|v| format!(" {name}='{}'", escape(v)))
            .unwrap_or_default()
    }

    fn senders() -> impl Strategy<Value = Option<String>> {
        prop::option::of(prop::sample::select(vec![
            format!("{AGENT}/desk"),
            AGENT.to_owned(),
            "101@PBX.example/phone".to_owned(),
            "eve@evil.example/x".to_owned(),
            "pbx.example".to_owned(),
            "@@bad".to_owned(),
        ]))
    }

    fn recipients() -> impl Strategy<Value = Option<String>> {
        prop::option::of(prop::sample::select(vec![
            format!("{VISITOR}@{DOMAIN}"),
            format!("{VISITOR}@{DOMAIN}/web"),
            format!("Visitor-1@{DOMAIN}"),
            DOMAIN.to_owned(),
            format!("bad!local@{DOMAIN}"),
            "someone@elsewhere.example".to_owned(),
        ]))
    }

    fn types() -> impl Strategy<Value = Option<String>> {
        prop::option::of(prop::sample::select(
            [
                "chat",
                "normal",
                "headline",
                "groupchat",
                "error",
                "get",
                "set",
                "result",
                "subscribe",
                "subscribed",
                "unsubscribed",
                "probe",
                "unavailable",
                "bogus",
            ]
            .map(str::to_owned)
            .to_vec(),
        ))
    }

    /// Text as a client may send it: any character XML can carry.
    fn text() -> impl Strategy<Value = String> + Clone {
        "[\t\n\r -\u{D7FF}\u{E000}-\u{FFFD}\u{10000}-\u{10FFFF}]{0,40}"
    }

    fn payload() -> impl Strategy<Value = String> {
        let text = text().prop_map(|t| escape(&t));
        prop_oneof![
            text.clone().prop_map(|t| format!("<body>{t}</body>")),
            text.clone().prop_map(|t| format!("<show>{t}</show>")),
            Just("<show>away</show>".to_owned()),
            text.clone()
                .prop_map(|t| format!("<received xmlns='urn:xmpp:receipts' id='{t}'/>")),
            Just("<request xmlns='urn:xmpp:receipts'/>".to_owned()),
            text.clone()
                .prop_map(|t| format!("<displayed xmlns='urn:xmpp:chat-markers:0' id='{t}'/>")),
            Just("<markable xmlns='urn:xmpp:chat-markers:0'/>".to_owned()),
            Just("<composing xmlns='http://jabber.org/protocol/chatstates'/>".to_owned()),
            text.clone()
                .prop_map(|t| format!("<x xmlns='jabber:x:oob'><url>{t}</url></x>")),
            Just("<query xmlns='http://jabber.org/protocol/disco#info'/>".to_owned()),
            text.clone().prop_map(|t| format!(
                "<query xmlns='http://jabber.org/protocol/disco#info' node='{t}'/>"
            )),
            Just("<query xmlns='http://jabber.org/protocol/disco#items'/>".to_owned()),
            Just("<query xmlns='jabber:iq:version'/>".to_owned()),
            Just("<ping xmlns='urn:xmpp:ping'/>".to_owned()),
            (text.clone(), any::<u64>()).prop_map(|(t, size)| format!(
                "<request xmlns='urn:xmpp:http:upload:0' filename='{t}' size='{size}'/>"
            )),
            Just(
                "<error type='cancel'><item-not-found \
                 xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
                    .to_owned()
            ),
            text.prop_map(|t| format!("<unknown xmlns='urn:example'>{t}</unknown>")),
            Just(format!("<body>{}</body>", "x".repeat(MAX_STANZA_BYTES))),
        ]
    }

    fn stanza() -> impl Strategy<Value = String> {
        (
            prop::sample::select(vec!["message", "presence", "iq"]),
            senders(),
            recipients(),
            types(),
            prop::option::of(text()),
            prop::collection::vec(payload(), 0..4),
        )
            .prop_map(|(name, from, to, type_, id, payloads)| {
                format!(
                    "<{name}{}{}{}{}>{}</{name}>",
                    attr("from", &from),
                    attr("to", &to),
                    attr("type", &type_),
                    attr("id", &id),
                    payloads.concat()
                )
            })
    }

    fn checked(bytes: &[u8]) -> Result<Vec<Handled>, TestCaseError> {
        let handled = Inbound::new().feed(bytes);
        for h in &handled {
            if let Err(broken) = h.check() {
                return Err(TestCaseError::fail(format!("{broken}\ninput: {h:?}")));
            }
        }
        Ok(handled)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn random_bytes_keep_the_invariants(
            bytes in prop::collection::vec(any::<u8>(), 0..512),
        ) {
            checked(&bytes)?;
        }

        #[test]
        fn built_stanzas_keep_the_invariants(
            stanzas in prop::collection::vec(stanza(), 1..6),
        ) {
            let handled = checked(stanzas.concat().as_bytes())?;
            prop_assert_eq!(handled.len(), stanzas.len());
        }

        /// What an agent types reaches the gateway exactly, once.
        #[test]
        fn agent_messages_round_trip(body in text(), id in "[a-z0-9-]{1,16}") {
            prop_assume!(!body.is_empty());
            let xml = format!(
                "<message from='{AGENT}/desk' to='{VISITOR}@{DOMAIN}' type='chat' id='{id}'>\
                 <body>{}</body></message>",
                escape(&body)
            );
            let handled = checked(xml.as_bytes())?;
            prop_assert_eq!(handled.len(), 1);
            let events = &handled[0].events;
            prop_assert!(
                matches!(&events[..], [Event::AgentMessage { body: got, id: Some(got_id), .. }]
                    if *got == body && *got_id == id),
                "{:?}", events
            );
        }

        /// Cut or corrupted stanzas are refused or answered, never trusted.
        #[test]
        fn mangled_stanzas_keep_the_invariants(
            stanza in stanza(),
            cut in 0usize..600,
            flip in 0usize..600,
            byte in any::<u8>(),
        ) {
            let mut bytes = stanza.into_bytes();
            if flip < bytes.len() {
                bytes[flip] = byte;
            }
            bytes.truncate(cut.max(1));
            checked(&bytes)?;
        }
    }

    #[test]
    fn the_directory_is_the_component_s() {
        let xml = format!(
            "<iq from='{AGENT}/d' to='{DOMAIN}' type='get' id='q'>\
             <query xmlns='http://jabber.org/protocol/disco#info'/></iq>\
             <message from='eve@evil.example/x' to='{VISITOR}@{DOMAIN}' type='chat'>\
             <body>hi</body></message>"
        );
        let handled = Inbound::new().feed(xml.as_bytes());
        assert_eq!(handled.len(), 2);
        assert!(handled[0].replies[0].contains("urn:xmpp:http:upload:0"));
        assert!(handled[1].replies[0].contains("forbidden"));
        assert!(handled.iter().all(|h| h.events.is_empty()));
        assert!(Inbound::new().feed(b"<message").is_empty());
    }
}
