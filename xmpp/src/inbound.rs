//! Decides what each incoming stanza means: an event for the gateway, an
//! answer the component gives itself, or both. Pure state machine, no I/O,
//! so every rule (allowlist, disco, presence aggregation, size limit) is
//! unit-tested without a server.

use std::collections::{BTreeSet, HashMap, HashSet};

use minidom::Element;
use tokio_xmpp::xmlstream::RawStanzaHeader;
use xmpp_parsers::chatstates::ChatState as XChatState;
use xmpp_parsers::disco::{
    DiscoInfoQuery, DiscoInfoResult, DiscoItemsQuery, DiscoItemsResult, Identity,
};
use xmpp_parsers::displayed_markers::{Displayed, Markable};
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::{BareJid, Jid};
use xmpp_parsers::message::{Message, MessageType};
use xmpp_parsers::ns;
use xmpp_parsers::ping::Ping;
use xmpp_parsers::presence::{Presence, Show, Type as PresenceType};
use xmpp_parsers::receipts::{Received, Request};
use xmpp_parsers::stanza::Stanza;
use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};
use xmpp_parsers::version::{VersionQuery, VersionResult};

use crate::address::VisitorAddress;
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

#[derive(Debug, Default)]
struct AgentPresence {
    resources: HashMap<String, Availability>,
    reported: Option<Availability>,
}

impl AgentPresence {
    fn aggregate(&self) -> Availability {
        self.resources
            .values()
            .copied()
            .max()
            .unwrap_or(Availability::Unavailable)
    }
}

/// Everything the component knows between stanzas.
#[derive(Debug)]
pub(crate) struct Directory {
    domain: BareJid,
    agents: HashSet<BareJid>,
    nicks: HashMap<VisitorAddress, String>,
    presence: HashMap<BareJid, AgentPresence>,
    software_name: String,
    software_version: String,
    max_stanza_bytes: usize,
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
            presence: HashMap::new(),
            software_name,
            software_version,
            max_stanza_bytes,
        }
    }

    pub(crate) fn domain(&self) -> &BareJid {
        &self.domain
    }

    /// Replaces the allowlist; returns the agents that are new in it.
    pub(crate) fn set_agents(&mut self, agents: Vec<BareJid>) -> Vec<BareJid> {
        let new: HashSet<BareJid> = agents.into_iter().collect();
        let added = new.difference(&self.agents).cloned().collect();
        self.presence.retain(|agent, _| new.contains(agent));
        self.agents = new;
        added
    }

    /// Adds one agent to the set to probe (not to the allowlist).
    pub(crate) fn agents(&self) -> impl Iterator<Item = &BareJid> {
        self.agents.iter()
    }

    pub(crate) fn set_nick(&mut self, address: VisitorAddress, nick: String) {
        self.nicks.insert(address, nick);
    }

    pub(crate) fn forget(&mut self, address: &VisitorAddress) {
        self.nicks.remove(address);
    }

    /// After a reconnect nothing is known about presence until probes come
    /// back, and every answer is reported again.
    pub(crate) fn reset_presence(&mut self) {
        self.presence.clear();
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
        let has = |name: &str, namespace: &str| m.payloads.iter().any(|p| p.is(name, namespace));
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
            })),
            None => {
                if let Some(state) = state {
                    out.push(Outcome::Emit(Event::AgentChatState {
                        from,
                        to,
                        state: outgoing::from_xmpp_chat_state(state),
                    }));
                } else if out.is_empty() && !has("x", ns::OOB) {
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
                let resource = from
                    .resource()
                    .map(|r| r.as_str().to_owned())
                    .unwrap_or_default();
                let entry = self.presence.entry(agent.clone()).or_default();
                if resource.is_empty() && availability == Availability::Unavailable {
                    entry.resources.clear();
                } else if availability == Availability::Unavailable {
                    entry.resources.remove(&resource);
                } else {
                    entry.resources.insert(resource, availability);
                }
                self.report(&agent)
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

    fn clear_presence(&mut self, agent: &BareJid) -> Vec<Outcome> {
        self.presence
            .entry(agent.clone())
            .or_default()
            .resources
            .clear();
        self.report(agent)
    }

    fn report(&mut self, agent: &BareJid) -> Vec<Outcome> {
        let entry = self.presence.entry(agent.clone()).or_default();
        let availability = entry.aggregate();
        if entry.reported == Some(availability) {
            return Vec::new();
        }
        entry.reported = Some(availability);
        vec![Outcome::Emit(Event::AgentPresence {
            agent: agent.clone(),
            availability,
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

    fn domain_iq(&self, payload: Element) -> Option<Answer> {
        if let Ok(query) = DiscoInfoQuery::try_from(payload.clone()) {
            if query.node.is_some() {
                return Some(item_not_found());
            }
            return Some(Answer::Result(Some(
                disco_info(
                    Identity::new("component", "generic", "en", "Frontdesk visitor chat"),
                    DOMAIN_FEATURES,
                )
                .into(),
            )));
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
