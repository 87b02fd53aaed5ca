//! The integration suite, as one test binary (after zero-to-production's
//! `tests/api/main.rs`): the gateway and its peers are linked once, not
//! once per file. One module per area; test names read as specifications.
//! The modules' tests run in parallel threads of one process, so each
//! test starts its own servers on free ports and in temp dirs, and none
//! changes process-wide state (environment, current directory).

mod admin;
mod bad_input;
mod cli;
mod cluster;
mod cluster_traffic;
mod conversation;
mod durability;
mod edge_limits;
mod errors;
mod faults;
mod files;
mod logs;
mod nodes;
mod pbx_sync;
mod routing;
mod shared_dispatch;
mod sip_agent;
mod sip_bridge;
mod sip_cluster;
mod tidy;
mod xmpp_bridge;
mod xmpp_component;
mod xmpp_nodes;
