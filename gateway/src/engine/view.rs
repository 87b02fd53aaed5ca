//! What the engine shows of a conversation: events, messages, summaries.
//!
//! These are the shapes the visitor API serialises as they are (and
//! documents in its OpenAPI), and the bridges render for agents. Events are
//! stored as their JSON here, so what a widget replays after a reconnect is
//! byte-for-byte what it would have received live.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{ConversationId, ConversationState, FileId, Party};
use crate::store::{StoreError, StoredEvent};

/// A durable event's body; `type` names it on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventBody {
    Message {
        message: MessageView,
    },
    State {
        state: ConversationState,
    },
    QueuePosition {
        position: u32,
    },
    AgentJoined {
        agent: AgentView,
    },
    AgentLeft {
        agent: AgentView,
    },
    Receipt {
        status: ReceiptStatus,
        up_to_seq: i64,
    },
    Closed {
        by: Party,
        reason: String,
    },
}

impl EventBody {
    /// The stored `kind` column.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Message { .. } => "message",
            Self::State { .. } => "state",
            Self::QueuePosition { .. } => "queue_position",
            Self::AgentJoined { .. } => "agent_joined",
            Self::AgentLeft { .. } => "agent_left",
            Self::Receipt { .. } => "receipt",
            Self::Closed { .. } => "closed",
        }
    }

    /// One line for a transcript read by people (messages are shown as
    /// they are; this is for the rest).
    pub fn describe(&self) -> String {
        match self {
            Self::Message { message } => message.body.clone(),
            Self::State { state } => format!("State: {}", state.as_str()),
            Self::QueuePosition { position } => format!("Position in the queue: {position}"),
            Self::AgentJoined { agent } => format!("{} joined", agent.name),
            Self::AgentLeft { agent } => format!("{} left", agent.name),
            Self::Receipt { status, up_to_seq } => {
                format!("Receipt: {status:?} up to #{up_to_seq}")
            }
            Self::Closed { by, reason } => format!("Closed by the {by:?}: {reason}").to_lowercase(),
        }
    }
}

/// An event as the widget receives it: its `seq` and its body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    pub seq: i64,
    #[serde(flatten)]
    pub body: EventBody,
}

impl TryFrom<&StoredEvent> for EventView {
    type Error = StoreError;
    fn try_from(event: &StoredEvent) -> Result<Self, StoreError> {
        let mut body: EventBody = serde_json::from_value(event.payload.clone())
            .map_err(|e| StoreError::Corrupt(format!("event {}: {e}", event.seq)))?;
        if let EventBody::Message { message } = &mut body {
            message.seq = event.seq;
        }
        Ok(EventView {
            seq: event.seq,
            body,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptStatus {
    Delivered,
    Read,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AgentView {
    pub name: String,
}

/// A chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MessageView {
    /// Server-assigned id.
    pub id: uuid::Uuid,
    /// The id the visitor's client chose (visitor messages only).
    pub client_id: Option<String>,
    /// The event sequence number that carried this message.
    pub seq: i64,
    pub sender: Party,
    /// Display name of the author.
    pub author: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    /// The file this message carries, if it is a file message (its `body`
    /// is then the file's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<AttachmentView>,
}

impl MessageView {
    /// A new message from `sender`, before the store gives it its `seq`.
    pub fn new(sender: Party, author: String, body: String) -> MessageView {
        MessageView {
            id: uuid::Uuid::now_v7(),
            client_id: None,
            seq: 0,
            sender,
            author,
            body,
            created_at: Utc::now(),
            attachment: None,
        }
    }

    /// The same message under the id the visitor's client chose.
    pub fn with_client_id(mut self, client_id: Option<String>) -> MessageView {
        self.client_id = client_id;
        self
    }

    /// The same message carrying `file` (its body is the file's name).
    pub fn with_attachment(mut self, file: AttachmentView) -> MessageView {
        self.attachment = Some(file);
        self
    }
}

/// A file attached to a message. Visitors download it at
/// `GET /api/v1/conversations/{id}/files/{file_id}` with their token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AttachmentView {
    pub id: FileId,
    /// Sanitised display name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Media type sniffed from the content.
    pub content_type: String,
}

/// Who the visitor is and where they are going: what an agent sees first.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationSummary {
    pub id: ConversationId,
    pub channel_key: String,
    pub channel_name: String,
    pub visitor_name: String,
    pub visitor_email: String,
    pub page_url: Option<String>,
    pub language: String,
    pub option_label: Option<String>,
    pub queue: Option<String>,
}

/// A conversation as the visitor API returns it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConversationView {
    pub id: ConversationId,
    pub channel: String,
    pub state: ConversationState,
    pub visitor: VisitorView,
    pub agent: Option<AgentView>,
    /// 1 for the next visitor to be served; present while waiting.
    pub queue_position: Option<u32>,
    /// The newest event's seq: a widget resuming from here misses nothing.
    pub last_seq: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VisitorView {
    pub name: String,
    pub email: String,
}

pub fn ms_to_datetime(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}
