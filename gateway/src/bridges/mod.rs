//! Protocol bridges: where the engine meets the agents' protocols. Each
//! bridge implements the engine's `AgentChannel` for its agents and turns
//! its protocol crate's events into engine calls.

pub mod xmpp;
