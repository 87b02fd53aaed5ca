//! What the SIP user agent needs to know: where it listens, which domain
//! its visitor addresses live on, the PBX proxy every request goes
//! through, and whom it believes about agents (trusted hosts, the identity
//! header, the transports agents' messages may use). Validated once, at
//! [`crate::sip::spawn`], so a typo is a start-up error naming the field
//! rather than a silent routing failure — or a silent hole — later.

use std::net::SocketAddr;
use std::time::Duration;

use crate::sip::inbound::{IdentitySource, TrustedHost};

/// A SIP transport (`"udp"`, `"tcp"`, `"tls"` in configuration files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SipTransport {
    /// Datagrams; bodies above the UDP-safe size (RFC 3428 §4: 1300 bytes)
    /// never use it.
    Udp,
    /// A TCP stream: any message size.
    Tcp,
    /// TLS over TCP (tokio-rustls): any message size.
    Tls,
}

impl SipTransport {
    /// Whether messages of any size may use it (no fragmentation risk).
    pub fn is_reliable(self) -> bool {
        !matches!(self, SipTransport::Udp)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SipTransport::Udp => "udp",
            SipTransport::Tcp => "tcp",
            SipTransport::Tls => "tls",
        }
    }
}

/// One local socket the user agent receives on (and sends from, for its
/// transport).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub transport: SipTransport,
    /// Address to bind. Give a concrete port: the proxy routes the gateway
    /// domain to a fixed address, and stream listeners are bound by the
    /// stack when it starts serving.
    pub bind: SocketAddr,
    /// Address written into `Via` when `bind` is a wildcard or behind NAT.
    pub advertised: Option<SocketAddr>,
}

impl Listener {
    pub fn new(transport: SipTransport, bind: SocketAddr) -> Self {
        Self {
            transport,
            bind,
            advertised: None,
        }
    }

    /// The address peers should use to reach this listener.
    pub fn public_addr(&self) -> SocketAddr {
        self.advertised.unwrap_or(self.bind)
    }
}

/// Digest credentials for a proxy that challenges with 401/407.
#[derive(Clone, PartialEq, Eq)]
pub struct SipCredentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SipCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipCredentials")
            .field("username", &self.username)
            .field("password", &"…")
            .finish()
    }
}

/// PEM material for the TLS listener (and client certificate, if any).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsMaterial {
    /// Server certificate chain, PEM.
    pub cert_pem: Vec<u8>,
    /// Private key, PEM (PKCS#8 or PKCS#1).
    pub key_pem: Vec<u8>,
    /// Roots trusted when connecting to the proxy over TLS, PEM. rsipstack
    /// adds no system roots: without this, no proxy certificate verifies.
    pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("cert_pem", &self.cert_pem.len())
            .field("key_pem", &"…")
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .finish()
    }
}

/// Configuration of the SIP user agent.
#[derive(Debug, Clone)]
pub struct SipConfig {
    /// The gateway's SIP domain: visitor addresses are
    /// `sip:visitor-<id>@<domain>`, and the PBX proxy routes it to us.
    pub domain: String,
    /// Local sockets, in order of preference for sending: the first listed
    /// transport carries messages up to [`SipConfig::max_udp_body`]; larger
    /// ones take the first reliable transport (or are split if only UDP is
    /// configured).
    pub listeners: Vec<Listener>,
    /// The PBX's SIP proxy (`host:port`), e.g. Kamailio; every request goes
    /// there whatever its Request-URI.
    pub outbound_proxy: String,
    /// Answers to 401/407 challenges from the proxy.
    pub credentials: Option<SipCredentials>,
    /// How often each allowlisted agent is probed with OPTIONS.
    pub probe_interval: Duration,
    /// How long the gateway may take to store an agent message before the
    /// agent's UA is answered 500 (the proxy gives up after its own timer).
    pub reply_timeout: Duration,
    /// Upper bound for a whole client transaction, on top of the stack's
    /// RFC 3261 Timer F (64·T1), so no request waits for ever.
    pub request_timeout: Duration,
    /// The largest body sent over UDP (RFC 3428 §4: 1300 bytes).
    pub max_udp_body: usize,
    /// `User-Agent` header.
    pub user_agent: String,
    /// Certificate and key for a [`SipTransport::Tls`] listener.
    pub tls: Option<TlsMaterial>,
    /// Sources trusted to speak for agents besides the outbound proxy's
    /// own address(es): IPs, CIDR ranges, or host names resolved at start.
    pub trusted_hosts: Vec<TrustedHost>,
    /// Where an agent's identity is read from (trusted sources only).
    pub identity: IdentitySource,
    /// Transports an agent's MESSAGE may arrive on; empty: any listener's.
    pub agent_transports: Vec<SipTransport>,
}

impl SipConfig {
    /// Defaults: probe every 30 s, 8 s for the gateway's verdict, 40 s per
    /// request, 1300-byte UDP bodies.
    pub fn new(domain: impl Into<String>, outbound_proxy: impl Into<String>) -> Self {
        Self {
            domain: domain.into(),
            listeners: Vec::new(),
            outbound_proxy: outbound_proxy.into(),
            credentials: None,
            probe_interval: Duration::from_secs(30),
            reply_timeout: Duration::from_secs(8),
            request_timeout: Duration::from_secs(40),
            max_udp_body: 1300,
            user_agent: "Frontdesk".to_owned(),
            tls: None,
            trusted_hosts: Vec::new(),
            identity: IdentitySource::From,
            agent_transports: Vec::new(),
        }
    }

    /// Adds a listener (builder style).
    pub fn listen(mut self, transport: SipTransport, bind: SocketAddr) -> Self {
        self.listeners.push(Listener::new(transport, bind));
        self
    }

    /// Checks what can be checked before binding anything.
    pub fn validate(&self) -> Result<(), SipConfigError> {
        if !is_domain(&self.domain) {
            return Err(SipConfigError::Domain(self.domain.clone()));
        }
        if self.listeners.is_empty() {
            return Err(SipConfigError::NoListener);
        }
        for l in &self.listeners {
            if l.bind.port() == 0 && l.transport.is_reliable() {
                return Err(SipConfigError::ZeroPort(l.transport.as_str()));
            }
        }
        let has_tls = self
            .listeners
            .iter()
            .any(|l| l.transport == SipTransport::Tls);
        if has_tls && self.tls.is_none() {
            return Err(SipConfigError::TlsWithoutCertificate);
        }
        if split_host_port(&self.outbound_proxy).is_none() {
            return Err(SipConfigError::Proxy(self.outbound_proxy.clone()));
        }
        if self.max_udp_body < 200 {
            return Err(SipConfigError::UdpBody(self.max_udp_body));
        }
        if self.probe_interval.is_zero() {
            return Err(SipConfigError::ProbeInterval);
        }
        for t in &self.agent_transports {
            if !self.listeners.iter().any(|l| l.transport == *t) {
                return Err(SipConfigError::AgentTransport(t.as_str()));
            }
        }
        Ok(())
    }

    /// The listener used for a message of `body_len` bytes, and whether the
    /// body must be split (only UDP available).
    pub(crate) fn transport_for(&self, body_len: usize) -> (SipTransport, bool) {
        let first = self.listeners[0].transport;
        if body_len <= self.max_udp_body || first.is_reliable() {
            return (first, false);
        }
        match self.listeners.iter().find(|l| l.transport.is_reliable()) {
            Some(l) => (l.transport, false),
            None => (SipTransport::Udp, true),
        }
    }
}

/// `host:port` with a non-zero port.
pub(crate) fn split_host_port(s: &str) -> Option<(&str, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port = port.parse::<u16>().ok().filter(|p| *p != 0)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then_some((host, port))
}

pub(crate) use crate::queue::sip_uri::is_domain;

/// Why a [`SipConfig`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SipConfigError {
    #[error("sip domain {0:?} is not a valid host name")]
    Domain(String),
    #[error("sip needs at least one listener (udp, tcp or tls)")]
    NoListener,
    #[error("the sip {0} listener needs a concrete port, not 0")]
    ZeroPort(&'static str),
    #[error("a tls listener needs a certificate and key")]
    TlsWithoutCertificate,
    #[error("sip outbound proxy {0:?} must be host:port")]
    Proxy(String),
    #[error("max_udp_body {0} is too small (at least 200 bytes)")]
    UdpBody(usize),
    #[error("probe interval must not be zero")]
    ProbeInterval,
    #[error("agent transport {0} has no listener: agents could never reach the gateway")]
    AgentTransport(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SipConfig {
        SipConfig::new("chat.localhost", "127.0.0.1:5060")
            .listen(SipTransport::Udp, "127.0.0.1:5070".parse().unwrap())
    }

    #[test]
    fn validates_fields() {
        assert_eq!(config().validate(), Ok(()));
        let mut c = config();
        c.domain = "bad domain".into();
        assert!(matches!(c.validate(), Err(SipConfigError::Domain(_))));
        let mut c = config();
        c.outbound_proxy = "pbx.example.com".into();
        assert!(matches!(c.validate(), Err(SipConfigError::Proxy(_))));
        let c = config().listen(SipTransport::Tcp, "127.0.0.1:0".parse().unwrap());
        assert_eq!(c.validate(), Err(SipConfigError::ZeroPort("tcp")));
        let c = config().listen(SipTransport::Tls, "127.0.0.1:5071".parse().unwrap());
        assert_eq!(c.validate(), Err(SipConfigError::TlsWithoutCertificate));
        assert!(SipConfig::new("chat.localhost", "x:1").validate().is_err());
        let mut c = config();
        c.agent_transports = vec![SipTransport::Tcp];
        assert_eq!(c.validate(), Err(SipConfigError::AgentTransport("tcp")));
        c.listeners.push(Listener::new(
            SipTransport::Tcp,
            "127.0.0.1:5070".parse().unwrap(),
        ));
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn large_bodies_take_a_reliable_transport_or_are_split() {
        let udp_only = config();
        assert_eq!(udp_only.transport_for(100), (SipTransport::Udp, false));
        assert_eq!(udp_only.transport_for(1301), (SipTransport::Udp, true));
        let both = config().listen(SipTransport::Tcp, "127.0.0.1:5070".parse().unwrap());
        assert_eq!(both.transport_for(1300), (SipTransport::Udp, false));
        assert_eq!(both.transport_for(1301), (SipTransport::Tcp, false));
        let tcp_first = SipConfig::new("chat.localhost", "[::1]:5060")
            .listen(SipTransport::Tcp, "127.0.0.1:5070".parse().unwrap());
        assert_eq!(tcp_first.transport_for(10), (SipTransport::Tcp, false));
        assert_eq!(split_host_port("[::1]:5060"), Some(("::1", 5060)));
    }
}
