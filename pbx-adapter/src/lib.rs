//! The PBX's view of the world, as Frontdesk needs it.
//!
//! This crate knows queues, agents and schedules the way a PBX admin already
//! configured them, so nothing has to be entered twice. It is pure domain
//! logic plus protocol user agents (SIP); it knows nothing of HTTP, the
//! database or the widget. The gateway depends on it, never the reverse.

pub mod import;
pub mod model;
pub mod queue;
pub mod schedule;
pub mod sip;

pub use model::{AgentExtension, ParseIdError, QueueExtension};
