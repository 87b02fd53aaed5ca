//! A validated SIP address of record, `sip:user@host[:port]` or `sips:…`.
//!
//! Agents are looked up by the SIP URI their messages come from, so the URI
//! is an identifier, not free text: it is parsed once, at the edge, into its
//! parts and compared the RFC 3261 §19.1.4 way (scheme and host ignore case,
//! the user part does not). Only what an agent's address needs is accepted:
//! a user part is required, and URI parameters or headers are refused in
//! configuration; [`SipUri::parse_address_of`] strips them from a URI taken
//! off the wire. We keep our own small type rather than pull in a full SIP
//! stack for one identifier.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// `sip:` or `sips:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SipScheme {
    Sip,
    Sips,
}

impl SipScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            SipScheme::Sip => "sip",
            SipScheme::Sips => "sips",
        }
    }
}

/// Why a SIP URI was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SipUriError {
    #[error("a SIP URI starts with \"sip:\" or \"sips:\", got {0:?}")]
    BadScheme(String),
    #[error("an agent's SIP URI needs a user part (sip:user@host), got {0:?}")]
    MissingUser(String),
    #[error("invalid character in the user part of SIP URI {0:?}")]
    BadUser(String),
    #[error("invalid host in SIP URI {0:?}")]
    BadHost(String),
    #[error("invalid port in SIP URI {0:?} (1-65535)")]
    BadPort(String),
    #[error("URI parameters or headers (';' or '?') are not accepted here, got {0:?}")]
    HasParameters(String),
}

/// A SIP address of record: scheme, user, host and optional port.
///
/// Equality and hashing follow RFC 3261: the scheme and host are stored
/// lower-cased, the user part as written (percent-escapes are kept as
/// given, upper-cased hex). `sip:` and `sips:` URIs are never equal, and
/// `sip:a@h` is not equal to `sip:a@h:5060`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SipUri {
    scheme: SipScheme,
    user: String,
    host: String,
    port: Option<u16>,
}

impl SipUri {
    pub fn scheme(&self) -> SipScheme {
        self.scheme
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Parses a URI as found in a SIP header (`From`, `Contact`), keeping
    /// only the address: URI parameters (`;transport=tcp`) and headers
    /// (`?subject=x`) are dropped, angle brackets are not accepted.
    pub fn parse_address_of(s: &str) -> Result<Self, SipUriError> {
        let end = s.find([';', '?']).unwrap_or(s.len());
        parse(&s[..end], s)
    }
}

fn parse(s: &str, original: &str) -> Result<SipUri, SipUriError> {
    let bad_scheme = || SipUriError::BadScheme(original.to_owned());
    let (scheme, rest) = s.split_once(':').ok_or_else(bad_scheme)?;
    let scheme = if scheme.eq_ignore_ascii_case("sip") {
        SipScheme::Sip
    } else if scheme.eq_ignore_ascii_case("sips") {
        SipScheme::Sips
    } else {
        return Err(bad_scheme());
    };
    if rest.contains([';', '?']) {
        return Err(SipUriError::HasParameters(original.to_owned()));
    }
    // The user part may not contain '@' unescaped, so the last '@' splits.
    let (user, hostport) = rest
        .rsplit_once('@')
        .ok_or_else(|| SipUriError::MissingUser(original.to_owned()))?;
    if user.is_empty() {
        return Err(SipUriError::MissingUser(original.to_owned()));
    }
    let user = normalise_user(user).ok_or_else(|| SipUriError::BadUser(original.to_owned()))?;
    let (host, port) = split_host_port(hostport, original)?;
    Ok(SipUri {
        scheme,
        user,
        host,
        port,
    })
}

/// RFC 3261 `user`: unreserved, escaped and user-unreserved characters,
/// without ';' and '?' which we refuse above. Escapes get upper-case hex so
/// `%3a` and `%3A` compare equal.
fn normalise_user(user: &str) -> Option<String> {
    let mut out = String::with_capacity(user.len());
    let mut chars = user.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            let hi = chars.next().filter(char::is_ascii_hexdigit)?;
            let lo = chars.next().filter(char::is_ascii_hexdigit)?;
            out.push('%');
            out.push(hi.to_ascii_uppercase());
            out.push(lo.to_ascii_uppercase());
        } else if c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,/".contains(c) {
            out.push(c);
        } else {
            return None;
        }
    }
    Some(out)
}

fn split_host_port(hostport: &str, original: &str) -> Result<(String, Option<u16>), SipUriError> {
    let bad_host = || SipUriError::BadHost(original.to_owned());
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or_else(bad_host)?;
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad_host());
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(bad_host)?),
        };
        (format!("[{}]", addr.to_ascii_lowercase()), port)
    } else {
        let (host, port) = match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        };
        if !is_hostname(host) {
            return Err(bad_host());
        }
        (host.to_ascii_lowercase(), port)
    };
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|&n| n != 0 && p.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| SipUriError::BadPort(original.to_owned()))?,
        ),
    };
    Ok((host, port))
}

/// A DNS name or dotted IPv4 address, with an optional trailing dot.
fn is_hostname(host: &str) -> bool {
    is_domain(host.strip_suffix('.').unwrap_or(host))
}

/// A host name: dot-separated labels of letters, digits and inner hyphens.
pub(crate) fn is_domain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

impl FromStr for SipUri {
    type Err = SipUriError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s, s)
    }
}

impl TryFrom<String> for SipUri {
    type Error = SipUriError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<SipUri> for String {
    fn from(uri: SipUri) -> String {
        uri.to_string()
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}@{}", self.scheme.as_str(), self.user, self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let uri: SipUri = "SIP:Alice@PBX.Example.com:5061".parse().unwrap();
        assert_eq!(uri.scheme(), SipScheme::Sip);
        assert_eq!(uri.user(), "Alice");
        assert_eq!(uri.host(), "pbx.example.com");
        assert_eq!(uri.port(), Some(5061));
        assert_eq!(uri.to_string(), "sip:Alice@pbx.example.com:5061");

        let v6: SipUri = "sips:101@[2001:DB8::1]:5061".parse().unwrap();
        assert_eq!(v6.to_string(), "sips:101@[2001:db8::1]:5061");
        let v4: SipUri = "sip:101@192.0.2.10".parse().unwrap();
        assert_eq!(v4.port(), None);
    }

    #[test]
    fn compares_the_rfc_3261_way() {
        let a: SipUri = "sip:101@PBX.example.com".parse().unwrap();
        let b: SipUri = "sip:101@pbx.EXAMPLE.com".parse().unwrap();
        assert_eq!(a, b);
        let user_case: SipUri = "sip:Bob@pbx.example.com".parse().unwrap();
        let user_lower: SipUri = "sip:bob@pbx.example.com".parse().unwrap();
        assert_ne!(user_case, user_lower);
        let sips: SipUri = "sips:101@pbx.example.com".parse().unwrap();
        assert_ne!(a, sips);
        let with_port: SipUri = "sip:101@pbx.example.com:5060".parse().unwrap();
        assert_ne!(a, with_port);
        let esc1: SipUri = "sip:a%3ab@h".parse().unwrap();
        let esc2: SipUri = "sip:a%3Ab@h".parse().unwrap();
        assert_eq!(esc1, esc2);
    }

    #[test]
    fn refuses_malformed_uris() {
        use SipUriError::*;
        let err = |s: &str| s.parse::<SipUri>().unwrap_err();
        assert!(matches!(err("tel:+331234"), BadScheme(_)));
        assert!(matches!(err("101@pbx"), BadScheme(_)));
        assert!(matches!(err("sip:pbx.example.com"), MissingUser(_)));
        assert!(matches!(err("sip:@pbx.example.com"), MissingUser(_)));
        assert!(matches!(err("sip:a b@pbx"), BadUser(_)));
        assert!(matches!(err("sip:a%zz@pbx"), BadUser(_)));
        assert!(matches!(err("sip:101@"), BadHost(_)));
        assert!(matches!(err("sip:101@pbx_1"), BadHost(_)));
        assert!(matches!(err("sip:101@-pbx"), BadHost(_)));
        assert!(matches!(err("sip:101@[::g]"), BadHost(_)));
        assert!(matches!(err("sip:101@pbx:0"), BadPort(_)));
        assert!(matches!(err("sip:101@pbx:70000"), BadPort(_)));
        assert!(matches!(err("sip:101@pbx:+5"), BadPort(_)));
        assert!(matches!(err("sip:101@pbx;transport=tcp"), HasParameters(_)));
    }

    #[test]
    fn address_of_strips_parameters_and_headers() {
        let uri =
            SipUri::parse_address_of("sip:101@pbx.example.com:5060;transport=tcp?x=y").unwrap();
        assert_eq!(uri.to_string(), "sip:101@pbx.example.com:5060");
    }

    #[test]
    fn serde_round_trip() {
        #[derive(Serialize, Deserialize)]
        struct W {
            uri: SipUri,
        }
        let w: W = toml::from_str("uri = \"sip:101@pbx.example.com\"").unwrap();
        assert_eq!(w.uri.user(), "101");
        assert_eq!(
            toml::to_string(&w).unwrap().trim(),
            "uri = \"sip:101@pbx.example.com\""
        );
        assert!(toml::from_str::<W>("uri = \"mailto:x@y\"").is_err());
    }
}
