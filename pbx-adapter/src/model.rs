//! Identifiers of the PBX model: queue and agent extensions.
//!
//! Extensions are validated once, at the edge, so the rest of the code never
//! sees an empty or malformed one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The longest extension, in characters.
pub const MAX_EXTENSION_CHARS: usize = 32;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseIdError {
    #[error("an extension cannot be empty")]
    Empty,
    #[error("an extension is at most 32 characters, got {0}")]
    TooLong(usize),
    #[error("an extension may only hold digits, letters, '*', '#', '-' or '_', got {0:?}")]
    BadCharacter(String),
}

fn validate_extension(s: &str) -> Result<(), ParseIdError> {
    if s.is_empty() {
        return Err(ParseIdError::Empty);
    }
    if s.len() > MAX_EXTENSION_CHARS {
        return Err(ParseIdError::TooLong(s.len()));
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '*' | '#' | '-' | '_'))
    {
        return Err(ParseIdError::BadCharacter(s.to_owned()));
    }
    Ok(())
}

macro_rules! extension_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                validate_extension(s)?;
                Ok(Self(s.to_owned()))
            }
        }

        impl TryFrom<String> for $name {
            type Error = ParseIdError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                validate_extension(&s)?;
                Ok(Self(s))
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

extension_type!(
    /// A queue's extension on the PBX, e.g. `600`.
    QueueExtension
);
extension_type!(
    /// An agent's extension on the PBX, e.g. `101`.
    AgentExtension
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_are_validated() {
        assert!("600".parse::<QueueExtension>().is_ok());
        assert_eq!("".parse::<QueueExtension>(), Err(ParseIdError::Empty));
        assert!(matches!(
            "6 00".parse::<AgentExtension>(),
            Err(ParseIdError::BadCharacter(_))
        ));
    }
}
