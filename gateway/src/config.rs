//! The one typed configuration of a gateway.
//!
//! Loaded from a TOML file, then `FRONTDESK__SECTION__KEY` environment
//! variables on top (figment), then validated as a whole: a bad value stops
//! start-up with a message that names the key and the file, never later at
//! the first visitor. Nothing else in the code reads files or environment
//! variables for settings.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use frontdesk_xmpp::{BareJid, ComponentConfig, ComponentTls};
use pbx_adapter::queue::{AgentConfig, QueueConfig};
use pbx_adapter::sip::{IdentitySource, SipTransport, TrustedHost, TrustedHostError};
use serde::{Deserialize, Serialize};
use url::Url;

mod directory;

pub use directory::{
    embed_snippet, parse_origin, schedule_error, Alternative, AlternativeKind, ChannelConfig,
    ChannelLimits, ChannelMode, ChatbotOption, ClosedConfig, DirectorySpec, FieldCode, FieldError,
    MAX_ADDRESS_CHARS, MAX_MESSAGE_CHARS, MAX_NAME_CHARS, MAX_OPTION_ID_CHARS, MAX_TEXT_CHARS,
};

/// Languages the widget and the agent-facing texts exist in.
pub const SUPPORTED_LANGUAGES: &[&str] = &["en", "fr"];

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub cluster: ClusterConfig,
    #[serde(default)]
    pub limits: RateLimits,
    #[serde(default)]
    pub agents: Vec<AgentConfig>,
    #[serde(default)]
    pub queues: Vec<QueueConfig>,
    #[serde(default)]
    pub channels: Vec<ChannelConfig>,
    #[serde(default)]
    pub files: FilesConfig,
    #[serde(default)]
    pub waiting: WaitingConfig,
    /// The XMPP bridge (an XEP-0114 component). Absent: no XMPP agents.
    #[serde(default)]
    pub xmpp: Option<XmppConfig>,
    /// The SIP MESSAGE bridge (a user agent behind the PBX's proxy).
    /// Absent: no SIP agents.
    #[serde(default)]
    pub sip: Option<SipBridgeConfig>,
}

/// A configured secret (component secret, SIP password, link-signing
/// key, metrics token): `Debug`, logs and serialization show
/// `[redacted]`, and its memory is wiped when dropped. Read it with
/// [`Secret::expose`] where it is used, nowhere else.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(secrecy::SecretString);

impl Secret {
    pub fn expose(&self) -> &str {
        secrecy::ExposeSecret::expose_secret(&self.0)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret(secrecy::SecretString::from(s))
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(secrecy::SecretString::from(s))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("[redacted]")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipBridgeConfig {
    /// The gateway's SIP domain; visitors write from `sip:visitor-…@DOMAIN`.
    /// The PBX's proxy must route this domain to the gateway.
    pub domain: String,
    /// UDP socket to listen on (e.g. `0.0.0.0:5070`).
    #[serde(default)]
    pub listen_udp: Option<SocketAddr>,
    /// TCP socket to listen on; messages over 1300 bytes use TCP.
    #[serde(default)]
    pub listen_tcp: Option<SocketAddr>,
    /// The PBX's SIP proxy, `host:port`: every request goes there.
    pub outbound_proxy: String,
    /// Digest credentials, if the proxy challenges the gateway.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// Seconds between OPTIONS probes of each agent (availability).
    #[serde(default = "default_probe_interval")]
    pub probe_interval_secs: u64,
    /// Sources besides `outbound_proxy`'s own addresses whose requests may
    /// speak for agents: IPs, CIDR ranges (`10.0.0.0/8`), or host names
    /// resolved at start. Requests from anywhere else get 403.
    #[serde(default)]
    pub trusted_hosts: Vec<String>,
    /// Where an agent's identity comes from: `from` (the proxy checks that
    /// `From` is the authenticated user) or `p-asserted-identity` (RFC
    /// 3325, set by the proxy; a MESSAGE without it is refused).
    #[serde(default)]
    pub identity: IdentitySource,
    /// Transports agents' MESSAGEs may arrive on (`["tcp"]` to refuse
    /// agent MESSAGEs over UDP, whose source address is easier to forge);
    /// empty: any listener's.
    #[serde(default)]
    pub agent_transports: Vec<SipTransport>,
}

fn default_probe_interval() -> u64 {
    30
}

impl SipBridgeConfig {
    /// A bridge for `domain` behind `outbound_proxy`, listening nowhere yet,
    /// with the defaults for everything else.
    pub fn new(domain: impl Into<String>, outbound_proxy: impl Into<String>) -> Self {
        Self {
            domain: domain.into(),
            listen_udp: None,
            listen_tcp: None,
            outbound_proxy: outbound_proxy.into(),
            username: None,
            password: None,
            probe_interval_secs: default_probe_interval(),
            trusted_hosts: Vec::new(),
            identity: IdentitySource::default(),
            agent_transports: Vec::new(),
        }
    }

    /// The `trusted_hosts` entries, parsed.
    pub fn trusted_hosts(&self) -> Result<Vec<TrustedHost>, TrustedHostError> {
        self.trusted_hosts.iter().map(|h| h.parse()).collect()
    }

    /// Checks what the `[sip]` section can check alone. Errors are
    /// `(key, message)`.
    fn validate(&self) -> Result<(), (String, String)> {
        self.trusted_hosts()
            .map_err(|e| ("sip.trusted_hosts".to_owned(), e.to_string()))?;
        for transport in &self.agent_transports {
            let listening = match transport {
                SipTransport::Udp => self.listen_udp.is_some(),
                SipTransport::Tcp => self.listen_tcp.is_some(),
                SipTransport::Tls => false,
            };
            if !listening {
                return Err((
                    "sip.agent_transports".to_owned(),
                    format!(
                        "{:?} has no listener (set listen_{0}; tls is not offered here)",
                        transport.as_str()
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XmppConfig {
    /// The component's domain; visitors appear as `visitor-…@DOMAIN`.
    pub domain: String,
    /// `host:port` of the XMPP server's component listener.
    pub server: String,
    /// The component secret shared with the XMPP server.
    pub secret: Secret,
    /// Seconds between pings that detect a dead stream.
    #[serde(default = "default_ping_interval")]
    pub ping_interval_secs: u64,
    /// Whether agents shown as `away` still get new offers (`xa` and
    /// `dnd` never do).
    #[serde(default)]
    pub offers_when_away: bool,
    /// Longest wait between reconnection attempts, in seconds (the wait
    /// doubles from half a second up to this, with jitter).
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max_secs: u64,
    /// Direct TLS on the component connection (ejabberd's `tls: true`
    /// listener option), with the server's certificate verified.
    #[serde(default)]
    pub tls: bool,
    /// PEM file of the CA (or CAs) the server's certificate must chain to;
    /// unset trusts the Mozilla roots (webpki-roots).
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// The name the server's certificate must be valid for; unset takes
    /// the host of `server`.
    #[serde(default)]
    pub tls_server_name: Option<String>,
    /// How several gateway nodes on one database connect as the component:
    /// one at a time (`one_node`, the default: what Prosody allows) or all
    /// at once (`every_node`: ejabberd). See [`XmppConnection`].
    #[serde(default)]
    pub connection: XmppConnection,
}

/// Which gateway nodes hold a component connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum XmppConnection {
    /// One node at a time, elected with a lease in the database; the others
    /// hand it their stanzas through the outbox and take over within
    /// seconds when it dies. Safe with every server (Prosody refuses a
    /// second connection for a component domain), and what one node does.
    #[default]
    OneNode,
    /// Every node connects, and the server spreads the agents' stanzas over
    /// the connections (ejabberd, several connections for one domain).
    /// PostgreSQL only.
    EveryNode,
}

impl XmppConnection {
    pub fn as_str(self) -> &'static str {
        match self {
            XmppConnection::OneNode => "one_node",
            XmppConnection::EveryNode => "every_node",
        }
    }
}

impl XmppConfig {
    /// The component link's TLS settings, with the CA file read; `None`
    /// without `tls`. Errors are `(key, message)`.
    pub fn component_tls(&self) -> Result<Option<ComponentTls>, (String, String)> {
        if !self.tls {
            let set = [
                ("xmpp.tls_ca_file", self.tls_ca_file.is_some()),
                ("xmpp.tls_server_name", self.tls_server_name.is_some()),
            ];
            if let Some((key, _)) = set.iter().find(|(_, set)| *set) {
                return Err((
                    (*key).to_owned(),
                    "is used only with xmpp.tls = true".into(),
                ));
            }
            return Ok(None);
        }
        let server_name = match &self.tls_server_name {
            Some(name) => name.clone(),
            None => host_of(&self.server).to_owned(),
        };
        let ca_pem = match &self.tls_ca_file {
            None => None,
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                (
                    "xmpp.tls_ca_file".to_owned(),
                    format!("cannot read {}: {e}", path.display()),
                )
            })?),
        };
        Ok(Some(ComponentTls {
            server_name,
            ca_pem,
        }))
    }

    /// Checks what the `[xmpp]` section can check alone (the TLS settings:
    /// the CA file holds certificates, the name is one).
    fn validate(&self) -> Result<(), (String, String)> {
        if let Some(tls) = self.component_tls()? {
            let domain = BareJid::new(&self.domain)
                .map_err(|e| ("xmpp.domain".to_owned(), e.to_string()))?;
            let mut component = ComponentConfig::new(domain, &self.server, "");
            component.tls = Some(tls);
            component
                .validate()
                .map_err(|e| ("xmpp.tls".to_owned(), e.to_string()))?;
        }
        Ok(())
    }
}

/// The host of `host:port` (`[v6]:port` too), or all of it without a port.
fn host_of(server: &str) -> &str {
    let host = match server.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => server,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

fn default_reconnect_max() -> u64 {
    30
}

fn default_ping_interval() -> u64 {
    30
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the HTTP server binds. Port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// The address visitors' browsers reach the gateway at, used in the
    /// embed snippet. Defaults to `http://{listen}`.
    pub public_url: Option<Url>,
    /// Where the SQLite database (by default) and uploaded files live.
    pub data_dir: PathBuf,
    pub log_format: LogFormat,
    /// How long a graceful shutdown waits for in-flight requests.
    pub shutdown_grace_secs: u64,
    /// Reverse proxies (IPs or CIDRs) whose forwarding header names the
    /// client. From any other peer the header is ignored.
    pub trusted_proxies: Vec<Cidr>,
    /// The header the trusted proxies write the client's address into.
    pub forwarded_header: ForwardedHeader,
    /// Seconds a connection may take to send a request head; the same
    /// timer closes a kept-alive connection that sends no next request.
    pub header_read_timeout_secs: u64,
    /// Seconds a request body (an upload) may go without sending data.
    pub body_idle_timeout_secs: u64,
    /// Open connections (WebSockets included) over which new ones are
    /// closed at once.
    pub max_connections: usize,
    /// Open connections from one client address (IPv6: one /64); trusted
    /// proxies are not counted.
    pub max_connections_per_ip: usize,
    /// Seconds a WebSocket may stay silent (no pong, no frame) before it
    /// is closed; the server pings at most every 25 s and at least twice
    /// within this time.
    pub websocket_idle_timeout_secs: u64,
    /// Seconds one WebSocket write may wait for a client that does not
    /// read before the socket is dropped.
    pub websocket_write_timeout_secs: u64,
    /// When set, `/metrics` answers only requests with
    /// `Authorization: Bearer <token>` (401 otherwise).
    pub metrics_token: Option<Secret>,
    /// How long a visitor's token stays valid after their chat started;
    /// past it, 401 `unauthorized` (the widget then offers a new chat).
    pub visitor_token_ttl_secs: u64,
    /// How often (milliseconds) this node checks the database for directory
    /// changes other nodes made (on PostgreSQL, NOTIFY usually tells it
    /// sooner). Changes made through this node apply at once.
    pub directory_poll_ms: u64,
    /// How often (milliseconds) this node looks for due timers (offers
    /// ringing out, max waits, wrap-ups) that another node set and could
    /// not fire (it died): the most such a timer fires late. Timers this
    /// node sets fire on time.
    pub timer_poll_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            data_dir: PathBuf::from("data"),
            log_format: LogFormat::Human,
            shutdown_grace_secs: 10,
            trusted_proxies: Vec::new(),
            forwarded_header: ForwardedHeader::XForwardedFor,
            header_read_timeout_secs: 10,
            body_idle_timeout_secs: 30,
            max_connections: 4096,
            max_connections_per_ip: 64,
            websocket_idle_timeout_secs: 60,
            websocket_write_timeout_secs: 10,
            metrics_token: None,
            visitor_token_ttl_secs: 30 * 24 * 3600,
            directory_poll_ms: 2000,
            timer_poll_ms: 1000,
        }
    }
}

/// Which forwarding header a trusted proxy writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, …` (nginx, HAProxy, most CDNs).
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`.
    Forwarded,
}

/// An IP network: `10.0.0.0/8`, `2001:db8::/32`, or one address (host
/// names are not accepted: a proxy is trusted by the address it connects
/// from). The SIP bridge's [`IpNet`](pbx_adapter::sip::IpNet), parsed from
/// a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr(pbx_adapter::sip::IpNet);

impl Cidr {
    /// Whether `ip` is in this network (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(ip)
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(raw: &str) -> Result<Cidr, String> {
        use pbx_adapter::sip::TrustedHost;
        match raw.parse::<TrustedHost>() {
            Ok(TrustedHost::Net(net)) => Ok(Cidr(net)),
            Ok(TrustedHost::Name(_)) | Err(_) => {
                Err(format!("{raw:?} is not an IP address or CIDR (10.0.0.0/8)"))
            }
        }
    }
}

impl TryFrom<String> for Cidr {
    type Error = String;

    fn try_from(raw: String) -> Result<Cidr, String> {
        raw.parse()
    }
}

impl From<Cidr> for String {
    fn from(cidr: Cidr) -> String {
        cidr.0.to_string()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://…`. Empty: `DATA_DIR/frontdesk.db`.
    pub url: Option<String>,
    pub max_connections: u32,
    /// How long a request waits for a database connection before it is
    /// answered 503 `unavailable` (the database is down or restarting, or
    /// every connection is busy).
    pub acquire_timeout_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 10,
            acquire_timeout_secs: 5,
        }
    }
}

/// Several gateway nodes on one PostgreSQL database (`[cluster]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Other nodes share this node's database (and files directory):
    /// dispatch takes a cluster-wide lease, and agents' presence and
    /// ringing offers outlive this node's restart. PostgreSQL only.
    pub enabled: bool,
    /// On SIGTERM, how long (milliseconds) the node keeps serving while
    /// `/readyz` answers 503 `draining`, so the load balancer's health
    /// checks move new requests to other nodes before this one stops
    /// accepting. Set it above the balancer's check interval times its
    /// fall count.
    pub drain_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            drain_ms: 3000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimits {
    /// Visitor API requests per minute from one client IP.
    pub requests_per_minute_per_ip: u32,
    /// New conversations per hour from one client IP.
    pub conversations_per_hour_per_ip: u32,
    /// Messages per minute in one conversation.
    pub messages_per_minute_per_conversation: u32,
    /// Largest JSON request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// WebSocket upgrades per minute from one client IP (a reconnecting
    /// widget backs off from 0.5 s to 10 s).
    pub websocket_upgrades_per_minute_per_ip: u32,
    /// Open event streams per conversation (a visitor's tabs): one more
    /// closes the oldest with 4409.
    pub websockets_per_conversation: usize,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            requests_per_minute_per_ip: 600,
            conversations_per_hour_per_ip: 60,
            messages_per_minute_per_conversation: 60,
            max_body_bytes: 64 * 1024,
            websocket_upgrades_per_minute_per_ip: 60,
            websockets_per_conversation: 4,
        }
    }
}

/// Bounds on chats waiting for an agent, so abandoned ones do not pile up
/// and one queue cannot hold the whole gateway.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WaitingConfig {
    /// A waiting chat (menu, queue, ringing) whose visitor has had no widget
    /// connected for this long ends, with a note the visitor reads on
    /// return. 0 keeps them.
    pub abandoned_after_secs: u64,
    /// Most chats waiting in one queue; the next visitor gets 503
    /// `queue_full` (Asterisk's `maxlen`). 0: no limit.
    pub max_per_queue: u32,
    /// Most chats one client address (IPv6 by /64) may have waiting at
    /// once; the next gets 429 `too_many_waiting`. 0: no limit.
    pub max_per_client: u32,
}

impl Default for WaitingConfig {
    fn default() -> Self {
        Self {
            abandoned_after_secs: 15 * 60,
            max_per_queue: 500,
            max_per_client: 3,
        }
    }
}

/// Uploaded files: where they live, how agents' links are signed, which
/// types are refused whatever their name says.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilesConfig {
    /// Folder of the uploaded files. Empty: `DATA_DIR/files`.
    pub directory: Option<PathBuf>,
    /// Secret of the HMAC that signs agents' download links (32 characters
    /// or more). Empty: one is generated and kept in
    /// `DATA_DIR/file-signing.key` (mode 0600), so links survive restarts.
    /// Gateway nodes that share files must share this key.
    pub signing_key: Option<Secret>,
    /// How long an agent's download link stays valid.
    pub link_ttl_secs: u64,
    /// Media types refused at upload, as sniffed from the content.
    pub denied_types: Vec<String>,
    /// Uploads are refused (507) while the file store's disk has less than
    /// this many bytes free beyond the file being sent; 0 turns it off.
    pub min_free_bytes: u64,
}

impl Default for FilesConfig {
    fn default() -> Self {
        Self {
            directory: None,
            signing_key: None,
            link_ttl_secs: 7 * 24 * 3600,
            denied_types: [
                "application/x-msdownload",
                "application/x-executable",
                "application/x-elf",
                "application/x-sh",
                "text/x-shellscript",
                "application/vnd.microsoft.portable-executable",
                "application/x-mach-binary",
                "text/html",
                "image/svg+xml",
            ]
            .map(str::to_owned)
            .to_vec(),
            min_free_bytes: 256 * 1024 * 1024,
        }
    }
}

/// A configuration that could not be used, with the key and file to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    Missing(PathBuf),
    #[error("invalid configuration ({source_name}): {error}")]
    Parse {
        source_name: String,
        error: Box<figment::Error>,
    },
    #[error("invalid configuration ({source_name}): {key}: {message}")]
    Invalid {
        source_name: String,
        key: String,
        message: String,
    },
}

impl Config {
    /// Where a command looks for its configuration when neither `--config`
    /// nor `FRONTDESK_CONFIG` names a file, in order.
    pub const DEFAULT_PATHS: [&'static str; 2] =
        ["frontdesk.toml", "/etc/frontdesk/frontdesk.toml"];

    /// The first of [`DEFAULT_PATHS`](Self::DEFAULT_PATHS) that exists.
    pub fn find_default() -> Option<PathBuf> {
        Self::DEFAULT_PATHS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
    }

    /// Reads `path` (if given; it must exist) and the environment, then
    /// validates the result.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        let source_name = match path {
            Some(p) => {
                if !p.exists() {
                    return Err(ConfigError::Missing(p.to_owned()));
                }
                figment = figment.merge(Toml::file_exact(p));
                p.display().to_string()
            }
            None => "defaults".to_owned(),
        };
        figment = figment.merge(Env::prefixed("FRONTDESK__").split("__"));
        let config: Config = figment.extract().map_err(|error| ConfigError::Parse {
            source_name: source_name.clone(),
            error: Box::new(error),
        })?;
        config
            .validate()
            .map_err(|(key, message)| ConfigError::Invalid {
                source_name,
                key,
                message,
            })?;
        Ok(config)
    }

    /// The database URL, defaulting to a SQLite file in the data dir.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) if !url.is_empty() => url.clone(),
            _ => format!(
                "sqlite://{}?mode=rwc",
                self.server.data_dir.join("frontdesk.db").display()
            ),
        }
    }

    /// The folder of uploaded files, defaulting to `DATA_DIR/files`.
    pub fn files_dir(&self) -> PathBuf {
        match &self.files.directory {
            Some(dir) if !dir.as_os_str().is_empty() => dir.clone(),
            _ => self.server.data_dir.join("files"),
        }
    }

    /// The base URL browsers use to reach this gateway.
    pub fn public_url(&self) -> Url {
        match &self.server.public_url {
            Some(url) => url.clone(),
            None => Url::parse(&format!("http://{}", self.server.listen))
                .expect("a socket address always forms a valid URL"),
        }
    }

    pub fn channel(&self, key: &str) -> Option<&ChannelConfig> {
        self.channels.iter().find(|c| c.key.as_str() == key)
    }

    /// The directory this file provisions (its `[[agents]]`, `[[queues]]`
    /// and `[[channels]]`).
    pub fn directory_spec(&self) -> DirectorySpec {
        DirectorySpec {
            agents: self.agents.clone(),
            queues: self.queues.clone(),
            channels: self.channels.clone(),
        }
    }

    /// Cross-field checks serde cannot express. Errors are `(key, message)`.
    fn validate(&self) -> Result<(), (String, String)> {
        self.validate_edge()?;
        if self.cluster.enabled && self.database_url().starts_with("sqlite:") {
            return Err((
                "cluster.enabled".into(),
                "several nodes need one PostgreSQL database they all reach; SQLite is one \
                 node's database: set database.url = \"postgres://…\" or turn the cluster off"
                    .into(),
            ));
        }
        if let Some(error) = self.directory_spec().validate().into_iter().next() {
            return Err((error.key, error.message));
        }
        if let Some(sip) = &self.sip {
            sip.validate()?;
        }
        if let Some(xmpp) = &self.xmpp {
            xmpp.validate()?;
            if xmpp.connection == XmppConnection::EveryNode
                && !self.database_url().starts_with("postgres")
            {
                return Err((
                    "xmpp.connection".into(),
                    "\"every_node\" is for several gateway nodes on one PostgreSQL database; \
                     with SQLite (one node) leave it at \"one_node\""
                        .into(),
                ));
            }
        }
        if let Some(key) = self
            .files
            .signing_key
            .as_ref()
            .map(Secret::expose)
            .filter(|k| !k.is_empty())
        {
            if key.len() < 32 {
                return Err((
                    "files.signing_key".into(),
                    "must be at least 32 characters".into(),
                ));
            }
        }
        if self.files.link_ttl_secs == 0 {
            return Err((
                "files.link_ttl_secs".into(),
                "must be greater than zero".into(),
            ));
        }
        for media_type in &self.files.denied_types {
            let valid = media_type.split_once('/').is_some_and(|(a, b)| {
                !a.is_empty() && !b.is_empty() && !media_type.contains(char::is_whitespace)
            });
            if !valid {
                return Err((
                    "files.denied_types".into(),
                    format!("{media_type:?} is not a media type (type/subtype)"),
                ));
            }
        }
        Ok(())
    }
}

impl Config {
    /// The `[server]` and `[limits]` values that bound connections.
    fn validate_edge(&self) -> Result<(), (String, String)> {
        let server = &self.server;
        let limits = &self.limits;
        let positive = [
            (
                "server.header_read_timeout_secs",
                server.header_read_timeout_secs,
            ),
            (
                "server.body_idle_timeout_secs",
                server.body_idle_timeout_secs,
            ),
            ("server.max_connections", server.max_connections as u64),
            ("server.directory_poll_ms", server.directory_poll_ms),
            ("server.timer_poll_ms", server.timer_poll_ms),
            (
                "database.acquire_timeout_secs",
                self.database.acquire_timeout_secs,
            ),
            (
                "server.max_connections_per_ip",
                server.max_connections_per_ip as u64,
            ),
            (
                "server.websocket_idle_timeout_secs",
                server.websocket_idle_timeout_secs,
            ),
            (
                "server.websocket_write_timeout_secs",
                server.websocket_write_timeout_secs,
            ),
            (
                "limits.websocket_upgrades_per_minute_per_ip",
                u64::from(limits.websocket_upgrades_per_minute_per_ip),
            ),
            (
                "limits.websockets_per_conversation",
                limits.websockets_per_conversation as u64,
            ),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(((*key).into(), "must be greater than zero".into()));
        }
        if server.max_connections_per_ip > server.max_connections {
            return Err((
                "server.max_connections_per_ip".into(),
                "cannot be more than server.max_connections".into(),
            ));
        }
        if server.websocket_idle_timeout_secs < 2 {
            return Err((
                "server.websocket_idle_timeout_secs".into(),
                "must be at least 2 (the server pings twice within it)".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug_or_serialization() {
        let mut config = Config::default();
        config.files.signing_key = Some("the-signing-key-that-must-not-leak".into());
        config.server.metrics_token = Some("metrics-token-that-must-not-leak".into());
        let shown = format!("{config:?}") + &serde_json::to_string(&config.files).unwrap();
        assert!(!shown.contains("must-not-leak"), "{shown}");
        assert!(shown.contains("[redacted]"));
        let key = config.files.signing_key.as_ref().unwrap();
        assert_eq!(key.expose(), "the-signing-key-that-must-not-leak");
    }

    fn xmpp(tls: bool) -> XmppConfig {
        XmppConfig {
            domain: "chat.example.com".into(),
            server: "xmpp.example.com:5347".into(),
            secret: "s".into(),
            ping_interval_secs: 30,
            offers_when_away: false,
            reconnect_max_secs: 30,
            tls,
            tls_ca_file: None,
            tls_server_name: None,
            connection: Default::default(),
        }
    }

    #[test]
    fn xmpp_tls_takes_the_servers_host_and_names_bad_settings() {
        assert_eq!(xmpp(false).component_tls().unwrap(), None);
        let tls = xmpp(true).component_tls().unwrap().unwrap();
        assert_eq!(tls.server_name, "xmpp.example.com");
        assert_eq!(tls.ca_pem, None);
        assert_eq!(host_of("[::1]:5347"), "::1");
        assert_eq!(host_of("127.0.0.1:5347"), "127.0.0.1");

        let mut plain = xmpp(false);
        plain.tls_ca_file = Some("/etc/ca.pem".into());
        assert_eq!(plain.component_tls().unwrap_err().0, "xmpp.tls_ca_file");
        let mut missing = xmpp(true);
        missing.tls_ca_file = Some("/nonexistent/frontdesk-ca.pem".into());
        let (key, message) = missing.validate().unwrap_err();
        assert_eq!(key, "xmpp.tls_ca_file");
        assert!(
            message.contains("/nonexistent/frontdesk-ca.pem"),
            "{message}"
        );
        let mut garbage = xmpp(true);
        let dir = std::env::temp_dir().join(format!("fd-ca-{}", uuid::Uuid::new_v4()));
        std::fs::write(&dir, "not a certificate").unwrap();
        garbage.tls_ca_file = Some(dir.clone());
        let (key, message) = garbage.validate().unwrap_err();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(key, "xmpp.tls");
        assert!(message.contains("no certificate"), "{message}");
    }

    #[test]
    fn origins_are_normalised() {
        assert_eq!(
            parse_origin("https://Example.com:443").unwrap(),
            "https://example.com"
        );
        assert!(parse_origin("https://example.com/page").is_err());
        assert!(parse_origin("ftp://example.com").is_err());
    }

    #[test]
    fn defaults_load_without_a_file() {
        let config = Config::load(None).unwrap();
        assert_eq!(config.server.listen.port(), 8080);
        assert!(config.database_url().starts_with("sqlite://"));
    }

    #[test]
    fn files_have_safe_defaults_and_checked_keys() {
        let mut config = Config::load(None).unwrap();
        assert_eq!(config.files_dir(), PathBuf::from("data/files"));
        assert_eq!(config.files.link_ttl_secs, 7 * 24 * 3600);
        for denied in ["application/x-msdownload", "text/html", "image/svg+xml"] {
            assert!(config.files.denied_types.iter().any(|t| t == denied));
        }
        config.files.signing_key = Some("too short".into());
        assert_eq!(config.validate().unwrap_err().0, "files.signing_key");
        config.files.signing_key = None;
        config.files.denied_types = vec!["exe".into()];
        assert_eq!(config.validate().unwrap_err().0, "files.denied_types");
    }

    #[test]
    fn cidrs_parse_and_match() {
        let net: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()));
        let one: Cidr = "2001:db8::1".parse().unwrap();
        assert!(one.contains("2001:db8::1".parse().unwrap()));
        assert!(!one.contains("2001:db8::2".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "example.com", "10.0.0.0/", "::/129"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        let parse = |toml: &str| {
            Figment::from(Serialized::defaults(Config::default()))
                .merge(Toml::string(toml))
                .extract::<Config>()
                .map_err(Box::new)
        };
        let config = parse("[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n").unwrap();
        assert_eq!(config.server.trusted_proxies.len(), 2);
        assert!(parse("[server]\ntrusted_proxies = [\"nope\"]\n").is_err());
    }

    #[test]
    fn edge_limits_are_checked() {
        let mut config = Config::load(None).unwrap();
        config.server.header_read_timeout_secs = 0;
        assert_eq!(
            config.validate().unwrap_err().0,
            "server.header_read_timeout_secs"
        );
        config.server.header_read_timeout_secs = 10;
        config.server.max_connections_per_ip = config.server.max_connections + 1;
        assert_eq!(
            config.validate().unwrap_err().0,
            "server.max_connections_per_ip"
        );
    }

    #[test]
    fn sip_trust_settings_are_checked_and_name_their_key() {
        let mut config = Config::load(None).unwrap();
        let mut sip = SipBridgeConfig::new("chat.localhost", "127.0.0.1:5060");
        sip.listen_udp = Some("127.0.0.1:5070".parse().unwrap());
        sip.trusted_hosts = vec!["10.0.0.0/8".into(), "pbx2.example.com".into()];
        config.sip = Some(sip.clone());
        assert!(config.validate().is_ok());
        sip.trusted_hosts.push("10.0.0.0/40".into());
        config.sip = Some(sip.clone());
        let (key, message) = config.validate().unwrap_err();
        assert_eq!(key, "sip.trusted_hosts");
        assert!(message.contains("\"10.0.0.0/40\""), "{message}");
        sip.trusted_hosts.clear();
        sip.agent_transports = vec![SipTransport::Tcp];
        config.sip = Some(sip);
        assert_eq!(config.validate().unwrap_err().0, "sip.agent_transports");
    }

    #[test]
    fn sip_identity_and_transports_read_from_toml() {
        let sip: SipBridgeConfig = Figment::from(Toml::string(
            r#"domain = "chat.localhost"
               outbound_proxy = "127.0.0.1:5060"
               identity = "p-asserted-identity"
               agent_transports = ["tcp"]"#,
        ))
        .extract()
        .unwrap();
        assert_eq!(sip.identity, IdentitySource::PAssertedIdentity);
        assert_eq!(sip.agent_transports, vec![SipTransport::Tcp]);
        let default = SipBridgeConfig::new("chat.localhost", "127.0.0.1:5060");
        assert_eq!(default.identity, IdentitySource::From);
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = Config::load(Some(Path::new("/nonexistent/frontdesk.toml"))).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/frontdesk.toml"));
    }
}
