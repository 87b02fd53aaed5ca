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
    /// Configuration file (TOML). Without it: ./frontdesk.toml, then
    /// /etc/frontdesk/frontdesk.toml, else defaults and FRONTDESK__* variables.
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
    /// Business hours.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Read the PBX's own configuration.
    #[command(subcommand)]
    Pbx(PbxCommand),
}

#[derive(Subcommand)]
enum ScheduleCommand {
    /// Say whether a channel is open (now or at --at), why, and when it opens next.
    Check {
        #[arg(long)]
        channel: String,
        /// An RFC 3339 instant, e.g. 2026-12-24T18:30:00+01:00.
        #[arg(long)]
        at: Option<chrono::DateTime<chrono::FixedOffset>>,
    },
}

#[derive(Subcommand)]
enum PbxCommand {
    /// Import queues, agents and time conditions. Prints TOML to paste into
    /// the configuration on stdout, and the report on stderr.
    #[command(subcommand)]
    Import(ImportSource),
}

#[derive(Subcommand)]
enum ImportSource {
    /// From an Asterisk configuration folder (queues.conf, extensions.conf).
    Asterisk {
        #[arg(long)]
        dir: PathBuf,
    },
    /// From a FreePBX database (mysql://user:password@host/asterisk).
    Freepbx {
        #[arg(long)]
        url: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Pbx(PbxCommand::Import(source)) = &cli.command {
        return import(source).await;
    }
    let (path, source) = config_source(cli.config);
    let config = Config::load(path.as_deref())?;
    match cli.command {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            frontdesk::telemetry::init(config.server.log_format);
            let acquire = std::time::Duration::from_secs(config.database.acquire_timeout_secs);
            let store = Store::connect(&config.database_url(), 1, acquire).await?;
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
                .with_context(|| format!("no channel with key {channel:?} in {source}"))?;
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
        Command::Schedule(ScheduleCommand::Check { channel, at }) => {
            let channel = config
                .channel(&channel)
                .with_context(|| format!("no channel with key {channel:?} in {source}"))?;
            let schedule = pbx_adapter::schedule::Schedule::from_config(&channel.schedule)?;
            let at = at.map_or_else(chrono::Utc::now, |t| t.with_timezone(&chrono::Utc));
            let decision = schedule.explain(at);
            println!("{decision}");
            if !decision.open {
                match schedule.next_open(at) {
                    Some(next) => println!(
                        "next opening: {} ({})",
                        next.with_timezone(&schedule.timezone())
                            .format("%a %Y-%m-%d %H:%M %Z"),
                        next.to_rfc3339()
                    ),
                    None => println!("next opening: none within 400 days"),
                }
            }
            Ok(())
        }
        Command::Pbx(_) => unreachable!("handled before loading the configuration"),
    }
}

async fn import(source: &ImportSource) -> anyhow::Result<()> {
    let imported = match source {
        ImportSource::Asterisk { dir } => pbx_adapter::import::asterisk::import_dir(dir)?,
        ImportSource::Freepbx { url } => pbx_adapter::import::freepbx::import(url).await?,
    };
    eprintln!("{}", imported.report());
    println!("{}", imported.to_toml());
    Ok(())
}

async fn serve(mut config: Config) -> anyhow::Result<()> {
    frontdesk::telemetry::init(config.server.log_format);
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    // Listening on port 0: links must name the port actually bound.
    config.server.listen = listener.local_addr()?;
    let gateway = Gateway::start(&config).await?;
    // A machine-readable line for scripts and tests that start on port 0.
    println!("listening on http://{}", listener.local_addr()?);
    gateway.run_until(listener, shutdown_signal()).await
}

/// Which file to read: the one named, else the first default path that
/// exists. Says on stderr which one it is, or where it looked, so a command
/// run in the wrong folder does not silently run on the defaults. Returns
/// the path and how to name the configuration in messages.
fn config_source(named: Option<PathBuf>) -> (Option<PathBuf>, String) {
    if let Some(path) = named {
        let source = path.display().to_string();
        return (Some(path), source);
    }
    match Config::find_default() {
        Some(path) => {
            eprintln!("frontdesk: using the configuration in {}", path.display());
            let source = path.display().to_string();
            (Some(path), source)
        }
        None => {
            let looked: Vec<String> = Config::DEFAULT_PATHS
                .iter()
                .map(|p| match p.starts_with('/') {
                    true => (*p).to_owned(),
                    false => format!("./{p}"),
                })
                .collect();
            eprintln!(
                "frontdesk: no configuration file given (--config FILE or FRONTDESK_CONFIG) \
                 and none found at {}; running on the defaults and FRONTDESK__* variables",
                looked.join(" or ")
            );
            (None, "the defaults (no configuration file)".to_owned())
        }
    }
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
