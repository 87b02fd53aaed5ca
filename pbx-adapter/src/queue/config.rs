//! Queue and agent configuration, as the gateway reads it from TOML.
//!
//! The shape mirrors Asterisk's `queues.conf` (a queue has a strategy,
//! members with penalties, a ring `timeout`, a `wrapuptime`) plus what chat
//! adds (several chats per agent at once) and where a visitor goes after
//! waiting too long. Field names are Frontdesk's own; defaults are
//! Asterisk's where one exists. Each struct rejects unknown keys, so a typo
//! in the config file is an error and not a silently ignored setting.

use jid::BareJid;
use serde::{Deserialize, Serialize};

use super::SipUri;
use crate::model::{AgentExtension, QueueExtension};

/// How a queue picks the agents a waiting chat is offered to; the names and
/// the semantics are Asterisk `app_queue`'s (see the [`super`] module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Offer to every free agent of the best penalty tier at once (Asterisk's default).
    #[default]
    Ringall,
    /// Round robin, resuming after the agent offered last.
    Rrmemory,
    /// Round robin in config order (same as `rrmemory` here, see module docs).
    Rrordered,
    /// The agent whose last chat from this queue ended longest ago.
    Leastrecent,
    /// The agent who took the fewest chats from this queue.
    Fewestcalls,
    /// A uniformly random agent of the best penalty tier.
    Random,
    /// A random agent, weighted by penalty (penalty is a weight, not a tier).
    Wrandom,
    /// The first free agent in member order, for every chat.
    Linear,
}

impl Strategy {
    /// All strategies, in the order Asterisk documents them.
    pub const ALL: [Strategy; 8] = [
        Strategy::Ringall,
        Strategy::Leastrecent,
        Strategy::Fewestcalls,
        Strategy::Random,
        Strategy::Rrmemory,
        Strategy::Rrordered,
        Strategy::Linear,
        Strategy::Wrandom,
    ];

    /// The name used in Frontdesk's config and in Asterisk's `queues.conf`.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Ringall => "ringall",
            Strategy::Rrmemory => "rrmemory",
            Strategy::Rrordered => "rrordered",
            Strategy::Leastrecent => "leastrecent",
            Strategy::Fewestcalls => "fewestcalls",
            Strategy::Random => "random",
            Strategy::Wrandom => "wrandom",
            Strategy::Linear => "linear",
        }
    }

    /// Parses an Asterisk strategy name (case-insensitive, as Asterisk does).
    /// `roundrobin`, which Asterisk still maps to `rrmemory` with a
    /// deprecation warning, is accepted too, for the importer.
    pub fn from_asterisk(name: &str) -> Option<Strategy> {
        let name = name.trim();
        if name.eq_ignore_ascii_case("roundrobin") {
            return Some(Strategy::Rrmemory);
        }
        Strategy::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(name))
    }

    /// Whether one offer goes to several agents at once.
    pub fn offers_in_parallel(self) -> bool {
        self == Strategy::Ringall
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One agent's membership in a queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    pub agent: AgentExtension,
    /// Lower penalties are offered first; for `wrandom` it is a weight.
    #[serde(default)]
    pub penalty: u32,
}

/// Where a visitor goes once they have waited `max_wait_secs`.
///
/// In TOML: `overflow = { queue = "601" }` or `overflow = "alternatives"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// Move the chat on to this other queue.
    Queue(QueueExtension),
    /// Show the channel's contact alternatives (phone, e-mail, link), the
    /// same screen as out of hours.
    Alternatives,
}

/// A queue, as configured (or imported from `queues.conf`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    pub extension: QueueExtension,
    pub name: String,
    #[serde(default)]
    pub strategy: Strategy,
    #[serde(default)]
    pub members: Vec<MemberConfig>,
    /// How long an offer rings before it counts as unanswered (Asterisk `timeout`).
    #[serde(default = "default_ring_timeout_secs")]
    pub ring_timeout_secs: u32,
    /// An agent with this many chats open gets no further offers.
    #[serde(default = "default_max_chats_per_agent")]
    pub max_chats_per_agent: u32,
    /// Rest after a chat from this queue ends before the next offer (Asterisk `wrapuptime`).
    #[serde(default)]
    pub wrapup_secs: u32,
    /// Longest a visitor waits before `overflow` applies; `None` waits forever.
    #[serde(default)]
    pub max_wait_secs: Option<u32>,
    /// Where a visitor goes after `max_wait_secs`; `None` means
    /// [`Overflow::Alternatives`]. Ignored without `max_wait_secs`.
    #[serde(default)]
    pub overflow: Option<Overflow>,
}

fn default_ring_timeout_secs() -> u32 {
    30
}

fn default_max_chats_per_agent() -> u32 {
    3
}

impl QueueConfig {
    /// A queue with the given members (penalty 0) and every other setting
    /// at its default.
    pub fn new(
        extension: QueueExtension,
        name: impl Into<String>,
        strategy: Strategy,
        members: impl IntoIterator<Item = AgentExtension>,
    ) -> Self {
        QueueConfig {
            extension,
            name: name.into(),
            strategy,
            members: members
                .into_iter()
                .map(|agent| MemberConfig { agent, penalty: 0 })
                .collect(),
            ring_timeout_secs: default_ring_timeout_secs(),
            max_chats_per_agent: default_max_chats_per_agent(),
            wrapup_secs: 0,
            max_wait_secs: None,
            overflow: None,
        }
    }

    /// The member entry of `agent`, if they belong to this queue.
    pub fn member(&self, agent: &AgentExtension) -> Option<&MemberConfig> {
        self.members.iter().find(|m| &m.agent == agent)
    }

    /// After how long a waiting visitor overflows, and where to; `None` if
    /// they may wait for ever.
    pub fn overflow_after(&self) -> Option<(std::time::Duration, &Overflow)> {
        const ALTERNATIVES: &Overflow = &Overflow::Alternatives;
        let secs = self.max_wait_secs?;
        Some((
            std::time::Duration::from_secs(secs.into()),
            self.overflow.as_ref().unwrap_or(ALTERNATIVES),
        ))
    }

    /// Checks that need no other queue or agent: a non-empty name, a
    /// non-zero ring timeout and chat limit, no agent listed twice, no
    /// overflow into itself.
    pub fn validate(&self) -> Result<(), QueueConfigError> {
        let ext = || self.extension.clone();
        if self.name.trim().is_empty() {
            return Err(QueueConfigError::EmptyName(ext()));
        }
        if self.ring_timeout_secs == 0 {
            return Err(QueueConfigError::ZeroRingTimeout(ext()));
        }
        if self.max_chats_per_agent == 0 {
            return Err(QueueConfigError::ZeroMaxChats(ext()));
        }
        if self.max_wait_secs == Some(0) {
            return Err(QueueConfigError::ZeroMaxWait(ext()));
        }
        for (i, m) in self.members.iter().enumerate() {
            if self.members[..i]
                .iter()
                .any(|earlier| earlier.agent == m.agent)
            {
                return Err(QueueConfigError::DuplicateMember {
                    queue: ext(),
                    agent: m.agent.clone(),
                });
            }
        }
        if self.overflow == Some(Overflow::Queue(self.extension.clone())) {
            return Err(QueueConfigError::OverflowToItself(ext()));
        }
        Ok(())
    }
}

/// Why a queue's own settings were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueConfigError {
    #[error("queue {0}: the name cannot be empty")]
    EmptyName(QueueExtension),
    #[error("queue {0}: ring_timeout_secs must be at least 1")]
    ZeroRingTimeout(QueueExtension),
    #[error("queue {0}: max_chats_per_agent must be at least 1")]
    ZeroMaxChats(QueueExtension),
    #[error("queue {0}: max_wait_secs must be at least 1 (leave it out to wait for ever)")]
    ZeroMaxWait(QueueExtension),
    #[error("queue {queue}: agent {agent} is listed twice among the members")]
    DuplicateMember {
        queue: QueueExtension,
        agent: AgentExtension,
    },
    #[error("queue {0}: overflow cannot point to the queue itself")]
    OverflowToItself(QueueExtension),
}

/// An agent, as configured: how to reach them over XMPP and/or SIP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub extension: AgentExtension,
    /// Display name, shown to visitors as who they chat with.
    pub name: String,
    /// Bare JID the agent chats from.
    #[serde(default)]
    pub xmpp: Option<BareJid>,
    /// SIP address of record the agent messages from.
    #[serde(default)]
    pub sip: Option<SipUri>,
}

impl AgentConfig {
    /// Checks that the agent has a name and can be reached at all.
    pub fn validate(&self) -> Result<(), AgentConfigError> {
        if self.name.trim().is_empty() {
            return Err(AgentConfigError::EmptyName(self.extension.clone()));
        }
        if self.xmpp.is_none() && self.sip.is_none() {
            return Err(AgentConfigError::Unreachable(self.extension.clone()));
        }
        Ok(())
    }
}

/// Why an agent's own settings were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentConfigError {
    #[error("agent {0}: the name cannot be empty")]
    EmptyName(AgentExtension),
    #[error("agent {0}: needs an `xmpp` JID or a `sip` URI (or both) to receive chats")]
    Unreachable(AgentExtension),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> QueueExtension {
        s.parse().unwrap()
    }
    fn a(s: &str) -> AgentExtension {
        s.parse().unwrap()
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        queues: Vec<QueueConfig>,
        #[serde(default)]
        agents: Vec<AgentConfig>,
    }

    #[test]
    fn queue_defaults_follow_asterisk_where_it_has_one() {
        let file: File = toml::from_str(
            r#"
            [[queues]]
            extension = "600"
            name = "Sales"
            members = [{ agent = "101" }, { agent = "102", penalty = 2 }]
            "#,
        )
        .unwrap();
        let queue = &file.queues[0];
        assert_eq!(queue.strategy, Strategy::Ringall);
        assert_eq!(queue.ring_timeout_secs, 30);
        assert_eq!(queue.max_chats_per_agent, 3);
        assert_eq!(queue.wrapup_secs, 0);
        assert_eq!(queue.max_wait_secs, None);
        assert_eq!(queue.overflow, None);
        assert_eq!(queue.members[0].penalty, 0);
        assert_eq!(queue.members[1].penalty, 2);
        assert_eq!(queue.overflow_after(), None);
        assert_eq!(queue.validate(), Ok(()));
    }

    #[test]
    fn full_queue_and_overflow_forms() {
        let file: File = toml::from_str(
            r#"
            [[queues]]
            extension = "600"
            name = "Sales"
            strategy = "rrmemory"
            ring_timeout_secs = 20
            max_chats_per_agent = 2
            wrapup_secs = 15
            max_wait_secs = 300
            overflow = { queue = "601" }

            [[queues]]
            extension = "601"
            name = "Support"
            strategy = "wrandom"
            max_wait_secs = 120
            overflow = "alternatives"

            [[queues]]
            extension = "602"
            name = "Billing"
            max_wait_secs = 60
            "#,
        )
        .unwrap();
        assert_eq!(file.queues[0].strategy, Strategy::Rrmemory);
        assert_eq!(
            file.queues[0].overflow_after(),
            Some((
                std::time::Duration::from_secs(300),
                &Overflow::Queue(q("601"))
            ))
        );
        assert_eq!(
            file.queues[1].overflow_after(),
            Some((std::time::Duration::from_secs(120), &Overflow::Alternatives))
        );
        assert_eq!(
            file.queues[2].overflow_after(),
            Some((std::time::Duration::from_secs(60), &Overflow::Alternatives)),
            "no overflow given means the contact alternatives"
        );
    }

    #[test]
    fn strategy_names_are_asterisks() {
        for s in Strategy::ALL {
            let toml = format!("extension = \"600\"\nname = \"x\"\nstrategy = \"{s}\"\n");
            let queue: QueueConfig = toml::from_str(&toml).unwrap();
            assert_eq!(queue.strategy, s);
            assert_eq!(Strategy::from_asterisk(&s.as_str().to_uppercase()), Some(s));
        }
        let names: Vec<&str> = Strategy::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "ringall",
                "leastrecent",
                "fewestcalls",
                "random",
                "rrmemory",
                "rrordered",
                "linear",
                "wrandom"
            ]
        );
        assert_eq!(
            Strategy::from_asterisk("roundrobin"),
            Some(Strategy::Rrmemory)
        );
        assert_eq!(Strategy::from_asterisk("round-robin"), None);
        assert!(toml::from_str::<QueueConfig>(
            "extension = \"6\"\nname = \"x\"\nstrategy = \"roundrobin\""
        )
        .is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<QueueConfig>(
            "extension = \"600\"\nname = \"x\"\nstrategie = \"linear\"",
        )
        .unwrap_err();
        assert!(err.to_string().contains("strategie"), "{err}");
        assert!(toml::from_str::<MemberConfig>("agent = \"101\"\npenality = 1").is_err());
        assert!(toml::from_str::<AgentConfig>(
            "extension = \"101\"\nname = \"A\"\nemail = \"a@b\""
        )
        .is_err());
    }

    #[test]
    fn queue_validation_names_the_queue() {
        let mut queue = QueueConfig::new(q("600"), "Sales", Strategy::Linear, [a("101"), a("102")]);
        assert_eq!(queue.validate(), Ok(()));

        queue.members.push(MemberConfig {
            agent: a("101"),
            penalty: 3,
        });
        let err = queue.validate().unwrap_err();
        assert_eq!(
            err,
            QueueConfigError::DuplicateMember {
                queue: q("600"),
                agent: a("101")
            }
        );
        assert_eq!(
            err.to_string(),
            "queue 600: agent 101 is listed twice among the members"
        );
        queue.members.pop();

        queue.overflow = Some(Overflow::Queue(q("600")));
        assert_eq!(
            queue.validate(),
            Err(QueueConfigError::OverflowToItself(q("600")))
        );
        queue.overflow = None;

        let mut zero = queue.clone();
        zero.ring_timeout_secs = 0;
        assert_eq!(
            zero.validate(),
            Err(QueueConfigError::ZeroRingTimeout(q("600")))
        );
        let mut zero = queue.clone();
        zero.max_chats_per_agent = 0;
        assert_eq!(
            zero.validate(),
            Err(QueueConfigError::ZeroMaxChats(q("600")))
        );
        let mut zero = queue.clone();
        zero.max_wait_secs = Some(0);
        assert_eq!(
            zero.validate(),
            Err(QueueConfigError::ZeroMaxWait(q("600")))
        );
        let mut unnamed = queue.clone();
        unnamed.name = "  ".into();
        assert_eq!(
            unnamed.validate(),
            Err(QueueConfigError::EmptyName(q("600")))
        );
    }

    #[test]
    fn agents_need_a_way_to_be_reached() {
        let file: File = toml::from_str(
            r#"
            [[agents]]
            extension = "101"
            name = "Alice"
            xmpp = "Alice@Example.com"

            [[agents]]
            extension = "102"
            name = "Bob"
            sip = "sip:102@pbx.example.com"

            [[agents]]
            extension = "103"
            name = "Carol"
            "#,
        )
        .unwrap();
        assert_eq!(file.agents[0].validate(), Ok(()));
        assert_eq!(
            file.agents[0].xmpp.as_ref().map(|j| j.to_string()),
            Some("alice@example.com".to_owned()),
            "JIDs are normalised by the jid crate"
        );
        assert_eq!(file.agents[1].validate(), Ok(()));
        let err = file.agents[2].validate().unwrap_err();
        assert_eq!(err, AgentConfigError::Unreachable(a("103")));
        assert!(err.to_string().contains("agent 103"));

        assert!(
            toml::from_str::<AgentConfig>("extension = \"1\"\nname = \"A\"\nxmpp = \"a@b/phone\"")
                .is_err(),
            "a full JID is not a bare JID"
        );
        assert!(toml::from_str::<AgentConfig>(
            "extension = \"1\"\nname = \"A\"\nsip = \"101@pbx\""
        )
        .is_err());
    }
}
