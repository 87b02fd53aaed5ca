//! Decides what each incoming stanza means: an event for the gateway, an
//! answer the component gives itself, or both. Pure state machine, no I/O,
//! so every rule (allowlist, disco, presence, size limit) is unit-tested
//! without a server.
//!
//! Presence is reported per client (full JID), every time it arrives, and
//! never aggregated here: with several gateway nodes on one ejabberd, one
//! agent's presence stanzas land on different nodes' connections, so only
//! the shared store can tell the agent's availability over all clients
//! (the gateway records each client as a source). A probe answer repeats
//! a state already known; it is reported again, which tells the gateway
//! the client is still there.

use std::collections::{BTreeSet, HashMap, HashSet};

use minidom::Element;
use tokio_xmpp::xmlstream::RawStanzaHeader;
use xmpp_parsers::chatstates::ChatState as XChatState;
use xmpp_parsers::data_forms::{DataForm, DataFormType, Field, FieldType};
use xmpp_parsers::disco::{
    DiscoInfoQuery, DiscoInfoResult, DiscoItemsQuery, DiscoItemsResult, Identity,
};
use xmpp_parsers::displayed_markers::{Displayed, Markable};
use xmpp_parsers::http_upload::SlotRequest;
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::{BareJid, Jid};
use xmpp_parsers::message::{Message, MessageType};
use xmpp_parsers::ns;
use xmpp_parsers::oob::Oob;
use xmpp_parsers::ping::Ping;
use xmpp_parsers::presence::{Presence, Show, Type as PresenceType};
use xmpp_parsers::receipts::{Received, Request};
use xmpp_parsers::stanza::Stanza;
use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};
use xmpp_parsers::version::{VersionQuery, VersionResult};

use crate::address::VisitorAddress;
use crate::command::UploadRefusal;
use crate::event::{Availability, Event};
use crate::outgoing;
use crate::stream::StanzaKind;

/// Features advertised on visitor addresses: exactly what we handle.
const VISITOR_FEATURES: &[&str] = &[
    ns::DISCO_INFO,
    ns::CHATSTATES,
    ns::RECEIPTS,
    ns::DISPLAYED_MARKERS,
    ns::NICK,
    ns::OOB,
    ns::PING,
];

/// Features advertised on the component domain.
const DOMAIN_FEATURES: &[&str] = &[ns::DISCO_INFO, ns::DISCO_ITEMS, ns::VERSION, ns::PING];

/// What to do about one incoming stanza.
#[derive(Debug, PartialEq)]
pub(crate) enum Outcome {
    /// Tell the gateway.
    Emit(Event),
    /// Answer on the stream.
    Reply(Box<Stanza>),
}

/// Everything the component knows between stanzas.
#[derive(Debug)]
pub(crate) struct Directory {
    domain: BareJid,
    agents: HashSet<BareJid>,
    nicks: HashMap<VisitorAddress, String>,
    software_name: String,
    software_version: String,
    max_stanza_bytes: usize,
    /// HTTP File Upload's advertised `max-file-size`; `None`: not offered.
    upload_max_bytes: Option<u64>,
}

impl Directory {
    pub(crate) fn new(
        domain: BareJid,
        software_name: String,
        software_version: String,
        max_stanza_bytes: usize,
    ) -> Self {
        Self {
            domain,
            agents: HashSet::new(),
            nicks: HashMap::new(),
            software_name,
            software_version,
            max_stanza_bytes,
            upload_max_bytes: None,
        }
    }

    /// Offers HTTP File Upload up to `limit` bytes, or stops (`None`).
    pub(crate) fn set_upload_limit(&mut self, limit: Option<u64>) {
        self.upload_max_bytes = limit;
    }

    pub(crate) fn domain(&self) -> &BareJid {
        &self.domain
    }

    /// Replaces the allowlist; returns the agents that are new in it.
    pub(crate) fn set_agents(&mut self, agents: Vec<BareJid>) -> Vec<BareJid> {
        let new: HashSet<BareJid> = agents.into_iter().collect();
        let added = new.difference(&self.agents).cloned().collect();
        self.agents = new;
        added
    }

    /// The allowlisted agents (probed after every reconnect).
    pub(crate) fn agents(&self) -> impl Iterator<Item = &BareJid> {
        self.agents.iter()
    }

    pub(crate) fn set_nick(&mut self, address: VisitorAddress, nick: String) {
        self.nicks.insert(address, nick);
    }

    pub(crate) fn forget(&mut self, address: &VisitorAddress) {
        self.nicks.remove(address);
    }

    fn is_agent(&self, jid: &Jid) -> bool {
        self.agents.contains(&jid.to_bare())
    }

    fn visitor(&self, to: Option<&Jid>) -> Option<VisitorAddress> {
        to.and_then(|to| VisitorAddress::from_jid(to, &self.domain).ok())
    }

    fn is_domain(&self, to: Option<&Jid>) -> bool {
        to.is_some_and(|to| to.node().is_none() && to.domain() == self.domain.domain())
    }

    /// Handles a well-formed stanza of `size` serialised bytes.
    pub(crate) fn handle(&mut self, stanza: Stanza, size: usize) -> Vec<Outcome> {
        if size > self.max_stanza_bytes {
            tracing::warn!(
                size,
                limit = self.max_stanza_bytes,
                "refusing oversized stanza"
            );
            return self.refuse_oversized(stanza);
        }
        match stanza {
            Stanza::Message(m) => self.handle_message(m),
            Stanza::Presence(p) => self.handle_presence(p),
            Stanza::Iq(iq) => self.handle_iq(iq),
        }
    }

    fn refuse_oversized(&self, stanza: Stanza) -> Vec<Outcome> {
        let error = || {
            outgoing::stanza_error(
                ErrorType::Modify,
                DefinedCondition::PolicyViolation,
                "stanza too large",
            )
        };
        match stanza {
            Stanza::Message(m) if m.type_ != MessageType::Error => {
                vec![reply(outgoing::message_error(
                    m.from,
                    m.to,
                    m.id.map(|id| id.0),
                    error(),
                ))]
            }
            Stanza::Iq(Iq::Get { from, to, id, .. }) | Stanza::Iq(Iq::Set { from, to, id, .. }) => {
                vec![reply(outgoing::iq_error(from, to, id, error()))]
            }
            _ => Vec::new(),
        }
    }

    /// Handles a stanza xmpp-parsers could not parse: answered with
    /// `bad-request` when it is a request that expects an answer.
    pub(crate) fn handle_invalid(
        &self,
        kind: StanzaKind,
        header: &RawStanzaHeader,
        error: &str,
    ) -> Vec<Outcome> {
        tracing::warn!(?kind, from = ?header.from, to = ?header.to, id = ?header.id, error, "invalid stanza");
        let parse = |s: &Option<String>| s.as_deref().and_then(|s| Jid::new(s).ok());
        let (Some(from), Some(to)) = (parse(&header.from), parse(&header.to)) else {
            return Vec::new();
        };
        let bad_request = outgoing::stanza_error(
            ErrorType::Modify,
            DefinedCondition::BadRequest,
            "malformed stanza",
        );
        let type_ = header.type_.as_deref();
        match kind {
            StanzaKind::Message if type_ != Some("error") => vec![reply(outgoing::message_error(
                Some(from),
                Some(to),
                header.id.clone(),
                bad_request,
            ))],
            StanzaKind::Iq if matches!(type_, Some("get") | Some("set")) => match &header.id {
                Some(id) => vec![reply(outgoing::iq_error(
                    Some(from),
                    Some(to),
                    id.clone(),
                    bad_request,
                ))],
                None => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    fn handle_message(&mut self, m: Message) -> Vec<Outcome> {
        let Some(from) = m.from.clone() else {
            tracing::debug!("message without sender ignored");
            return Vec::new();
        };
        let Some(visitor) = self.visitor(m.to.as_ref()) else {
            if m.type_ == MessageType::Error {
                tracing::debug!(%from, "error message to the component domain ignored");
                return Vec::new();
            }
            return vec![reply(refuse_message(
                m,
                ErrorType::Cancel,
                DefinedCondition::ServiceUnavailable,
            ))];
        };
        if !self.is_agent(&from) {
            if m.type_ == MessageType::Error {
                tracing::debug!(%from, "error message from a non-agent ignored");
                return Vec::new();
            }
            tracing::info!(%from, to = %visitor, "refusing message from a JID that is not an agent");
            return vec![reply(refuse_message(
                m,
                ErrorType::Auth,
                DefinedCondition::Forbidden,
            ))];
        }
        match m.type_ {
            MessageType::Error => {
                let condition = m
                    .payloads
                    .iter()
                    .find_map(|p| StanzaError::try_from(p.clone()).ok())
                    .map(|e| condition_name(&e.defined_condition))
                    .unwrap_or_else(|| "undefined-condition".to_owned());
                vec![Outcome::Emit(Event::DeliveryFailed {
                    agent: from,
                    from: visitor,
                    id: m.id.map(|id| id.0),
                    condition,
                })]
            }
            MessageType::Groupchat => {
                vec![reply(refuse_message(
                    m,
                    ErrorType::Modify,
                    DefinedCondition::BadRequest,
                ))]
            }
            MessageType::Chat | MessageType::Normal | MessageType::Headline => {
                self.agent_message(from, visitor, m)
            }
        }
    }

    fn agent_message(&mut self, from: Jid, to: VisitorAddress, m: Message) -> Vec<Outcome> {
        let mut out = Vec::new();
        let oob_url = m
            .payloads
            .iter()
            .find_map(|p| Oob::try_from(p.clone()).ok())
            .map(|oob| oob.url);
        let receipt_requested = m
            .payloads
            .iter()
            .any(|p| Request::try_from(p.clone()).is_ok());
        let markable = m
            .payloads
            .iter()
            .any(|p| Markable::try_from(p.clone()).is_ok());
        let state = m
            .payloads
            .iter()
            .find_map(|p| XChatState::try_from(p.clone()).ok());
        for received in m
            .payloads
            .iter()
            .filter_map(|p| Received::try_from(p.clone()).ok())
        {
            out.push(Outcome::Emit(Event::AgentReceipt {
                from: from.clone(),
                to: to.clone(),
                id: received.id,
            }));
        }
        for displayed in m
            .payloads
            .iter()
            .filter_map(|p| Displayed::try_from(p.clone()).ok())
        {
            out.push(Outcome::Emit(Event::AgentDisplayed {
                from: from.clone(),
                to: to.clone(),
                id: displayed.id.0,
            }));
        }
        match m.get_best_body_cloned(vec!["en"]) {
            Some((_, body)) => out.push(Outcome::Emit(Event::AgentMessage {
                from,
                to,
                id: m.id.map(|id| id.0),
                body,
                receipt_requested,
                markable,
                oob_url,
            })),
            None => {
                if let Some(state) = state {
                    out.push(Outcome::Emit(Event::AgentChatState {
                        from,
                        to,
                        state: outgoing::from_xmpp_chat_state(state),
                    }));
                } else if out.is_empty() {
                    tracing::debug!(%from, "agent message without anything we understand");
                }
            }
        }
        out
    }

    fn handle_presence(&mut self, p: Presence) -> Vec<Outcome> {
        let Some(from) = p.from.clone() else {
            return Vec::new();
        };
        let agent = from.to_bare();
        let is_agent = self.agents.contains(&agent);
        let visitor = self.visitor(p.to.as_ref());
        let to_domain = self.is_domain(p.to.as_ref());
        match p.type_ {
            PresenceType::Probe => match (&visitor, is_agent) {
                (Some(v), true) => vec![reply(outgoing::visitor_presence(
                    &self.domain,
                    v,
                    &agent.into(),
                    self.nicks.get(v).map(String::as_str),
                ))],
                (None, true) if to_domain => vec![reply(outgoing::presence_to(
                    &self.domain,
                    PresenceType::None,
                    &agent,
                ))],
                _ => Vec::new(),
            },
            PresenceType::Subscribe => {
                let answer = |type_| -> Stanza {
                    let mut presence = outgoing::presence_to(&self.domain, type_, &agent);
                    if let Some(v) = &visitor {
                        presence.from = Some(v.to_jid(&self.domain).into());
                    }
                    presence.into()
                };
                if !is_agent || !(to_domain || visitor.is_some()) {
                    tracing::info!(%from, "refusing presence subscription from a non-agent");
                    return vec![reply(answer(PresenceType::Unsubscribed))];
                }
                let mut out = vec![reply(answer(PresenceType::Subscribed))];
                match &visitor {
                    Some(v) => out.push(reply(outgoing::visitor_presence(
                        &self.domain,
                        v,
                        &agent.clone().into(),
                        self.nicks.get(v).map(String::as_str),
                    ))),
                    None => out.push(reply(answer(PresenceType::None))),
                }
                out
            }
            PresenceType::Subscribed | PresenceType::Unsubscribed if is_agent && to_domain => {
                let subscribed = p.type_ == PresenceType::Subscribed;
                let mut out = vec![Outcome::Emit(Event::SubscriptionChanged {
                    agent: agent.clone(),
                    subscribed,
                })];
                if !subscribed {
                    out.extend(self.clear_presence(&agent));
                }
                out
            }
            PresenceType::None | PresenceType::Unavailable if is_agent && to_domain => {
                let availability = if p.type_ == PresenceType::Unavailable {
                    Availability::Unavailable
                } else {
                    match p.show {
                        None | Some(Show::Chat) => Availability::Available,
                        Some(Show::Away) => Availability::Away,
                        Some(Show::Xa) => Availability::ExtendedAway,
                        Some(Show::Dnd) => Availability::DoNotDisturb,
                    }
                };
                let resource = from.resource().map(|r| r.as_str().to_owned());
                vec![Outcome::Emit(Event::AgentPresence {
                    agent,
                    resource,
                    availability,
                })]
            }
            PresenceType::Error if is_agent => {
                tracing::info!(%from, "presence error from agent; treating as unavailable");
                self.clear_presence(&agent)
            }
            _ => {
                tracing::debug!(%from, type_ = ?p.type_, "presence ignored");
                Vec::new()
            }
        }
    }

    /// Every client of `agent` is to be taken as gone.
    fn clear_presence(&mut self, agent: &BareJid) -> Vec<Outcome> {
        vec![Outcome::Emit(Event::AgentPresence {
            agent: agent.clone(),
            resource: None,
            availability: Availability::Unavailable,
        })]
    }

    fn handle_iq(&mut self, iq: Iq) -> Vec<Outcome> {
        let (from, to, id, payload, is_get) = match iq {
            Iq::Get {
                from,
                to,
                id,
                payload,
            } => (from, to, id, payload, true),
            Iq::Set {
                from,
                to,
                id,
                payload,
            } => (from, to, id, payload, false),
            Iq::Result { from, id, .. } | Iq::Error { from, id, .. } => {
                tracing::debug!(?from, id, "unsolicited iq answer ignored");
                return Vec::new();
            }
        };
        let visitor = self.visitor(to.as_ref());
        if visitor.is_some() && !from.as_ref().is_some_and(|f| self.is_agent(f)) {
            return vec![reply(outgoing::iq_error(
                from,
                to,
                id,
                outgoing::stanza_error(ErrorType::Auth, DefinedCondition::Forbidden, ""),
            ))];
        }
        if is_get && visitor.is_none() && self.upload_max_bytes.is_some() {
            if let Some(request) = slot_request(&payload) {
                return self.slot_request(from, to, id, request);
            }
        }
        let answer = if !is_get {
            None
        } else if let Some(visitor) = &visitor {
            self.visitor_iq(visitor, payload)
        } else {
            self.domain_iq(payload)
        };
        match answer {
            Some(Answer::Result(payload)) => vec![reply(Iq::Result {
                from: to,
                to: from,
                id,
                payload,
            })],
            Some(Answer::Error(error)) => vec![reply(outgoing::iq_error(from, to, id, error))],
            None => vec![reply(outgoing::iq_error(
                from,
                to,
                id,
                outgoing::stanza_error(ErrorType::Cancel, DefinedCondition::ServiceUnavailable, ""),
            ))],
        }
    }

    /// An HTTP File Upload slot request to the component domain (uploads
    /// offered): agents' become events; strangers get `forbidden`, sizes
    /// over the advertised limit `file-too-large`, without bothering the
    /// gateway.
    fn slot_request(
        &self,
        from: Option<Jid>,
        to: Option<Jid>,
        id: String,
        request: SlotRequest,
    ) -> Vec<Outcome> {
        let agent = match from {
            Some(from) if self.is_agent(&from) => from,
            from => {
                tracing::info!(?from, "refusing an upload slot request from a non-agent");
                return vec![reply(outgoing::iq_error(
                    from,
                    to,
                    id,
                    outgoing::stanza_error(ErrorType::Auth, DefinedCondition::Forbidden, ""),
                ))];
            }
        };
        let max = self.upload_max_bytes.unwrap_or(0);
        if request.size > max {
            return vec![reply(outgoing::upload_refused(
                &self.domain,
                &agent,
                &id,
                UploadRefusal::FileTooLarge { max_file_size: max },
                "The file is larger than the size limit.",
            ))];
        }
        vec![Outcome::Emit(Event::UploadSlotRequest {
            from: agent,
            iq_id: id,
            filename: request.filename,
            size: request.size,
            content_type: request.content_type,
        })]
    }

    fn domain_iq(&self, payload: Element) -> Option<Answer> {
        if let Ok(query) = DiscoInfoQuery::try_from(payload.clone()) {
            if query.node.is_some() {
                return Some(item_not_found());
            }
            let mut info = disco_info(
                Identity::new("component", "generic", "en", "Frontdesk visitor chat"),
                DOMAIN_FEATURES,
            );
            if let Some(max) = self.upload_max_bytes {
                // XEP-0363 §2: the `store/file` identity, the feature, and
                // the limit as a data form clients read before uploading.
                info.identities.push(Identity::new(
                    "store",
                    "file",
                    "en",
                    "Frontdesk file upload",
                ));
                info.features.insert(ns::HTTP_UPLOAD.to_owned());
                info.extensions.push(DataForm::new(
                    DataFormType::Result_,
                    ns::HTTP_UPLOAD,
                    vec![Field::new("max-file-size", FieldType::TextSingle)
                        .with_value(&max.to_string())],
                ));
            }
            return Some(Answer::Result(Some(info.into())));
        }
        if let Ok(query) = DiscoItemsQuery::try_from(payload.clone()) {
            if query.node.is_some() {
                return Some(item_not_found());
            }
            return Some(Answer::Result(Some(
                DiscoItemsResult {
                    node: None,
                    items: Vec::new(),
                    rsm: None,
                }
                .into(),
            )));
        }
        if VersionQuery::try_from(payload.clone()).is_ok() {
            return Some(Answer::Result(Some(
                VersionResult {
                    name: self.software_name.clone(),
                    version: self.software_version.clone(),
                    os: None,
                }
                .into(),
            )));
        }
        if Ping::try_from(payload).is_ok() {
            return Some(Answer::Result(None));
        }
        None
    }

    fn visitor_iq(&self, visitor: &VisitorAddress, payload: Element) -> Option<Answer> {
        if let Ok(query) = DiscoInfoQuery::try_from(payload.clone()) {
            if query.node.is_some() {
                return Some(item_not_found());
            }
            let name = self
                .nicks
                .get(visitor)
                .cloned()
                .unwrap_or_else(|| visitor.to_string());
            return Some(Answer::Result(Some(
                disco_info(Identity::new("client", "web", "en", name), VISITOR_FEATURES).into(),
            )));
        }
        if Ping::try_from(payload).is_ok() {
            return Some(Answer::Result(None));
        }
        None
    }
}

enum Answer {
    Result(Option<Element>),
    Error(StanzaError),
}

fn item_not_found() -> Answer {
    Answer::Error(outgoing::stanza_error(
        ErrorType::Cancel,
        DefinedCondition::ItemNotFound,
        "",
    ))
}

fn disco_info(identity: Identity, features: &[&str]) -> DiscoInfoResult {
    DiscoInfoResult {
        node: None,
        identities: vec![identity],
        features: features
            .iter()
            .map(|f| (*f).to_owned())
            .collect::<BTreeSet<_>>(),
        extensions: Vec::new(),
    }
}

/// Parses an XEP-0363 slot request. `content-type` is optional in the XEP
/// but xmpp-parsers 0.23 requires the attribute, so a request without one
/// is parsed with an empty one, which means "none".
fn slot_request(payload: &Element) -> Option<SlotRequest> {
    if !payload.is("request", ns::HTTP_UPLOAD) {
        return None;
    }
    let mut payload = payload.clone();
    if payload.attr("content-type").is_none() {
        payload.set_attr(
            minidom::rxml::Namespace::NONE,
            minidom::rxml::xml_ncname!("content-type").to_owned(),
            "",
        );
    }
    let mut request = SlotRequest::try_from(payload).ok()?;
    request.content_type = request.content_type.filter(|t| !t.is_empty());
    Some(request)
}

fn reply(stanza: impl Into<Stanza>) -> Outcome {
    Outcome::Reply(Box::new(stanza.into()))
}

fn refuse_message(m: Message, type_: ErrorType, condition: DefinedCondition) -> Message {
    outgoing::message_error(
        m.from,
        m.to,
        m.id.map(|id| id.0),
        outgoing::stanza_error(type_, condition, ""),
    )
}

/// The RFC 6120 name of a condition, e.g. `service-unavailable`.
fn condition_name(condition: &DefinedCondition) -> String {
    Element::from(condition.clone()).name().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGENT: &str = "101@pbx.example";

    fn dir() -> Directory {
        let mut d = Directory::new(
            BareJid::new("chat.pbx.example").unwrap(),
            "Frontdesk".into(),
            "1.0".into(),
            4096,
        );
        d.set_agents(vec![BareJid::new(AGENT).unwrap()]);
        d
    }

    fn stanza(xml: &str) -> Stanza {
        let elem: Element = xml.parse().unwrap();
        match elem.name() {
            "message" => Message::try_from(elem).unwrap().into(),
            "presence" => Presence::try_from(elem).unwrap().into(),
            _ => Iq::try_from(elem).unwrap().into(),
        }
    }

    fn handle(d: &mut Directory, xml: &str) -> Vec<Outcome> {
        let s = stanza(xml);
        let size = xml.len();
        d.handle(s, size)
    }

    fn replies(outcomes: &[Outcome]) -> Vec<Element> {
        outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Reply(s) => Some(match &**s {
                    Stanza::Message(m) => Element::from(m.clone()),
                    Stanza::Presence(p) => Element::from(p.clone()),
                    Stanza::Iq(i) => Element::from(i.clone()),
                }),
                Outcome::Emit(_) => None,
            })
            .collect()
    }

    fn events(outcomes: Vec<Outcome>) -> Vec<Event> {
        outcomes
            .into_iter()
            .filter_map(|o| match o {
                Outcome::Emit(e) => Some(e),
                Outcome::Reply(_) => None,
            })
            .collect()
    }

    fn condition(reply: &Element) -> String {
        let error = reply
            .get_child("error", ns::COMPONENT)
            .expect("an error child");
        error
            .children()
            .find(|c| c.ns() == ns::XMPP_STANZAS && c.name() != "text")
            .unwrap()
            .name()
            .to_owned()
    }

    const NS: &str = "xmlns='jabber:component:accept'";

    #[test]
    fn strangers_get_forbidden_and_no_event() {
        let mut d = dir();
        let out = handle(
            &mut d,
            &format!("<message {NS} from='eve@evil.example/x' to='visitor-1@chat.pbx.example' type='chat' id='e1'><body>hi</body></message>"),
        );
        let r = replies(&out);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].attr("to"), Some("eve@evil.example/x"));
        assert_eq!(r[0].attr("from"), Some("visitor-1@chat.pbx.example"));
        assert_eq!(r[0].attr("id"), Some("e1"));
        assert_eq!(condition(&r[0]), "forbidden");
        assert!(events(out).is_empty());
    }

    #[test]
    fn removing_an_agent_from_the_allowlist_takes_effect_at_once() {
        let mut d = dir();
        let xml = format!("<message {NS} from='{AGENT}/d' to='visitor-1@chat.pbx.example' type='chat' id='x'><body>hi</body></message>");
        assert_eq!(events(handle(&mut d, &xml)).len(), 1);
        d.set_agents(vec![BareJid::new("102@pbx.example").unwrap()]);
        let out = handle(&mut d, &xml);
        assert_eq!(condition(&replies(&out)[0]), "forbidden");
        assert!(events(out).is_empty());
    }

    #[test]
    fn agent_messages_become_events() {
        let mut d = dir();
        let out = handle(
            &mut d,
            &format!("<message {NS} from='{AGENT}/desk' to='visitor-1@chat.pbx.example' type='chat' id='a1'><body>Hello</body><active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/><markable xmlns='urn:xmpp:chat-markers:0'/></message>"),
        );
        assert_eq!(
            events(out),
            [Event::AgentMessage {
                from: Jid::new(&format!("{AGENT}/desk")).unwrap(),
                to: VisitorAddress::new("visitor-1").unwrap(),
                id: Some("a1".into()),
                body: "Hello".into(),
                receipt_requested: true,
                markable: true,
                oob_url: None,
            }]
        );
        let out = handle(
            &mut d,
            &format!("<message {NS} from='{AGENT}/desk' to='visitor-1@chat.pbx.example' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>"),
        );
        assert!(matches!(
            &events(out)[..],
            [Event::AgentChatState {
                state: crate::ChatState::Composing,
                ..
            }]
        ));
        let out = handle(
            &mut d,
            &format!("<message {NS} from='{AGENT}/desk' to='visitor-1@chat.pbx.example'><received xmlns='urn:xmpp:receipts' id='v1'/></message>"),
        );
        assert!(matches!(&events(out)[..], [Event::AgentReceipt { id, .. }] if id == "v1"));
    }

    #[test]
    fn bounces_become_delivery_failures() {
        let mut d = dir();
        let out = handle(
            &mut d,
            &format!("<message {NS} from='{AGENT}' to='visitor-1@chat.pbx.example' type='error' id='m1'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"),
        );
        assert!(replies(&out).is_empty(), "never answer an error");
        assert!(matches!(
            &events(out)[..],
            [Event::DeliveryFailed { condition, id: Some(id), .. }] if condition == "service-unavailable" && id == "m1"
        ));
    }

    #[test]
    fn presence_is_reported_per_client_every_time() {
        let mut d = dir();
        let p = |res: &str, extra: &str, type_: &str| {
            format!("<presence {NS} from='{AGENT}/{res}' to='chat.pbx.example' {type_}>{extra}</presence>")
        };
        let reports = |e: Vec<Outcome>| -> Vec<(Option<String>, Availability)> {
            events(e)
                .into_iter()
                .map(|e| match e {
                    Event::AgentPresence {
                        agent,
                        resource,
                        availability,
                    } => {
                        assert_eq!(agent.as_str(), AGENT);
                        (resource, availability)
                    }
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        let phone = || Some("phone".to_owned());
        assert_eq!(
            reports(handle(&mut d, &p("phone", "<show>away</show>", ""))),
            [(phone(), Availability::Away)]
        );
        assert_eq!(
            reports(handle(&mut d, &p("desk", "", ""))),
            [(Some("desk".to_owned()), Availability::Available)]
        );
        // The same state again (a probe's answer) is reported again: it
        // says the client is still there.
        assert_eq!(
            reports(handle(&mut d, &p("phone", "<show>away</show>", ""))),
            [(phone(), Availability::Away)]
        );
        assert_eq!(
            reports(handle(&mut d, &p("phone", "<show>xa</show>", ""))),
            [(phone(), Availability::ExtendedAway)]
        );
        assert_eq!(
            reports(handle(&mut d, &p("phone", "<show>dnd</show>", ""))),
            [(phone(), Availability::DoNotDisturb)]
        );
        assert_eq!(
            reports(handle(&mut d, &p("phone", "", "type='unavailable'"))),
            [(phone(), Availability::Unavailable)]
        );
        // Unavailable from the bare JID, an error or a cancelled
        // subscription: every client is gone.
        let bare =
            format!("<presence {NS} from='{AGENT}' to='chat.pbx.example' type='unavailable'/>");
        assert_eq!(
            reports(handle(&mut d, &bare)),
            [(None, Availability::Unavailable)]
        );
        let error =
            format!("<presence {NS} from='{AGENT}/desk' to='chat.pbx.example' type='error'/>");
        assert_eq!(
            reports(handle(&mut d, &error)),
            [(None, Availability::Unavailable)]
        );
        // Directed presence to a visitor address says nothing about offers.
        let directed =
            format!("<presence {NS} from='{AGENT}/desk' to='visitor-1@chat.pbx.example'/>");
        assert!(handle(&mut d, &directed).is_empty());
        // Strangers' presence is ignored.
        let stranger = format!("<presence {NS} from='eve@evil.example/x' to='chat.pbx.example'/>");
        assert!(handle(&mut d, &stranger).is_empty());
    }

    #[test]
    fn subscriptions_to_visitor_addresses() {
        let mut d = dir();
        d.set_nick(VisitorAddress::new("visitor-1").unwrap(), "Jane Doe".into());
        let out = handle(
            &mut d,
            &format!(
                "<presence {NS} from='{AGENT}' to='visitor-1@chat.pbx.example' type='subscribe'/>"
            ),
        );
        let r = replies(&out);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].attr("type"), Some("subscribed"));
        assert_eq!(r[0].attr("from"), Some("visitor-1@chat.pbx.example"));
        assert_eq!(r[1].attr("type"), None);
        assert_eq!(r[1].get_child("nick", ns::NICK).unwrap().text(), "Jane Doe");
        let out = handle(
            &mut d,
            &format!("<presence {NS} from='eve@evil.example' to='visitor-1@chat.pbx.example' type='subscribe'/>"),
        );
        assert_eq!(replies(&out)[0].attr("type"), Some("unsubscribed"));
        // A forgotten visitor appears unavailable to probes.
        d.forget(&VisitorAddress::new("visitor-1").unwrap());
        let out = handle(
            &mut d,
            &format!(
                "<presence {NS} from='{AGENT}' to='visitor-1@chat.pbx.example' type='probe'/>"
            ),
        );
        assert_eq!(replies(&out)[0].attr("type"), Some("unavailable"));
    }

    #[test]
    fn subscription_answers_from_agents_are_events() {
        let mut d = dir();
        let out = handle(
            &mut d,
            &format!("<presence {NS} from='{AGENT}' to='chat.pbx.example' type='subscribed'/>"),
        );
        assert_eq!(
            events(out),
            [Event::SubscriptionChanged {
                agent: BareJid::new(AGENT).unwrap(),
                subscribed: true
            }]
        );
    }

    #[test]
    fn iqs_get_exact_answers() {
        let mut d = dir();
        let out = handle(&mut d, &format!("<iq {NS} from='{AGENT}/d' to='chat.pbx.example' type='get' id='q1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"));
        let r = &replies(&out)[0];
        assert_eq!(r.attr("type"), Some("result"));
        let features: Vec<&str> = r
            .get_child("query", ns::DISCO_INFO)
            .unwrap()
            .children()
            .filter(|c| c.name() == "feature")
            .filter_map(|c| c.attr("var"))
            .collect();
        let mut expected = DOMAIN_FEATURES.to_vec();
        expected.sort();
        assert_eq!(features, expected);

        let out = handle(&mut d, &format!("<iq {NS} from='x@y.example/d' to='chat.pbx.example' type='get' id='q2'><query xmlns='urn:example:unknown'/></iq>"));
        assert_eq!(condition(&replies(&out)[0]), "service-unavailable");
        let out = handle(&mut d, &format!("<iq {NS} from='{AGENT}/d' to='chat.pbx.example' type='set' id='q3'><ping xmlns='urn:xmpp:ping'/></iq>"));
        assert_eq!(condition(&replies(&out)[0]), "service-unavailable");
        let out = handle(
            &mut d,
            &format!("<iq {NS} from='{AGENT}/d' to='chat.pbx.example' type='result' id='zz'/>"),
        );
        assert!(out.is_empty());
    }

    fn features(reply: &Element) -> Vec<String> {
        reply
            .get_child("query", ns::DISCO_INFO)
            .unwrap()
            .children()
            .filter(|c| c.name() == "feature")
            .filter_map(|c| c.attr("var").map(str::to_owned))
            .collect()
    }

    const SLOT_REQUEST: &str = "<request xmlns='urn:xmpp:http:upload:0' filename='leak photo.png' size='1000' content-type='image/png'/>";

    #[test]
    fn uploads_are_only_advertised_with_a_limit() {
        let mut d = dir();
        let disco = format!("<iq {NS} from='{AGENT}/d' to='chat.pbx.example' type='get' id='q1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
        assert!(
            !features(&replies(&handle(&mut d, &disco))[0]).contains(&ns::HTTP_UPLOAD.to_owned())
        );
        let request = format!("<iq {NS} from='{AGENT}/d' to='chat.pbx.example' type='get' id='u1'>{SLOT_REQUEST}</iq>");
        let out = handle(&mut d, &request);
        assert_eq!(condition(&replies(&out)[0]), "service-unavailable");
        assert!(events(out).is_empty());

        d.set_upload_limit(Some(5_242_880));
        let r = &replies(&handle(&mut d, &disco))[0];
        assert!(features(r).contains(&ns::HTTP_UPLOAD.to_owned()));
        let info = DiscoInfoResult::try_from(r.get_child("query", ns::DISCO_INFO).unwrap().clone())
            .unwrap();
        assert!(info
            .identities
            .iter()
            .any(|i| i.category == "store" && i.type_ == "file"));
        let form = &info.extensions[0];
        assert_eq!(form.form_type(), Some(ns::HTTP_UPLOAD));
        let max = form
            .fields
            .iter()
            .find(|f| f.var.as_deref() == Some("max-file-size"))
            .unwrap();
        assert_eq!(max.values, ["5242880"]);
    }

    #[test]
    fn agents_slot_requests_become_events() {
        let mut d = dir();
        d.set_upload_limit(Some(5_242_880));
        let out = handle(&mut d, &format!("<iq {NS} from='{AGENT}/d' to='chat.pbx.example' type='get' id='u1'>{SLOT_REQUEST}</iq>"));
        assert!(replies(&out).is_empty());
        assert_eq!(
            events(out),
            [Event::UploadSlotRequest {
                from: Jid::new(&format!("{AGENT}/d")).unwrap(),
                iq_id: "u1".into(),
                filename: "leak photo.png".into(),
                size: 1000,
                content_type: Some("image/png".into()),
            }]
        );
    }

    #[test]
    fn slot_requests_from_strangers_or_too_large_are_refused_here() {
        let mut d = dir();
        d.set_upload_limit(Some(5_242_880));
        let out = handle(&mut d, &format!("<iq {NS} from='eve@evil.example/x' to='chat.pbx.example' type='get' id='u2'>{SLOT_REQUEST}</iq>"));
        let r = &replies(&out)[0];
        assert_eq!(condition(r), "forbidden");
        assert_eq!(r.attr("to"), Some("eve@evil.example/x"));
        assert_eq!(r.attr("id"), Some("u2"));
        assert!(events(out).is_empty());

        // No content-type: optional in XEP-0363.
        let big = "<request xmlns='urn:xmpp:http:upload:0' filename='big.bin' size='5242881'/>";
        let out = handle(
            &mut d,
            &format!(
                "<iq {NS} from='{AGENT}/d' to='chat.pbx.example' type='get' id='u3'>{big}</iq>"
            ),
        );
        let r = &replies(&out)[0];
        assert_eq!(condition(r), "not-acceptable");
        let max = r
            .get_child("error", ns::COMPONENT)
            .and_then(|e| e.get_child("file-too-large", ns::HTTP_UPLOAD))
            .and_then(|e| e.get_child("max-file-size", ns::HTTP_UPLOAD))
            .unwrap();
        assert_eq!(max.text(), "5242880");
        assert!(events(out).is_empty());
    }

    #[test]
    fn oversized_stanzas_get_policy_violation() {
        let mut d = dir();
        let body = "x".repeat(5000);
        let out = handle(&mut d, &format!("<message {NS} from='{AGENT}/d' to='visitor-1@chat.pbx.example' type='chat' id='big'><body>{body}</body></message>"));
        assert!(!out.iter().any(|o| matches!(o, Outcome::Emit(_))));
        assert_eq!(condition(&replies(&out)[0]), "policy-violation");
    }

    #[test]
    fn invalid_stanzas_get_bad_request_when_they_expect_an_answer() {
        let d = dir();
        let header = |type_: &str| RawStanzaHeader {
            from: Some(format!("{AGENT}/d")),
            to: Some("visitor-1@chat.pbx.example".into()),
            type_: Some(type_.into()),
            id: Some("x1".into()),
        };
        let out = d.handle_invalid(StanzaKind::Message, &header("bogus"), "bad type");
        assert_eq!(condition(&replies(&out)[0]), "bad-request");
        assert_eq!(replies(&out)[0].attr("id"), Some("x1"));
        assert!(d
            .handle_invalid(StanzaKind::Message, &header("error"), "e")
            .is_empty());
        assert!(d
            .handle_invalid(StanzaKind::Presence, &header("subscribe"), "e")
            .is_empty());
        let out = d.handle_invalid(StanzaKind::Iq, &header("get"), "bad payload");
        assert_eq!(condition(&replies(&out)[0]), "bad-request");
        assert!(d
            .handle_invalid(StanzaKind::Iq, &header("result"), "e")
            .is_empty());
        let mut no_from = header("chat");
        no_from.from = None;
        assert!(d
            .handle_invalid(StanzaKind::Message, &no_from, "e")
            .is_empty());
    }
}
