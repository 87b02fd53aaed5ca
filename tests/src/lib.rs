//! Test harness shared by the integration tests and the benchmarks: starts
//! the real gateway (one, or several nodes behind HAProxy) and the real
//! peers (PostgreSQL databases, Prosody, ejabberd, Kamailio, sipp, a
//! throwaway PostgreSQL server) on free loopback ports and in temp dirs,
//! speaks the visitor API as a widget would and the admin API as the
//! console does, and plays agents' XMPP clients and SIP softphones.

pub mod admin;
pub mod bench;
pub mod chaos;
pub mod cluster;
pub mod config;
pub mod database;
pub mod gateway;
pub mod haproxy;
pub mod kamailio;
pub mod net;
pub mod postgres;
pub mod process;
pub mod sip;
pub mod softphone;
pub mod tls;
pub mod traffic;
pub mod visitor;
pub mod wait;
pub mod xmpp_server;
