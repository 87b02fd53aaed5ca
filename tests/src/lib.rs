//! Test harness shared by every integration test and the load generator:
//! starts the real gateway and the real peers (PostgreSQL databases,
//! Prosody, …) on free loopback ports, and speaks the visitor API as a
//! widget would.

pub mod config;
pub mod database;
pub mod ejabberd;
pub mod gateway;
pub mod kamailio;
pub mod prosody;
pub mod visitor;
