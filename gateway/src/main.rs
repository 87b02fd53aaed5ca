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
    /// Console accounts.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a tenant (its own channels, queues, agents and admins).
    CreateTenant {
        /// 1-64 lowercase letters, digits or '-'.
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
    },
    /// Create a console account. The password is read from
    /// FRONTDESK_ADMIN_PASSWORD, else from the first line of stdin.
    CreateUser {
        #[arg(long)]
        username: String,
        /// admin (everything in its tenant), supervisor (live view and
        /// transcripts, configuration read-only) or superadmin (tenants).
        #[arg(long, default_value = "admin")]
        role: String,
        /// The tenant (default: "default"); not for a superadmin.
        #[arg(long)]
        tenant: Option<String>,
        /// If the user exists, set its password instead of failing.
        #[arg(long)]
        or_update: bool,
    },
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
    /// Update the directory from the PBX: its queues, the agents it names
    /// and the routing of channels that follow one of its entry points
    /// (`pbx_routing`). Prints what changed; a failed read changes nothing.
    Sync(SyncArgs),
}

#[derive(clap::Args)]
struct SyncArgs {
    #[command(subcommand)]
    source: ImportSource,
    /// Sync again after this long (`90s`, `5m`, `1h`) until stopped.
    #[arg(long, global = true, value_parser = parse_interval)]
    every: Option<std::time::Duration>,
    /// The tenant the PBX's items belong to.
    #[arg(long, global = true, default_value = "default")]
    tenant: String,
    /// The JID of a new agent: `{extension}@chat.example.com`.
    #[arg(long, global = true)]
    xmpp_pattern: Option<String>,
    /// The SIP URI of a new agent: `sip:{extension}@pbx.example.com`.
    #[arg(long, global = true)]
    sip_pattern: Option<String>,
}

/// `90s`, `5m`, `1h` (a number alone is seconds).
fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 90s, 5m or 1h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("`{text}`: the unit is s, m or h")),
    };
    if secs == 0 {
        return Err("the interval must be at least 1s".into());
    }
    Ok(std::time::Duration::from_secs(secs))
}

#[derive(Subcommand)]
enum ImportSource {
    /// From an Asterisk configuration folder (queues.conf, extensions.conf).
    Asterisk {
        #[arg(long)]
        dir: PathBuf,
    },
    /// From FreePBX: its database (mysql://user:password@host/asterisk),
    /// its generated files (--conf-dir /etc/asterisk), or both.
    #[command(group(clap::ArgGroup::new("source").required(true).multiple(true).args(["url", "conf_dir"])))]
    Freepbx {
        #[arg(long)]
        url: Option<String>,
        /// Folder of the generated configuration (queues.conf,
        /// extensions.conf and the *_additional.conf they include).
        #[arg(long)]
        conf_dir: Option<PathBuf>,
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
        Command::Serve => serve(config, path).await,
        Command::Pbx(PbxCommand::Sync(args)) => pbx_sync(&config, &args).await,
        Command::Admin(AdminCommand::CreateTenant { id, name }) => {
            let store = Store::connect(
                &config.database_url(),
                1,
                std::time::Duration::from_secs(config.database.acquire_timeout_secs),
            )
            .await?;
            store.migrate().await?;
            anyhow::ensure!(
                store.create_tenant(&id, &name).await?,
                "a tenant with id {id:?} already exists"
            );
            println!("tenant {id} created");
            Ok(())
        }
        Command::Admin(AdminCommand::CreateUser {
            username,
            role,
            tenant,
            or_update,
        }) => create_user(&config, &username, &role, tenant.as_deref(), or_update).await,
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
            if let Some(xmpp) = &config.xmpp {
                let how = match xmpp.connection {
                    frontdesk::config::XmppConnection::OneNode => {
                        "one node at a time holds the component connection (a lease \
                         elects it; the others hand it their stanzas)"
                    }
                    frontdesk::config::XmppConnection::EveryNode => {
                        "every node connects as the component (ejabberd spreads \
                         stanzas over the connections)"
                    }
                };
                println!(
                    "  xmpp:      {} via {}; connection = {:?}: {how}",
                    xmpp.domain,
                    xmpp.server,
                    xmpp.connection.as_str()
                );
            }
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
            println!(
                "{}",
                frontdesk::config::embed_snippet(&config.public_url(), channel.key.as_str())
            );
            Ok(())
        }
        Command::Schedule(ScheduleCommand::Check { channel, at }) => {
            let channel = config
                .channel(&channel)
                .with_context(|| format!("no channel with key {channel:?} in {source}"))?;
            let routed = frontdesk::engine::Channel::from_config(channel.clone())
                .map_err(anyhow::Error::msg)?;
            let schedule = &routed.schedule;
            let at = at.map_or_else(chrono::Utc::now, |t| t.with_timezone(&chrono::Utc));
            let decision = schedule.explain(at);
            println!("{decision}");
            match routed.route_at(at) {
                _ if !channel.enabled => {
                    println!("the channel is disabled: no chat starts (chats under way go on)")
                }
                frontdesk::engine::Routed::Queue(queue) => {
                    println!("a chat started then goes to queue {queue}")
                }
                frontdesk::engine::Routed::Menu => {
                    println!("a chat started then gets the chatbot menu")
                }
                frontdesk::engine::Routed::Closed(closure) => {
                    println!("a chat started then is refused with: {}", closure.text)
                }
            }
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
    let imported = read_pbx(source).await?;
    eprintln!("{}", imported.report());
    println!("{}", imported.to_toml());
    Ok(())
}

async fn read_pbx(source: &ImportSource) -> anyhow::Result<pbx_adapter::import::Import> {
    Ok(match source {
        ImportSource::Asterisk { dir } => pbx_adapter::import::asterisk::import_dir(dir)?,
        ImportSource::Freepbx { url, conf_dir } => {
            pbx_adapter::import::freepbx::import_from(url.as_deref(), conf_dir.as_deref()).await?
        }
    })
}

/// `frontdesk pbx sync`: once, or every `--every` until stopped. With
/// `--every`, a failed read or a refused change is reported and the next
/// round tried; once, it is the command's error.
async fn pbx_sync(config: &Config, args: &SyncArgs) -> anyhow::Result<()> {
    use frontdesk::engine::pbx_sync::{sync, SyncOptions};
    let acquire = std::time::Duration::from_secs(config.database.acquire_timeout_secs);
    let store = Store::connect(&config.database_url(), 1, acquire).await?;
    store.migrate().await?;
    let options = SyncOptions {
        tenant: args.tenant.clone(),
        xmpp_pattern: args.xmpp_pattern.clone(),
        sip_pattern: args.sip_pattern.clone(),
    };
    // With --every, the same notes each round would drown the changes:
    // they are printed when they differ from the last round's.
    let mut last_notes: Vec<String> = Vec::new();
    let mut say_notes = |notes: Vec<String>| {
        if notes != last_notes {
            for note in &notes {
                eprintln!("note: {note}");
            }
            last_notes = notes;
        }
    };
    loop {
        let round = async {
            let import = read_pbx(&args.source)
                .await
                .context("cannot read the PBX; nothing changed")
                .map_err(|e| (e, Vec::new()))?;
            println!(
                "read from the PBX: {} queue(s), {} agent(s), {} routing(s); {} problem(s) \
                 (`frontdesk pbx import` lists them)",
                import.queues.len(),
                import.agents.len(),
                import.routings.len(),
                import.problems.len()
            );
            let report = match sync(&store, &import, &options).await {
                Ok(report) => report,
                Err(refused) => {
                    let error = anyhow::Error::new(refused.source)
                        .context("the directory refused the PBX's items; nothing changed");
                    return Err((error, refused.notes));
                }
            };
            for change in &report.changes {
                println!("{change}");
            }
            match report.version {
                Some(v) => println!("directory version {v}"),
                None => println!("no change"),
            }
            Ok::<_, (anyhow::Error, Vec<String>)>(report.notes)
        };
        let outcome = round.await;
        let notes = match &outcome {
            Ok(notes) | Err((_, notes)) => notes.clone(),
        };
        say_notes(notes);
        match (outcome, args.every) {
            (Ok(_), None) => return Ok(()),
            (Err((e, _)), None) => return Err(e),
            (Err((e, _)), Some(_)) => eprintln!("error: {e:#}"),
            (Ok(_), Some(_)) => {}
        }
        let every = args.every.expect("checked above");
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown_signal() => return Ok(()),
        }
    }
}

async fn create_user(
    config: &Config,
    username: &str,
    role: &str,
    tenant: Option<&str>,
    or_update: bool,
) -> anyhow::Result<()> {
    use frontdesk::api::admin::{create_user, set_password, CreateUserError, Role};
    let role = Role::parse(role)
        .with_context(|| format!("unknown role {role:?}: admin, supervisor or superadmin"))?;
    let password = match std::env::var("FRONTDESK_ADMIN_PASSWORD") {
        Ok(password) => password,
        Err(_) => {
            eprintln!("password for {username} (one line on stdin):");
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("cannot read the password from stdin")?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    let store = Store::connect(
        &config.database_url(),
        1,
        std::time::Duration::from_secs(config.database.acquire_timeout_secs),
    )
    .await?;
    store.migrate().await?;
    match create_user(&store, username, &password, role, tenant).await {
        Ok(()) => println!("user {username} created ({})", role.as_str()),
        Err(CreateUserError::Taken(_)) if or_update => {
            set_password(&store, username, &password).await?;
            println!("user {username} exists: password set");
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

async fn serve(mut config: Config, path: Option<PathBuf>) -> anyhow::Result<()> {
    frontdesk::telemetry::init(config.server.log_format);
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    // Listening on port 0: links must name the port actually bound.
    config.server.listen = listener.local_addr()?;
    let gateway = Gateway::start(&config).await?;
    reprovision_on_sighup(gateway.engine(), path);
    // A machine-readable line for scripts and tests that start on port 0.
    println!("listening on http://{}", listener.local_addr()?);
    gateway.run_until(listener, shutdown_signal()).await
}

/// On SIGHUP, reads the configuration file again and provisions its
/// directory (channels, queues, agents); a file that does not validate is
/// reported and changes nothing. Other sections need a restart.
fn reprovision_on_sighup(engine: frontdesk::engine::Engine, path: Option<PathBuf>) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        tracing::warn!("cannot listen for SIGHUP; the directory reloads on restart only");
        return;
    };
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let config = match Config::load(path.as_deref()) {
                Ok(config) => config,
                Err(e) => {
                    tracing::error!(error = %e, "SIGHUP: configuration refused; nothing changed");
                    continue;
                }
            };
            match engine.provision(&config.directory_spec()).await {
                Ok(directory) => tracing::info!(
                    version = directory.version(),
                    "SIGHUP: directory provisioned from the configuration file"
                ),
                Err(e) => tracing::error!(error = %e, "SIGHUP: directory refused; nothing changed"),
            }
        }
    });
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
