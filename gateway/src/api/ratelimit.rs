//! Per-client-IP and per-conversation rate limits (GCRA, via governor).
//!
//! Limits protect agents from floods and the store from abuse; they are
//! enforced here, on the server, whatever the widget does. REST requests
//! and new conversations are keyed by the TCP peer's IP, messages by
//! conversation; the WebSocket route is not rate limited.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::error::ApiError;
use crate::config::RateLimits;
use crate::domain::ConversationId;

#[derive(Clone)]
pub struct Limiters {
    requests: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    conversations: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    messages: Arc<DefaultKeyedRateLimiter<ConversationId>>,
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
        }
    }

    pub fn request(&self, ip: IpAddr) -> Result<(), ApiError> {
        check(&self.requests, &ip)
    }

    pub fn new_conversation(&self, ip: IpAddr) -> Result<(), ApiError> {
        check(&self.conversations, &ip)
    }

    pub fn message(&self, id: ConversationId) -> Result<(), ApiError> {
        check(&self.messages, &id)
    }

    /// Drops state of keys that are back to a full quota (call periodically).
    pub fn shrink(&self) {
        self.requests.retain_recent();
        self.conversations.retain_recent();
        self.messages.retain_recent();
    }
}

/// Middleware: the per-IP request budget of every visitor route.
pub async fn limit_per_ip(
    State(limiters): State<Limiters>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    match limiters.request(peer.ip()) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}
