//! The directory part of the configuration: channels, queues and agents.
//!
//! The same structs are read from `frontdesk.toml` (provisioned items) and
//! stored as JSON in the database (items created in the console), and
//! [`DirectorySpec::validate`] is the one set of rules both go through, so
//! the console and the file give the same error for the same mistake.
//! Errors name the field (`channels[key=web].queue`) so the console can show
//! each one next to its input, and carry a stable [`FieldCode`] with the
//! values they name, so the console words them in its own language while
//! the `message` (the file's and the API's) stays English.

use std::collections::{BTreeMap, HashSet};

use pbx_adapter::queue::{AgentConfig, DirectoryProblem, PbxDirectory, QueueConfig};
use pbx_adapter::schedule::{Destination, Schedule, ScheduleConfig, ScheduleError};
use pbx_adapter::QueueExtension;
use serde::{Deserialize, Serialize};
use url::Url;

use super::SUPPORTED_LANGUAGES;
use crate::domain::ChannelKey;

/// The longest message a channel may allow, in characters (it bounds the
/// WebSocket frame size too).
pub const MAX_MESSAGE_CHARS: usize = 20_000;

/// The longest name (channel, option label, queue, agent), in characters.
pub const MAX_NAME_CHARS: usize = 120;

/// The longest text (an option's welcome, the out-of-hours text), in
/// characters.
pub const MAX_TEXT_CHARS: usize = 2000;

/// The longest chatbot option id, in characters.
pub const MAX_OPTION_ID_CHARS: usize = 64;

/// The longest agent address (an XMPP bare JID is at most 1023 + 1 + 1023
/// bytes; a SIP URI is held to the same), in characters.
pub const MAX_ADDRESS_CHARS: usize = 2047;

/// A whole directory: what the gateway routes with.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DirectorySpec {
    pub agents: Vec<AgentConfig>,
    pub queues: Vec<QueueConfig>,
    pub channels: Vec<ChannelConfig>,
}

/// One reason a directory (or another admin form) was refused: the field
/// at fault, the rule it broke and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Where: `queues/agents`, `channels[key=web].options.queue`, …
    pub key: String,
    /// Which rule, stable across versions and languages.
    pub code: FieldCode,
    /// The values the message names (`{"queue": "699"}`), for a client
    /// that words `code` itself.
    #[schema(value_type = Object)]
    pub params: BTreeMap<&'static str, String>,
    /// What is wrong, in English.
    pub message: String,
}

impl FieldError {
    /// An error without a code of its own (`invalid`: show `message`).
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError::coded(key, FieldCode::Invalid, message)
    }

    pub fn coded(
        key: impl Into<String>,
        code: FieldCode,
        message: impl Into<String>,
    ) -> FieldError {
        FieldError {
            key: key.into(),
            code,
            params: BTreeMap::new(),
            message: message.into(),
        }
    }

    /// Adds a value the message names.
    #[must_use]
    pub fn with(mut self, name: &'static str, value: impl ToString) -> FieldError {
        self.params.insert(name, value.to_string());
        self
    }
}

/// Defines [`FieldCode`] and its list of every code.
macro_rules! field_codes {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// The rules a field can break, as stable codes (`snake_case` on
        /// the wire). Each names its `params` in its doc; consoles word
        /// them from these (see `api/admin/i18n.rs`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum FieldCode {
            $($(#[$doc])* $name,)*
        }

        impl FieldCode {
            /// Every code.
            pub const ALL: &[FieldCode] = &[$(FieldCode::$name,)*];
        }
    };
}

field_codes! {
    /// No code of its own: show the message.
    Invalid,
    /// Must not be empty.
    Empty,
    /// Longer than `max` characters.
    TooLong,
    /// Two channels have this key.
    ChannelKeyTwice,
    /// A live channel without a queue.
    LiveNeedsQueue,
    /// `queue` is not one of the tenant's queues.
    QueueUnknown,
    /// A chatbot channel without options.
    ChatbotNeedsOptions,
    /// Option `id` is empty or used twice.
    OptionIds,
    /// `origin` is not a URL.
    OriginInvalid,
    /// `origin` is not http(s) with a host.
    OriginNotHttp,
    /// `origin` has a path or query.
    OriginHasPath,
    /// The default `language` is not among the channel's languages.
    LanguageNotOffered,
    /// `language` is not one of `supported`.
    LanguageUnsupported,
    /// Unknown IANA `timezone`.
    TimezoneUnknown,
    /// Open `rule` is not an Asterisk time condition.
    OpenRuleInvalid,
    /// `holiday` is not a date or a date range.
    HolidayInvalid,
    /// The holidays file cannot be read or parsed.
    HolidaysFile,
    /// An iCalendar file can only be named in frontdesk.toml.
    HolidaysFileConsole,
    /// `routes` given together with `open` or `holidays`.
    RoutesWithOpen,
    /// A `default` destination without `routes`.
    DefaultWithoutRoutes,
    /// Route `route` has neither or both of `when` and holidays.
    RouteMatcher,
    /// A route sends to the chatbot menu of a channel without options.
    MenuNeedsOptions,
    /// A route sends to `closure`, which the channel does not define.
    ClosureUnknown,
    /// A limit is zero.
    LimitsZero,
    /// `max_message_chars` above `max`.
    MaxMessageChars,
    /// `max_bytes_per_conversation` below `max_file_bytes`.
    ConversationBytes,
    /// Queue `queue` has an empty name.
    QueueNameEmpty,
    /// Queue `queue` rings for 0 s.
    RingTimeoutZero,
    /// Queue `queue` allows 0 chats per agent.
    MaxChatsZero,
    /// Queue `queue` waits 0 s before overflow.
    MaxWaitZero,
    /// Queue `queue` lists `agent` twice.
    MemberTwice,
    /// Queue `queue` overflows into itself.
    OverflowToItself,
    /// Agent `agent` has an empty name.
    AgentNameEmpty,
    /// Agent `agent` has neither an XMPP address nor a SIP URI.
    AgentUnreachable,
    /// Queue `queue` is defined twice.
    QueueTwice,
    /// Agent `agent` is defined twice.
    AgentTwice,
    /// `extension` is both a queue and an agent.
    ExtensionClash,
    /// Agents `first` and `second` share the XMPP address `jid`.
    JidTwice,
    /// Agents `first` and `second` share the SIP URI `uri`.
    SipUriTwice,
    /// Queue `queue` has member `agent`, who is not an agent.
    MemberUnknown,
    /// Queue `queue` overflows to `target`, which is not a queue.
    OverflowUnknown,
    /// `queues` overflow into each other in a loop.
    OverflowLoop,
    /// `key` belongs to another tenant's item.
    KeyInUse,
    /// A user name that is not 1 to 64 letters, digits, `.`, `_`, `-`, `@`.
    UsernameInvalid,
    /// `username` is taken.
    UsernameTaken,
    /// A password shorter than `min` characters.
    PasswordShort,
    /// The current password is wrong.
    PasswordWrong,
    /// The new password and its confirmation differ.
    PasswordsDiffer,
    /// Another tenant than the caller's.
    TenantNotYours,
    /// No such tenant.
    TenantUnknown,
    /// A tenant id that is not 1 to 64 lowercase letters, digits or `-`.
    TenantIdInvalid,
    /// A tenant has this id.
    TenantTaken,
    /// A role the caller cannot give (super-admin).
    RoleNotAllowed,
    /// An API token is an admin or a supervisor.
    TokenRole,
    /// A console user cannot delete or demote their own account.
    UserSelf,
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
                let mut errors: Vec<_> = invalid.problems.iter().map(pbx_problem).collect();
                errors.extend(self.length_problems());
                return errors;
            }
        };
        let mut errors = Vec::new();
        let mut keys = HashSet::new();
        for channel in &self.channels {
            if !keys.insert(channel.key.as_str()) {
                errors.push(FieldError::coded(
                    format!("channels[key={}].key", channel.key),
                    FieldCode::ChannelKeyTwice,
                    "two channels have this key",
                ));
            }
            errors.extend(channel.problems(|q| directory.queue(q).is_some()));
        }
        errors.extend(self.length_problems());
        errors
    }

    /// Queue and agent texts longer than their limits.
    fn length_problems(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        for queue in &self.queues {
            let at = format!("queues[extension={}].name", queue.extension);
            errors.extend(too_long(at, &queue.name, MAX_NAME_CHARS));
        }
        for agent in &self.agents {
            let at = |field: &str| format!("agents[extension={}].{field}", agent.extension);
            errors.extend(too_long(at("name"), &agent.name, MAX_NAME_CHARS));
            if let Some(sip) = &agent.sip {
                errors.extend(too_long(at("sip"), &sip.to_string(), MAX_ADDRESS_CHARS));
            }
        }
        errors
    }
}

/// `text` at `key` when it is longer than `max` characters.
fn too_long(key: String, text: &str, max: usize) -> Option<FieldError> {
    (text.chars().count() > max).then(|| {
        FieldError::coded(
            key,
            FieldCode::TooLong,
            format!("must be at most {max} characters"),
        )
        .with("max", max)
    })
}

/// A problem pbx-adapter found in the queues and agents, with its code and
/// the values it names (its message as pbx-adapter words it).
fn pbx_problem(problem: &DirectoryProblem) -> FieldError {
    use pbx_adapter::queue::{AgentConfigError as A, QueueConfigError as Q};
    use DirectoryProblem as P;
    let error = |code| FieldError::coded("queues/agents", code, problem.to_string());
    match problem {
        P::Queue(Q::EmptyName(q)) => error(FieldCode::QueueNameEmpty).with("queue", q),
        P::Queue(Q::ZeroRingTimeout(q)) => error(FieldCode::RingTimeoutZero).with("queue", q),
        P::Queue(Q::ZeroMaxChats(q)) => error(FieldCode::MaxChatsZero).with("queue", q),
        P::Queue(Q::ZeroMaxWait(q)) => error(FieldCode::MaxWaitZero).with("queue", q),
        P::Queue(Q::DuplicateMember { queue, agent }) => error(FieldCode::MemberTwice)
            .with("queue", queue)
            .with("agent", agent),
        P::Queue(Q::OverflowToItself(q)) => error(FieldCode::OverflowToItself).with("queue", q),
        P::Agent(A::EmptyName(a)) => error(FieldCode::AgentNameEmpty).with("agent", a),
        P::Agent(A::Unreachable(a)) => error(FieldCode::AgentUnreachable).with("agent", a),
        P::DuplicateQueue(q) => error(FieldCode::QueueTwice).with("queue", q),
        P::DuplicateAgent(a) => error(FieldCode::AgentTwice).with("agent", a),
        P::QueueAgentClash(e) => error(FieldCode::ExtensionClash).with("extension", e),
        P::DuplicateJid { jid, first, second } => error(FieldCode::JidTwice)
            .with("jid", jid)
            .with("first", first)
            .with("second", second),
        P::DuplicateSipUri { uri, first, second } => error(FieldCode::SipUriTwice)
            .with("uri", uri)
            .with("first", first)
            .with("second", second),
        P::UnknownMember { queue, agent } => error(FieldCode::MemberUnknown)
            .with("queue", queue)
            .with("agent", agent),
        P::UnknownOverflowQueue { queue, target } => error(FieldCode::OverflowUnknown)
            .with("queue", queue)
            .with("target", target),
        P::OverflowLoop(queues) => {
            let names: Vec<&str> = queues.iter().map(QueueExtension::as_str).collect();
            error(FieldCode::OverflowLoop).with("queues", names.join(", "))
        }
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
    /// Named closures the schedule's routes may send to
    /// (`to = { closed = "christmas" }`), each with its own text and
    /// alternatives.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub closures: BTreeMap<String, ClosedConfig>,
    /// The PBX entry point (as `frontdesk pbx import` names it, such as
    /// `from-pstn,0123456789` or ``inbound route `Main line` ``) whose
    /// routing `frontdesk pbx sync` keeps this channel's schedule in line
    /// with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pbx_routing: Option<String>,
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
        let fail = |field: &str, code: FieldCode, message: String| {
            FieldError::coded(at(field), code, message)
        };
        if self.name.trim().is_empty() {
            errors.push(fail("name", FieldCode::Empty, "cannot be empty".into()));
        }
        let schedule = Schedule::from_config(&self.schedule);
        let routes_to_open = schedule
            .as_ref()
            .map_or(true, |s| s.destinations().any(|d| *d == Destination::Open));
        // A queue named must exist even when no route uses it now: a
        // later edit of the routes would start sending chats there.
        match &self.queue {
            None if self.mode == ChannelMode::Live && routes_to_open => {
                errors.push(fail(
                    "queue",
                    FieldCode::LiveNeedsQueue,
                    "a live channel needs a queue".into(),
                ));
            }
            Some(queue) if !queue_exists(queue) => {
                let message = format!("queue {queue} is not in [[queues]]");
                errors.push(fail("queue", FieldCode::QueueUnknown, message).with("queue", queue));
            }
            _ => {}
        }
        if self.mode == ChannelMode::Chatbot && self.options.is_empty() && routes_to_open {
            errors.push(fail(
                "options",
                FieldCode::ChatbotNeedsOptions,
                "a chatbot channel needs options".into(),
            ));
        }
        let mut option_ids = HashSet::new();
        for option in &self.options {
            if option.id.is_empty() || !option_ids.insert(option.id.as_str()) {
                let message = format!("option ids must be non-empty and unique: {:?}", option.id);
                errors
                    .push(fail("options.id", FieldCode::OptionIds, message).with("id", &option.id));
            }
            if !queue_exists(&option.queue) {
                let message = format!("queue {} is not in [[queues]]", option.queue);
                errors.push(
                    fail("options.queue", FieldCode::QueueUnknown, message)
                        .with("queue", &option.queue),
                );
            }
        }
        for origin in &self.allowed_origins {
            if let Err((code, message)) = check_origin(origin) {
                errors.push(fail("allowed_origins", code, message).with("origin", origin));
            }
        }
        if !self.languages.contains(&self.language) {
            let message = format!("{:?} must be one of the channel's languages", self.language);
            errors.push(
                fail("language", FieldCode::LanguageNotOffered, message)
                    .with("language", &self.language),
            );
        }
        for lang in self.languages.iter().chain([&self.language]) {
            if !SUPPORTED_LANGUAGES.contains(&lang.as_str()) {
                let message = format!("{lang:?} is not one of {SUPPORTED_LANGUAGES:?}");
                errors.push(
                    fail("languages", FieldCode::LanguageUnsupported, message)
                        .with("language", lang)
                        .with("supported", SUPPORTED_LANGUAGES.join(", ")),
                );
            }
        }
        match &schedule {
            Err(e) => errors.push(schedule_error(at("schedule"), e)),
            Ok(schedule) => errors.extend(self.destination_problems(schedule, &queue_exists)),
        }
        let limits = &self.limits;
        if limits.max_message_chars == 0
            || limits.max_files_per_batch == 0
            || limits.max_file_bytes == 0
            || limits.max_files_per_conversation == 0
        {
            errors.push(fail(
                "limits",
                FieldCode::LimitsZero,
                "limits must be greater than zero".into(),
            ));
        }
        if limits.max_message_chars > MAX_MESSAGE_CHARS {
            let message = format!("must be at most {MAX_MESSAGE_CHARS}");
            errors.push(
                fail(
                    "limits.max_message_chars",
                    FieldCode::MaxMessageChars,
                    message,
                )
                .with("max", MAX_MESSAGE_CHARS),
            );
        }
        if limits.max_bytes_per_conversation < limits.max_file_bytes {
            errors.push(fail(
                "limits.max_bytes_per_conversation",
                FieldCode::ConversationBytes,
                "must be at least max_file_bytes".into(),
            ));
        }
        let texts = [("name", &self.name, MAX_NAME_CHARS)]
            .into_iter()
            .chain([("closed.text", &self.closed.text, MAX_TEXT_CHARS)])
            .chain(self.options.iter().flat_map(|o| {
                [
                    ("options.id", &o.id, MAX_OPTION_ID_CHARS),
                    ("options", &o.label, MAX_NAME_CHARS),
                    ("options.welcome", &o.welcome, MAX_TEXT_CHARS),
                ]
            }));
        for (field, text, max) in texts {
            errors.extend(too_long(at(field), text, max));
        }
        errors
    }
}

impl ChannelConfig {
    /// What the schedule's routes send to must exist: their queues, the
    /// menu's options, their named closures.
    fn destination_problems(
        &self,
        schedule: &Schedule,
        queue_exists: impl Fn(&QueueExtension) -> bool,
    ) -> Vec<FieldError> {
        let key = format!("channels[key={}].schedule", self.key);
        let mut errors = Vec::new();
        let mut seen = HashSet::new();
        for destination in schedule.destinations().filter(|d| seen.insert(*d)) {
            match destination {
                Destination::Queue(queue) if !queue_exists(queue) => {
                    let message =
                        format!("a route sends to queue {queue}, which is not in [[queues]]");
                    errors.push(
                        FieldError::coded(&key, FieldCode::QueueUnknown, message)
                            .with("queue", queue),
                    );
                }
                Destination::Menu if self.options.is_empty() => errors.push(FieldError::coded(
                    &key,
                    FieldCode::MenuNeedsOptions,
                    "a route sends to the chatbot menu, but the channel has no options",
                )),
                Destination::Closed(Some(name)) if !self.closures.contains_key(name) => {
                    let message =
                        format!("a route sends to closure {name:?}, which is not in closures");
                    errors.push(
                        FieldError::coded(&key, FieldCode::ClosureUnknown, message)
                            .with("closure", name),
                    );
                }
                _ => {}
            }
        }
        errors
    }

    /// The out-of-hours text and alternatives for a closed destination.
    pub fn closure(&self, name: Option<&str>) -> &ClosedConfig {
        name.and_then(|n| self.closures.get(n))
            .unwrap_or(&self.closed)
    }
}

/// A schedule that cannot be built, as the error of the field `key`.
pub fn schedule_error(key: impl Into<String>, e: &ScheduleError) -> FieldError {
    let key = key.into();
    if let ScheduleError::Route { route, error } = e {
        let inner = schedule_error(format!("{key}.routes[{}]", route - 1), error);
        return FieldError {
            message: e.to_string(),
            ..inner
        }
        .with("route", route);
    }
    let (code, name, value) = match e {
        ScheduleError::RoutesWithOpen => {
            return FieldError::coded(key, FieldCode::RoutesWithOpen, e.to_string())
        }
        ScheduleError::DefaultWithoutRoutes => {
            return FieldError::coded(key, FieldCode::DefaultWithoutRoutes, e.to_string())
        }
        ScheduleError::RouteMatcher { route, .. } => {
            (FieldCode::RouteMatcher, "route", route.to_string())
        }
        ScheduleError::Route { .. } => unreachable!("handled above"),
        ScheduleError::UnknownTimezone(tz) => (FieldCode::TimezoneUnknown, "timezone", tz.clone()),
        ScheduleError::Rule { rule, .. } => (FieldCode::OpenRuleInvalid, "rule", rule.clone()),
        ScheduleError::Holiday { item, .. } => (FieldCode::HolidayInvalid, "holiday", item.clone()),
        ScheduleError::IcsRead { path, .. } => {
            (FieldCode::HolidaysFile, "file", path.display().to_string())
        }
        ScheduleError::Ics { file, .. } => (FieldCode::HolidaysFile, "file", file.clone()),
    };
    FieldError::coded(key, code, e.to_string()).with(name, value)
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
    check_origin(raw).map_err(|(_, message)| message)
}

/// [`parse_origin`], with the code of the rule a refused origin breaks.
fn check_origin(raw: &str) -> Result<String, (FieldCode, String)> {
    let url = Url::parse(raw).map_err(|e| {
        (
            FieldCode::OriginInvalid,
            format!("{raw:?} is not an origin: {e}"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err((
            FieldCode::OriginNotHttp,
            format!("{raw:?} is not an http(s) origin"),
        ));
    }
    if url.path() != "/" || url.query().is_some() {
        return Err((
            FieldCode::OriginHasPath,
            format!("{raw:?} must be an origin only (scheme://host[:port]), without a path"),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(json: serde_json::Value) -> ChannelConfig {
        serde_json::from_value(json).unwrap()
    }

    fn codes(errors: &[FieldError]) -> Vec<(&str, FieldCode)> {
        errors.iter().map(|e| (e.key.as_str(), e.code)).collect()
    }

    #[test]
    fn a_queue_named_must_exist_even_when_no_route_uses_it() {
        let routed = channel(serde_json::json!({
            "key": "web", "name": "Acme", "mode": "live", "queue": "699",
            "schedule": { "routes": [{ "when": "*,*,*,*", "to": { "queue": "600" } }] },
        }));
        let exists = |q: &QueueExtension| q.as_str() == "600";
        assert_eq!(
            codes(&routed.problems(exists)),
            [("channels[key=web].queue", FieldCode::QueueUnknown)]
        );
        let without = channel(serde_json::json!({
            "key": "web", "name": "Acme", "mode": "live",
            "schedule": { "routes": [{ "when": "*,*,*,*", "to": { "queue": "600" } }] },
        }));
        assert_eq!(codes(&without.problems(exists)), []);
    }

    #[test]
    fn refused_channels_carry_a_code_and_its_values_and_keep_their_english() {
        let web = channel(serde_json::json!({
            "key": "web", "name": "Acme", "mode": "live", "queue": "699",
            "allowed_origins": ["https://a.example/shop"], "language": "de",
            "schedule": { "open": ["25:00-26:00,*,*,*"] },
        }));
        let errors = web.problems(|_| false);
        assert_eq!(
            codes(&errors),
            [
                ("channels[key=web].queue", FieldCode::QueueUnknown),
                (
                    "channels[key=web].allowed_origins",
                    FieldCode::OriginHasPath
                ),
                ("channels[key=web].language", FieldCode::LanguageNotOffered),
                (
                    "channels[key=web].languages",
                    FieldCode::LanguageUnsupported
                ),
                ("channels[key=web].schedule", FieldCode::OpenRuleInvalid),
            ]
        );
        // The file's and the API's English, as before codes existed.
        assert_eq!(errors[0].message, "queue 699 is not in [[queues]]");
        assert_eq!(errors[0].params["queue"], "699");
        assert_eq!(
            errors[1].message,
            "\"https://a.example/shop\" must be an origin only (scheme://host[:port]), without a path"
        );
        assert_eq!(errors[1].params["origin"], "https://a.example/shop");
        assert_eq!(
            errors[2].message,
            "\"de\" must be one of the channel's languages"
        );
        assert_eq!(errors[4].params["rule"], "25:00-26:00,*,*,*");
        assert!(errors[4]
            .message
            .starts_with("open rule `25:00-26:00,*,*,*`: "));

        let json = serde_json::to_value(&errors[0]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "key": "channels[key=web].queue", "code": "queue_unknown",
                "params": { "queue": "699" }, "message": "queue 699 is not in [[queues]]",
            })
        );
    }

    #[test]
    fn texts_longer_than_the_console_allows_are_refused() {
        let long = "x".repeat(MAX_NAME_CHARS + 1);
        let web = channel(serde_json::json!({
            "key": "web", "name": long, "mode": "chatbot",
            "options": [{ "id": "a", "label": "A", "welcome": "w".repeat(MAX_TEXT_CHARS + 1), "queue": "600" }],
        }));
        let errors = web.problems(|_| true);
        assert_eq!(
            codes(&errors),
            [
                ("channels[key=web].name", FieldCode::TooLong),
                ("channels[key=web].options.welcome", FieldCode::TooLong),
            ]
        );
        assert_eq!(errors[0].params["max"], MAX_NAME_CHARS.to_string());
        assert_eq!(errors[0].message, "must be at most 120 characters");
        // Right at the limit is fine.
        let mut fine = web.clone();
        fine.name = "x".repeat(MAX_NAME_CHARS);
        fine.options[0].welcome = "w".repeat(MAX_TEXT_CHARS);
        assert!(fine.problems(|_| true).is_empty());
    }

    #[test]
    fn queue_and_agent_problems_carry_their_code() {
        let spec: DirectorySpec = serde_json::from_value(serde_json::json!({
            "agents": [{ "extension": "101", "name": "Alice" }],
            "queues": [{ "extension": "600", "name": "Sales", "ring_timeout_secs": 0,
                         "members": [{ "agent": "199" }] }],
            "channels": [],
        }))
        .unwrap();
        let errors = spec.validate();
        let found: Vec<_> = errors.iter().map(|e| e.code).collect();
        assert!(found.contains(&FieldCode::RingTimeoutZero), "{errors:?}");
        assert!(found.contains(&FieldCode::AgentUnreachable), "{errors:?}");
        let unreachable = errors
            .iter()
            .find(|e| e.code == FieldCode::AgentUnreachable)
            .unwrap();
        assert_eq!(unreachable.key, "queues/agents");
        assert_eq!(unreachable.params["agent"], "101");
        assert_eq!(
            unreachable.message,
            "agent 101: needs an `xmpp` JID or a `sip` URI (or both) to receive chats"
        );
    }

    #[test]
    fn every_code_is_listed_once_and_named_in_snake_case() {
        let mut names = HashSet::new();
        for code in FieldCode::ALL {
            let name = serde_json::to_value(code).unwrap();
            let name = name.as_str().unwrap().to_owned();
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
            assert!(names.insert(name), "{code:?} twice");
        }
    }
}
