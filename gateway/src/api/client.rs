//! Who the client is: the one address every limiter and log line uses.
//!
//! It is the TCP peer, unless the peer is one of `server.trusted_proxies`:
//! then it is the right-most address of the configured forwarding header
//! (`X-Forwarded-For`, or RFC 7239 `Forwarded: for=`) that is not itself a
//! trusted proxy. Entries left of it were written by the client and are
//! never read, so a visitor cannot choose their key; a header that cannot
//! be read up to that entry is ignored (the peer's address is used).
//! Limiters key IPv6 clients by their /64, which one subscriber usually
//! holds whole, so rotating addresses inside it does not buy new quota.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use pbx_adapter::sip::IpNet;

use super::error::ApiError;
use crate::config::{Cidr, ForwardedHeader, ServerConfig};

/// The trusted proxies and the header they write.
#[derive(Debug, Clone)]
pub struct Proxies {
    trusted: Arc<[Cidr]>,
    header: ForwardedHeader,
}

impl Proxies {
    pub fn new(trusted: &[Cidr], header: ForwardedHeader) -> Proxies {
        Proxies {
            trusted: trusted.into(),
            header,
        }
    }

    pub fn from_config(server: &ServerConfig) -> Proxies {
        Self::new(&server.trusted_proxies, server.forwarded_header)
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(ip))
    }

    /// The client's address for a request from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let chain = match self.header {
            ForwardedHeader::XForwardedFor => header_list(headers, "x-forwarded-for")
                .map(|entry| parse_node(entry.trim()))
                .collect::<Vec<_>>(),
            ForwardedHeader::Forwarded => header_list(headers, "forwarded")
                .map(forwarded_for)
                .collect::<Vec<_>>(),
        };
        let mut client = peer;
        for node in chain.into_iter().rev() {
            let Some(ip) = node else { return peer };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// The comma-separated entries of every `name` header, in order (several
/// header lines count as one list, RFC 9110 §5.3).
fn header_list<'a>(headers: &'a HeaderMap, name: &str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|value| match value.to_str() {
            Ok(text) => split_outside_quotes(text),
            // Not visible ASCII: one unreadable entry.
            Err(_) => vec![""],
        })
}

fn split_outside_quotes(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// The `for=` node of one `Forwarded` element (`for=192.0.2.1;proto=https`).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("for")
            .then(|| parse_node(value.trim().trim_matches('"')))?
    })
}

/// An address with or without a port: `192.0.2.1`, `192.0.2.1:443`,
/// `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:443`. `unknown` and
/// obfuscated names (`_hidden`) are not addresses.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(socket) = node.parse::<SocketAddr>() {
        return Some(socket.ip().to_canonical());
    }
    let bracketed = node.strip_prefix('[')?.strip_suffix(']')?;
    bracketed.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

/// The key limiters count a client under: the address itself for IPv4,
/// its /64 network for IPv6.
pub fn limiter_key(ip: IpAddr) -> IpNet {
    let ip = ip.to_canonical();
    match ip {
        IpAddr::V6(_) => IpNet::new(ip, 64).unwrap_or(IpNet::host(ip)),
        IpAddr::V4(_) => IpNet::host(ip),
    }
}

/// The client of a request, as [`Proxies::client`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    pub ip: IpAddr,
}

impl ClientAddr {
    /// What rate limits key on (IPv6 by /64).
    pub fn key(&self) -> IpNet {
        limiter_key(self.ip)
    }
}

/// Middleware (outermost): finds the client once per request, for the
/// limiters, the handlers and the request's log span.
pub async fn resolve(State(proxies): State<Proxies>, mut request: Request, next: Next) -> Response {
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
        let ip = proxies.client(peer.ip(), request.headers());
        request.extensions_mut().insert(ClientAddr { ip });
    }
    next.run(request).await
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        if let Some(client) = parts.extensions.get::<ClientAddr>() {
            return Ok(*client);
        }
        // Served without `resolve` (a router driven directly): the peer.
        match parts.extensions.get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(peer)) => Ok(ClientAddr {
                ip: peer.ip().to_canonical(),
            }),
            None => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "The client address is unknown.",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn behind(trusted: &[&str], header: ForwardedHeader) -> Proxies {
        let trusted: Vec<Cidr> = trusted.iter().map(|c| c.parse().unwrap()).collect();
        Proxies::new(&trusted, header)
    }

    const XFF: ForwardedHeader = ForwardedHeader::XForwardedFor;

    #[test]
    fn an_untrusted_peer_cannot_choose_its_address() {
        let proxies = behind(&["10.0.0.0/8"], XFF);
        let spoofed = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(
            proxies.client(ip("198.51.100.7"), &spoofed),
            ip("198.51.100.7")
        );
        assert_eq!(
            behind(&[], XFF).client(ip("127.0.0.1"), &spoofed),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn the_right_most_untrusted_entry_is_the_client_and_spoofed_ones_are_ignored() {
        let proxies = behind(&["10.0.0.0/8", "192.0.2.10"], XFF);
        // The visitor sent "1.1.1.1, 2.2.2.2"; the CDN (192.0.2.10) and the
        // load balancer (10.0.0.2) appended what they saw.
        let h = headers(&[(
            "x-forwarded-for",
            "1.1.1.1, 2.2.2.2, 198.51.100.7, 192.0.2.10",
        )]);
        assert_eq!(proxies.client(ip("10.0.0.2"), &h), ip("198.51.100.7"));
        // Several header lines are one list; junk left of the client is
        // never parsed.
        let h = headers(&[
            ("x-forwarded-for", "not an address"),
            ("x-forwarded-for", "198.51.100.8"),
        ]);
        assert_eq!(proxies.client(ip("10.0.0.2"), &h), ip("198.51.100.8"));
    }

    #[test]
    fn a_malformed_or_missing_header_falls_back_to_the_peer() {
        let proxies = behind(&["127.0.0.1"], XFF);
        let peer = ip("127.0.0.1");
        for value in ["", "garbage", "198.51.100.7, unknown", "198.51.100.7,,"] {
            let h = headers(&[("x-forwarded-for", value)]);
            assert_eq!(proxies.client(peer, &h), peer, "{value:?}");
        }
        assert_eq!(proxies.client(peer, &HeaderMap::new()), peer);
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff1.2.3.4").unwrap(),
        );
        assert_eq!(proxies.client(peer, &h), peer);
    }

    #[test]
    fn forwarded_nodes_may_be_quoted_bracketed_and_have_ports() {
        let proxies = behind(&["10.0.0.0/8"], ForwardedHeader::Forwarded);
        let peer = ip("10.0.0.2");
        let cases = [
            ("for=198.51.100.7", "198.51.100.7"),
            ("for=198.51.100.7:4711;proto=https", "198.51.100.7"),
            (r#"for="[2001:db8:cafe::17]:4711""#, "2001:db8:cafe::17"),
            (r#"for="[2001:db8:cafe::17]""#, "2001:db8:cafe::17"),
            (
                r#"For=1.1.1.1, for="198.51.100.7";by=10.0.0.2"#,
                "198.51.100.7",
            ),
            ("for=198.51.100.7, for=10.0.0.3", "198.51.100.7"),
        ];
        for (value, expected) in cases {
            let h = headers(&[("forwarded", value)]);
            assert_eq!(proxies.client(peer, &h), ip(expected), "{value}");
        }
        for value in ["for=unknown", "for=_hidden", "proto=https", "for=[::1"] {
            let h = headers(&[("forwarded", value)]);
            assert_eq!(proxies.client(peer, &h), peer, "{value}");
        }
        // Only the configured header is read.
        let h = headers(&[("x-forwarded-for", "198.51.100.7")]);
        assert_eq!(proxies.client(peer, &h), peer);
    }

    #[test]
    fn ipv6_clients_share_a_key_per_64_and_mapped_ipv4_is_ipv4() {
        assert_eq!(
            limiter_key(ip("2001:db8:1:2:aaaa::1")),
            limiter_key(ip("2001:db8:1:2:bbbb::9"))
        );
        assert_ne!(
            limiter_key(ip("2001:db8:1:2::1")),
            limiter_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            limiter_key(ip("2001:db8:1:2:aaaa::1")),
            IpNet::new(ip("2001:db8:1:2::"), 64).unwrap()
        );
        assert_eq!(
            limiter_key(ip("::ffff:192.0.2.1")),
            IpNet::host(ip("192.0.2.1"))
        );
        let proxies = behind(&["::1"], XFF);
        let h = headers(&[("x-forwarded-for", "[2001:db8::5]:80")]);
        assert_eq!(proxies.client(ip("::1"), &h), ip("2001:db8::5"));
    }
}
