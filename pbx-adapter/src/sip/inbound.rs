//! What an incoming SIP request means for the gateway — a pure function of
//! the parsed request, the gateway domain and the agent allowlist, so every
//! rule is unit-tested and fuzzed (`pbx-adapter/fuzz`, target `sip_parse`)
//! without a network.
//!
//! Rules (RFC 3428 for MESSAGE, RFC 3994 for is-composing):
//! - MESSAGE from an allowlisted agent to a user on the gateway domain with
//!   a `text/plain` body (or no Content-Type) → [`Inbound::Message`],
//!   answered by the gateway once stored;
//! - the same with `application/im-iscomposing+xml` → [`Inbound::Composing`]
//!   (answered 200 at once);
//! - MESSAGE from anyone else → 403; to another domain or without a user
//!   → 404; other bodies → 415; empty or non-UTF-8 text → 400;
//! - OPTIONS → 200 (keep-alives and probes of visitor addresses);
//! - any other method → 405.

use std::collections::HashSet;

use rsipstack::sip::{Header, HeadersExt, Method, Request, SipMessage, Uri};

use crate::queue::SipUri;
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

/// Classifies a request (see the module doc for the rules).
pub fn classify(request: &Request, domain: &str, agents: &Allowlist) -> Inbound {
    match request.method {
        Method::Message => {}
        Method::Options => return Inbound::Ok,
        ref other => return Inbound::refuse(405, format!("method {other} not supported")),
    }
    let Some(sender) = request
        .from_header()
        .ok()
        .and_then(|h| h.uri().ok())
        .and_then(|uri| to_sip_uri(&uri))
    else {
        return Inbound::refuse(400, "unreadable From");
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

/// The user part of a Request-URI on the gateway domain.
fn visitor_user(uri: &Uri, domain: &str) -> Option<String> {
    let user = &uri.auth.as_ref()?.user;
    let host = uri.host_with_port.host.to_string();
    (!user.is_empty() && host.eq_ignore_ascii_case(domain)).then(|| user.clone())
}

/// Parses raw bytes as the transport would and classifies a request: the
/// entry point the fuzz target drives. `None` for anything that is not a
/// parseable request (responses are the transaction layer's business).
pub fn parse_and_classify(bytes: &[u8], domain: &str, agents: &Allowlist) -> Option<Inbound> {
    match rsipstack::sip::parser::parse_message(bytes).ok()? {
        SipMessage::Request(request) => Some(classify(&request, domain, agents)),
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

    fn request(method: &str, from: &str, ruri: &str, ctype: Option<&str>, body: &str) -> Vec<u8> {
        let mut text = format!(
            "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-1\r\n\
             From: <{from}>;tag=a\r\nTo: <{ruri}>\r\nCall-ID: c1\r\nCSeq: 1 {method}\r\n\
             Max-Forwards: 70\r\n"
        );
        if let Some(ct) = ctype {
            text.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        text.into_bytes()
    }

    fn classify_bytes(bytes: &[u8]) -> Inbound {
        parse_and_classify(bytes, "chat.localhost", &agents()).expect("a request")
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
        let status = |i: Inbound| match i {
            Inbound::Refuse { status, .. } => status,
            other => panic!("not refused: {other:?}"),
        };
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
        assert_eq!(parse_and_classify(b"", "chat.localhost", &agents()), None);
        assert_eq!(
            parse_and_classify(b"\r\n\r\n", "chat.localhost", &agents()),
            None
        );
        assert_eq!(
            parse_and_classify(b"SIP/2.0 200 OK\r\n\r\n", "chat.localhost", &agents()),
            None
        );
    }

    proptest! {
        // The fuzz target's property, run on every `cargo test`: no input
        // panics the parser or the classifier.
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse_and_classify(&bytes, "chat.localhost", &agents());
        }

        #[test]
        fn mangled_requests_never_panic(cut in 0usize..400, flip in 0usize..400, byte in any::<u8>()) {
            let mut bytes = request("MESSAGE", "sip:101@pbx.localhost", "sip:visitor-a1@chat.localhost", Some("text/plain"), "hello");
            if flip < bytes.len() { bytes[flip] = byte; }
            bytes.truncate(cut.max(1));
            let _ = parse_and_classify(&bytes, "chat.localhost", &agents());
        }
    }
}
