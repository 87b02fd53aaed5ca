//! The validated set of queues and agents, and lookups into it.
//!
//! The config lists queues and agents separately and refers across by
//! extension. [`PbxDirectory::new`] is the only way to get a directory, and
//! it refuses a config whose references do not hold, so the engine can look
//! a member's agent up without handling "not found". All problems are
//! reported at once, each naming the extension at fault, because an admin
//! fixing a file (or reading an import report) wants the whole list.

use std::collections::{HashMap, HashSet};
use std::fmt;

use jid::BareJid;

use super::config::{AgentConfig, AgentConfigError, Overflow, QueueConfig, QueueConfigError};
use super::SipUri;
use crate::model::{AgentExtension, QueueExtension};

/// One reason a set of queues and agents was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryProblem {
    #[error(transparent)]
    Queue(#[from] QueueConfigError),
    #[error(transparent)]
    Agent(#[from] AgentConfigError),
    #[error("queue {0} is defined more than once")]
    DuplicateQueue(QueueExtension),
    #[error("agent {0} is defined more than once")]
    DuplicateAgent(AgentExtension),
    #[error(
        "extension {0} is used by both a queue and an agent; transfers to it would be ambiguous"
    )]
    QueueAgentClash(String),
    #[error("agents {first} and {second} have the same XMPP address {jid}")]
    DuplicateJid {
        jid: BareJid,
        first: AgentExtension,
        second: AgentExtension,
    },
    #[error("agents {first} and {second} have the same SIP URI {uri}")]
    DuplicateSipUri {
        uri: SipUri,
        first: AgentExtension,
        second: AgentExtension,
    },
    #[error("queue {queue}: member {agent} is not a defined agent")]
    UnknownMember {
        queue: QueueExtension,
        agent: AgentExtension,
    },
    #[error("queue {queue}: overflow goes to queue {target}, which is not defined")]
    UnknownOverflowQueue {
        queue: QueueExtension,
        target: QueueExtension,
    },
    #[error("queues {} overflow into each other in a loop", join(.0))]
    OverflowLoop(Vec<QueueExtension>),
}

fn join(queues: &[QueueExtension]) -> String {
    let mut out = String::new();
    for q in queues {
        out.push_str(q.as_str());
        out.push_str(" → ");
    }
    if let Some(first) = queues.first() {
        out.push_str(first.as_str());
    }
    out
}

/// Every problem found in a set of queues and agents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidDirectory {
    pub problems: Vec<DirectoryProblem>,
}

impl fmt::Display for InvalidDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [one] => write!(f, "{one}"),
            many => {
                write!(f, "{} problems with queues and agents", many.len())?;
                for p in many {
                    write!(f, "; {p}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for InvalidDirectory {}

/// Queues and agents whose cross-references are known to hold: every
/// member is an agent, every overflow queue exists, extensions, JIDs and
/// SIP URIs are unique.
#[derive(Debug, Clone)]
pub struct PbxDirectory {
    queues: Vec<QueueConfig>,
    agents: Vec<AgentConfig>,
    queue_index: HashMap<QueueExtension, usize>,
    agent_index: HashMap<AgentExtension, usize>,
    by_jid: HashMap<BareJid, usize>,
    by_sip: HashMap<SipUri, usize>,
    /// Agent index → indexes of the queues they are a member of.
    memberships: Vec<Vec<usize>>,
}

impl PbxDirectory {
    /// Validates `queues` and `agents` together; config order is kept.
    pub fn new(
        queues: Vec<QueueConfig>,
        agents: Vec<AgentConfig>,
    ) -> Result<Self, InvalidDirectory> {
        let mut problems = Vec::new();

        let mut agent_index = HashMap::new();
        let mut by_jid: HashMap<BareJid, usize> = HashMap::new();
        let mut by_sip: HashMap<SipUri, usize> = HashMap::new();
        for (i, agent) in agents.iter().enumerate() {
            if let Err(e) = agent.validate() {
                problems.push(e.into());
            }
            if agent_index.insert(agent.extension.clone(), i).is_some() {
                problems.push(DirectoryProblem::DuplicateAgent(agent.extension.clone()));
            }
            if let Some(jid) = &agent.xmpp {
                if let Some(&first) = by_jid.get(jid) {
                    problems.push(DirectoryProblem::DuplicateJid {
                        jid: jid.clone(),
                        first: agents[first].extension.clone(),
                        second: agent.extension.clone(),
                    });
                } else {
                    by_jid.insert(jid.clone(), i);
                }
            }
            if let Some(uri) = &agent.sip {
                if let Some(&first) = by_sip.get(uri) {
                    problems.push(DirectoryProblem::DuplicateSipUri {
                        uri: uri.clone(),
                        first: agents[first].extension.clone(),
                        second: agent.extension.clone(),
                    });
                } else {
                    by_sip.insert(uri.clone(), i);
                }
            }
        }

        let mut queue_index = HashMap::new();
        for (i, queue) in queues.iter().enumerate() {
            if let Err(e) = queue.validate() {
                problems.push(e.into());
            }
            if queue_index.insert(queue.extension.clone(), i).is_some() {
                problems.push(DirectoryProblem::DuplicateQueue(queue.extension.clone()));
            }
            if agents
                .iter()
                .any(|a| a.extension.as_str() == queue.extension.as_str())
            {
                problems.push(DirectoryProblem::QueueAgentClash(
                    queue.extension.to_string(),
                ));
            }
        }

        let mut memberships = vec![Vec::new(); agents.len()];
        for (qi, queue) in queues.iter().enumerate() {
            for member in &queue.members {
                match agent_index.get(&member.agent) {
                    Some(&ai) => {
                        if !memberships[ai].contains(&qi) {
                            memberships[ai].push(qi);
                        }
                    }
                    None => problems.push(DirectoryProblem::UnknownMember {
                        queue: queue.extension.clone(),
                        agent: member.agent.clone(),
                    }),
                }
            }
            if let Some(Overflow::Queue(target)) = &queue.overflow {
                if !queue_index.contains_key(target) {
                    problems.push(DirectoryProblem::UnknownOverflowQueue {
                        queue: queue.extension.clone(),
                        target: target.clone(),
                    });
                }
            }
        }
        problems.extend(overflow_loops(&queues, &queue_index));

        if problems.is_empty() {
            Ok(PbxDirectory {
                queues,
                agents,
                queue_index,
                agent_index,
                by_jid,
                by_sip,
                memberships,
            })
        } else {
            Err(InvalidDirectory { problems })
        }
    }

    /// All queues, in config order.
    pub fn queues(&self) -> &[QueueConfig] {
        &self.queues
    }

    /// All agents, in config order.
    pub fn agents(&self) -> &[AgentConfig] {
        &self.agents
    }

    pub fn queue(&self, extension: &QueueExtension) -> Option<&QueueConfig> {
        self.queue_index.get(extension).map(|&i| &self.queues[i])
    }

    pub fn agent(&self, extension: &AgentExtension) -> Option<&AgentConfig> {
        self.agent_index.get(extension).map(|&i| &self.agents[i])
    }

    /// The agent chatting from `jid`; a full JID must be made bare first
    /// (`Jid::to_bare`), since an agent may be online from several clients.
    pub fn agent_by_jid(&self, jid: &BareJid) -> Option<&AgentConfig> {
        self.by_jid.get(jid).map(|&i| &self.agents[i])
    }

    /// The agent whose address of record is `uri` (compared per RFC 3261;
    /// use [`SipUri::parse_address_of`] on a header URI with parameters).
    pub fn agent_by_sip(&self, uri: &SipUri) -> Option<&AgentConfig> {
        self.by_sip.get(uri).map(|&i| &self.agents[i])
    }

    /// The queues `agent` is a member of, in config order; empty for an
    /// unknown agent.
    pub fn queues_of(&self, agent: &AgentExtension) -> Vec<&QueueConfig> {
        self.agent_index
            .get(agent)
            .map(|&ai| {
                self.memberships[ai]
                    .iter()
                    .map(|&qi| &self.queues[qi])
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What a `/transfer` target or any dialled extension names, if anything.
    pub fn resolve(&self, extension: &str) -> Option<Destination<'_>> {
        // Both newtypes validate the same way, so one parse tells for both.
        let as_queue: QueueExtension = extension.parse().ok()?;
        if let Some(queue) = self.queue(&as_queue) {
            return Some(Destination::Queue(queue));
        }
        let as_agent: AgentExtension = extension.parse().ok()?;
        self.agent(&as_agent).map(Destination::Agent)
    }
}

/// What an extension leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination<'a> {
    Queue(&'a QueueConfig),
    Agent(&'a AgentConfig),
}

/// Overflow chains that come back on themselves (longer than one queue:
/// a queue overflowing into itself is reported by [`QueueConfig::validate`]).
/// Each queue has at most one overflow queue, so following the chain from
/// every start finds every loop; each is reported once, starting at its
/// first queue in config order.
fn overflow_loops(
    queues: &[QueueConfig],
    index: &HashMap<QueueExtension, usize>,
) -> Vec<DirectoryProblem> {
    let next = |i: usize| match &queues[i].overflow {
        Some(Overflow::Queue(target)) => index.get(target).copied(),
        _ => None,
    };
    let mut reported: HashSet<usize> = HashSet::new();
    let mut problems = Vec::new();
    for start in 0..queues.len() {
        let mut path = vec![start];
        let mut current = start;
        while let Some(n) = next(current) {
            if let Some(pos) = path.iter().position(|&p| p == n) {
                let cycle = &path[pos..];
                if cycle.len() > 1 && cycle.iter().all(|i| !reported.contains(i)) {
                    reported.extend(cycle.iter().copied());
                    let first = cycle
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, &q)| q)
                        .map_or(0, |(k, _)| k);
                    let ordered = cycle[first..]
                        .iter()
                        .chain(&cycle[..first])
                        .map(|&i| queues[i].extension.clone())
                        .collect();
                    problems.push(DirectoryProblem::OverflowLoop(ordered));
                }
                break;
            }
            path.push(n);
            current = n;
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{MemberConfig, Strategy};

    fn q(s: &str) -> QueueExtension {
        s.parse().unwrap()
    }
    fn a(s: &str) -> AgentExtension {
        s.parse().unwrap()
    }
    fn agent(ext: &str, jid: Option<&str>, sip: Option<&str>) -> AgentConfig {
        AgentConfig {
            extension: a(ext),
            name: format!("Agent {ext}"),
            xmpp: jid.map(|j| j.parse().unwrap()),
            sip: sip.map(|s| s.parse().unwrap()),
        }
    }
    fn queue(ext: &str, members: &[&str]) -> QueueConfig {
        QueueConfig::new(
            q(ext),
            format!("Queue {ext}"),
            Strategy::Ringall,
            members.iter().map(|m| a(m)),
        )
    }

    fn sample() -> (Vec<QueueConfig>, Vec<AgentConfig>) {
        let mut sales = queue("600", &["101", "102"]);
        sales.max_wait_secs = Some(60);
        sales.overflow = Some(Overflow::Queue(q("601")));
        let support = queue("601", &["102", "103"]);
        let agents = vec![
            agent("101", Some("alice@example.com"), None),
            agent("102", None, Some("sip:102@pbx.example.com")),
            agent(
                "103",
                Some("carol@example.com"),
                Some("sip:carol@pbx.example.com:5061"),
            ),
        ];
        (vec![sales, support], agents)
    }

    #[test]
    fn lookups() {
        let (queues, agents) = sample();
        let dir = PbxDirectory::new(queues, agents).unwrap();
        assert_eq!(dir.queue(&q("600")).unwrap().name, "Queue 600");
        assert!(dir.queue(&q("699")).is_none());
        assert_eq!(dir.agent(&a("103")).unwrap().name, "Agent 103");
        assert!(dir.agent(&a("199")).is_none());

        let alice: BareJid = "Alice@EXAMPLE.com".parse().unwrap();
        assert_eq!(dir.agent_by_jid(&alice).unwrap().extension, a("101"));
        let nobody: BareJid = "mallory@example.com".parse().unwrap();
        assert!(dir.agent_by_jid(&nobody).is_none());

        let bob: SipUri = "SIP:102@PBX.example.com".parse().unwrap();
        assert_eq!(dir.agent_by_sip(&bob).unwrap().extension, a("102"));
        let carol =
            SipUri::parse_address_of("sip:carol@pbx.example.com:5061;transport=tls").unwrap();
        assert_eq!(dir.agent_by_sip(&carol).unwrap().extension, a("103"));
        let carol_no_port: SipUri = "sip:carol@pbx.example.com".parse().unwrap();
        assert!(dir.agent_by_sip(&carol_no_port).is_none());

        let of = |e: &str| -> Vec<String> {
            dir.queues_of(&a(e))
                .iter()
                .map(|q| q.extension.to_string())
                .collect()
        };
        assert_eq!(of("101"), ["600"]);
        assert_eq!(of("102"), ["600", "601"]);
        assert_eq!(of("103"), ["601"]);
        assert!(of("199").is_empty());

        assert!(matches!(dir.resolve("601"), Some(Destination::Queue(q)) if q.name == "Queue 601"));
        assert!(matches!(dir.resolve("102"), Some(Destination::Agent(a)) if a.name == "Agent 102"));
        assert_eq!(dir.resolve("999"), None);
        assert_eq!(dir.resolve("not an extension"), None);
        assert_eq!(dir.queues().len(), 2);
        assert_eq!(dir.agents().len(), 3);
    }

    fn problems(queues: Vec<QueueConfig>, agents: Vec<AgentConfig>) -> Vec<DirectoryProblem> {
        PbxDirectory::new(queues, agents).unwrap_err().problems
    }

    #[test]
    fn unknown_member_names_queue_and_agent() {
        let (mut queues, agents) = sample();
        queues[1].members.push(MemberConfig {
            agent: a("104"),
            penalty: 1,
        });
        let err = PbxDirectory::new(queues, agents).unwrap_err();
        assert_eq!(
            err.problems,
            [DirectoryProblem::UnknownMember {
                queue: q("601"),
                agent: a("104")
            }]
        );
        assert_eq!(
            err.to_string(),
            "queue 601: member 104 is not a defined agent"
        );
    }

    #[test]
    fn unknown_overflow_queue() {
        let (mut queues, agents) = sample();
        queues[1].overflow = Some(Overflow::Queue(q("650")));
        assert_eq!(
            problems(queues, agents),
            [DirectoryProblem::UnknownOverflowQueue {
                queue: q("601"),
                target: q("650")
            }]
        );
    }

    #[test]
    fn overflow_loops_are_refused_once() {
        let (mut queues, mut agents) = sample();
        queues[1].overflow = Some(Overflow::Queue(q("602")));
        let mut third = queue("602", &[]);
        third.overflow = Some(Overflow::Queue(q("601")));
        queues.push(third);
        agents.truncate(3);
        let found = problems(queues, agents);
        assert_eq!(
            found,
            [DirectoryProblem::OverflowLoop(vec![q("601"), q("602")])]
        );
        assert_eq!(
            found[0].to_string(),
            "queues 601 → 602 → 601 overflow into each other in a loop"
        );
    }

    #[test]
    fn duplicates_are_refused() {
        let (mut queues, mut agents) = sample();
        queues.push(queue("600", &[]));
        agents.push(agent("101", None, Some("sip:other@pbx.example.com")));
        agents.push(agent("105", Some("ALICE@example.com"), None));
        agents.push(agent("106", None, Some("sip:102@pbx.example.com")));
        let found = problems(queues, agents);
        assert!(
            found.contains(&DirectoryProblem::DuplicateQueue(q("600"))),
            "{found:?}"
        );
        assert!(
            found.contains(&DirectoryProblem::DuplicateAgent(a("101"))),
            "{found:?}"
        );
        assert!(found.contains(&DirectoryProblem::DuplicateJid {
            jid: "alice@example.com".parse().unwrap(),
            first: a("101"),
            second: a("105"),
        }));
        assert!(found.contains(&DirectoryProblem::DuplicateSipUri {
            uri: "sip:102@pbx.example.com".parse().unwrap(),
            first: a("102"),
            second: a("106"),
        }));
        assert_eq!(found.len(), 4, "{found:?}");
    }

    #[test]
    fn queue_and_agent_cannot_share_an_extension() {
        let (queues, mut agents) = sample();
        agents.push(agent("600", Some("six@example.com"), None));
        assert_eq!(
            problems(queues, agents),
            [DirectoryProblem::QueueAgentClash("600".into())]
        );
    }

    #[test]
    fn own_settings_errors_are_collected_with_the_rest() {
        let (mut queues, mut agents) = sample();
        agents.push(agent("107", None, None));
        queues[0].max_chats_per_agent = 0;
        queues[1].members.push(MemberConfig {
            agent: a("999"),
            penalty: 0,
        });
        let err = PbxDirectory::new(queues, agents).unwrap_err();
        assert_eq!(
            err.problems,
            [
                DirectoryProblem::Agent(AgentConfigError::Unreachable(a("107"))),
                DirectoryProblem::Queue(QueueConfigError::ZeroMaxChats(q("600"))),
                DirectoryProblem::UnknownMember {
                    queue: q("601"),
                    agent: a("999")
                },
            ]
        );
        let text = err.to_string();
        assert!(
            text.starts_with("3 problems with queues and agents; agent 107"),
            "{text}"
        );
        assert!(text.contains("queue 600: max_chats_per_agent"), "{text}");
        assert!(text.contains("queue 601: member 999"), "{text}");
    }

    #[test]
    fn empty_directory_is_valid() {
        let dir = PbxDirectory::new(Vec::new(), Vec::new()).unwrap();
        assert!(dir.queues().is_empty());
    }
}
