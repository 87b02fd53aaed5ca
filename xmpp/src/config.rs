//! Settings of the component connection, validated once at start-up.
//!
//! The gateway reads its own configuration file and builds this struct; this
//! crate never reads files or environment variables.

use std::time::Duration;

use xmpp_parsers::jid::BareJid;

use crate::backoff::Backoff;

/// Why a [`ComponentConfig`] is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The component JID has a localpart or resource.
    #[error("component domain {0:?} must be a bare domain (no '@' or '/')")]
    NotADomain(String),
    /// A duration setting is zero.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// The TLS settings are unusable (no certificate in the CA PEM, a
    /// server name that is neither a DNS name nor an IP address).
    #[error("tls: {0}")]
    Tls(String),
    /// The node tag is empty or has a character other than letters, digits
    /// and `_`.
    #[error("node tag {0:?} must be letters, digits or '_'")]
    NodeTag(String),
    /// The backoff cap is below the initial delay.
    #[error("reconnect backoff max ({max:?}) is below its initial delay ({initial:?})")]
    BackoffInverted {
        /// Initial delay.
        initial: Duration,
        /// Cap.
        max: Duration,
    },
}

/// TLS on the component connection: direct TLS from the first byte on the
/// component port (ejabberd's `tls: true` listener option; XEP-0114 has no
/// STARTTLS). The server's certificate is always verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentTls {
    /// The name the server's certificate must be valid for: a DNS name or
    /// an IP address (also sent as SNI when it is a DNS name).
    pub server_name: String,
    /// PEM certificates the server's chain must end in; `None` trusts the
    /// Mozilla root programme's CAs (webpki-roots) and nothing else.
    pub ca_pem: Option<Vec<u8>>,
}

/// How to reach the XMPP server and how to keep the component stream alive.
#[derive(Debug, Clone)]
pub struct ComponentConfig {
    /// The component's domain, e.g. `chat.pbx.example.com`. Visitor
    /// addresses live under it.
    pub domain: BareJid,
    /// `host:port` of the server's component listener (XEP-0114), e.g.
    /// `127.0.0.1:5347`. Resolved on every connection attempt.
    pub server: String,
    /// Shared secret configured for the component on the server.
    pub secret: String,
    /// TLS on the connection; `None` (the default) speaks plain TCP.
    pub tls: Option<ComponentTls>,
    /// After this much silence from the server, a XEP-0199 ping is sent.
    pub ping_interval: Duration,
    /// If the server stays silent this long after a ping, the stream is
    /// considered dead and is replaced. Also bounds connection attempts.
    pub ping_timeout: Duration,
    /// Whom to ping; `None` pings the parent domain of `domain` (the XMPP
    /// host a component is usually attached to). Any answer, even an error,
    /// proves the stream is alive.
    pub ping_target: Option<BareJid>,
    /// Delay before the first reconnection attempt.
    pub reconnect_initial: Duration,
    /// Cap of the exponentially growing reconnection delay.
    pub reconnect_max: Duration,
    /// Incoming stanzas larger than this (serialised) are refused with a
    /// `policy-violation` stanza error.
    pub max_stanza_bytes: usize,
    /// Software name answered to XEP-0092 queries.
    pub software_name: String,
    /// Software version answered to XEP-0092 queries.
    pub software_version: String,
    /// Largest file agents may upload through HTTP File Upload (XEP-0363),
    /// advertised as `max-file-size`; `None` (the default) does not offer
    /// uploads. See also [`crate::Command::SetUploadLimit`].
    pub upload_max_bytes: Option<u64>,
    /// Names this component among the gateway nodes connected for the same
    /// domain, in its ping ids (`fd-ping-TAG-N`), so that an answer ejabberd
    /// routed to another node's connection is recognised there
    /// ([`crate::Event::StrayPong`]) and can be handed back. Letters,
    /// digits and `_` only; default: random.
    pub node_tag: String,
    /// Whether to connect at once (`true`, the default) or wait for
    /// [`crate::Command::SetOnline`] `(true)`: a node that does not hold
    /// the one connection a server allows.
    pub start_online: bool,
}

impl ComponentConfig {
    /// A configuration with production defaults: ping after 30 s of silence,
    /// 10 s to answer, reconnect after 0.5 s doubling up to 30 s, 64 KiB
    /// stanzas.
    pub fn new(domain: BareJid, server: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            domain,
            server: server.into(),
            secret: secret.into(),
            tls: None,
            ping_interval: Duration::from_secs(30),
            ping_timeout: Duration::from_secs(10),
            ping_target: None,
            reconnect_initial: Duration::from_millis(500),
            reconnect_max: Duration::from_secs(30),
            max_stanza_bytes: 64 * 1024,
            software_name: "Frontdesk".to_owned(),
            software_version: env!("CARGO_PKG_VERSION").to_owned(),
            upload_max_bytes: None,
            node_tag: format!("{:016x}", rand::random::<u64>()),
            start_online: true,
        }
    }

    /// Checks the settings that cannot be expressed in the types.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.domain.node().is_some() {
            return Err(ConfigError::NotADomain(self.domain.to_string()));
        }
        for (name, value) in [
            ("ping_interval", self.ping_interval),
            ("ping_timeout", self.ping_timeout),
            ("reconnect_initial", self.reconnect_initial),
        ] {
            if value.is_zero() {
                return Err(ConfigError::Zero(name));
            }
        }
        if let Some(tls) = &self.tls {
            crate::stream::Tls::new(tls)?;
        }
        if self.node_tag.is_empty()
            || !self
                .node_tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(ConfigError::NodeTag(self.node_tag.clone()));
        }
        if self.reconnect_max < self.reconnect_initial {
            return Err(ConfigError::BackoffInverted {
                initial: self.reconnect_initial,
                max: self.reconnect_max,
            });
        }
        Ok(())
    }

    /// The entity pinged to check the stream.
    pub fn ping_target(&self) -> BareJid {
        if let Some(target) = &self.ping_target {
            return target.clone();
        }
        let domain = self.domain.domain().as_str();
        match domain.split_once('.') {
            Some((_, parent)) if parent.contains('.') || parent == "localhost" => {
                BareJid::new(parent).unwrap_or_else(|_| self.domain.clone())
            }
            _ => self.domain.clone(),
        }
    }

    pub(crate) fn backoff(&self) -> Backoff {
        Backoff::new(self.reconnect_initial, self.reconnect_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(domain: &str) -> ComponentConfig {
        ComponentConfig::new(BareJid::new(domain).unwrap(), "127.0.0.1:5347", "s")
    }

    #[test]
    fn ping_target_is_the_parent_domain() {
        assert_eq!(
            config("chat.pbx.example.com").ping_target().as_str(),
            "pbx.example.com"
        );
        assert_eq!(config("chat.localhost").ping_target().as_str(), "localhost");
        assert_eq!(
            config("chat.example").ping_target().as_str(),
            "chat.example"
        );
    }

    #[test]
    fn validation_names_the_bad_setting() {
        assert!(config("chat.example.com").validate().is_ok());
        let mut c = config("chat.example.com");
        c.domain = BareJid::new("a@chat.example.com").unwrap();
        assert!(matches!(c.validate(), Err(ConfigError::NotADomain(_))));
        let mut c = config("chat.example.com");
        c.ping_timeout = Duration::ZERO;
        assert_eq!(c.validate(), Err(ConfigError::Zero("ping_timeout")));
        let mut c = config("chat.example.com");
        c.tls = Some(ComponentTls {
            server_name: "xmpp.example.com".into(),
            ca_pem: Some(b"not a certificate".to_vec()),
        });
        assert!(matches!(c.validate(), Err(ConfigError::Tls(_))), "{c:?}");
        c.tls = Some(ComponentTls {
            server_name: "not a name!".into(),
            ca_pem: None,
        });
        assert!(matches!(c.validate(), Err(ConfigError::Tls(_))));
        c.tls = Some(ComponentTls {
            server_name: "127.0.0.1".into(),
            ca_pem: None,
        });
        assert!(c.validate().is_ok());
        let mut c = config("chat.example.com");
        c.node_tag = "a-b".into();
        assert!(matches!(c.validate(), Err(ConfigError::NodeTag(_))));
        let mut c = config("chat.example.com");
        c.reconnect_max = Duration::from_millis(1);
        assert!(matches!(
            c.validate(),
            Err(ConfigError::BackoffInverted { .. })
        ));
    }
}
