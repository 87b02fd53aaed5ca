//! What the SIP user agent reports to the gateway.
//!
//! Only traffic from allowlisted agents, relayed by a trusted source (the
//! proxy or `trusted_hosts`), becomes an event, and each agent MESSAGE
//! only once however often it is retransmitted; strangers are answered
//! 403 by the user agent itself and only logged.

use tokio::sync::oneshot;

use crate::queue::SipUri;
use crate::sip::command::OutboxId;

/// The final answer to an agent's MESSAGE, chosen by the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Stored: answer 200 OK.
    Accept,
    /// Refused: answer this 4xx–6xx status (e.g. 404 for an unknown
    /// visitor address, 480 for an ended chat, 500 on a storage error).
    Refuse(u16),
}

/// Handle for answering an agent's MESSAGE. The agent's UA is answered
/// only when the gateway calls [`MessageReply::accept`] or
/// [`MessageReply::refuse`] — so a 200 means "stored". Dropping it unused,
/// or not answering within the configured reply timeout, answers 500.
#[derive(Debug)]
pub struct MessageReply(pub(crate) oneshot::Sender<Verdict>);

impl MessageReply {
    /// The message is stored: answer 200 OK.
    pub fn accept(self) {
        // The agent's transaction may be gone (timed out): nothing to tell.
        let _ = self.0.send(Verdict::Accept);
    }

    /// Answer an error status. Values outside 400–699 become 500.
    pub fn refuse(self, status: u16) {
        let status = if (400..700).contains(&status) {
            status
        } else {
            500
        };
        let _ = self.0.send(Verdict::Refuse(status));
    }

    /// A handle and the receiving end, for tests of code that answers.
    pub fn pair() -> (MessageReply, oneshot::Receiver<Verdict>) {
        let (tx, rx) = oneshot::channel();
        (MessageReply(tx), rx)
    }
}

/// Something that happened on the SIP side.
#[derive(Debug)]
pub enum SipEvent {
    /// Every part of outbox row `outbox_id` got a 2xx final response.
    Sent { outbox_id: OutboxId },
    /// Outbox row `outbox_id` could not be delivered: `status` is the final
    /// response (404 not registered, 480 unavailable, 408 no answer, 5xx,
    /// 403 refused by the proxy…) or `None` when no response came at all.
    SendFailed {
        outbox_id: OutboxId,
        status: Option<u16>,
        reason: String,
    },
    /// An allowlisted agent wrote to a visitor address. Answer through
    /// `respond` once the message is stored (or refused).
    AgentMessage {
        /// The agent (address of record, parameters stripped).
        from: SipUri,
        /// User part of the visitor address written to (`visitor-…`).
        to_user: String,
        /// Message text (UTF-8; agent commands are the gateway's business).
        body: String,
        /// What every copy of this request shares — Call-ID, CSeq and
        /// From tag — when it has them: a phone re-sending a message it
        /// got no answer for sends the same, so the gateway can store it
        /// once even when the first copy reached a gateway that died
        /// before answering.
        request: Option<String>,
        respond: MessageReply,
    },
    /// An allowlisted agent started (`active`) or stopped typing.
    AgentComposing {
        from: SipUri,
        to_user: String,
        active: bool,
    },
    /// An agent's reachability, from an OPTIONS probe: reported for every
    /// [`crate::sip::SipCommand::Probe`] and every interval probe of an
    /// allowlisted agent, changed or not (the gateway keeps what it last
    /// stored, and another gateway may have changed that meanwhile).
    AgentReachable { agent: SipUri, reachable: bool },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_carry_the_gateways_verdict() {
        let (reply, mut rx) = MessageReply::pair();
        reply.accept();
        assert_eq!(rx.try_recv(), Ok(Verdict::Accept));
        let (reply, mut rx) = MessageReply::pair();
        reply.refuse(480);
        assert_eq!(rx.try_recv(), Ok(Verdict::Refuse(480)));
        let (reply, mut rx) = MessageReply::pair();
        reply.refuse(200);
        assert_eq!(rx.try_recv(), Ok(Verdict::Refuse(500)));
    }
}
