//! Per-client and per-conversation rate limits (GCRA, via governor).
//!
//! Limits protect agents from floods and the store from abuse; they are
//! enforced here, on the server, whatever the widget does. REST requests,
//! new conversations and WebSocket upgrades are keyed by the client
//! address ([`ClientAddr::key`]: the peer, or the address a trusted proxy
//! names; IPv6 by /64), messages by conversation.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use pbx_adapter::sip::IpNet;

use super::client::ClientAddr;
use super::error::ApiError;
use crate::config::RateLimits;
use crate::domain::ConversationId;

#[derive(Clone)]
pub struct Limiters {
    requests: Arc<DefaultKeyedRateLimiter<IpNet>>,
    conversations: Arc<DefaultKeyedRateLimiter<IpNet>>,
    messages: Arc<DefaultKeyedRateLimiter<ConversationId>>,
    upgrades: Arc<DefaultKeyedRateLimiter<IpNet>>,
}

fn quota(per: Duration, count: u32) -> Quota {
    let count = NonZeroU32::new(count.max(1)).expect("max(1) is non-zero");
    Quota::with_period(per / count.get())
        .expect("a positive period")
        .allow_burst(count)
}

fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
) -> Result<(), ApiError> {
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        ApiError::rate_limited(wait.as_secs().max(1))
    })
}

impl Limiters {
    pub fn new(limits: &RateLimits) -> Limiters {
        let minute = Duration::from_secs(60);
        Limiters {
            requests: Arc::new(RateLimiter::keyed(quota(
                minute,
                limits.requests_per_minute_per_ip,
            ))),
            conversations: Arc::new(RateLimiter::keyed(quota(
                Duration::from_secs(3600),
                limits.conversations_per_hour_per_ip,
            ))),
            messages: Arc::new(RateLimiter::keyed(quota(
                minute,
                limits.messages_per_minute_per_conversation,
            ))),
            upgrades: Arc::new(RateLimiter::keyed(quota(
                minute,
                limits.websocket_upgrades_per_minute_per_ip,
            ))),
        }
    }

    pub fn request(&self, client: ClientAddr) -> Result<(), ApiError> {
        check(&self.requests, &client.key())
    }

    pub fn new_conversation(&self, client: ClientAddr) -> Result<(), ApiError> {
        check(&self.conversations, &client.key())
    }

    pub fn websocket_upgrade(&self, client: ClientAddr) -> Result<(), ApiError> {
        check(&self.upgrades, &client.key())
    }

    pub fn message(&self, id: ConversationId) -> Result<(), ApiError> {
        check(&self.messages, &id)
    }

    /// Drops state of keys that are back to a full quota (call periodically).
    pub fn shrink(&self) {
        self.requests.retain_recent();
        self.conversations.retain_recent();
        self.messages.retain_recent();
        self.upgrades.retain_recent();
    }
}

/// Middleware: the per-client request budget of every visitor route.
pub async fn limit_per_ip(
    State(limiters): State<Limiters>,
    client: ClientAddr,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    match limiters.request(client) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}
