//! The `frontdesk` command: reads the config, then serves, migrates,
//! checks or prints. Everything else lives in the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use frontdesk::config::Config;
use frontdesk::server::{shutdown_signal, Gateway};
use frontdesk::store::Store;

#[derive(Parser)]
#[command(
    name = "frontdesk",
    version,
    about = "Website chat bridged into your PBX's queues"
)]
struct Cli {
    /// Configuration file (TOML). Without it: defaults and FRONTDESK__* variables.
    #[arg(long, short, global = true, env = "FRONTDESK_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Validate the configuration and print a summary.
    CheckConfig,
    /// Print the snippet to paste before </head> on every page of the site.
    EmbedCode {
        /// The channel's key.
        #[arg(long)]
        channel: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            frontdesk::telemetry::init(config.server.log_format);
            let store = Store::connect(&config.database_url(), 1).await?;
            store.migrate().await?;
            println!("migrations applied to {}", redact(&config.database_url()));
            Ok(())
        }
        Command::CheckConfig => {
            println!("configuration is valid");
            println!("  listen:    {}", config.server.listen);
            println!("  database:  {}", redact(&config.database_url()));
            println!("  agents:    {}", config.agents.len());
            println!("  queues:    {}", config.queues.len());
            for channel in &config.channels {
                println!(
                    "  channel {} ({:?}): origins {:?}",
                    channel.key, channel.mode, channel.allowed_origins
                );
            }
            Ok(())
        }
        Command::EmbedCode { channel } => {
            let channel = config
                .channel(&channel)
                .with_context(|| format!("no channel with key {channel:?} in the configuration"))?;
            let src = config
                .public_url()
                .join("widget.js")
                .context("public_url cannot be a base URL")?;
            println!(
                "<script async src=\"{src}\" data-key=\"{}\"></script>",
                channel.key
            );
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    frontdesk::telemetry::init(config.server.log_format);
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let gateway = Gateway::start(&config).await?;
    // A machine-readable line for scripts and tests that start on port 0.
    println!("listening on http://{}", listener.local_addr()?);
    gateway.run_until(listener, shutdown_signal()).await
}

/// Hides a password in a database URL before printing it.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("****"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}
