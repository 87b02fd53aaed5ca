//! Queues, agents, and who a waiting chat is offered to.
//!
//! The chat channel is one more way into the PBX's existing queues, so a
//! queue here behaves like an Asterisk `app_queue` queue: same strategy
//! names, same meaning of penalties, ring timeout and wrap-up. An admin who
//! knows their PBX should be able to predict who gets a chat. Everything in
//! this module is pure logic: no I/O, no async, no clock reads (the caller
//! passes `now`) and an injected random source, so it can be tested exactly.
//!
//! - [`config`]: the TOML shapes ([`QueueConfig`], [`AgentConfig`],
//!   [`Strategy`], [`Overflow`]) and their own checks.
//! - [`directory`]: [`PbxDirectory`], the validated whole with lookups by
//!   extension, JID and SIP URI.
//! - [`offer`]: [`choose_offer`], the strategies.
//! - [`sip_uri`]: [`SipUri`], an agent's validated SIP address.
//!
//! # Who gets an offer
//!
//! [`choose_offer`] is called when a chat is waiting and might be offered:
//! when it arrives, when an offer times out or is declined, and whenever an
//! agent becomes free. It looks at the queue's members in config order.
//!
//! **Free members.** A member is *free* if the engine reports them
//! available, they have fewer than `max_chats_per_agent` chats open, and
//! they are not wrapping up. Wrap-up lasts until
//! [`MemberStatus::wrapup_until`] when the engine stamped it (from the
//! queue the last chat came from, like Asterisk's `lastqueue`), otherwise
//! `wrapup_secs` of this queue from `last_chat_ended_at`; it is over at
//! exactly that instant (Asterisk: `now - lastcall < wrapuptime` is busy).
//! Members already offered this chat (`tried`: declined, timed out or still
//! ringing) are skipped: that is how a timeout "moves on".
//!
//! **Penalty tiers.** Asterisk adds `penalty × 1 000 000` to every
//! strategy's metric, so a member of a higher penalty is only rung when no
//! member of a lower one can be. Likewise here: only the lowest penalty
//! that has a free, untried member competes. Once everyone in that tier has
//! been tried for this chat, the next tier gets it. When every free member
//! has been tried the result is [`OfferDecision::EveryoneTried`]; the
//! engine then clears the chat's tried set to start a new round (Asterisk
//! rings again after `retry`), or keeps waiting. This one point differs
//! from Asterisk, which re-rings the lowest tier each round and reaches a
//! higher tier only while the lower one is busy or paused: a chat agent who
//! let an offer time out is treated as not there for that chat.
//!
//! **Strategies**, within the competing tier (ties go to the member listed
//! first, as Asterisk's `find_best` keeps the first lowest metric):
//!
//! - `ringall`: every competing member at once, in member order. The
//!   first to accept takes the chat; the engine withdraws the others.
//! - `linear`: the first competing member in config order. Every chat
//!   starts from the top (Asterisk keeps `linpos` per caller).
//! - `rrmemory`: round robin with memory. The queue remembers the member
//!   it offered to last ([`StrategyMemory`], Asterisk's `rrpos`, updated
//!   when the offer is made, answered or not); the next offer goes to the
//!   first competing member after them in config order, wrapping around.
//!   If that member has since been removed, the search starts at the
//!   position they had, as Asterisk shifts `rrpos` when a member leaves.
//! - `rrordered`: the same as `rrmemory`. In Asterisk they differ only in
//!   member order: `rrmemory` keeps members in a hashed container whose
//!   order can change on reload, `rrordered` keeps the config file's order.
//!   Frontdesk always keeps the config order, which is `rrordered`'s
//!   behaviour; both names are accepted so imported queues keep working.
//! - `leastrecent`: the competing member whose last chat from this queue
//!   ended longest ago; one who never had one comes first.
//! - `fewestcalls`: the competing member who took the fewest chats from
//!   this queue (`chats_taken_total`); on a tie, the one with fewer chats
//!   open right now (Asterisk has no such tie-break, as a member in a call
//!   gets no calls there), then config order.
//! - `random`: a uniformly random competing member.
//! - `wrandom`: penalty is a weight, not a tier. Each free, untried member
//!   draws a number uniformly in `[0, (1 + penalty) × 1000)` and the lowest
//!   draw wins. With penalties 0 and 1, the penalty-0 member wins 3 times
//!   in 4; with equal penalties it is a fair draw.

pub mod config;
pub mod directory;
pub mod offer;
pub mod sip_uri;

pub use config::{
    AgentConfig, AgentConfigError, MemberConfig, Overflow, QueueConfig, QueueConfigError, Strategy,
};
pub use directory::{Destination, DirectoryProblem, InvalidDirectory, PbxDirectory};
pub use jid::BareJid;
pub use offer::{
    choose_offer, wrapup_until, BusyReason, MemberStatus, OfferDecision, RoundRobinPosition,
    StrategyMemory,
};
pub use sip_uri::{SipScheme, SipUri, SipUriError};
