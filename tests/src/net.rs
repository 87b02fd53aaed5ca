//! Free loopback ports for throwaway servers, and waiting until a server
//! listens.

use std::net::{TcpListener, UdpSocket};
use std::time::Duration;

use anyhow::bail;

/// A TCP port nobody listens on right now (bound, read, released).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A port free for both UDP and TCP on 127.0.0.1 right now.
pub fn free_udp_tcp_port() -> anyhow::Result<u16> {
    for _ in 0..50 {
        let tcp = TcpListener::bind("127.0.0.1:0")?;
        let port = tcp.local_addr()?.port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no port free for both UDP and TCP")
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
