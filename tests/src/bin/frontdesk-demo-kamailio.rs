//! `frontdesk-demo-kamailio`: a throwaway Kamailio for the demo, standing
//! in for the PBX's SIP proxy: registrar for `pbx.localhost` (softphones
//! register there) and proxy routing `chat.localhost` to the gateway's SIP
//! port. Prints one JSON line (its address, the gateway's SIP address, the
//! domains) and runs until stopped.

use clap::Parser;
use frontdesk_tests::kamailio::{Kamailio, KamailioOptions, GATEWAY_DOMAIN, PBX_DOMAIN};
use frontdesk_tests::net::free_udp_tcp_port;
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// The gateway's SIP port (UDP and TCP; 0 = any free port).
    #[arg(long, default_value_t = 0)]
    gateway_port: u16,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let gateway_port = match args.gateway_port {
        0 => free_udp_tcp_port()?,
        port => port,
    };
    let gateway = std::net::SocketAddr::from(([127, 0, 0, 1], gateway_port));
    let kamailio = Kamailio::start(KamailioOptions::new(gateway)).await?;
    let line = json!({
        "proxy": kamailio.addr(),
        "gateway": gateway.to_string(),
        "pbx_domain": PBX_DOMAIN,
        "gateway_domain": GATEWAY_DOMAIN,
    });
    println!("{line}");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    drop(kamailio);
    Ok(())
}
