//! Validated values of the chat domain.
//!
//! Input is parsed into these types at the edge (HTTP, config, bridges), so
//! the engine and the store never see an empty name, a malformed e-mail or a
//! guessable token. Each type says in its constructor what it accepts.

mod state;
pub mod text;

pub use state::{ConversationState, InvalidTransition};

use std::fmt;
use std::str::FromStr;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// Why a visitor-supplied value was refused. The API maps each variant to a
/// stable error code, so the widget can show the right warning.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInput {
    #[error("{field} cannot be empty")]
    Empty { field: &'static str },
    #[error("{field} is longer than {limit} characters")]
    TooLong { field: &'static str, limit: usize },
    #[error("this is not a valid e-mail address")]
    InvalidEmail,
    #[error("{field} must be an http or https URL")]
    InvalidUrl { field: &'static str },
}

/// Trims `raw`, drops the characters too dangerous to show to an agent
/// (see [`text`]: one-line fields lose every control, bidi and invisible
/// character; multi-line ones keep newlines and tabs), and checks the result
/// is neither empty nor longer than `limit` characters.
fn bounded_text(
    field: &'static str,
    raw: &str,
    limit: usize,
    multiline: bool,
) -> Result<String, InvalidInput> {
    let unsafe_char = if multiline {
        text::unsafe_in_text
    } else {
        text::unsafe_in_one_line
    };
    let cleaned = text::strip(raw, unsafe_char);
    let cleaned = cleaned.trim();
    if cleaned.is_empty() {
        return Err(InvalidInput::Empty { field });
    }
    if cleaned.chars().count() > limit {
        return Err(InvalidInput::TooLong { field, limit });
    }
    Ok(cleaned.to_owned())
}

/// A public identifier that is a UUID: the type, its JSON and schema form
/// (a string), `new()` from `$make`, `Default`, `Display` and `FromStr`.
macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $make:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        #[schema(value_type = String, format = Uuid)]
        pub struct $name(Uuid);

        impl $name {
            pub fn new() -> Self {
                Self($make())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// A conversation's public identifier (UUIDv7: sortable by creation time).
    ConversationId,
    Uuid::now_v7
);

impl ConversationId {
    /// The short form used in agent-facing addresses (`visitor-<short>`).
    pub fn short(&self) -> String {
        self.0.simple().to_string()
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

uuid_id!(
    /// A file's public identifier (random UUIDv4: not guessable, not sortable).
    FileId,
    Uuid::new_v4
);

/// Who started a conversation, for per-client caps: a SHA-256 of the
/// client's address key (IPv6 by /64), so the address itself is not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKey(String);

impl ClientKey {
    pub fn of(address_key: &str) -> ClientKey {
        ClientKey(hex::encode(Sha256::digest(address_key.as_bytes())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The client's id for one "send" of several files (1 to 64 visible ASCII
/// characters). Without one, a file is a batch of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchId(String);

impl BatchId {
    pub fn parse(raw: &str) -> Option<BatchId> {
        let ok = !raw.is_empty() && raw.len() <= 64 && raw.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| BatchId(raw.to_owned()))
    }

    /// The batch of the files a client sends without a batch id: one per
    /// conversation per minute, so the per-batch limit holds on the server
    /// for clients that send none (client ids are 1-64 characters without
    /// spaces, so none can be this one).
    pub fn unbatched(now: chrono::DateTime<chrono::Utc>) -> BatchId {
        BatchId(format!("unbatched {}", now.timestamp() / 60))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The longest channel key, in characters.
pub const MAX_CHANNEL_KEY_CHARS: usize = 64;

/// A channel's widget key, as pasted in the embed snippet.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChannelKey(String);

impl ChannelKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ChannelKey {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= MAX_CHANNEL_KEY_CHARS
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if ok {
            Ok(Self(s))
        } else {
            Err(format!(
                "a channel key is 1 to 64 letters, digits, '-' or '_', got {s:?}"
            ))
        }
    }
}

impl From<ChannelKey> for String {
    fn from(k: ChannelKey) -> String {
        k.0
    }
}

impl fmt::Display for ChannelKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The visitor's name as typed on the login screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct VisitorName(String);

impl VisitorName {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        bounded_text("name", raw, Self::MAX_CHARS, false).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A syntactically valid e-mail address (RFC 5321/5322 via `email_address`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub const MAX_CHARS: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let text = bounded_text("email", raw, Self::MAX_CHARS, false)?;
        // Require a dot in the domain: `jane@localhost` is valid RFC syntax
        // but never what a website visitor meant.
        let parsed =
            email_address::EmailAddress::from_str(&text).map_err(|_| InvalidInput::InvalidEmail)?;
        if !parsed.domain().contains('.') {
            return Err(InvalidInput::InvalidEmail);
        }
        Ok(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The page a visitor chats from, shown to agents: an absolute http(s) URL
/// of at most [`PageUrl::MAX_CHARS`], without credentials. Anything else
/// (another scheme, control or bidi characters, a relative path) is
/// refused, never cleaned up, so an agent never sees text a visitor forged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageUrl(String);

impl PageUrl {
    pub const MAX_CHARS: usize = 2048;

    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let field = "page_url";
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(InvalidInput::TooLong {
                field,
                limit: Self::MAX_CHARS,
            });
        }
        // The URL parser would quietly drop tabs and newlines: refuse them.
        if raw.chars().any(text::unsafe_in_one_line) {
            return Err(InvalidInput::InvalidUrl { field });
        }
        let url = url::Url::parse(raw).map_err(|_| InvalidInput::InvalidUrl { field })?;
        let web = matches!(url.scheme(), "http" | "https") && url.host().is_some();
        if !web || !url.username().is_empty() || url.password().is_some() {
            return Err(InvalidInput::InvalidUrl { field });
        }
        let url = String::from(url);
        if url.chars().count() > Self::MAX_CHARS {
            return Err(InvalidInput::TooLong {
                field,
                limit: Self::MAX_CHARS,
            });
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A chat message's text, trimmed, non-empty and within the channel limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBody(String);

impl MessageBody {
    pub fn parse(raw: &str, limit: usize) -> Result<Self, InvalidInput> {
        bounded_text("message", raw, limit, true).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// The id a client chose for a message so that its retries are idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientMessageId(String);

impl ClientMessageId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ClientMessageId {
    type Error = InvalidInput;
    fn try_from(s: String) -> Result<Self, InvalidInput> {
        if s.is_empty() {
            return Err(InvalidInput::Empty { field: "client_id" });
        }
        if s.len() > 64 || !s.chars().all(|c| c.is_ascii_graphic()) {
            return Err(InvalidInput::TooLong {
                field: "client_id",
                limit: 64,
            });
        }
        Ok(Self(s))
    }
}

impl From<ClientMessageId> for String {
    fn from(c: ClientMessageId) -> String {
        c.0
    }
}

/// The secret a visitor's browser holds for one conversation. 256 random
/// bits, shown once; only its SHA-256 is stored.
pub struct VisitorToken(String);

impl VisitorToken {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(hex::encode(bytes))
    }

    pub fn from_presented(raw: &str) -> Self {
        Self(raw.to_owned())
    }

    pub fn reveal(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash(hex::encode(Sha256::digest(self.0.as_bytes())))
    }
}

impl fmt::Debug for VisitorToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VisitorToken(…)")
    }
}

/// The stored form of a [`VisitorToken`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHash(pub String);

impl TokenHash {
    /// Compares in constant time, so response timing reveals nothing.
    pub fn matches(&self, presented: &VisitorToken) -> bool {
        self.0
            .as_bytes()
            .ct_eq(presented.hash().0.as_bytes())
            .into()
    }
}

/// Who wrote a message or caused an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Party {
    Visitor,
    Agent,
    System,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(VisitorName::parse("  Jane ").unwrap().as_str(), "Jane");
        assert_eq!(
            VisitorName::parse("   "),
            Err(InvalidInput::Empty { field: "name" })
        );
        assert!(matches!(
            VisitorName::parse(&"x".repeat(101)),
            Err(InvalidInput::TooLong { .. })
        ));
    }

    #[test]
    fn emails_need_a_real_domain() {
        assert!(Email::parse("jane@example.com").is_ok());
        assert_eq!(Email::parse("jane@"), Err(InvalidInput::InvalidEmail));
        assert_eq!(
            Email::parse("jane@localhost"),
            Err(InvalidInput::InvalidEmail)
        );
        assert_eq!(
            Email::parse("not an email"),
            Err(InvalidInput::InvalidEmail)
        );
    }

    #[test]
    fn message_bodies_keep_newlines_but_drop_other_controls() {
        let body = MessageBody::parse("a\nb\u{7}c", 10).unwrap();
        assert_eq!(body.as_str(), "a\nbc");
    }

    #[test]
    fn names_cannot_forge_lines_or_reorder_text() {
        let name = VisitorName::parse("Jane\nVerified: ID checked\u{202E}").unwrap();
        assert_eq!(name.as_str(), "JaneVerified: ID checked");
        assert_eq!(
            VisitorName::parse("\u{202E}\u{200B}"),
            Err(InvalidInput::Empty { field: "name" })
        );
    }

    #[test]
    fn page_urls_are_web_urls_or_refused() {
        assert_eq!(
            PageUrl::parse("https://shop.example/cart?id=3#pay")
                .unwrap()
                .as_str(),
            "https://shop.example/cart?id=3#pay"
        );
        let invalid = Err(InvalidInput::InvalidUrl { field: "page_url" });
        for raw in [
            "https://shop.example/\nVerified: ID checked",
            "https://shop.example/\u{202E}gpj.exe",
            "javascript:alert(1)",
            "file:///etc/passwd",
            "/relative/path",
            "https://user:secret@shop.example/",
            "not a url",
        ] {
            assert_eq!(PageUrl::parse(raw), invalid, "{raw:?}");
        }
        assert!(matches!(
            PageUrl::parse(&format!("https://shop.example/{}", "a".repeat(2100))),
            Err(InvalidInput::TooLong { .. })
        ));
    }

    #[test]
    fn tokens_match_only_their_hash() {
        let token = VisitorToken::generate();
        assert_eq!(token.reveal().len(), 64);
        let hash = token.hash();
        assert!(hash.matches(&VisitorToken::from_presented(token.reveal())));
        assert!(!hash.matches(&VisitorToken::generate()));
    }
}
