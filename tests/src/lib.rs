//! Test harness shared by every integration test and the load generator:
//! starts the real gateway and the real peers (PostgreSQL databases,
//! Prosody, ejabberd, Kamailio…) on free loopback ports, and speaks the visitor API as a
//! widget would.

pub mod bench;
pub mod config;
pub mod database;
pub mod gateway;
pub mod kamailio;
pub mod net;
pub mod sip;
pub mod visitor;
pub mod xmpp_server;
