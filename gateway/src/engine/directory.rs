//! The directory the engine routes with, and how it changes while running.
//!
//! A [`Directory`] is an immutable, validated snapshot of channels, queues
//! and agents at one database version. The engine holds the current one in
//! an `ArcSwap`: every request reads it without a lock, and a change swaps
//! in a whole new snapshot, so no operation ever sees half a change.
//!
//! Changes go through [`Engine::change_directory`] only: it opens a
//! [`DirectoryChange`](crate::store::DirectoryChange) (which bumps the
//! version and serialises writers across nodes), applies the operations to
//! the rows it read, validates the *whole* result with the same rules as
//! the config file (`DirectorySpec::validate`, plus tenant isolation), and
//! commits rows, version and audit entry together. Every node then
//! reloads: at once on the writing node, on NOTIFY (PostgreSQL) or the next
//! poll elsewhere. See `watch_directory`.
//!
//! Items provisioned from `frontdesk.toml` are written by
//! [`Engine::provision`] with source `file`, and the console may not change
//! them.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use pbx_adapter::queue::{AgentConfig, PbxDirectory, QueueConfig};
use tracing::{info, warn};

use super::{Channels, Engine};
use crate::config::{ChannelConfig, DirectorySpec, FieldCode, FieldError};
use crate::store::{AuditEntry, DirectoryRows, ItemKind, ItemRow, ItemSource, StoreError};

/// The tenant every provisioned item, and every item of a single-tenant
/// gateway, belongs to.
pub const DEFAULT_TENANT: &str = "default";

/// Where an item came from and who last changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemMeta {
    pub tenant: String,
    pub source: ItemSource,
    pub updated_at: i64,
    pub updated_by: Option<String>,
}

/// One directory item, typed.
#[derive(Debug, Clone)]
pub enum Item {
    Channel(Box<ChannelConfig>),
    Queue(QueueConfig),
    Agent(AgentConfig),
}

impl Item {
    pub fn kind(&self) -> ItemKind {
        match self {
            Item::Channel(_) => ItemKind::Channel,
            Item::Queue(_) => ItemKind::Queue,
            Item::Agent(_) => ItemKind::Agent,
        }
    }

    pub fn key(&self) -> String {
        match self {
            Item::Channel(c) => c.key.to_string(),
            Item::Queue(q) => q.extension.to_string(),
            Item::Agent(a) => a.extension.to_string(),
        }
    }

    fn to_json(&self) -> Result<String, serde_json::Error> {
        match self {
            Item::Channel(c) => serde_json::to_string(c),
            Item::Queue(q) => serde_json::to_string(q),
            Item::Agent(a) => serde_json::to_string(a),
        }
    }

    fn from_row(row: &ItemRow) -> Result<Item, serde_json::Error> {
        Ok(match row.kind {
            ItemKind::Channel => Item::Channel(Box::new(serde_json::from_str(&row.spec)?)),
            ItemKind::Queue => Item::Queue(serde_json::from_str(&row.spec)?),
            ItemKind::Agent => Item::Agent(serde_json::from_str(&row.spec)?),
        })
    }
}

/// One step of a change.
#[derive(Debug, Clone)]
pub enum DirectoryOp {
    /// Create the item, or replace the one with its key (provisioning).
    Put(Item),
    /// Create the item; refused if its key is in use.
    Create(Item),
    /// Replace the item last changed at `revision` (its `updated_at`);
    /// refused if someone changed it since, so two admins cannot silently
    /// overwrite each other.
    Replace {
        item: Item,
        revision: i64,
    },
    Delete(ItemKind, String),
    /// `frontdesk pbx sync` only: puts the PBX's routing into a console
    /// channel that follows it (`pbx_routing`), adding the closures the
    /// routes name that the channel lacks; the channel stays the
    /// console's.
    FollowPbx {
        channel: String,
        /// The entry point the plan read in the channel's `pbx_routing`:
        /// if the admin changed it since, the channel is left alone.
        entry: String,
        schedule: pbx_adapter::schedule::ScheduleConfig,
        add_closures: Vec<(String, crate::config::ClosedConfig)>,
    },
}

/// Who makes a change, and on behalf of which tenant.
#[derive(Debug, Clone)]
pub struct Actor {
    /// Shown in the audit log: a user name, `token:NAME`, `frontdesk.toml`.
    pub name: String,
    pub tenant: String,
    /// Which items it may change.
    pub source: ItemSource,
}

impl Actor {
    /// The configuration file, provisioning at start or on SIGHUP.
    pub fn provisioning() -> Actor {
        Actor {
            name: "frontdesk.toml".into(),
            tenant: DEFAULT_TENANT.into(),
            source: ItemSource::File,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The change would leave an invalid directory; nothing was written.
    #[error("invalid directory: {}", join(.0))]
    Invalid(Vec<FieldError>),
    /// The item is provisioned from frontdesk.toml (or made in the console,
    /// for the file): the other side may not change it.
    #[error("{kind} {key} is managed in {owner}")]
    ReadOnly {
        kind: &'static str,
        key: String,
        owner: &'static str,
    },
    #[error("no {kind} {key}")]
    NotFound { kind: &'static str, key: String },
    /// A create found the key taken (in any tenant: keys are global).
    #[error("{kind} {key} already exists")]
    KeyInUse { kind: &'static str, key: String },
    /// A replace found the item changed since the revision it was read at.
    #[error("{kind} {key} was changed meanwhile")]
    ChangedMeanwhile { kind: &'static str, key: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn join(errors: &[FieldError]) -> String {
    let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
    all.join("; ")
}

/// Refuses a create whose key is taken, and a replace of an item that is
/// gone or changed since it was read.
/// Another tenant's item is, to a replace, one that does not exist.
fn expect(
    op: &DirectoryOp,
    actor: &Actor,
    kind: ItemKind,
    key: &str,
    existing: Option<&ItemMeta>,
) -> Result<(), DirectoryError> {
    let (kind, key) = (kind.as_str(), key.to_owned());
    match (op, existing) {
        (DirectoryOp::Create(_), Some(_)) => Err(DirectoryError::KeyInUse { kind, key }),
        (DirectoryOp::Replace { .. }, None) => Err(DirectoryError::NotFound { kind, key }),
        (DirectoryOp::Replace { .. }, Some(meta)) if meta.tenant != actor.tenant => {
            Err(DirectoryError::NotFound { kind, key })
        }
        (DirectoryOp::Replace { revision, .. }, Some(meta)) if meta.updated_at != *revision => {
            Err(DirectoryError::ChangedMeanwhile { kind, key })
        }
        _ => Ok(()),
    }
}

/// A validated directory at one version. Cheap to share (`Arc`).
pub struct Directory {
    version: i64,
    spec: DirectorySpec,
    pbx: PbxDirectory,
    channels: Channels,
    meta: BTreeMap<(ItemKind, String), ItemMeta>,
}

impl Directory {
    /// An empty directory at version 0 (before the first load).
    pub fn empty() -> Directory {
        Directory::build(0, BTreeMap::new()).expect("an empty directory is valid")
    }

    /// Builds the directory stored in `rows`.
    pub fn from_rows(rows: &DirectoryRows) -> Result<Directory, DirectoryError> {
        let mut items = BTreeMap::new();
        for row in &rows.items {
            let item = Item::from_row(row).map_err(|e| {
                StoreError::Corrupt(format!("{} {}: {e}", row.kind.as_str(), row.key))
            })?;
            let meta = ItemMeta {
                tenant: row.tenant.clone(),
                source: row.source,
                updated_at: row.updated_at,
                updated_by: row.updated_by.clone(),
            };
            items.insert((row.kind, row.key.clone()), (item, meta));
        }
        Directory::build(rows.version, items)
    }

    fn build(
        version: i64,
        items: BTreeMap<(ItemKind, String), (Item, ItemMeta)>,
    ) -> Result<Directory, DirectoryError> {
        let mut spec = DirectorySpec::default();
        let mut meta = BTreeMap::new();
        for (key, (item, item_meta)) in items {
            meta.insert(key, item_meta);
            match item {
                Item::Channel(c) => spec.channels.push(*c),
                Item::Queue(q) => spec.queues.push(q),
                Item::Agent(a) => spec.agents.push(a),
            }
        }
        let mut errors = spec.validate();
        errors.extend(tenant_problems(&spec, &meta));
        if !errors.is_empty() {
            return Err(DirectoryError::Invalid(errors));
        }
        let pbx = PbxDirectory::new(spec.queues.clone(), spec.agents.clone()).map_err(|e| {
            DirectoryError::Invalid(vec![FieldError::new("queues/agents", e.to_string())])
        })?;
        let channels = Channels::new(&spec.channels)
            .map_err(|e| DirectoryError::Invalid(vec![FieldError::new("channels", e)]))?;
        Ok(Directory {
            version,
            spec,
            pbx,
            channels,
            meta,
        })
    }

    pub fn version(&self) -> i64 {
        self.version
    }

    /// Queues and agents, with their lookups.
    pub fn pbx(&self) -> &PbxDirectory {
        &self.pbx
    }

    pub fn channels(&self) -> &Channels {
        &self.channels
    }

    /// The whole directory as config structs.
    pub fn spec(&self) -> &DirectorySpec {
        &self.spec
    }

    /// Where an item came from, and its tenant (`None`: no such item).
    pub fn meta(&self, kind: ItemKind, key: &str) -> Option<&ItemMeta> {
        self.meta.get(&(kind, key.to_owned()))
    }

    /// The tenant of the channel `key`.
    pub fn tenant_of_channel(&self, key: &str) -> Option<&str> {
        self.meta(ItemKind::Channel, key).map(|m| m.tenant.as_str())
    }

    /// The tenant of the queue `extension`.
    pub fn tenant_of_queue(&self, extension: &str) -> Option<&str> {
        self.meta(ItemKind::Queue, extension)
            .map(|m| m.tenant.as_str())
    }

    fn typed_items(&self) -> BTreeMap<(ItemKind, String), (Item, ItemMeta)> {
        let items = (self
            .spec
            .channels
            .iter()
            .cloned()
            .map(Box::new)
            .map(Item::Channel))
        .chain(self.spec.queues.iter().cloned().map(Item::Queue))
        .chain(self.spec.agents.iter().cloned().map(Item::Agent));
        items
            .filter_map(|item| {
                let key = (item.kind(), item.key());
                let meta = self.meta.get(&key)?.clone();
                Some((key, (item, meta)))
            })
            .collect()
    }
}

/// Items of one tenant may refer only to items of the same tenant.
fn tenant_problems(
    spec: &DirectorySpec,
    meta: &BTreeMap<(ItemKind, String), ItemMeta>,
) -> Vec<FieldError> {
    let tenant = |kind: ItemKind, key: &str| meta.get(&(kind, key.to_owned())).map(|m| &m.tenant);
    let mut errors = Vec::new();
    for channel in &spec.channels {
        let own = tenant(ItemKind::Channel, channel.key.as_str());
        let queues = channel
            .queue
            .iter()
            .chain(channel.options.iter().map(|o| &o.queue));
        for queue in queues {
            if tenant(ItemKind::Queue, queue.as_str()) != own {
                errors.push(
                    FieldError::coded(
                        format!("channels[key={}].queue", channel.key),
                        FieldCode::QueueUnknown,
                        format!("queue {queue} is not in [[queues]]"),
                    )
                    .with("queue", queue),
                );
            }
        }
    }
    for queue in &spec.queues {
        let own = tenant(ItemKind::Queue, queue.extension.as_str());
        for member in &queue.members {
            if tenant(ItemKind::Agent, member.agent.as_str()) != own {
                errors.push(
                    FieldError::coded(
                        format!("queues[extension={}].members", queue.extension),
                        FieldCode::MemberUnknown,
                        format!("member {} is not a defined agent", member.agent),
                    )
                    .with("queue", &queue.extension)
                    .with("agent", &member.agent),
                );
            }
        }
    }
    errors
}

fn owner_name(source: ItemSource) -> &'static str {
    match source {
        ItemSource::File => "frontdesk.toml",
        ItemSource::Console => "the console",
        ItemSource::Pbx => "the PBX (frontdesk pbx sync)",
    }
}

impl Engine {
    /// The directory in force now.
    pub fn directory(&self) -> Arc<Directory> {
        self.inner.directory.load_full()
    }

    /// The agent chatting from `jid`.
    pub fn agent_by_jid(&self, jid: &pbx_adapter::queue::BareJid) -> Option<AgentConfig> {
        self.directory().pbx().agent_by_jid(jid).cloned()
    }

    /// The agent messaging from `uri`.
    pub fn agent_by_sip(&self, uri: &pbx_adapter::queue::SipUri) -> Option<AgentConfig> {
        self.directory().pbx().agent_by_sip(uri).cloned()
    }

    /// Every agent in force.
    pub fn agents(&self) -> Vec<AgentConfig> {
        self.directory().pbx().agents().to_vec()
    }

    /// Changes written by any node since `directory_version()` was read
    /// (a `watch` of the version in force).
    pub fn directory_changes(&self) -> tokio::sync::watch::Receiver<i64> {
        self.inner.directory_version.subscribe()
    }

    /// Applies `ops` as `actor`, all or nothing, and puts the result in
    /// force on this node before returning (other nodes follow within
    /// their poll interval, at once on PostgreSQL).
    pub async fn change_directory(
        &self,
        actor: &Actor,
        ops: &[DirectoryOp],
    ) -> Result<Arc<Directory>, DirectoryError> {
        let next = Arc::new(change_stored_directory(&self.inner.store, actor, ops).await?);
        self.put_in_force(next.clone());
        Ok(next)
    }

    /// Makes the directory stored as provisioned items exactly `spec`:
    /// file items not in it go, console items are never touched, and a key
    /// defined both in the file and in the console is refused. Writes
    /// nothing (and bumps no version) when the file says what is stored.
    pub async fn provision(&self, spec: &DirectorySpec) -> Result<Arc<Directory>, DirectoryError> {
        let stored = Directory::from_rows(&self.inner.store.directory().await?)?;
        let wanted: Vec<Item> = (spec
            .channels
            .iter()
            .cloned()
            .map(Box::new)
            .map(Item::Channel))
        .chain(spec.queues.iter().cloned().map(Item::Queue))
        .chain(spec.agents.iter().cloned().map(Item::Agent))
        .collect();
        let mut ops = Vec::new();
        let wanted_keys: HashSet<(ItemKind, String)> =
            wanted.iter().map(|i| (i.kind(), i.key())).collect();
        for (key, meta) in &stored.meta {
            if meta.source == ItemSource::File && !wanted_keys.contains(key) {
                ops.push(DirectoryOp::Delete(key.0, key.1.clone()));
            }
        }
        let stored_items = stored.typed_items();
        for item in wanted {
            let unchanged =
                stored_items
                    .get(&(item.kind(), item.key()))
                    .is_some_and(|(old, meta)| {
                        meta.source == ItemSource::File && old.to_json().ok() == item.to_json().ok()
                    });
            if !unchanged {
                ops.push(DirectoryOp::Put(item));
            }
        }
        if ops.is_empty() {
            self.reload_directory().await?;
            return Ok(self.directory());
        }
        let next = self.change_directory(&Actor::provisioning(), &ops).await?;
        info!(
            version = next.version(),
            changes = ops.len(),
            "directory provisioned from the configuration file"
        );
        Ok(next)
    }

    /// Loads the stored directory if it is newer than the one in force.
    /// Returns whether it changed.
    pub async fn reload_directory(&self) -> Result<bool, DirectoryError> {
        let version = self.inner.store.directory_version().await?;
        if version <= self.directory().version() {
            return Ok(false);
        }
        let next = Directory::from_rows(&self.inner.store.directory().await?)?;
        if next.version() <= self.directory().version() {
            return Ok(false);
        }
        self.put_in_force(Arc::new(next));
        Ok(true)
    }

    /// Swaps `next` in (unless a newer one already is) and lets the rest of
    /// the gateway react: waiting chats are dispatched again (a new member
    /// may take them), bridges hear of it through `directory_changes`.
    fn put_in_force(&self, next: Arc<Directory>) {
        let version = next.version();
        let previous = self.inner.directory.rcu(|current| {
            if current.version() >= version {
                current.clone()
            } else {
                next.clone()
            }
        });
        if previous.version() >= version {
            return;
        }
        info!(version, "directory in force");
        self.inner.directory_version.send_replace(version);
        let engine = self.clone();
        self.inner
            .tasks
            .spawn(async move { engine.dispatch_all().await });
    }

    /// Keeps this node's directory current: reloads on NOTIFY (PostgreSQL)
    /// and, on every engine, whenever a poll every `poll` finds a newer
    /// version (which also covers NOTIFYs missed while reconnecting).
    pub fn watch_directory(&self, poll: Duration) {
        let engine = self.clone();
        let shutdown = self.inner.shutdown.clone();
        self.inner.tasks.spawn(async move {
            let mut listener = None;
            let mut every = tokio::time::interval(poll);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                if listener.is_none() {
                    listener = match engine.inner.store.directory_listener().await {
                        Ok(listener) => listener,
                        Err(e) => {
                            warn!(error = %e, "cannot listen for directory changes; polling");
                            None
                        }
                    };
                }
                let notified = async {
                    match listener.as_mut() {
                        Some(l) => l.recv().await.map(|_| ()),
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = every.tick() => {}
                    received = notified => {
                        if let Err(e) = received {
                            warn!(error = %e, "directory listener lost; reconnecting");
                            listener = None;
                        }
                    }
                }
                if let Err(e) = engine.reload_directory().await {
                    warn!(error = %e, "cannot reload the directory; keeping the one in force");
                }
            }
        });
    }
}

/// Applies `ops` as `actor` to the stored directory, all or nothing, and
/// returns the directory committed (see [`Engine::change_directory`],
/// which also puts it in force; a command such as `frontdesk pbx sync`
/// calls this directly, and running gateways follow the version).
pub async fn change_stored_directory(
    store: &crate::store::Store,
    actor: &Actor,
    ops: &[DirectoryOp],
) -> Result<Directory, DirectoryError> {
    let mut change = store.begin_directory_change().await?;
    let current = Directory::from_rows(change.rows())?;
    let mut items = current.typed_items();
    let now = crate::store::now_ms();
    let mut touched = Vec::new();
    for op in ops {
        match op {
            DirectoryOp::Put(item)
            | DirectoryOp::Create(item)
            | DirectoryOp::Replace { item, .. } => {
                let key = (item.kind(), item.key());
                let existing = items.get(&key).map(|(_, meta)| meta);
                expect(op, actor, key.0, &key.1, existing)?;
                let existing = existing.map(|meta| meta.updated_at);
                if let (Item::Channel(c), ItemSource::Console) = (item, actor.source) {
                    if c.schedule.names_a_file() {
                        return Err(DirectoryError::Invalid(vec![FieldError::coded(
                            format!("channels[key={}].schedule.holidays_ics", c.key),
                            FieldCode::HolidaysFileConsole,
                            "an iCalendar file on the server can only be named in frontdesk.toml",
                        )]));
                    }
                }
                if let Some((_, meta)) = items.get(&key) {
                    if meta.tenant != actor.tenant {
                        return Err(DirectoryError::Invalid(vec![FieldError::coded(
                            format!("{}.key", key.0.as_str()),
                            FieldCode::KeyInUse,
                            format!("{} is already in use", key.1),
                        )
                        .with("key", &key.1)]));
                    }
                    check_owner(actor, key.0, &key.1, meta)?;
                }
                let meta = ItemMeta {
                    tenant: actor.tenant.clone(),
                    source: actor.source,
                    // Strictly increasing per item: it is the revision.
                    updated_at: existing.map_or(now, |at| now.max(at + 1)),
                    updated_by: Some(actor.name.clone()),
                };
                touched.push((key.clone(), "put"));
                items.insert(key, (item.clone(), meta));
            }
            DirectoryOp::FollowPbx {
                channel,
                entry,
                schedule,
                add_closures,
            } => {
                let at = (ItemKind::Channel, channel.clone());
                let not_found = || DirectoryError::NotFound {
                    kind: "channel",
                    key: channel.clone(),
                };
                let Some((Item::Channel(c), meta)) = items.get(&at) else {
                    return Err(not_found());
                };
                if meta.tenant != actor.tenant {
                    return Err(not_found());
                }
                if actor.source != ItemSource::Pbx || meta.source != ItemSource::Console {
                    return Err(DirectoryError::ReadOnly {
                        kind: "channel",
                        key: channel.clone(),
                        owner: owner_name(meta.source),
                    });
                }
                if c.pbx_routing.as_ref() != Some(entry) {
                    return Err(DirectoryError::ChangedMeanwhile {
                        kind: "channel",
                        key: channel.clone(),
                    });
                }
                let mut c = c.clone();
                c.schedule = schedule.clone();
                for (name, closure) in add_closures {
                    c.closures
                        .entry(name.clone())
                        .or_insert_with(|| closure.clone());
                }
                let meta = ItemMeta {
                    updated_at: now.max(meta.updated_at + 1),
                    updated_by: Some(actor.name.clone()),
                    ..meta.clone()
                };
                touched.push((at.clone(), "follow_pbx"));
                items.insert(at, (Item::Channel(c), meta));
            }
            DirectoryOp::Delete(kind, key) => {
                let at = (*kind, key.clone());
                let Some((_, meta)) = items.get(&at) else {
                    return Err(DirectoryError::NotFound {
                        kind: kind.as_str(),
                        key: key.clone(),
                    });
                };
                check_owner(actor, *kind, key, meta)?;
                touched.push((at.clone(), "delete"));
                items.remove(&at);
            }
        }
    }
    let next = Directory::build(change.rows().version, items)?;
    let keys: std::collections::BTreeSet<_> = touched.iter().map(|(at, _)| at.clone()).collect();
    let mut typed = next.typed_items();
    for (kind, key) in &keys {
        match next.meta.get(&(*kind, key.clone())) {
            Some(meta) => {
                let (item, _) = typed
                    .remove(&(*kind, key.clone()))
                    .expect("a built directory has every item it has meta for");
                let spec = item
                    .to_json()
                    .map_err(|e| StoreError::Corrupt(format!("cannot encode {key}: {e}")))?;
                change
                    .put(&ItemRow {
                        tenant: meta.tenant.clone(),
                        kind: *kind,
                        key: key.clone(),
                        spec,
                        source: meta.source,
                        updated_at: meta.updated_at,
                        updated_by: meta.updated_by.clone(),
                    })
                    .await?;
            }
            None => change.delete(*kind, key).await?,
        }
    }
    for ((kind, key), what) in &touched {
        change
            .audit(&AuditEntry {
                tenant: actor.tenant.clone(),
                actor: actor.name.clone(),
                action: format!("{}.{what}", kind.as_str()),
                target: format!("{} {key}", kind.as_str()),
                detail: serde_json::json!({ "version": next.version }),
            })
            .await?;
    }
    change.commit().await?;
    Ok(next)
}

fn check_owner(
    actor: &Actor,
    kind: ItemKind,
    key: &str,
    meta: &ItemMeta,
) -> Result<(), DirectoryError> {
    if meta.tenant != actor.tenant {
        // Another tenant's item does not exist, as far as this actor knows.
        return Err(DirectoryError::NotFound {
            kind: kind.as_str(),
            key: key.to_owned(),
        });
    }
    if meta.source != actor.source {
        return Err(DirectoryError::ReadOnly {
            kind: kind.as_str(),
            key: key.to_owned(),
            owner: owner_name(meta.source),
        });
    }
    Ok(())
}
