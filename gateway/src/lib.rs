//! Frontdesk gateway: puts a chat widget on any website and bridges its
//! visitors into a phone system's queues. See ARCHITECTURE.md for the map.

pub mod api;
pub mod assets;
pub mod bridges;
pub mod config;
pub mod domain;
pub mod engine;
pub mod files;
mod fsutil;
mod layers;
pub mod ops;
pub mod server;
pub mod store;
pub mod telemetry;
