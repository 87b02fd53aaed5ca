//! The conversation state machine.
//!
//! ```text
//! started ─┬─> chatbot_menu ──> queued
//!          ├─> queued <──────────────┐
//!          └─> closed_out_of_hours   │ (declined, timed out, agent left)
//! queued ──> offered ──> active ─────┘
//! any non-final state ──> ended
//! ```
//! Every transition is persisted with the events it causes; a transition
//! not in this table is an error, never a panic.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConversationState {
    Started,
    ChatbotMenu,
    Queued,
    Offered,
    Active,
    Ended,
    ClosedOutOfHours,
}

impl ConversationState {
    pub const ALL: [ConversationState; 7] = [
        Self::Started,
        Self::ChatbotMenu,
        Self::Queued,
        Self::Offered,
        Self::Active,
        Self::Ended,
        Self::ClosedOutOfHours,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::ChatbotMenu => "chatbot_menu",
            Self::Queued => "queued",
            Self::Offered => "offered",
            Self::Active => "active",
            Self::Ended => "ended",
            Self::ClosedOutOfHours => "closed_out_of_hours",
        }
    }

    /// Final states accept no message and no transition.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Ended | Self::ClosedOutOfHours)
    }

    /// Waiting for an agent (counted in queue positions).
    pub fn is_waiting(self) -> bool {
        matches!(self, Self::Queued | Self::Offered)
    }

    /// Not yet with an agent, and not over (menu, queue, ringing).
    pub fn is_waiting_for_agent(self) -> bool {
        matches!(self, Self::ChatbotMenu | Self::Queued | Self::Offered)
    }

    pub fn can_become(self, next: ConversationState) -> bool {
        use ConversationState::*;
        matches!(
            (self, next),
            (Started, ChatbotMenu | Queued | ClosedOutOfHours)
                | (ChatbotMenu, Queued)
                | (Queued, Offered)
                | (Offered, Active | Queued)
                | (Active, Queued)
                | (Started | ChatbotMenu | Queued | Offered | Active, Ended)
        )
    }

    /// Checks a transition, for the engine to refuse the invalid ones.
    pub fn transition(
        self,
        next: ConversationState,
    ) -> Result<ConversationState, InvalidTransition> {
        if self.can_become(next) {
            Ok(next)
        } else {
            Err(InvalidTransition {
                from: self,
                to: next,
            })
        }
    }
}

impl fmt::Display for ConversationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ConversationState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown conversation state {s:?}"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a conversation cannot go from {from} to {to}")]
pub struct InvalidTransition {
    pub from: ConversationState,
    pub to: ConversationState,
}

#[cfg(test)]
mod tests {
    use super::ConversationState::*;
    use super::*;

    #[test]
    fn states_round_trip_through_text() {
        for state in ConversationState::ALL {
            assert_eq!(state.as_str().parse::<ConversationState>(), Ok(state));
        }
    }

    #[test]
    fn final_states_go_nowhere() {
        for next in ConversationState::ALL {
            assert!(!Ended.can_become(next));
            assert!(!ClosedOutOfHours.can_become(next));
        }
    }

    #[test]
    fn the_happy_path_is_allowed_and_shortcuts_are_not() {
        assert!(Started.can_become(ChatbotMenu));
        assert!(ChatbotMenu.can_become(Queued));
        assert!(Queued.can_become(Offered));
        assert!(Offered.can_become(Active));
        assert!(Active.can_become(Ended));
        assert_eq!(
            Queued.transition(Active),
            Err(InvalidTransition {
                from: Queued,
                to: Active
            })
        );
        assert!(!ChatbotMenu.can_become(Active));
    }
}
