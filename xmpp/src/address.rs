//! Per-conversation XMPP addresses on the component domain.
//!
//! Every visitor conversation gets its own JID (`visitor-7f3a…@chat.pbx.example.com`)
//! so that an agent's ordinary client shows one chat window per visitor.
//! Only the localpart is chosen by the gateway; this newtype is the only way
//! to build one, so a string that is not a safe localpart never reaches a
//! stanza.

use std::fmt;
use std::str::FromStr;

use xmpp_parsers::jid::{BareJid, Jid};

/// Longest localpart we accept; far below the 1023 bytes RFC 7622 allows,
/// because these addresses are shown in agents' contact lists.
const MAX_LEN: usize = 64;

/// Why a string is not a visitor address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The localpart is empty.
    #[error("visitor address is empty")]
    Empty,
    /// The localpart is longer than 64 bytes.
    #[error("visitor address is longer than {MAX_LEN} bytes")]
    TooLong,
    /// The localpart has a character outside `a-z 0-9 - _ .`.
    #[error("visitor address may only contain a-z, 0-9, '-', '_' and '.', found {0:?}")]
    BadCharacter(char),
    /// The JID is not on the component's domain or has no localpart.
    #[error("{0} is not a visitor address on this component")]
    NotOnDomain(String),
}

/// The localpart of a visitor's address on the component domain, e.g.
/// `visitor-7f3a9c`.
///
/// Restricted to lowercase ASCII letters, digits, `-`, `_` and `.` so that it
/// needs no nodeprep/escaping and compares byte-for-byte with what servers
/// route.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VisitorAddress(String);

impl VisitorAddress {
    /// Validates a localpart.
    pub fn new(localpart: impl Into<String>) -> Result<Self, AddressError> {
        let localpart = localpart.into();
        if localpart.is_empty() {
            return Err(AddressError::Empty);
        }
        if localpart.len() > MAX_LEN {
            return Err(AddressError::TooLong);
        }
        if let Some(bad) = localpart
            .chars()
            .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '-' | '_' | '.'))
        {
            return Err(AddressError::BadCharacter(bad));
        }
        Ok(Self(localpart))
    }

    /// Extracts the visitor address from a JID addressed to `domain`
    /// (any resource is ignored).
    pub fn from_jid(jid: &Jid, domain: &BareJid) -> Result<Self, AddressError> {
        match jid.node() {
            Some(node) if jid.domain() == domain.domain() => Self::new(node.as_str()),
            _ => Err(AddressError::NotOnDomain(jid.to_string())),
        }
    }

    /// The localpart as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The full address on the component `domain`.
    pub fn to_jid(&self, domain: &BareJid) -> BareJid {
        // The localpart was validated to a subset of valid nodeprep output,
        // so joining it to a valid domain cannot fail.
        domain
            .domain()
            .with_node_str(&self.0)
            .expect("validated localpart is a valid JID node")
    }
}

impl FromStr for VisitorAddress {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for VisitorAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_typical_localparts() {
        let a = VisitorAddress::new("visitor-7f3a9c").unwrap();
        let domain = BareJid::new("chat.example.com").unwrap();
        assert_eq!(
            a.to_jid(&domain).as_str(),
            "visitor-7f3a9c@chat.example.com"
        );
    }

    #[test]
    fn rejects_unsafe_localparts() {
        assert_eq!(VisitorAddress::new(""), Err(AddressError::Empty));
        assert_eq!(
            VisitorAddress::new("a@b"),
            Err(AddressError::BadCharacter('@'))
        );
        assert_eq!(
            VisitorAddress::new("Jane"),
            Err(AddressError::BadCharacter('J'))
        );
        assert_eq!(
            VisitorAddress::new("x".repeat(65)),
            Err(AddressError::TooLong)
        );
    }

    #[test]
    fn from_jid_checks_the_domain() {
        let domain = BareJid::new("chat.example.com").unwrap();
        let ok = Jid::new("visitor-1@chat.example.com/res").unwrap();
        assert_eq!(
            VisitorAddress::from_jid(&ok, &domain).unwrap().as_str(),
            "visitor-1"
        );
        let other = Jid::new("visitor-1@example.com").unwrap();
        assert!(VisitorAddress::from_jid(&other, &domain).is_err());
        let bare_domain = Jid::new("chat.example.com").unwrap();
        assert!(VisitorAddress::from_jid(&bare_domain, &domain).is_err());
    }
}
