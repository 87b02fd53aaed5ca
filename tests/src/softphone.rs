//! A SIP softphone the fault tests drive directly: one UDP socket,
//! registered at the test Kamailio as an agent of the PBX domain, that
//! answers every MESSAGE and OPTIONS with 200 and records what arrived
//! (OPTIONS probes with the gateway node that sent them),
//! and sends MESSAGEs through the proxy as one client transaction per
//! attempt (retransmitted on RFC 3261's timer E, ended by the first final
//! response). sipp starts a process per MESSAGE, too slow for thousands;
//! this plays the same phone in-process.
//!
//! A message it sends keeps its Call-ID, CSeq and From tag on every
//! attempt ([`OutgoingId`]): what a phone re-sending the same request
//! does, and what the gateway recognises a copy by. It re-registers every
//! [`REFRESH`] in the background, as phones refresh their registration, so
//! a restarted registrar (Kamailio keeps locations in memory) learns the
//! contact again. Test code, so SIP text is written by hand here.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::bail;
use tokio::net::UdpSocket;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

use crate::kamailio::{Kamailio, PBX_DOMAIN};

/// How often the phone renews its registration.
pub const REFRESH: Duration = Duration::from_secs(1);
/// RFC 3261 T1: the first retransmission interval over UDP.
const T1: Duration = Duration::from_millis(500);
/// RFC 3261 T2: the retransmission interval's cap.
const T2: Duration = Duration::from_secs(4);

/// One MESSAGE the phone received (retransmissions are recorded again).
#[derive(Debug, Clone)]
pub struct Received {
    pub call_id: String,
    /// The From URI (the visitor address the gateway writes from).
    pub from: String,
    pub content_type: String,
    pub body: String,
}

/// What makes every attempt of one message the same request.
#[derive(Debug, Clone)]
pub struct OutgoingId {
    pub call_id: String,
    pub cseq: u32,
    pub from_tag: String,
}

impl OutgoingId {
    pub fn fresh() -> OutgoingId {
        let id = uuid::Uuid::new_v4().simple().to_string();
        OutgoingId {
            call_id: format!("{id}@softphone"),
            cseq: 1,
            from_tag: id[..10].to_owned(),
        }
    }
}

/// One OPTIONS probe the phone received.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Who sent it: the `sent-by` of its last `Via` (the request's
    /// originator; the proxy's own `Via` is on top), e.g. a gateway
    /// node's `127.0.0.1:PORT`.
    pub sent_by: String,
    pub at: std::time::Instant,
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    probes: Vec<Probe>,
    /// Client transactions waiting for a final response, by Via branch.
    pending: HashMap<String, oneshot::Sender<u16>>,
}

/// A registered, answering softphone; stops when dropped.
pub struct Softphone {
    pub user: String,
    socket: Arc<UdpSocket>,
    proxy: SocketAddr,
    state: Arc<Mutex<State>>,
    arrived: Arc<Notify>,
    tasks: Vec<JoinHandle<()>>,
}

impl Softphone {
    /// Binds a loopback port, starts answering, and registers `user` at
    /// `kamailio` (then keeps the registration fresh).
    pub async fn start(kamailio: &Kamailio, user: &str) -> anyhow::Result<Softphone> {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let proxy: SocketAddr = kamailio.addr().parse()?;
        let mut phone = Softphone {
            user: user.to_owned(),
            socket,
            proxy,
            state: Arc::default(),
            arrived: Arc::default(),
            tasks: Vec::new(),
        };
        phone.tasks.push(tokio::spawn(serve(
            phone.socket.clone(),
            phone.state.clone(),
            phone.arrived.clone(),
        )));
        phone.register().await?;
        let refresher = phone.registrar_client();
        phone.tasks.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFRESH).await;
                // A registrar that is down now is tried again next time.
                let _ = refresher.register_once().await;
            }
        }));
        Ok(phone)
    }

    /// The agent's address of record.
    pub fn aor(&self) -> String {
        format!("sip:{}@{PBX_DOMAIN}", self.user)
    }

    fn registrar_client(&self) -> Client {
        Client {
            user: self.user.clone(),
            socket: self.socket.clone(),
            proxy: self.proxy,
            state: self.state.clone(),
        }
    }

    /// Registers now, retrying for a while (the registrar may be starting).
    pub async fn register(&self) -> anyhow::Result<()> {
        let client = self.registrar_client();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            match client.register_once().await {
                Ok(()) => return Ok(()),
                Err(e) if tokio::time::Instant::now() > deadline => {
                    return Err(e.context("the softphone could not register"))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// One attempt at sending `body` to `to_uri` through the proxy as
    /// request `id`: the final status, or `None` when none came within
    /// `within`.
    pub async fn send(
        &self,
        to_uri: &str,
        body: &str,
        id: &OutgoingId,
        within: Duration,
    ) -> Option<u16> {
        self.send_via(self.proxy, to_uri, body, id, within).await
    }

    /// [`Softphone::send`], but straight to `next_hop` (e.g. one gateway
    /// node's user agent, as the proxy would relay it: the phone's socket
    /// is on the proxy's 127.0.0.1).
    pub async fn send_via(
        &self,
        next_hop: SocketAddr,
        to_uri: &str,
        body: &str,
        id: &OutgoingId,
        within: Duration,
    ) -> Option<u16> {
        let mut client = self.registrar_client();
        client.proxy = next_hop;
        let local = client.local();
        let aor = self.aor();
        client
            .transaction(within, |branch| {
                format!(
                    "MESSAGE {to_uri} SIP/2.0\r\n\
                     Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
                     Max-Forwards: 70\r\n\
                     From: <{aor}>;tag={tag}\r\nTo: <{to_uri}>\r\n\
                     Call-ID: {call_id}\r\nCSeq: {cseq} MESSAGE\r\n\
                     Content-Type: text/plain;charset=UTF-8\r\n\
                     Content-Length: {len}\r\n\r\n{body}",
                    tag = id.from_tag,
                    call_id = id.call_id,
                    cseq = id.cseq,
                    len = body.len(),
                )
            })
            .await
    }

    /// Every OPTIONS received so far, in arrival order.
    pub fn probes(&self) -> Vec<Probe> {
        self.state.lock().expect("phone lock").probes.clone()
    }

    /// Waits until `count` OPTIONS arrived after the first `after`; returns
    /// those `count`.
    pub async fn wait_for_probes(
        &self,
        after: usize,
        count: usize,
        within: Duration,
    ) -> anyhow::Result<Vec<Probe>> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.arrived.notified();
            let probes = self.probes();
            if probes.len() >= after + count {
                return Ok(probes[after..after + count].to_vec());
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                bail!(
                    "softphone {}: {} OPTIONS after the first {after}, not {count}, within {within:?}",
                    self.user,
                    probes.len().saturating_sub(after)
                );
            }
        }
    }

    /// Every MESSAGE received so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().expect("phone lock").received.clone()
    }

    /// Waits until some received MESSAGE satisfies `pred`.
    pub async fn wait_for(
        &self,
        within: Duration,
        pred: impl Fn(&Received) -> bool,
    ) -> anyhow::Result<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.arrived.notified();
            if let Some(found) = self.received().into_iter().find(&pred) {
                return Ok(found);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                bail!(
                    "softphone {}: no matching MESSAGE within {within:?}",
                    self.user
                );
            }
        }
    }
}

impl Drop for Softphone {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// What sending needs, shareable with the refresh task.
#[derive(Clone)]
struct Client {
    user: String,
    socket: Arc<UdpSocket>,
    proxy: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl Client {
    fn local(&self) -> SocketAddr {
        self.socket.local_addr().expect("a bound socket")
    }

    async fn register_once(&self) -> anyhow::Result<()> {
        let id = OutgoingId::fresh();
        let local = self.local();
        let aor = format!("sip:{}@{PBX_DOMAIN}", self.user);
        let status = self
            .transaction(Duration::from_secs(3), |branch| {
                format!(
                    "REGISTER sip:{PBX_DOMAIN} SIP/2.0\r\n\
                     Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
                     Max-Forwards: 70\r\n\
                     From: <{aor}>;tag={tag}\r\nTo: <{aor}>\r\n\
                     Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n\
                     Contact: <sip:{user}@{local}>\r\nExpires: 300\r\n\
                     Content-Length: 0\r\n\r\n",
                    tag = id.from_tag,
                    call_id = id.call_id,
                    cseq = id.cseq,
                    user = self.user,
                )
            })
            .await;
        match status {
            Some(200) => Ok(()),
            Some(other) => bail!("REGISTER got {other}"),
            None => bail!("REGISTER got no answer"),
        }
    }

    /// One client transaction to the proxy under a new branch:
    /// retransmitted on timer E until a final response or `within`.
    async fn transaction(&self, within: Duration, text: impl Fn(&str) -> String) -> Option<u16> {
        let branch = format!("z9hG4bK-{}", uuid::Uuid::new_v4().simple());
        let (tx, mut rx) = oneshot::channel();
        self.state
            .lock()
            .expect("phone lock")
            .pending
            .insert(branch.clone(), tx);
        let request = text(&branch);
        let deadline = tokio::time::Instant::now() + within;
        let mut interval = T1;
        let status = loop {
            if self
                .socket
                .send_to(request.as_bytes(), self.proxy)
                .await
                .is_err()
            {
                break None;
            }
            let next = (tokio::time::Instant::now() + interval).min(deadline);
            match tokio::time::timeout_at(next, &mut rx).await {
                Ok(Ok(status)) => break Some(status),
                Ok(Err(_)) => break None,
                Err(_) if tokio::time::Instant::now() >= deadline => break None,
                Err(_) => interval = (interval * 2).min(T2),
            }
        };
        self.state
            .lock()
            .expect("phone lock")
            .pending
            .remove(&branch);
        status
    }
}

/// A parsed datagram: start line, headers (name lowercased, compact forms
/// expanded, each with its raw line), body.
struct Parsed<'a> {
    start: &'a str,
    headers: Vec<(String, &'a str, &'a str)>,
    body: &'a str,
}

fn full_name(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    match lower.as_str() {
        "v" => "via",
        "f" => "from",
        "t" => "to",
        "i" => "call-id",
        "l" => "content-length",
        "c" => "content-type",
        other => other,
    }
    .to_owned()
}

fn parse(text: &str) -> Option<Parsed<'_>> {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let mut lines = head.split("\r\n");
    let start = lines.next()?;
    let headers = lines
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((full_name(name), value.trim(), line))
        })
        .collect();
    Some(Parsed {
        start,
        headers,
        body,
    })
}

impl Parsed<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, v, _)| *v)
    }

    /// The last Via's `sent-by` (`host:port`).
    fn origin(&self) -> Option<&str> {
        let via = self
            .headers
            .iter()
            .rev()
            .find(|(n, _, _)| n == "via")
            .map(|(_, v, _)| *v)?;
        let last = via.rsplit(',').next()?.trim();
        // `SIP/2.0/UDP host:port;params`
        let (_, rest) = last.split_once(char::is_whitespace)?;
        rest.trim().split(';').next()
    }

    /// The top Via's branch.
    fn branch(&self) -> Option<&str> {
        let via = self.header("via")?;
        let first = via.split(',').next()?;
        first
            .split(';')
            .find_map(|p| p.trim().strip_prefix("branch="))
    }
}

/// The URI inside a From/To value (`<sip:…>;tag=…` or a bare URI).
fn uri_of(value: &str) -> String {
    match (value.find('<'), value.find('>')) {
        (Some(start), Some(end)) if start < end => value[start + 1..end].to_owned(),
        _ => value.split(';').next().unwrap_or(value).trim().to_owned(),
    }
}

/// Answers requests, records MESSAGEs, routes responses to their
/// transaction.
async fn serve(socket: Arc<UdpSocket>, state: Arc<Mutex<State>>, arrived: Arc<Notify>) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let text = String::from_utf8_lossy(&buf[..len]).into_owned();
        let Some(parsed) = parse(&text) else { continue };
        if let Some(status) = parsed.start.strip_prefix("SIP/2.0 ") {
            let Some(status) = status.get(..3).and_then(|s| s.parse::<u16>().ok()) else {
                continue;
            };
            if status >= 200 {
                let waiting = parsed
                    .branch()
                    .and_then(|b| state.lock().expect("phone lock").pending.remove(b));
                if let Some(waiting) = waiting {
                    let _ = waiting.send(status);
                }
            }
            continue;
        }
        let method = parsed.start.split(' ').next().unwrap_or_default();
        if method == "ACK" {
            continue;
        }
        if method == "MESSAGE" {
            let received = Received {
                call_id: parsed.header("call-id").unwrap_or_default().to_owned(),
                from: uri_of(parsed.header("from").unwrap_or_default()),
                content_type: parsed.header("content-type").unwrap_or_default().to_owned(),
                body: parsed.body.to_owned(),
            };
            state.lock().expect("phone lock").received.push(received);
            arrived.notify_waiters();
        }
        if method == "OPTIONS" {
            let probe = Probe {
                sent_by: parsed.origin().unwrap_or_default().to_owned(),
                at: std::time::Instant::now(),
            };
            state.lock().expect("phone lock").probes.push(probe);
            arrived.notify_waiters();
        }
        let _ = socket.send_to(ok_response(&parsed).as_bytes(), peer).await;
    }
}

/// `200 OK` to a request: its Vias, From, To (tagged), Call-ID and CSeq.
fn ok_response(request: &Parsed<'_>) -> String {
    let mut out = String::from("SIP/2.0 200 OK\r\n");
    for (name, value, line) in &request.headers {
        match name.as_str() {
            "via" | "from" | "call-id" | "cseq" => {
                out.push_str(line);
                out.push_str("\r\n");
            }
            "to" if value.contains("tag=") => {
                out.push_str(line);
                out.push_str("\r\n");
            }
            "to" => {
                out.push_str(&format!("To: {value};tag=phone\r\n"));
            }
            _ => {}
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}
