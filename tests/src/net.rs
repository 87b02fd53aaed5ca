//! Free loopback ports for throwaway servers, and waiting until a server
//! listens.

use std::collections::HashSet;
use std::net::{TcpListener, UdpSocket};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::bail;

/// Ports are handed out from below the kernel's ephemeral range (Linux's
/// default is 32768–60999). A port from that range, found free by binding
/// port 0, could be taken by any process's outgoing socket between the
/// check and the server's bind (a SIP test's UDP port was, once); ports
/// below it are only ever taken by a server binding them on purpose.
const PORTS: std::ops::Range<u16> = 20000..32700;

/// Every port this process handed out, never handed out twice.
static HANDED: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A port of [`PORTS`] not handed out yet for which `free` holds, kept
/// as handed out.
fn hand_out(free: impl Fn(u16) -> bool) -> anyhow::Result<u16> {
    let mut handed = HANDED.lock().expect("ports lock");
    let handed = handed.get_or_insert_with(HashSet::new);
    for _ in 0..500 {
        let random = (uuid::Uuid::new_v4().as_u128() % u128::from(PORTS.len() as u16)) as u16;
        let port = PORTS.start + random;
        if !handed.contains(&port) && free(port) {
            handed.insert(port);
            return Ok(port);
        }
    }
    bail!("no free port found in {PORTS:?}")
}

fn tcp_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A TCP port nobody listens on right now (bound, read, released).
pub fn free_port() -> anyhow::Result<u16> {
    hand_out(tcp_free)
}

/// A port free for both UDP and TCP on 127.0.0.1 right now.
pub fn free_udp_tcp_port() -> anyhow::Result<u16> {
    hand_out(|port| tcp_free(port) && UdpSocket::bind(("127.0.0.1", port)).is_ok())
}

/// `127.0.0.1:PORT` with a port free for both UDP and TCP (a SIP listener).
pub fn free_udp_tcp_addr() -> anyhow::Result<std::net::SocketAddr> {
    Ok(std::net::SocketAddr::from((
        [127, 0, 0, 1],
        free_udp_tcp_port()?,
    )))
}

/// Polls until `port` accepts TCP connections (servers log no reliable
/// "ready" line across versions).
pub async fn wait_for_port(port: u16, within: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("port {port} not accepting connections after {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
