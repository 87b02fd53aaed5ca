//! Who gets offered a waiting chat next: the queue strategies.
//!
//! This is a pure function of the queue, its members' live status, who has
//! already been offered this chat, the round-robin memory, the time and a
//! random source. The engine owns all of those; keeping the decision free
//! of I/O and clocks is what lets the strategies be tested exactly. The
//! semantics per strategy are in the [`super`] module docs.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::config::{MemberConfig, QueueConfig, Strategy};
use crate::model::{AgentExtension, QueueExtension};

/// What the engine knows about one agent right now, as seen by one queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    pub agent: AgentExtension,
    /// Reachable and willing: XMPP presence available / SIP registered, not paused.
    pub available: bool,
    /// Chats open now, across all queues (add offers still ringing for other
    /// chats if those should count against the limit).
    pub active_chats: u32,
    /// When the agent's last chat from this queue ended (`leastrecent`, and
    /// wrap-up when `wrapup_until` is not known).
    pub last_chat_ended_at: Option<DateTime<Utc>>,
    /// End of the agent's wrap-up, stamped when their last chat ended with
    /// that chat's queue's wrap-up time ([`wrapup_until`]). Takes precedence
    /// over this queue's own `wrapup_secs`, as Asterisk uses the wrap-up of
    /// the queue the member's last call came from.
    pub wrapup_until: Option<DateTime<Utc>>,
    /// Chats taken from this queue so far (`fewestcalls`).
    pub chats_taken_total: u64,
}

impl MemberStatus {
    /// An available agent with no chat history.
    pub fn idle(agent: AgentExtension) -> Self {
        MemberStatus {
            agent,
            available: true,
            active_chats: 0,
            last_chat_ended_at: None,
            wrapup_until: None,
            chats_taken_total: 0,
        }
    }

    /// Why this agent cannot get an offer from `queue` at `now`, or `None`
    /// if they can.
    pub fn busy_reason(&self, queue: &QueueConfig, now: DateTime<Utc>) -> Option<BusyReason> {
        if !self.available {
            return Some(BusyReason::Unavailable);
        }
        if self.active_chats >= queue.max_chats_per_agent {
            return Some(BusyReason::AtMaxChats);
        }
        let until = self.wrapup_until.or_else(|| {
            self.last_chat_ended_at
                .and_then(|ended| wrapup_until(queue, ended))
        });
        match until {
            Some(until) if now < until => Some(BusyReason::WrappingUp { until }),
            _ => None,
        }
    }
}

/// When wrap-up ends for a chat from `queue` that ended at `ended`; `None`
/// if the queue has no wrap-up. The engine stores this as
/// [`MemberStatus::wrapup_until`] when a chat ends.
pub fn wrapup_until(queue: &QueueConfig, ended: DateTime<Utc>) -> Option<DateTime<Utc>> {
    (queue.wrapup_secs > 0).then(|| ended + Duration::seconds(queue.wrapup_secs.into()))
}

/// Why a member is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusyReason {
    /// Offline, unregistered or paused; also a member the engine gave no status for.
    Unavailable,
    /// Already at the queue's `max_chats_per_agent`.
    AtMaxChats,
    /// Resting after a chat until `until`.
    WrappingUp { until: DateTime<Utc> },
}

/// The outcome of [`choose_offer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfferDecision {
    /// Offer the chat to these agents now: every free agent of the best
    /// penalty tier for `ringall` (in member order), exactly one otherwise.
    Offer(Vec<AgentExtension>),
    /// Some members are free, but every one of them was already offered this
    /// chat. The engine starts a new round by clearing the chat's tried set
    /// (Asterisk rings again after its `retry` pause), or waits.
    EveryoneTried,
    /// No member can take a chat now; wait for a status change.
    NobodyFree,
}

impl OfferDecision {
    /// The agents to offer to; empty when nobody is eligible.
    pub fn agents(&self) -> &[AgentExtension] {
        match self {
            OfferDecision::Offer(agents) => agents,
            _ => &[],
        }
    }
}

/// Round-robin positions per queue, kept across chats (and across restarts
/// if the engine persists it): Asterisk's `rrpos`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrategyMemory {
    round_robin: BTreeMap<QueueExtension, RoundRobinPosition>,
}

/// The member a round-robin queue offered to last, and where it was in the
/// member list then (used if that member has since been removed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundRobinPosition {
    pub last_offered: AgentExtension,
    pub index: usize,
}

impl StrategyMemory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Where `queue`'s round robin stands, if it has offered anything yet.
    pub fn round_robin(&self, queue: &QueueExtension) -> Option<&RoundRobinPosition> {
        self.round_robin.get(queue)
    }

    /// Drops memory of queues not in `keep` (after a config reload).
    pub fn retain_queues(&mut self, keep: impl Fn(&QueueExtension) -> bool) {
        self.round_robin.retain(|q, _| keep(q));
    }

    /// The member index a round robin of `queue` starts searching from:
    /// just after the member offered last; if that member has left the
    /// queue, the index they had (which their successor now holds).
    fn round_robin_start(&self, queue: &QueueConfig) -> usize {
        let Some(pos) = self.round_robin.get(&queue.extension) else {
            return 0;
        };
        let start = match queue
            .members
            .iter()
            .position(|m| m.agent == pos.last_offered)
        {
            Some(i) => i + 1,
            None => pos.index,
        };
        if start >= queue.members.len() {
            0
        } else {
            start
        }
    }

    fn remember(&mut self, queue: &QueueExtension, agent: &AgentExtension, index: usize) {
        self.round_robin.insert(
            queue.clone(),
            RoundRobinPosition {
                last_offered: agent.clone(),
                index,
            },
        );
    }
}

/// A member who could take the chat now.
struct Candidate<'a> {
    index: usize,
    member: &'a MemberConfig,
    status: &'a MemberStatus,
}

/// Decides who `queue` offers a waiting chat to now.
///
/// `statuses` holds the live status of (at least) the queue's members; a
/// member without one is treated as unavailable. `tried` holds the agents
/// this chat was already offered to (declined, timed out, or still
/// ringing); they are skipped. For round-robin strategies the offer is
/// recorded in `memory`.
pub fn choose_offer<R: Rng + ?Sized>(
    queue: &QueueConfig,
    statuses: &[MemberStatus],
    tried: &[AgentExtension],
    memory: &mut StrategyMemory,
    now: DateTime<Utc>,
    rng: &mut R,
) -> OfferDecision {
    let mut candidates = Vec::new();
    let mut free_but_tried = false;
    for (index, member) in queue.members.iter().enumerate() {
        let Some(status) = statuses.iter().find(|s| s.agent == member.agent) else {
            continue;
        };
        if status.busy_reason(queue, now).is_some() {
            continue;
        }
        if tried.contains(&member.agent) {
            free_but_tried = true;
            continue;
        }
        candidates.push(Candidate {
            index,
            member,
            status,
        });
    }
    if candidates.is_empty() {
        return if free_but_tried {
            OfferDecision::EveryoneTried
        } else {
            OfferDecision::NobodyFree
        };
    }

    // Penalty tiers: only the lowest penalty with a free, untried member
    // competes. `wrandom` uses penalties as weights instead.
    if queue.strategy != Strategy::Wrandom {
        let best = candidates
            .iter()
            .map(|c| c.member.penalty)
            .min()
            .unwrap_or_default();
        candidates.retain(|c| c.member.penalty == best);
    }

    let chosen: &Candidate<'_> = match queue.strategy {
        Strategy::Ringall => {
            return OfferDecision::Offer(
                candidates.iter().map(|c| c.member.agent.clone()).collect(),
            );
        }
        Strategy::Linear => &candidates[0],
        Strategy::Rrmemory | Strategy::Rrordered => {
            let start = memory.round_robin_start(queue);
            let chosen = candidates
                .iter()
                .find(|c| c.index >= start)
                .unwrap_or(&candidates[0]);
            memory.remember(&queue.extension, &chosen.member.agent, chosen.index);
            chosen
        }
        Strategy::Leastrecent => candidates
            .iter()
            .min_by_key(|c| c.status.last_chat_ended_at)
            .unwrap_or(&candidates[0]),
        Strategy::Fewestcalls => candidates
            .iter()
            .min_by_key(|c| (c.status.chats_taken_total, c.status.active_chats))
            .unwrap_or(&candidates[0]),
        Strategy::Random => &candidates[rng.random_range(0..candidates.len())],
        Strategy::Wrandom => candidates
            .iter()
            .map(|c| {
                let range = (1 + u64::from(c.member.penalty)) * 1000;
                (rng.random_range(0..range), c)
            })
            .min_by_key(|(metric, _)| *metric)
            .map_or(&candidates[0], |(_, c)| c),
    };
    OfferDecision::Offer(vec![chosen.member.agent.clone()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::{any, prop_assert, prop_assert_eq, proptest};
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::collections::HashMap;

    fn a(s: &str) -> AgentExtension {
        s.parse().unwrap()
    }
    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap()
    }
    fn rng() -> StdRng {
        StdRng::seed_from_u64(0x5eed)
    }

    /// A queue "600" with members given as (extension, penalty).
    fn queue(strategy: Strategy, members: &[(&str, u32)]) -> QueueConfig {
        let mut q = QueueConfig::new("600".parse().unwrap(), "Sales", strategy, []);
        q.members = members
            .iter()
            .map(|&(agent, penalty)| MemberConfig {
                agent: a(agent),
                penalty,
            })
            .collect();
        q
    }

    fn idle(agents: &[&str]) -> Vec<MemberStatus> {
        agents.iter().map(|s| MemberStatus::idle(a(s))).collect()
    }

    fn status<'a>(statuses: &'a mut [MemberStatus], agent: &str) -> &'a mut MemberStatus {
        statuses.iter_mut().find(|s| s.agent == a(agent)).unwrap()
    }

    fn offer(
        q: &QueueConfig,
        statuses: &[MemberStatus],
        tried: &[&str],
        memory: &mut StrategyMemory,
    ) -> OfferDecision {
        let tried: Vec<_> = tried.iter().map(|s| a(s)).collect();
        choose_offer(q, statuses, &tried, memory, now(), &mut rng())
    }

    fn one(decision: OfferDecision) -> String {
        match decision {
            OfferDecision::Offer(agents) if agents.len() == 1 => agents[0].to_string(),
            other => panic!("expected one agent, got {other:?}"),
        }
    }

    fn names(decision: &OfferDecision) -> Vec<String> {
        decision.agents().iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn ringall_offers_every_free_agent_of_the_best_tier() {
        let q = queue(
            Strategy::Ringall,
            &[("101", 0), ("102", 1), ("103", 0), ("104", 0)],
        );
        let mut statuses = idle(&["101", "102", "103", "104"]);
        status(&mut statuses, "104").available = false;
        let mut memory = StrategyMemory::new();
        let d = offer(&q, &statuses, &[], &mut memory);
        assert_eq!(names(&d), ["101", "103"]);

        // Tier 0 all tried (timed out): tier 1 next, then a new round.
        assert_eq!(
            names(&offer(&q, &statuses, &["101", "103"], &mut memory)),
            ["102"]
        );
        assert_eq!(
            offer(&q, &statuses, &["101", "102", "103"], &mut memory),
            OfferDecision::EveryoneTried
        );
        assert_eq!(memory, StrategyMemory::new(), "ringall keeps no memory");
    }

    #[test]
    fn higher_tier_only_when_lower_tier_has_nobody_free() {
        for strategy in Strategy::ALL {
            if strategy == Strategy::Wrandom {
                continue;
            }
            let q = queue(strategy, &[("201", 2), ("101", 0), ("102", 0), ("301", 5)]);
            let mut statuses = idle(&["101", "102", "201", "301"]);
            let mut memory = StrategyMemory::new();
            for _ in 0..20 {
                let d = offer(&q, &statuses, &[], &mut memory);
                assert!(
                    d.agents().iter().all(|x| x == &a("101") || x == &a("102")),
                    "{strategy}: {d:?}"
                );
            }
            status(&mut statuses, "101").available = false;
            status(&mut statuses, "102").active_chats = q.max_chats_per_agent;
            assert_eq!(
                names(&offer(&q, &statuses, &[], &mut memory)),
                ["201"],
                "{strategy}"
            );
            status(&mut statuses, "201").wrapup_until = Some(now() + Duration::seconds(1));
            assert_eq!(
                names(&offer(&q, &statuses, &[], &mut memory)),
                ["301"],
                "{strategy}"
            );
            status(&mut statuses, "102").active_chats -= 1;
            assert_eq!(
                names(&offer(&q, &statuses, &[], &mut memory)),
                ["102"],
                "{strategy}"
            );
        }
    }

    #[test]
    fn rrmemory_cycles_fairly_and_remembers_across_chats() {
        let q = queue(Strategy::Rrmemory, &[("101", 0), ("102", 0), ("103", 0)]);
        let statuses = idle(&["101", "102", "103"]);
        let mut memory = StrategyMemory::new();
        let order: Vec<String> = (0..9)
            .map(|_| one(offer(&q, &statuses, &[], &mut memory)))
            .collect();
        assert_eq!(
            order,
            ["101", "102", "103", "101", "102", "103", "101", "102", "103"]
        );
        assert_eq!(
            memory.round_robin(&q.extension),
            Some(&RoundRobinPosition {
                last_offered: a("103"),
                index: 2
            })
        );
    }

    #[test]
    fn rrmemory_skips_busy_members_and_moves_on_after_a_timeout() {
        let q = queue(Strategy::Rrmemory, &[("101", 0), ("102", 0), ("103", 0)]);
        let mut statuses = idle(&["101", "102", "103"]);
        let mut memory = StrategyMemory::new();
        assert_eq!(one(offer(&q, &statuses, &[], &mut memory)), "101");
        // 101 does not answer: the same chat goes to the next one.
        assert_eq!(one(offer(&q, &statuses, &["101"], &mut memory)), "102");
        // 103 is in wrap-up, so the next chat wraps around to 101.
        status(&mut statuses, "103").wrapup_until = Some(now() + Duration::seconds(30));
        assert_eq!(one(offer(&q, &statuses, &[], &mut memory)), "101");
        assert_eq!(one(offer(&q, &statuses, &[], &mut memory)), "102");
        status(&mut statuses, "103").wrapup_until = Some(now());
        assert_eq!(
            one(offer(&q, &statuses, &[], &mut memory)),
            "103",
            "wrap-up ends at `until`"
        );
    }

    #[test]
    fn rrmemory_follows_the_member_through_config_changes() {
        let mut q = queue(
            Strategy::Rrmemory,
            &[("101", 0), ("102", 0), ("103", 0), ("104", 0)],
        );
        let statuses = idle(&["101", "102", "103", "104", "105"]);
        let mut memory = StrategyMemory::new();
        assert_eq!(one(offer(&q, &statuses, &[], &mut memory)), "101");
        assert_eq!(one(offer(&q, &statuses, &[], &mut memory)), "102");
        // A member is inserted before the one offered last: continue after 102.
        q.members.insert(
            0,
            MemberConfig {
                agent: a("105"),
                penalty: 0,
            },
        );
        assert_eq!(one(offer(&q, &statuses, &[], &mut memory)), "103");
        // The member offered last is removed: continue with their successor.
        q.members.retain(|m| m.agent != a("103"));
        assert_eq!(one(offer(&q, &statuses, &[], &mut memory)), "104");
        assert_eq!(one(offer(&q, &statuses, &[], &mut memory)), "105");
    }

    #[test]
    fn rrordered_goes_round_in_config_order() {
        let q = queue(Strategy::Rrordered, &[("103", 0), ("101", 0), ("102", 0)]);
        let mut statuses = idle(&["101", "102", "103"]);
        let mut memory = StrategyMemory::new();
        let order: Vec<String> = (0..4)
            .map(|_| one(offer(&q, &statuses, &[], &mut memory)))
            .collect();
        assert_eq!(order, ["103", "101", "102", "103"]);
        status(&mut statuses, "101").available = false;
        assert_eq!(one(offer(&q, &statuses, &[], &mut memory)), "102");
    }

    #[test]
    fn strategy_memory_survives_serialisation() {
        let q = queue(Strategy::Rrmemory, &[("101", 0), ("102", 0), ("103", 0)]);
        let statuses = idle(&["101", "102", "103"]);
        let mut memory = StrategyMemory::new();
        assert_eq!(one(offer(&q, &statuses, &[], &mut memory)), "101");
        let json = serde_json::to_string(&memory).unwrap();
        assert_eq!(
            json,
            r#"{"round_robin":{"600":{"last_offered":"101","index":0}}}"#
        );
        let mut restored: StrategyMemory = serde_json::from_str(&json).unwrap();
        assert_eq!(one(offer(&q, &statuses, &[], &mut restored)), "102");
        restored.retain_queues(|q| q.as_str() != "600");
        assert_eq!(restored, StrategyMemory::new());
    }

    #[test]
    fn linear_always_starts_from_the_top() {
        let q = queue(Strategy::Linear, &[("103", 0), ("101", 0), ("102", 0)]);
        let mut statuses = idle(&["101", "102", "103"]);
        let mut memory = StrategyMemory::new();
        for _ in 0..3 {
            assert_eq!(one(offer(&q, &statuses, &[], &mut memory)), "103");
        }
        assert_eq!(one(offer(&q, &statuses, &["103"], &mut memory)), "101");
        assert_eq!(
            one(offer(&q, &statuses, &["103", "101"], &mut memory)),
            "102"
        );
        assert_eq!(
            offer(&q, &statuses, &["103", "101", "102"], &mut memory),
            OfferDecision::EveryoneTried
        );
        status(&mut statuses, "103").active_chats = 3;
        assert_eq!(one(offer(&q, &statuses, &[], &mut memory)), "101");
        assert_eq!(memory, StrategyMemory::new());
    }

    #[test]
    fn fewestcalls_picks_the_least_loaded() {
        let q = queue(Strategy::Fewestcalls, &[("101", 0), ("102", 0), ("103", 0)]);
        let mut statuses = idle(&["101", "102", "103"]);
        status(&mut statuses, "101").chats_taken_total = 7;
        status(&mut statuses, "102").chats_taken_total = 3;
        status(&mut statuses, "103").chats_taken_total = 5;
        let mut memory = StrategyMemory::new();
        assert_eq!(one(offer(&q, &statuses, &[], &mut memory)), "102");
        assert_eq!(one(offer(&q, &statuses, &["102"], &mut memory)), "103");
        // Equal totals: fewer chats open right now wins, then member order.
        status(&mut statuses, "103").chats_taken_total = 3;
        status(&mut statuses, "102").active_chats = 2;
        status(&mut statuses, "103").active_chats = 1;
        assert_eq!(one(offer(&q, &statuses, &[], &mut memory)), "103");
        status(&mut statuses, "102").active_chats = 1;
        assert_eq!(one(offer(&q, &statuses, &[], &mut memory)), "102");
    }

    #[test]
    fn leastrecent_picks_the_longest_idle() {
        let q = queue(Strategy::Leastrecent, &[("101", 0), ("102", 0), ("103", 0)]);
        let mut statuses = idle(&["101", "102", "103"]);
        status(&mut statuses, "101").last_chat_ended_at = Some(now() - Duration::minutes(5));
        status(&mut statuses, "102").last_chat_ended_at = Some(now() - Duration::minutes(50));
        status(&mut statuses, "103").last_chat_ended_at = Some(now() - Duration::minutes(20));
        let mut memory = StrategyMemory::new();
        assert_eq!(one(offer(&q, &statuses, &[], &mut memory)), "102");
        assert_eq!(one(offer(&q, &statuses, &["102"], &mut memory)), "103");
        // Never had a chat beats everyone.
        status(&mut statuses, "101").last_chat_ended_at = None;
        assert_eq!(one(offer(&q, &statuses, &[], &mut memory)), "101");
    }

    fn tally(
        q: &QueueConfig,
        statuses: &[MemberStatus],
        draws: usize,
        seed: u64,
    ) -> HashMap<String, usize> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut memory = StrategyMemory::new();
        let mut counts = HashMap::new();
        for _ in 0..draws {
            let d = choose_offer(q, statuses, &[], &mut memory, now(), &mut rng);
            *counts.entry(one(d)).or_default() += 1;
        }
        counts
    }

    #[test]
    fn random_is_uniform_within_the_best_tier() {
        let q = queue(
            Strategy::Random,
            &[("101", 0), ("102", 0), ("103", 0), ("104", 1)],
        );
        let statuses = idle(&["101", "102", "103", "104"]);
        for seed in [1, 2, 3] {
            let counts = tally(&q, &statuses, 3000, seed);
            assert_eq!(counts.get("104"), None, "tier 1 never while tier 0 is free");
            for agent in ["101", "102", "103"] {
                let n = counts[agent];
                // Expect 1000 each; 5 standard deviations is about ±130.
                assert!(
                    (870..=1130).contains(&n),
                    "seed {seed}: {agent} got {n}: {counts:?}"
                );
            }
        }
    }

    #[test]
    fn wrandom_weights_by_penalty_across_tiers() {
        // Draws are uniform in [0, 1000) for penalty 0 and [0, 2000) for
        // penalty 1, lowest wins: penalty 0 wins with probability 3/4.
        let q = queue(Strategy::Wrandom, &[("101", 0), ("102", 1)]);
        let statuses = idle(&["101", "102"]);
        for seed in [1, 2, 3] {
            let counts = tally(&q, &statuses, 4000, seed);
            let low = counts["101"];
            // Expect 3000, sd ≈ 27: allow ±150.
            assert!((2850..=3150).contains(&low), "seed {seed}: {counts:?}");
        }
        // Three penalties 0, 1, 2: win chances 23/36, 8/36, 5/36.
        let q = queue(Strategy::Wrandom, &[("101", 0), ("102", 1), ("103", 2)]);
        let counts = tally(&q, &idle(&["101", "102", "103"]), 9000, 7);
        for (agent, expected) in [("101", 5750), ("102", 2000), ("103", 1250)] {
            let n = counts[agent];
            // Within about 5 standard deviations.
            assert!(
                n.abs_diff(expected) <= 200,
                "{agent}: {n}, expected ≈{expected}: {counts:?}"
            );
        }
        // Equal penalties: fair.
        let q = queue(Strategy::Wrandom, &[("101", 4), ("102", 4)]);
        let counts = tally(&q, &idle(&["101", "102"]), 4000, 9);
        assert!(counts["101"].abs_diff(2000) <= 150, "{counts:?}");
    }

    #[test]
    fn max_chats_and_wrapup_are_respected() {
        let mut q = queue(Strategy::Linear, &[("101", 0), ("102", 0)]);
        q.max_chats_per_agent = 2;
        q.wrapup_secs = 60;
        let mut statuses = idle(&["101", "102"]);
        let mut memory = StrategyMemory::new();

        status(&mut statuses, "101").active_chats = 1;
        assert_eq!(
            one(offer(&q, &statuses, &[], &mut memory)),
            "101",
            "below the limit"
        );
        status(&mut statuses, "101").active_chats = 2;
        assert_eq!(
            one(offer(&q, &statuses, &[], &mut memory)),
            "102",
            "at the limit"
        );

        // No wrapup_until stamped: this queue's wrap-up runs from the last chat's end.
        status(&mut statuses, "102").last_chat_ended_at = Some(now() - Duration::seconds(59));
        assert_eq!(
            offer(&q, &statuses, &[], &mut memory),
            OfferDecision::NobodyFree
        );
        assert_eq!(
            statuses[1].busy_reason(&q, now()),
            Some(BusyReason::WrappingUp {
                until: now() + Duration::seconds(1)
            })
        );
        status(&mut statuses, "102").last_chat_ended_at = Some(now() - Duration::seconds(60));
        assert_eq!(one(offer(&q, &statuses, &[], &mut memory)), "102");

        // A stamped wrapup_until (from the queue the chat came from) wins.
        status(&mut statuses, "102").wrapup_until = Some(now() + Duration::seconds(5));
        assert_eq!(
            offer(&q, &statuses, &[], &mut memory),
            OfferDecision::NobodyFree
        );
        status(&mut statuses, "102").last_chat_ended_at = Some(now() - Duration::seconds(10));
        status(&mut statuses, "102").wrapup_until = Some(now() - Duration::seconds(1));
        assert_eq!(one(offer(&q, &statuses, &[], &mut memory)), "102");

        assert_eq!(
            statuses[0].busy_reason(&q, now()),
            Some(BusyReason::AtMaxChats)
        );
        assert_eq!(wrapup_until(&q, now()), Some(now() + Duration::seconds(60)));
        q.wrapup_secs = 0;
        assert_eq!(wrapup_until(&q, now()), None);
    }

    #[test]
    fn unknown_or_unavailable_members_are_skipped() {
        let q = queue(Strategy::Ringall, &[("101", 0), ("102", 0)]);
        let mut memory = StrategyMemory::new();
        // No status at all for 102; a status for a non-member is ignored.
        let mut statuses = idle(&["101", "999"]);
        status(&mut statuses, "101").available = false;
        assert_eq!(
            offer(&q, &statuses, &[], &mut memory),
            OfferDecision::NobodyFree
        );
        assert_eq!(
            statuses[0].busy_reason(&q, now()),
            Some(BusyReason::Unavailable)
        );
        let empty = queue(Strategy::Rrmemory, &[]);
        assert_eq!(
            offer(&empty, &statuses, &[], &mut memory),
            OfferDecision::NobodyFree
        );
        assert!(OfferDecision::NobodyFree.agents().is_empty());
    }

    fn arb_strategy() -> impl proptest::strategy::Strategy<Value = Strategy> {
        proptest::sample::select(Strategy::ALL.to_vec())
    }

    /// A member: (penalty, available, active chats, wrap-up seconds from now, tried).
    type ArbMember = (u32, bool, u32, i64, bool);

    fn arb_members() -> impl proptest::strategy::Strategy<Value = Vec<ArbMember>> {
        proptest::collection::vec(
            (
                0u32..3,
                proptest::bool::weighted(0.8),
                0u32..4,
                -5i64..5,
                proptest::bool::weighted(0.3),
            ),
            0..8,
        )
    }

    fn build(
        strategy: Strategy,
        members: &[ArbMember],
    ) -> (QueueConfig, Vec<MemberStatus>, Vec<AgentExtension>) {
        let exts: Vec<String> = (0..members.len()).map(|i| format!("{}", 100 + i)).collect();
        let spec: Vec<(&str, u32)> = exts
            .iter()
            .zip(members)
            .map(|(e, m)| (e.as_str(), m.0))
            .collect();
        let q = queue(strategy, &spec);
        let mut statuses = Vec::new();
        let mut tried = Vec::new();
        for (e, &(_, available, active, wrap, was_tried)) in exts.iter().zip(members) {
            let mut s = MemberStatus::idle(a(e));
            s.available = available;
            s.active_chats = active;
            s.wrapup_until = Some(now() + Duration::seconds(wrap));
            statuses.push(s);
            if was_tried {
                tried.push(a(e));
            }
        }
        (q, statuses, tried)
    }

    proptest! {
        /// Whatever the strategy: offers go only to free, untried members;
        /// the best tier is respected (except `wrandom`); ringall offers the
        /// whole tier, the others one agent; "nobody" is told apart right.
        #[test]
        fn offers_respect_eligibility_and_tiers(strategy in arb_strategy(), members in arb_members(), seed in any::<u64>()) {
            let (q, statuses, tried) = build(strategy, &members);
            let mut memory = StrategyMemory::new();
            let mut rng = StdRng::seed_from_u64(seed);
            let decision = choose_offer(&q, &statuses, &tried, &mut memory, now(), &mut rng);

            let free: Vec<&MemberConfig> = q.members.iter()
                .filter(|m| statuses.iter().any(|s| s.agent == m.agent && s.busy_reason(&q, now()).is_none()))
                .collect();
            let open: Vec<&MemberConfig> = free.iter().copied().filter(|m| !tried.contains(&m.agent)).collect();
            match &decision {
                OfferDecision::NobodyFree => prop_assert!(free.is_empty()),
                OfferDecision::EveryoneTried => prop_assert!(!free.is_empty() && open.is_empty()),
                OfferDecision::Offer(agents) => {
                    let best = open.iter().map(|m| m.penalty).min().unwrap();
                    let tier: Vec<AgentExtension> = open.iter().filter(|m| m.penalty == best).map(|m| m.agent.clone()).collect();
                    if strategy == Strategy::Ringall {
                        prop_assert_eq!(agents, &tier);
                    } else {
                        prop_assert_eq!(agents.len(), 1);
                        if strategy == Strategy::Wrandom {
                            prop_assert!(open.iter().any(|m| m.agent == agents[0]));
                        } else {
                            prop_assert!(tier.contains(&agents[0]));
                        }
                    }
                }
            }
        }

        /// Round robin with everyone free: over any number of chats, offer
        /// counts never differ by more than one, whatever the member count.
        #[test]
        fn round_robin_is_fair(n in 1usize..7, chats in 0usize..40, ordered in any::<bool>()) {
            let strategy = if ordered { Strategy::Rrordered } else { Strategy::Rrmemory };
            let exts: Vec<String> = (0..n).map(|i| format!("{}", 100 + i)).collect();
            let spec: Vec<(&str, u32)> = exts.iter().map(|e| (e.as_str(), 0)).collect();
            let q = queue(strategy, &spec);
            let statuses: Vec<MemberStatus> = exts.iter().map(|e| MemberStatus::idle(a(e))).collect();
            let mut memory = StrategyMemory::new();
            let mut counts = vec![0usize; n];
            for _ in 0..chats {
                let d = choose_offer(&q, &statuses, &[], &mut memory, now(), &mut rng());
                let who = q.members.iter().position(|m| m.agent == d.agents()[0]).unwrap();
                counts[who] += 1;
                let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
                prop_assert!(hi - lo <= 1, "{:?}", counts);
            }
        }

        /// Offering one chat until everyone has tried it reaches every free
        /// member exactly once, lowest tier first, then says so.
        #[test]
        fn timeouts_walk_through_every_free_member(strategy in arb_strategy(), members in arb_members(), seed in any::<u64>()) {
            let (q, statuses, _) = build(strategy, &members);
            let mut memory = StrategyMemory::new();
            let mut rng = StdRng::seed_from_u64(seed);
            let mut tried: Vec<AgentExtension> = Vec::new();
            let mut last_penalty = 0;
            loop {
                match choose_offer(&q, &statuses, &tried, &mut memory, now(), &mut rng) {
                    OfferDecision::Offer(agents) => {
                        for agent in agents {
                            prop_assert!(!tried.contains(&agent));
                            let penalty = q.member(&agent).unwrap().penalty;
                            if strategy != Strategy::Wrandom {
                                prop_assert!(penalty >= last_penalty, "tiers go up");
                            }
                            last_penalty = penalty;
                            tried.push(agent);
                        }
                    }
                    OfferDecision::EveryoneTried => break,
                    OfferDecision::NobodyFree => {
                        prop_assert!(tried.is_empty());
                        break;
                    }
                }
            }
            let free = q.members.iter()
                .filter(|m| statuses.iter().any(|s| s.agent == m.agent && s.busy_reason(&q, now()).is_none()))
                .count();
            prop_assert_eq!(tried.len(), free);
        }
    }
}
