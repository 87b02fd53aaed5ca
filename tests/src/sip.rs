//! The SIP side of a test, set up once for the user agent's tests, the
//! bridge's tests and the SIP benchmark: [`SipPbx`] is a throwaway Kamailio
//! (the PBX's proxy and registrar) routing the gateway's domain to an
//! address kept free for the gateway's user agent (or, for several nodes,
//! spreading it over one address per node with its dispatcher), with agents' softphones
//! played by sipp ([`SippAgent`]); [`UserAgent`] drives
//! `pbx_adapter::sip` directly, as the gateway's bridge does, for tests of
//! the user agent alone.

use std::net::SocketAddr;
use std::time::Duration;

use frontdesk::config::{Config, SipBridgeConfig};
use pbx_adapter::queue::SipUri;
use pbx_adapter::sip::{SipCommand, SipConfig, SipEvent, SipTransport};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::kamailio::{Kamailio, KamailioOptions, SippAgent, GATEWAY_DOMAIN, PBX_DOMAIN};
use crate::net::free_udp_tcp_addr;
use crate::visitor::Session;
use crate::wait::{expect_event, stop_task};

/// How long [`UserAgent::expect`] waits.
pub const WAIT: Duration = Duration::from_secs(10);

/// Kamailio, and the address (same port for UDP and TCP) it routes the
/// gateway domain to.
pub struct SipPbx {
    pub kamailio: Kamailio,
    /// Where the gateway's user agent listens (node 0's, with several).
    pub gateway: SocketAddr,
    /// Where each node's user agent listens, with several nodes (else
    /// `[gateway]`).
    pub nodes: Vec<SocketAddr>,
}

impl SipPbx {
    pub async fn start() -> anyhow::Result<SipPbx> {
        Self::start_with(|_| {}).await
    }

    /// With proxy options changed (forced transport, digest challenge).
    pub async fn start_with(adjust: impl FnOnce(&mut KamailioOptions)) -> anyhow::Result<SipPbx> {
        crate::gateway::init_test_logging();
        let gateway = free_udp_tcp_addr()?;
        let mut options = KamailioOptions::new(gateway);
        adjust(&mut options);
        let kamailio = Kamailio::start(options).await?;
        Ok(SipPbx {
            kamailio,
            gateway,
            nodes: vec![gateway],
        })
    }

    /// Kamailio spreading the gateway domain over `count` nodes' user
    /// agents with its dispatcher (an address kept free for each).
    pub async fn start_nodes(count: usize) -> anyhow::Result<SipPbx> {
        crate::gateway::init_test_logging();
        let nodes = (0..count)
            .map(|_| free_udp_tcp_addr())
            .collect::<anyhow::Result<Vec<_>>>()?;
        let kamailio = Kamailio::start(KamailioOptions::dispatching(nodes.clone())).await?;
        Ok(SipPbx {
            kamailio,
            gateway: nodes[0],
            nodes,
        })
    }

    /// Agent `user`'s softphone, registered over UDP (or TCP) and
    /// answering.
    pub async fn agent(&self, user: &str, tcp: bool) -> anyhow::Result<SippAgent> {
        SippAgent::start(&self.kamailio, user, tcp).await
    }

    /// Routes the test configuration's live channel to a SIP agent: agent
    /// 103 becomes `sip:103@pbx.localhost`, alone in the channel's queue
    /// (601), and the SIP bridge goes through this proxy.
    pub fn configure_gateway(&self, config: &mut Config) {
        config.agents[2].sip = Some(uri(&format!("sip:103@{PBX_DOMAIN}")));
        config.channels[0].queue = Some("601".parse().expect("a queue extension"));
        config.sip = Some(self.bridge_config());
    }

    /// The gateway's `[sip]` section for this proxy (UDP and TCP).
    pub fn bridge_config(&self) -> SipBridgeConfig {
        self.node_bridge_config(0)
    }

    /// Node `i`'s `[sip]` section (its own address, UDP and TCP).
    pub fn node_bridge_config(&self, i: usize) -> SipBridgeConfig {
        let mut sip = SipBridgeConfig::new(GATEWAY_DOMAIN, self.kamailio.addr());
        sip.listen_udp = Some(self.nodes[i]);
        sip.listen_tcp = Some(self.nodes[i]);
        sip.probe_interval_secs = 1;
        sip
    }
}

/// A visitor's SIP URI, `sip:USER@chat.localhost`.
pub fn visitor_uri(user: &str) -> String {
    format!("sip:{user}@{GATEWAY_DOMAIN}")
}

/// The SIP URI a visitor's conversation writes from.
pub fn session_uri(session: &Session) -> String {
    visitor_uri(&session.agent_localpart())
}

pub fn uri(s: &str) -> SipUri {
    s.parse().expect("a valid SIP URI")
}

/// `pbx_adapter::sip`'s user agent, driven by commands and read through
/// its events, as the gateway's bridge does.
pub struct UserAgent {
    pub commands: mpsc::Sender<SipCommand>,
    pub events: mpsc::Receiver<SipEvent>,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl UserAgent {
    /// On `pbx`'s gateway address over `transports`, with `pbx` as its
    /// outbound proxy, allowing `agents`.
    pub async fn start(
        pbx: &SipPbx,
        transports: &[SipTransport],
        agents: &[&str],
        adjust: impl FnOnce(&mut SipConfig),
    ) -> UserAgent {
        let mut config = SipConfig::new(GATEWAY_DOMAIN, pbx.kamailio.addr());
        for t in transports {
            config = config.listen(*t, pbx.gateway);
        }
        config.request_timeout = Duration::from_secs(8);
        adjust(&mut config);
        Self::start_on(config, pbx.gateway, agents).await
    }

    /// With a configuration of the caller's (listening on `addr`).
    pub async fn start_on(config: SipConfig, addr: SocketAddr, agents: &[&str]) -> UserAgent {
        let (commands, rx) = mpsc::channel(64);
        let shutdown = CancellationToken::new();
        let (task, events) = pbx_adapter::sip::spawn(config, rx, shutdown.clone())
            .await
            .expect("the user agent did not start");
        let ua = UserAgent {
            commands,
            events,
            shutdown,
            task: Some(task),
            addr,
        };
        ua.command(SipCommand::SetAgents(
            agents.iter().map(|a| uri(a)).collect(),
        ))
        .await;
        ua
    }

    pub async fn command(&self, command: SipCommand) {
        self.commands.send(command).await.expect("UA task gone");
    }

    /// A visitor's message to an agent.
    pub async fn send(&self, outbox_id: i64, visitor: &str, to: &str, body: &str) {
        self.send_as(outbox_id, visitor, to, body, None).await;
    }

    /// Same, with a stable message id (its Call-ID).
    pub async fn send_as(
        &self,
        outbox_id: i64,
        visitor: &str,
        to: &str,
        body: &str,
        message_id: Option<&str>,
    ) {
        self.command(SipCommand::SendMessage {
            outbox_id,
            from_user: visitor.to_owned(),
            to: uri(to),
            body: body.to_owned(),
            message_id: message_id.map(str::to_owned),
        })
        .await;
    }

    /// The first event matching `pred`; others are skipped (and printed).
    pub async fn expect(&mut self, pred: impl Fn(&SipEvent) -> bool) -> SipEvent {
        expect_event(&mut self.events, "the UA task", WAIT, pred).await
    }

    /// Whether the user agent's task still runs.
    pub fn is_running(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished())
    }

    pub async fn stop(mut self) {
        stop_task(&self.shutdown, self.task.take(), "the UA task", WAIT).await;
    }
}
