//! What an incoming SIP request means for the gateway — a pure function of
//! the parsed request, the address it came from, the gateway domain, the
//! agent allowlist and the trust settings, so every rule is unit-tested and
//! fuzzed (`pbx-adapter/fuzz`, target `sip_parse`) without a network.
//!
//! # Who may speak for an agent
//! A SIP header says whatever its sender wants: `From: <sip:101@pbx>`
//! from any host on the network would otherwise let anyone answer a
//! visitor as agent 101, take a ringing chat or `/end` it, and a made-up
//! visitor address would make the gateway write to the real agent. Only
//! the PBX's proxy authenticates agents (digest on REGISTER and MESSAGE),
//! so only what the proxy relays is believed. The decision is made on the
//! transport's source address ([`Peer`], the socket peer the user agent
//! passes in), never on `Via`, `Contact` or `Record-Route`, which the
//! sender writes: trusted sources are the outbound proxy's resolved
//! addresses plus the configured [`TrustedHost`]s, compared by IP only
//! (Kamailio opens TCP connections from ephemeral ports). A UDP source
//! address is hard to forge off-path but trivial on-path, which is why
//! TCP/TLS from the proxy is preferred and [`Trust`] can refuse agent
//! messages on other transports.
//!
//! Anything from an untrusted source gets 403 before its method or headers
//! are looked at — MESSAGE, OPTIONS and the rest alike: keep-alives and
//! probes come from the proxy, and a scanner learns nothing about what the
//! gateway supports. Nothing of it is reported to the gateway.
//!
//! With [`IdentitySource::PAssertedIdentity`] the agent is the first SIP
//! URI of `P-Asserted-Identity` (RFC 3325: the proxy asserts who it
//! authenticated) and `From` is ignored; a MESSAGE without it is refused.
//! A PAI header from an untrusted source is never read, since that source
//! is refused outright; with [`IdentitySource::From`] PAI is ignored.
//!
//! # Rules
//! In order (RFC 3428 for MESSAGE, RFC 3994 for is-composing):
//! - any request from a source that is not trusted → 403;
//! - OPTIONS → 200 (keep-alives and probes of visitor addresses);
//! - a method other than MESSAGE → 405;
//! - MESSAGE over a transport agents may not use → 403;
//! - no readable identity → 400 (`From`) or 403 (no PAI);
//! - an identity that is not an allowlisted agent → 403;
//! - to another domain or without a user → 404;
//! - a `text/plain` body (or no Content-Type) → [`Inbound::Message`],
//!   answered by the gateway once stored; empty or non-UTF-8 text → 400;
//! - `application/im-iscomposing+xml` → [`Inbound::Composing`] (answered
//!   200 at once); other bodies → 415.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use rsipstack::sip::{typed, Header, HeadersExt, Method, Request, SipMessage, Uri};

use crate::queue::SipUri;
use crate::sip::config::SipTransport;
use crate::sip::iscomposing;

/// The meaning of an incoming request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// Text from an agent to a visitor: the gateway answers.
    Message {
        from: SipUri,
        to_user: String,
        body: String,
    },
    /// Typing indication from an agent: answered 200 here.
    Composing {
        from: SipUri,
        to_user: String,
        active: bool,
    },
    /// Answer 200 and report nothing (OPTIONS).
    Ok,
    /// Answer with this status and report nothing; `why` is for the log.
    Refuse { status: u16, why: String },
}

impl Inbound {
    fn refuse(status: u16, why: impl Into<String>) -> Self {
        Inbound::Refuse {
            status,
            why: why.into(),
        }
    }
}

/// Where an incoming request came from: the transport's peer address and
/// the transport it used — never read from a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub addr: SocketAddr,
    pub transport: SipTransport,
}

/// Which header names the agent in a MESSAGE from a trusted source
/// (`"from"`, `"p-asserted-identity"` in configuration files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdentitySource {
    /// The `From` URI: right when the proxy refuses MESSAGEs whose `From`
    /// is not the authenticated user (Kamailio: `auth_check(…, "1")` or
    /// `$fU == $au`).
    #[default]
    From,
    /// RFC 3325 `P-Asserted-Identity`, which the proxy adds after
    /// authenticating the sender; `From` is ignored.
    PAssertedIdentity,
}

/// An IP network: an address and a prefix length (a single address is a
/// /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// The network of `addr` with `prefix` bits; host bits are cleared.
    /// `None` when the prefix is longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<IpNet> {
        let addr = addr.to_canonical();
        let bits = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        (prefix <= bits).then(|| IpNet {
            addr: mask(addr, prefix),
            prefix,
        })
    }

    /// Just this address.
    pub fn host(addr: IpAddr) -> IpNet {
        let addr = addr.to_canonical();
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        IpNet { addr, prefix }
    }

    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts
    /// as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix) == self.addr
    }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let keep = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & keep).into())
        }
        IpAddr::V6(v6) => {
            let keep = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & keep).into())
        }
    }
}

impl std::fmt::Display for IpNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// One `trusted_hosts` entry: an IP, a CIDR range, or a host name that
/// the user agent resolves when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustedHost {
    Net(IpNet),
    Name(String),
}

/// Why a `trusted_hosts` entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{entry:?} is not an IP address, a CIDR range (10.0.0.0/8) or a host name: {why}")]
pub struct TrustedHostError {
    pub entry: String,
    pub why: &'static str,
}

impl FromStr for TrustedHost {
    type Err = TrustedHostError;

    fn from_str(entry: &str) -> Result<Self, Self::Err> {
        let fail = |why| TrustedHostError {
            entry: entry.to_owned(),
            why,
        };
        let text = entry.trim();
        let bare = |s: &str| -> Option<IpAddr> {
            let s = s
                .strip_prefix('[')
                .and_then(|s| s.strip_suffix(']'))
                .unwrap_or(s);
            s.parse().ok()
        };
        if let Some((ip, prefix)) = text.split_once('/') {
            let ip = bare(ip).ok_or_else(|| fail("the part before '/' is not an IP address"))?;
            let prefix = prefix
                .parse::<u8>()
                .map_err(|_| fail("the prefix length is not a number"))?;
            return IpNet::new(ip, prefix)
                .map(TrustedHost::Net)
                .ok_or_else(|| fail("the prefix is longer than the address"));
        }
        if let Some(ip) = bare(text) {
            return Ok(TrustedHost::Net(IpNet::host(ip)));
        }
        if !crate::sip::config::is_domain(text) {
            return Err(fail(
                "no port, scheme or spaces; a name is letters, digits, '-' and '.'",
            ));
        }
        Ok(TrustedHost::Name(text.to_ascii_lowercase()))
    }
}

/// Whom the user agent believes about agents: the trusted source networks
/// (the proxy's addresses and `trusted_hosts`, resolved), the identity
/// header, and the transports agents' MESSAGEs may use (empty: any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trust {
    pub sources: Vec<IpNet>,
    pub identity: IdentitySource,
    pub agent_transports: Vec<SipTransport>,
}

impl Trust {
    /// Whether requests from `ip` may speak for agents.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.sources.iter().any(|net| net.contains(ip))
    }

    fn allows_transport(&self, transport: SipTransport) -> bool {
        self.agent_transports.is_empty() || self.agent_transports.contains(&transport)
    }
}

/// The agent allowlist, matched the RFC 3261 way; an allowlisted AOR
/// without a port also matches the same user and host with any port.
#[derive(Debug, Clone, Default)]
pub struct Allowlist(HashSet<SipUri>);

impl Allowlist {
    pub fn new(agents: impl IntoIterator<Item = SipUri>) -> Self {
        Self(agents.into_iter().collect())
    }

    /// The allowlisted AOR `uri` belongs to, if any.
    pub fn find(&self, uri: &SipUri) -> Option<&SipUri> {
        self.0.get(uri).or_else(|| {
            self.0.iter().find(|a| {
                a.port().is_none()
                    && a.scheme() == uri.scheme()
                    && a.user() == uri.user()
                    && a.host() == uri.host()
            })
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = &SipUri> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Converts a wire URI to our [`SipUri`] (parameters dropped).
pub fn to_sip_uri(uri: &Uri) -> Option<SipUri> {
    let user = &uri.auth.as_ref()?.user;
    let scheme = match uri.scheme {
        Some(rsipstack::sip::Scheme::Sips) => "sips",
        Some(rsipstack::sip::Scheme::Sip) | None => "sip",
        Some(rsipstack::sip::Scheme::Other(_)) => return None,
    };
    SipUri::parse_address_of(&format!("{scheme}:{user}@{}", uri.host_with_port)).ok()
}

/// Classifies a request from `peer` (see the module doc for the rules).
pub fn classify(
    request: &Request,
    peer: &Peer,
    domain: &str,
    agents: &Allowlist,
    trust: &Trust,
) -> Inbound {
    if !trust.trusts(peer.addr.ip()) {
        return Inbound::refuse(403, format!("{} is not a trusted proxy", peer.addr));
    }
    match request.method {
        Method::Message => {}
        Method::Options => return Inbound::Ok,
        ref other => return Inbound::refuse(405, format!("method {other} not supported")),
    }
    if !trust.allows_transport(peer.transport) {
        return Inbound::refuse(
            403,
            format!("agent messages may not use {}", peer.transport.as_str()),
        );
    }
    let sender = match identity(request, trust.identity) {
        Ok(sender) => sender,
        Err(refusal) => return refusal,
    };
    let Some(agent) = agents.find(&sender) else {
        return Inbound::refuse(403, format!("{sender} is not an agent"));
    };
    let Some(to_user) = visitor_user(&request.uri, domain) else {
        return Inbound::refuse(404, format!("{} is not on {domain}", request.uri));
    };
    let content_type = request.headers.iter().find_map(|h| match h {
        Header::ContentType(ct) => Some(ct.value().to_owned()),
        _ => None,
    });
    let media = content_type
        .as_deref()
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|| "text/plain".to_owned());
    let body = request.body();
    match media.as_str() {
        "text/plain" => match std::str::from_utf8(body) {
            Ok(text) if !text.trim().is_empty() => Inbound::Message {
                from: agent.clone(),
                to_user,
                body: text.to_owned(),
            },
            Ok(_) => Inbound::refuse(400, "empty message"),
            Err(_) => Inbound::refuse(400, "message text is not UTF-8"),
        },
        iscomposing::CONTENT_TYPE => match iscomposing::parse(body) {
            Ok(active) => Inbound::Composing {
                from: agent.clone(),
                to_user,
                active,
            },
            Err(e) => Inbound::refuse(400, format!("bad is-composing document: {e}")),
        },
        other => Inbound::refuse(415, format!("unsupported content type {other}")),
    }
}

/// The sender, from the header `source` names.
fn identity(request: &Request, source: IdentitySource) -> Result<SipUri, Inbound> {
    match source {
        IdentitySource::From => request
            .from_header()
            .ok()
            .and_then(|h| h.uri().ok())
            .and_then(|uri| to_sip_uri(&uri))
            .ok_or_else(|| Inbound::refuse(400, "unreadable From")),
        IdentitySource::PAssertedIdentity => request
            .headers
            .iter()
            .filter_map(|h| match h {
                Header::PAssertedIdentity(pai) => Some(pai.value()),
                _ => None,
            })
            .flat_map(split_list)
            .filter_map(|value| typed::From::parse(value).ok())
            .find_map(|name_addr| to_sip_uri(&name_addr.uri))
            .ok_or_else(|| Inbound::refuse(403, "no P-Asserted-Identity with a SIP URI")),
    }
}

/// The comma-separated values of a header (RFC 3261 §7.3.1), ignoring
/// commas inside quoted display names and `<…>` URIs.
fn split_list(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut quoted, mut escaped, mut angle, mut start) = (false, false, false, 0);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                parts.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(value[start..].trim());
    parts.retain(|p| !p.is_empty());
    parts
}

/// The user part of a Request-URI on the gateway domain.
fn visitor_user(uri: &Uri, domain: &str) -> Option<String> {
    let user = &uri.auth.as_ref()?.user;
    let host = uri.host_with_port.host.to_string();
    (!user.is_empty() && host.eq_ignore_ascii_case(domain)).then(|| user.clone())
}

/// Parses raw bytes as the transport would and classifies a request: the
/// entry point the fuzz target drives. `None` for anything that is not a
/// parseable request (responses are the transaction layer's business).
pub fn parse_and_classify(
    bytes: &[u8],
    peer: &Peer,
    domain: &str,
    agents: &Allowlist,
    trust: &Trust,
) -> Option<Inbound> {
    match rsipstack::sip::parser::parse_message(bytes).ok()? {
        SipMessage::Request(request) => Some(classify(&request, peer, domain, agents, trust)),
        SipMessage::Response(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn agents() -> Allowlist {
        Allowlist::new(["sip:101@pbx.localhost".parse().unwrap()])
    }

    /// The proxy's address in these tests.
    const PROXY: &str = "192.0.2.10:5060";

    fn request(method: &str, from: &str, ruri: &str, ctype: Option<&str>, body: &str) -> Vec<u8> {
        request_with(method, from, ruri, ctype, body, "")
    }

    /// A request with `extra` header lines (each ending in CRLF).
    fn request_with(
        method: &str,
        from: &str,
        ruri: &str,
        ctype: Option<&str>,
        body: &str,
        extra: &str,
    ) -> Vec<u8> {
        let mut text = format!(
            "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1\r\n\
             From: <{from}>;tag=a\r\nTo: <{ruri}>\r\nCall-ID: c1\r\nCSeq: 1 {method}\r\n\
             Max-Forwards: 70\r\n{extra}"
        );
        if let Some(ct) = ctype {
            text.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        text.into_bytes()
    }

    fn trust(identity: IdentitySource) -> Trust {
        Trust {
            sources: vec![
                IpNet::host(PROXY.parse::<SocketAddr>().unwrap().ip()),
                "10.1.0.0/16".parse::<TrustedHost>().map(net).unwrap(),
            ],
            identity,
            agent_transports: Vec::new(),
        }
    }

    fn net(host: TrustedHost) -> IpNet {
        match host {
            TrustedHost::Net(net) => net,
            TrustedHost::Name(name) => panic!("a name: {name}"),
        }
    }

    fn peer(addr: &str, transport: SipTransport) -> Peer {
        Peer {
            addr: addr.parse().unwrap(),
            transport,
        }
    }

    fn classify_from(bytes: &[u8], from: &str, trust: &Trust) -> Inbound {
        let peer = peer(from, SipTransport::Udp);
        parse_and_classify(bytes, &peer, "chat.localhost", &agents(), trust).expect("a request")
    }

    fn classify_bytes(bytes: &[u8]) -> Inbound {
        classify_from(bytes, PROXY, &trust(IdentitySource::From))
    }

    fn status(i: Inbound) -> u16 {
        match i {
            Inbound::Refuse { status, .. } => status,
            other => panic!("not refused: {other:?}"),
        }
    }

    fn agent_text() -> Vec<u8> {
        request(
            "MESSAGE",
            "sip:101@pbx.localhost",
            "sip:visitor-a1@chat.localhost",
            None,
            "hello",
        )
    }

    #[test]
    fn agent_text_becomes_a_message() {
        let got = classify_bytes(&request(
            "MESSAGE",
            "sip:101@pbx.localhost:5060;transport=udp",
            "sip:visitor-a1@chat.localhost",
            Some("text/plain;charset=UTF-8"),
            "Hi there, ünïcode",
        ));
        assert_eq!(
            got,
            Inbound::Message {
                from: "sip:101@pbx.localhost".parse().unwrap(),
                to_user: "visitor-a1".into(),
                body: "Hi there, ünïcode".into(),
            }
        );
    }

    #[test]
    fn is_composing_is_recognised() {
        let doc = String::from_utf8(iscomposing::build(true)).unwrap();
        let got = classify_bytes(&request(
            "MESSAGE",
            "sip:101@pbx.localhost",
            "sip:visitor-a1@CHAT.localhost",
            Some(iscomposing::CONTENT_TYPE),
            &doc,
        ));
        assert!(matches!(got, Inbound::Composing { active: true, .. }));
    }

    #[test]
    fn strangers_and_misaddressed_requests_are_refused() {
        let stranger = request(
            "MESSAGE",
            "sip:999@pbx.localhost",
            "sip:visitor-a1@chat.localhost",
            None,
            "x",
        );
        assert_eq!(status(classify_bytes(&stranger)), 403);
        let other_domain = request(
            "MESSAGE",
            "sip:101@pbx.localhost",
            "sip:102@pbx.localhost",
            None,
            "x",
        );
        assert_eq!(status(classify_bytes(&other_domain)), 404);
        let html = request(
            "MESSAGE",
            "sip:101@pbx.localhost",
            "sip:visitor-a1@chat.localhost",
            Some("text/html"),
            "<b>x</b>",
        );
        assert_eq!(status(classify_bytes(&html)), 415);
        let empty = request(
            "MESSAGE",
            "sip:101@pbx.localhost",
            "sip:visitor-a1@chat.localhost",
            Some("text/plain"),
            " ",
        );
        assert_eq!(status(classify_bytes(&empty)), 400);
        let invite = request(
            "INVITE",
            "sip:101@pbx.localhost",
            "sip:visitor-a1@chat.localhost",
            None,
            "",
        );
        assert_eq!(status(classify_bytes(&invite)), 405);
        let options = request(
            "OPTIONS",
            "sip:999@pbx.localhost",
            "sip:visitor-a1@chat.localhost",
            None,
            "",
        );
        assert_eq!(classify_bytes(&options), Inbound::Ok);
    }

    #[test]
    fn allowlist_ignores_a_port_the_aor_lacks() {
        let list = agents();
        assert!(list
            .find(&"sip:101@pbx.localhost:5062".parse().unwrap())
            .is_some());
        assert!(list
            .find(&"sip:102@pbx.localhost".parse().unwrap())
            .is_none());
        assert!(list
            .find(&"sips:101@pbx.localhost".parse().unwrap())
            .is_none());
    }

    #[test]
    fn garbage_is_not_a_request() {
        let (peer, trust) = (peer(PROXY, SipTransport::Udp), trust(IdentitySource::From));
        let parse =
            |bytes: &[u8]| parse_and_classify(bytes, &peer, "chat.localhost", &agents(), &trust);
        assert_eq!(parse(b""), None);
        assert_eq!(parse(b"\r\n\r\n"), None);
        assert_eq!(parse(b"SIP/2.0 200 OK\r\n\r\n"), None);
    }

    #[test]
    fn only_trusted_sources_speak_for_agents() {
        let trust = trust(IdentitySource::From);
        let from = |source: &str| classify_from(&agent_text(), source, &trust);
        // The proxy, on another port (TCP connections use ephemeral ports),
        // and a trusted range.
        assert!(matches!(from(PROXY), Inbound::Message { .. }));
        assert!(matches!(from("192.0.2.10:40123"), Inbound::Message { .. }));
        assert!(matches!(from("10.1.200.3:5060"), Inbound::Message { .. }));
        assert!(matches!(
            from("[::ffff:192.0.2.10]:5060"),
            Inbound::Message { .. }
        ));
        // Anyone else, even next door, even with the proxy in Via.
        for stranger in ["192.0.2.11:5060", "10.2.0.1:5060", "[2001:db8::1]:5060"] {
            assert_eq!(status(from(stranger)), 403, "{stranger}");
        }
        // Every method, so a scanner learns nothing (OPTIONS included).
        for method in ["OPTIONS", "INVITE", "REGISTER"] {
            let bytes = request(
                method,
                "sip:101@pbx.localhost",
                "sip:visitor-a1@chat.localhost",
                None,
                "",
            );
            assert_eq!(
                status(classify_from(&bytes, "192.0.2.99:5060", &trust)),
                403,
                "{method}"
            );
        }
        // Nothing trusted: nobody gets in.
        assert_eq!(
            status(classify_from(&agent_text(), PROXY, &Trust::default())),
            403
        );
    }

    #[test]
    fn agent_messages_may_be_limited_to_stream_transports() {
        let mut trust = trust(IdentitySource::From);
        trust.agent_transports = vec![SipTransport::Tcp, SipTransport::Tls];
        let over = |transport| {
            let peer = peer(PROXY, transport);
            parse_and_classify(&agent_text(), &peer, "chat.localhost", &agents(), &trust).unwrap()
        };
        assert!(matches!(over(SipTransport::Tcp), Inbound::Message { .. }));
        assert!(matches!(over(SipTransport::Tls), Inbound::Message { .. }));
        assert_eq!(status(over(SipTransport::Udp)), 403);
        // Keep-alives still work over UDP.
        let options = request(
            "OPTIONS",
            "sip:x@pbx.localhost",
            "sip:chat.localhost",
            None,
            "",
        );
        let peer = peer(PROXY, SipTransport::Udp);
        let got = parse_and_classify(&options, &peer, "chat.localhost", &agents(), &trust);
        assert_eq!(got, Some(Inbound::Ok));
    }

    #[test]
    fn p_asserted_identity_names_the_agent_when_configured() {
        let pai = trust(IdentitySource::PAssertedIdentity);
        let with_pai = |from: &str, pai_value: &str| {
            request_with(
                "MESSAGE",
                from,
                "sip:visitor-a1@chat.localhost",
                None,
                "hi",
                &format!("P-Asserted-Identity: {pai_value}\r\n"),
            )
        };
        // PAI wins over From; a tel URI and a quoted comma are skipped.
        let forged_from = with_pai(
            "sip:999@pbx.localhost",
            "\"Martin, Alice\" <tel:+15551234>, \"Alice\" <sip:101@pbx.localhost>",
        );
        let Inbound::Message { from, .. } = classify_from(&forged_from, PROXY, &pai) else {
            panic!("refused")
        };
        assert_eq!(from, "sip:101@pbx.localhost".parse().unwrap());
        // addr-spec form.
        let plain = with_pai("sip:999@pbx.localhost", "sip:101@pbx.localhost");
        assert!(matches!(
            classify_from(&plain, PROXY, &pai),
            Inbound::Message { .. }
        ));
        // No PAI (a From of a real agent is not enough), or a stranger's.
        assert_eq!(status(classify_from(&agent_text(), PROXY, &pai)), 403);
        let other = with_pai("sip:101@pbx.localhost", "<sip:999@pbx.localhost>");
        assert_eq!(status(classify_from(&other, PROXY, &pai)), 403);
        // From an untrusted source, PAI counts for nothing.
        let asserted = with_pai("sip:101@pbx.localhost", "<sip:101@pbx.localhost>");
        assert_eq!(
            status(classify_from(&asserted, "198.51.100.7:5060", &pai)),
            403
        );
        // In From mode, PAI is ignored.
        let from_mode = trust(IdentitySource::From);
        let Inbound::Message { from, .. } = classify_from(&other, PROXY, &from_mode) else {
            panic!("refused")
        };
        assert_eq!(from.user(), "101");
        assert_eq!(status(classify_from(&forged_from, PROXY, &from_mode)), 403);
    }

    #[test]
    fn trusted_hosts_entries_parse_or_say_why() {
        let parsed = |s: &str| s.parse::<TrustedHost>();
        assert_eq!(
            parsed("10.1.2.3/16").map(net).map(|n| n.to_string()),
            Ok("10.1.0.0/16".to_owned())
        );
        assert_eq!(
            parsed(" 192.0.2.1 ").map(net),
            Ok(IpNet::host("192.0.2.1".parse().unwrap()))
        );
        assert!(parsed("[2001:db8::]/32")
            .map(net)
            .unwrap()
            .contains("2001:db8:1::5".parse().unwrap()));
        assert_eq!(
            parsed("PBX.example.com"),
            Ok(TrustedHost::Name("pbx.example.com".into()))
        );
        assert!(parsed("0.0.0.0/0")
            .map(net)
            .unwrap()
            .contains("203.0.113.9".parse().unwrap()));
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0.0/x",
            "pbx.example.com:5060",
            "sip:pbx",
            "a b",
            "::1/129",
        ] {
            let err = parsed(bad).unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn header_lists_split_outside_quotes_and_brackets() {
        assert_eq!(
            split_list(r#""a, \"b\"" <sip:x@y;p=1,2>, sip:z@w ,, "#),
            vec![r#""a, \"b\"" <sip:x@y;p=1,2>"#, "sip:z@w"]
        );
    }

    proptest! {
        // The fuzz target's property, run on every `cargo test`: no input
        // panics the parser or the classifier.
        #[test]
        fn random_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..2048),
            source in any::<[u8; 4]>(),
            pai in any::<bool>(),
        ) {
            let peer = Peer { addr: (source, 5060).into(), transport: SipTransport::Udp };
            let identity = if pai { IdentitySource::PAssertedIdentity } else { IdentitySource::From };
            let _ = parse_and_classify(&bytes, &peer, "chat.localhost", &agents(), &trust(identity));
        }

        #[test]
        fn mangled_requests_never_panic(
            cut in 0usize..460,
            flip in 0usize..460,
            byte in any::<u8>(),
            trusted in any::<bool>(),
        ) {
            let mut bytes = request_with(
                "MESSAGE",
                "sip:101@pbx.localhost",
                "sip:visitor-a1@chat.localhost",
                Some("text/plain"),
                "hello",
                "P-Asserted-Identity: \"A, B\" <sip:101@pbx.localhost>, <tel:+15551234>\r\n",
            );
            if flip < bytes.len() { bytes[flip] = byte; }
            bytes.truncate(cut.max(1));
            let source = if trusted { PROXY } else { "198.51.100.7:5060" };
            let peer = peer(source, SipTransport::Udp);
            let trust = trust(IdentitySource::PAssertedIdentity);
            let _ = parse_and_classify(&bytes, &peer, "chat.localhost", &agents(), &trust);
        }

        /// The trust rule itself: from outside the trusted networks, every
        /// request is refused 403, whatever it says.
        #[test]
        fn untrusted_sources_always_get_403(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            source in any::<[u8; 4]>(),
        ) {
            let from = std::net::Ipv4Addr::from(source);
            let trust = trust(IdentitySource::From);
            prop_assume!(!trust.trusts(from.into()));
            let peer = Peer { addr: (from, 5060).into(), transport: SipTransport::Tcp };
            for bytes in [bytes, agent_text()] {
                if let Some(got) = parse_and_classify(&bytes, &peer, "chat.localhost", &agents(), &trust) {
                    prop_assert!(matches!(got, Inbound::Refuse { status: 403, .. }), "{got:?}");
                }
            }
        }
    }
}
