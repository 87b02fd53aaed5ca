//! `frontdesk-demo-prosody`: a throwaway Prosody for the demo and the
//! browser tests, with the component domain `chat.localhost` and agent
//! accounts whose presence subscriptions are pre-approved. Prints one JSON
//! line (ports, component secret, accounts) and runs until stopped; its
//! data directory goes with it.

use clap::Parser;
use frontdesk_tests::xmpp_server::{Account, XmppKind, XmppServer, COMPONENT_DOMAIN, HOST};
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// Client port (0 = any free port).
    #[arg(long, default_value_t = 0)]
    c2s_port: u16,
    /// Component port (0 = any free port).
    #[arg(long, default_value_t = 0)]
    component_port: u16,
    /// Agent account names.
    #[arg(long, value_delimiter = ',', default_value = "alice,bob")]
    agents: Vec<String>,
}

fn port_or_free(port: u16) -> anyhow::Result<u16> {
    if port != 0 {
        return Ok(port);
    }
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let accounts: Vec<Account> = args
        .agents
        .iter()
        .map(|name| {
            let mut account = Account::new(name).preapproved();
            account.password = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
            account
        })
        .collect();
    let prosody = XmppServer::start_on(
        XmppKind::Prosody,
        &accounts,
        port_or_free(args.c2s_port)?,
        port_or_free(args.component_port)?,
    )
    .await?;
    let line = json!({
        "host": HOST,
        "component_domain": COMPONENT_DOMAIN,
        "c2s_port": prosody.c2s_port,
        "component_port": prosody.component_port,
        "secret": prosody.secret,
        "accounts": accounts
            .iter()
            .map(|a| json!({ "jid": a.jid(), "password": a.password }))
            .collect::<Vec<_>>(),
    });
    println!("{line}");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    drop(prosody);
    Ok(())
}
