//! Agent MESSAGEs seen lately, so a copy of one is answered like the first
//! and never reaches the gateway twice (one stored message per request).
//!
//! rsipstack already absorbs true retransmissions: it matches a server
//! transaction by the top `Via` branch, Call-ID, CSeq and From tag (RFC 3261
//! §17.2.3), swallows copies while the gateway decides, and replays the
//! final response to copies for 64·T1 (32 s, Timer J's span) after it. A
//! copy with a *new branch* but the same Call-ID, CSeq and From tag is a
//! new transaction to it, though: the same MESSAGE re-sent through another
//! proxy, forked back to us twice, or re-sent by a UA that recomputes the
//! branch. RFC 3261 §8.2.2.2 calls that a merged request and suggests 482
//! while the first is pending; for a MESSAGE the useful answer is the first
//! one's — the text is stored once, and the phone shows it delivered (or
//! refused for the same reason, while the first is pending). [`Recent`]
//! remembers, per [`RequestId`], the first request's final status (pending
//! until the gateway decides) for the same 32 s, and at most [`CAPACITY`]
//! requests, so a flood cannot grow it without bound (the oldest are
//! forgotten first). A copy arriving after a *refusal* is decided again
//! (the user agent checks): a phone re-sends a request because it failed,
//! and what refused it may have passed; the gateway stores a message once
//! per request whatever the number of copies.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rsipstack::sip::{HeadersExt, Request};

/// How long a request is remembered: 64·T1, as rsipstack keeps finished
/// transactions.
pub(crate) const REMEMBER: Duration = Duration::from_secs(32);
/// How many requests are remembered at most.
pub(crate) const CAPACITY: usize = 4096;

/// What makes two requests the same one, whatever their branch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RequestId {
    call_id: String,
    cseq: u32,
    from_tag: String,
}

impl RequestId {
    /// `None` when a header is missing (rsipstack's key needs them too).
    pub(crate) fn of(request: &Request) -> Option<RequestId> {
        Some(RequestId {
            call_id: request.call_id_header().ok()?.value().to_owned(),
            cseq: request.cseq_header().ok()?.seq().ok()?,
            from_tag: request.from_header().ok()?.tag().ok()??.value().to_owned(),
        })
    }
}

impl std::fmt::Display for RequestId {
    /// `CALL-ID CSEQ FROM-TAG` (none of them holds a space).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.call_id, self.cseq, self.from_tag)
    }
}

/// A bounded, expiring map from request to what the first copy got.
#[derive(Debug)]
pub(crate) struct Recent<V> {
    entries: HashMap<RequestId, V>,
    /// Insertion order, for expiry and eviction.
    order: VecDeque<(Instant, RequestId)>,
    remember: Duration,
    capacity: usize,
}

impl<V: Clone> Recent<V> {
    pub(crate) fn new(remember: Duration, capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            remember,
            capacity: capacity.max(1),
        }
    }

    /// What the first copy of `id` got, if it was seen within the window.
    pub(crate) fn get(&mut self, id: &RequestId, now: Instant) -> Option<V> {
        self.expire(now);
        self.entries.get(id).cloned()
    }

    /// Remembers the first copy of `id`.
    pub(crate) fn insert(&mut self, id: RequestId, value: V, now: Instant) {
        self.expire(now);
        if let Some(known) = self.entries.get_mut(&id) {
            *known = value;
            return;
        }
        while self.order.len() >= self.capacity {
            if let Some((_, oldest)) = self.order.pop_front() {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(id.clone(), value);
        self.order.push_back((now, id));
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if now.saturating_duration_since(*at) < self.remember {
                break;
            }
            if let Some((_, id)) = self.order.pop_front() {
                self.entries.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(call_id: &str, cseq: u32) -> RequestId {
        RequestId {
            call_id: call_id.to_owned(),
            cseq,
            from_tag: "t".to_owned(),
        }
    }

    fn parsed(branch: &str, call_id: &str, cseq: u32, tag: &str) -> Option<RequestId> {
        let text = format!(
            "MESSAGE sip:visitor-a@chat.localhost SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.10;branch={branch}\r\n\
             From: <sip:101@pbx.localhost>;tag={tag}\r\nTo: <sip:visitor-a@chat.localhost>\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} MESSAGE\r\nContent-Length: 0\r\n\r\n"
        );
        match rsipstack::sip::parser::parse_message(text.as_bytes()).unwrap() {
            rsipstack::sip::SipMessage::Request(r) => RequestId::of(&r),
            _ => unreachable!(),
        }
    }

    #[test]
    fn the_branch_does_not_matter_but_call_id_cseq_and_tag_do() {
        let first = parsed("z9hG4bK-1", "c1", 7, "a");
        assert!(first.is_some());
        assert_eq!(first, parsed("z9hG4bK-2", "c1", 7, "a"));
        assert_ne!(first, parsed("z9hG4bK-1", "c1", 8, "a"));
        assert_ne!(first, parsed("z9hG4bK-1", "c2", 7, "a"));
        assert_ne!(first, parsed("z9hG4bK-1", "c1", 7, "b"));
    }

    #[test]
    fn requests_are_remembered_for_the_window_only() {
        let t0 = Instant::now();
        let mut recent = Recent::new(REMEMBER, 8);
        recent.insert(id("a", 1), 200, t0);
        assert_eq!(
            recent.get(&id("a", 1), t0 + Duration::from_secs(31)),
            Some(200)
        );
        assert_eq!(recent.get(&id("a", 2), t0), None);
        assert_eq!(recent.get(&id("a", 1), t0 + REMEMBER), None);
        assert!(recent.entries.is_empty() && recent.order.is_empty());
    }

    #[test]
    fn a_flood_forgets_the_oldest_first() {
        let t0 = Instant::now();
        let mut recent = Recent::new(REMEMBER, 3);
        for n in 0..5 {
            recent.insert(id("a", n), n, t0);
        }
        assert_eq!(recent.entries.len(), 3);
        assert_eq!(recent.get(&id("a", 1), t0), None);
        assert_eq!(recent.get(&id("a", 4), t0), Some(4));
        // A second insert of the same id keeps one slot.
        recent.insert(id("a", 4), 9, t0);
        assert_eq!(recent.order.len(), 3);
        assert_eq!(recent.get(&id("a", 4), t0), Some(9));
    }
}
