//! The directory part of the configuration: channels, queues and agents.
//!
//! The same structs are read from `frontdesk.toml` (provisioned items) and
//! stored as JSON in the database (items created in the console), and
//! [`DirectorySpec::validate`] is the one set of rules both go through, so
//! the console and the file give the same error for the same mistake.
//! Errors name the field (`channels[key=web].queue`) so the console can show
//! each one next to its input.

use std::collections::HashSet;

use pbx_adapter::queue::{AgentConfig, PbxDirectory, QueueConfig};
use pbx_adapter::schedule::ScheduleConfig;
use pbx_adapter::QueueExtension;
use serde::{Deserialize, Serialize};
use url::Url;

use super::SUPPORTED_LANGUAGES;
use crate::domain::ChannelKey;

/// The longest message a channel may allow, in characters (it bounds the
/// WebSocket frame size too).
pub const MAX_MESSAGE_CHARS: usize = 20_000;

/// A whole directory: what the gateway routes with.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DirectorySpec {
    pub agents: Vec<AgentConfig>,
    pub queues: Vec<QueueConfig>,
    pub channels: Vec<ChannelConfig>,
}

/// One reason a directory was refused: the field at fault and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Where: `queues/agents`, `channels[key=web].options.queue`, …
    pub key: String,
    pub message: String,
}

impl FieldError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl DirectorySpec {
    /// Every problem in the directory (none: it can be used as it is).
    pub fn validate(&self) -> Vec<FieldError> {
        let directory = match PbxDirectory::new(self.queues.clone(), self.agents.clone()) {
            Ok(directory) => directory,
            Err(invalid) => {
                return invalid
                    .problems
                    .iter()
                    .map(|p| FieldError::new("queues/agents", p.to_string()))
                    .collect()
            }
        };
        let mut errors = Vec::new();
        let mut keys = HashSet::new();
        for channel in &self.channels {
            if !keys.insert(channel.key.as_str()) {
                errors.push(FieldError::new(
                    format!("channels[key={}].key", channel.key),
                    "two channels have this key",
                ));
            }
            errors.extend(channel.problems(|q| directory.queue(q).is_some()));
        }
        errors
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    pub key: ChannelKey,
    /// Company name shown in the widget header.
    pub name: String,
    pub mode: ChannelMode,
    /// The queue a `live` channel routes to.
    #[serde(default)]
    pub queue: Option<QueueExtension>,
    /// The menu of a `chatbot` channel.
    #[serde(default)]
    pub options: Vec<ChatbotOption>,
    /// Website origins allowed to embed the widget (`https://www.example.com`).
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// The widget's default language; the page's `<html lang>` may pick
    /// another one of `languages`.
    #[serde(default = "default_language")]
    pub language: String,
    #[serde(default = "default_languages")]
    pub languages: Vec<String>,
    #[serde(default)]
    pub schedule: ScheduleConfig,
    #[serde(default)]
    pub closed: ClosedConfig,
    #[serde(default)]
    pub limits: ChannelLimits,
    /// Days an ended conversation (with its files) is kept; 0 keeps it
    /// forever.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    /// A disabled channel starts no new chats (its widget says chat is
    /// unavailable); chats already under way go on.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

impl ChannelConfig {
    /// Every problem of this channel on its own; `queue_exists` says
    /// whether the directory has a queue.
    pub fn problems(&self, queue_exists: impl Fn(&QueueExtension) -> bool) -> Vec<FieldError> {
        let at = |field: &str| format!("channels[key={}].{field}", self.key);
        let mut errors = Vec::new();
        let mut fail =
            |field: &str, message: String| errors.push(FieldError::new(at(field), message));
        if self.name.trim().is_empty() {
            fail("name", "cannot be empty".into());
        }
        match self.mode {
            ChannelMode::Live => match &self.queue {
                None => fail("queue", "a live channel needs a queue".into()),
                Some(queue) if !queue_exists(queue) => {
                    fail("queue", format!("queue {queue} is not in [[queues]]"))
                }
                Some(_) => {}
            },
            ChannelMode::Chatbot => {
                if self.options.is_empty() {
                    fail("options", "a chatbot channel needs options".into());
                }
            }
        }
        let mut option_ids = HashSet::new();
        for option in &self.options {
            if option.id.is_empty() || !option_ids.insert(option.id.as_str()) {
                fail(
                    "options.id",
                    format!("option ids must be non-empty and unique: {:?}", option.id),
                );
            }
            if !queue_exists(&option.queue) {
                fail(
                    "options.queue",
                    format!("queue {} is not in [[queues]]", option.queue),
                );
            }
        }
        for origin in &self.allowed_origins {
            if let Err(message) = parse_origin(origin) {
                fail("allowed_origins", message);
            }
        }
        if !self.languages.contains(&self.language) {
            fail(
                "language",
                format!("{:?} must be one of the channel's languages", self.language),
            );
        }
        for lang in self.languages.iter().chain([&self.language]) {
            if !SUPPORTED_LANGUAGES.contains(&lang.as_str()) {
                fail(
                    "languages",
                    format!("{lang:?} is not one of {SUPPORTED_LANGUAGES:?}"),
                );
            }
        }
        if let Err(e) = pbx_adapter::schedule::Schedule::from_config(&self.schedule) {
            fail("schedule", e.to_string());
        }
        let limits = &self.limits;
        if limits.max_message_chars == 0
            || limits.max_files_per_batch == 0
            || limits.max_file_bytes == 0
            || limits.max_files_per_conversation == 0
        {
            fail("limits", "limits must be greater than zero".into());
        }
        if limits.max_message_chars > MAX_MESSAGE_CHARS {
            fail(
                "limits.max_message_chars",
                format!("must be at most {MAX_MESSAGE_CHARS}"),
            );
        }
        if limits.max_bytes_per_conversation < limits.max_file_bytes {
            fail(
                "limits.max_bytes_per_conversation",
                "must be at least max_file_bytes".into(),
            );
        }
        errors
    }
}

fn default_retention_days() -> u32 {
    90
}

fn default_language() -> String {
    "en".to_owned()
}

fn default_languages() -> Vec<String> {
    SUPPORTED_LANGUAGES
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChannelMode {
    /// Straight into one queue.
    Live,
    /// A menu of options first, each routing to its own queue.
    Chatbot,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatbotOption {
    pub id: String,
    pub label: String,
    /// Shown to the visitor right after they pick this option.
    pub welcome: String,
    pub queue: QueueExtension,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClosedConfig {
    /// The out-of-hours text, in the company's own voice. `{next_open}` is
    /// replaced by the widget with the next opening time in the visitor's
    /// language and time zone.
    pub text: String,
    pub alternatives: Vec<Alternative>,
}

impl Default for ClosedConfig {
    fn default() -> Self {
        Self {
            text: "You reached us outside our opening hours. Live chat opens again {next_open}."
                .to_owned(),
            alternatives: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Alternative {
    pub kind: AlternativeKind,
    pub label: String,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlternativeKind {
    Phone,
    Email,
    Link,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelLimits {
    pub max_file_bytes: u64,
    pub max_files_per_batch: u32,
    pub max_message_chars: usize,
    /// Most files one conversation may hold, and their total size.
    pub max_files_per_conversation: u32,
    pub max_bytes_per_conversation: u64,
}

impl Default for ChannelLimits {
    fn default() -> Self {
        Self {
            max_file_bytes: 5 * 1024 * 1024,
            max_files_per_batch: 5,
            max_message_chars: 4000,
            max_files_per_conversation: 50,
            max_bytes_per_conversation: 50 * 1024 * 1024,
        }
    }
}

/// Normalises an origin (`scheme://host[:port]`, no path) for comparison
/// with a browser's `Origin` header.
pub fn parse_origin(raw: &str) -> Result<String, String> {
    let url = Url::parse(raw).map_err(|e| format!("{raw:?} is not an origin: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{raw:?} is not an http(s) origin"));
    }
    if url.path() != "/" || url.query().is_some() {
        return Err(format!(
            "{raw:?} must be an origin only (scheme://host[:port]), without a path"
        ));
    }
    Ok(url.origin().ascii_serialization())
}

/// The snippet a site pastes before `</head>` to show a channel's widget.
/// Channel keys are `[A-Za-z0-9_-]` and a URL's serialisation has no `"`,
/// so neither needs escaping in the attributes.
pub fn embed_snippet(public_url: &Url, channel_key: &str) -> String {
    let src = public_url
        .join("widget.js")
        .unwrap_or_else(|_| public_url.clone());
    format!("<script async src=\"{src}\" data-key=\"{channel_key}\"></script>")
}
