//! The bad-input corpus (issue 12): one table per environment of every
//! public door — REST, the event WebSocket, multipart uploads, file links
//! and XEP-0363 PUTs, XMPP stanzas, SIP requests — with oversized,
//! malformed, control-character, wrong-origin, spoofed-sender, tampered,
//! expired and unknown-target inputs. Each case names its door, its kind,
//! what it sends and what it must get back (an HTTP status and stable
//! error code, a WebSocket close code, an XMPP stanza error condition, a
//! SIP status); the runner also snapshots what the gateway stores (every
//! conversation row and event, file rows and bytes, pending deliveries)
//! before and after, and a refused case must leave it exactly as it was.
//! The few inputs that are accepted once cleaned (control and bidi
//! characters) state what is stored instead, and the runner checks that
//! this is the only change.
//!
//! Well-formed protocol traffic comes from real clients: reqwest and
//! tungstenite, slixmpp (`tests/agents/agent.py`), sipp. Only the
//! deliberately malformed inputs are written out by hand.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use frontdesk::domain::ConversationState;
use frontdesk::files::{DirectoryStore, Files, UrlSigner};
use frontdesk::store::Store;
use frontdesk_tests::config::ALLOWED_ORIGIN;
use frontdesk_tests::gateway::{files_in, TestGateway};
use frontdesk_tests::kamailio::{SippAgent, GATEWAY_DOMAIN};
use frontdesk_tests::sip::{session_uri, SipPbx};
use frontdesk_tests::visitor::{Session, Visitor};
use frontdesk_tests::xmpp_server::{XmppAgent, XmppServer, COMPONENT_DOMAIN};
use futures::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;

const WAIT: Duration = Duration::from_secs(20);
const SIGNING_KEY: &str = "bad-input-corpus-signing-key-0123456789";
const FOREIGN_ORIGIN: &str = "https://evil.example";
/// The live channel's file limit in these tests (small, so "one byte
/// over" is cheap to send).
const FILE_LIMIT: usize = 64 * 1024;

/// Which public door a case knocks on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Door {
    Rest,
    WebSocket,
    Multipart,
    /// Agents' signed download links and visitors' downloads.
    FileLink,
    /// XEP-0363 PUT URLs.
    Put,
    XmppStanza,
    SipRequest,
}

/// What is wrong with the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Oversized,
    Malformed,
    ControlChars,
    WrongOrigin,
    SpoofedSender,
    Tampered,
    Expired,
    /// A target that does not exist (conversation, channel, slot, file).
    Unknown,
}

/// What the gateway must answer, and what it may store.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    /// This HTTP status and stable `error` code; nothing stored.
    Http(u16, &'static str),
    /// The WebSocket is closed with this code; nothing stored.
    Close(u16),
    /// The WebSocket frame is ignored: the socket stays open (a ping is
    /// answered) and nothing is stored.
    Ignored,
    /// Accepted once cleaned: a conversation started under this visitor
    /// name is the only change.
    StartedAs(&'static str),
    /// Accepted once cleaned: one visitor message with this body is the
    /// only change.
    StoredMessage(&'static str),
    /// Accepted once cleaned: one file under this name (and its message)
    /// is the only change.
    StoredFile(&'static str),
    /// An XMPP stanza error with this condition; nothing stored.
    StanzaError(&'static str),
    /// A SIP final response with this status; nothing stored.
    Sip(u16),
}

/// An event as the snapshot keeps it: seq, kind, payload.
type Event = (i64, String, Value);

/// One conversation as the snapshot keeps it: its row (as text: the type
/// has no `PartialEq`), its events and its file rows.
type Kept = (String, Vec<Event>, Vec<String>);

/// Everything a gateway keeps that bad input could change.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    conversations: BTreeMap<String, Kept>,
    deliveries: usize,
    /// Committed file names in the store, and partial ones.
    stored_files: Vec<String>,
    partial_files: Vec<String>,
}

impl Snapshot {
    async fn take(store: &Store, data_dir: &Path) -> Snapshot {
        let mut conversations = BTreeMap::new();
        let rows = store
            .conversations_in_states(&ConversationState::ALL)
            .await
            .unwrap();
        for row in rows {
            let events = store.events_after(row.id, 0, 10_000).await.unwrap();
            let events = events
                .into_iter()
                .map(|e| (e.seq, e.kind, e.payload))
                .collect();
            let files = store.files_of_conversation(row.id).await.unwrap();
            let files = files.iter().map(|f| format!("{f:?}")).collect();
            conversations.insert(row.id.to_string(), (format!("{row:?}"), events, files));
        }
        Snapshot {
            conversations,
            deliveries: store.deliveries_pending(i64::MAX).await.unwrap().len(),
            stored_files: files_in(&data_dir.join("files")),
            partial_files: files_in(&data_dir.join("files/tmp")),
        }
    }

    /// Events of `id` stored after `before`'s.
    fn new_events(&self, before: &Snapshot, id: &str) -> Vec<Event> {
        let old = before.conversations.get(id).map_or(0, |c| c.1.len());
        self.conversations
            .get(id)
            .map_or(Vec::new(), |c| c.1[old..].to_vec())
    }
}

/// A case of the table.
struct Case<I> {
    door: Door,
    kind: Kind,
    what: &'static str,
    input: I,
    expect: Expect,
}

impl<I> fmt::Display for Case<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}/{:?}: {}", self.door, self.kind, self.what)
    }
}

/// Prints which doors and kinds a table covered.
fn coverage<I>(cases: &[Case<I>]) {
    let mut grid: BTreeMap<Door, BTreeMap<Kind, usize>> = BTreeMap::new();
    for case in cases {
        *grid
            .entry(case.door)
            .or_default()
            .entry(case.kind)
            .or_default() += 1;
    }
    eprintln!("{} cases: {grid:?}", cases.len());
}

// ---------------------------------------------------------------------------
// HTTP doors: REST, WebSocket, multipart, file links, PUT.

/// Which conversation a request is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conv {
    /// The reference conversation (waiting, with a message and a file).
    A,
    /// Another conversation.
    B,
    /// An ended conversation.
    Ended,
    /// A conversation of the second gateway whose token has expired.
    Expired,
    /// A well-formed id nobody holds.
    Unknown,
    /// Not an id at all.
    Garbage,
}

/// Which `Authorization` a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// The conversation's own token.
    Own,
    /// The token with one character changed.
    Tampered,
    /// Conversation B's token.
    OtherConversation,
    None,
}

#[derive(Debug, Clone)]
enum Body {
    Json(Value),
    Raw(&'static str, Vec<u8>),
}

/// A file part (or not) of an upload.
#[derive(Debug, Clone)]
enum Form {
    File(&'static str, Vec<u8>),
    NoFile,
    /// A multipart content type with a body that is not multipart.
    Garbage,
}

/// An agent's download link, and what is done to it.
#[derive(Debug, Clone, Copy)]
enum Link {
    FlippedSignature,
    PastExpiry,
    PushedBackExpiry,
    NoSignature,
    /// A's valid signature on another file id.
    OtherFile,
}

/// The first frame a WebSocket client sends.
#[derive(Debug, Clone)]
enum Frame {
    /// `{"type": "auth", "token": …}` with the given token.
    Auth(Token),
    Text(String),
    Binary(Vec<u8>),
    /// A raw frame header announcing this many payload bytes, and 1 KiB.
    Announcing(u64),
    /// A valid auth, then this text frame.
    AfterAuth(String),
}

#[derive(Debug, Clone)]
enum Http {
    /// `METHOD path` where `{conv}` is the conversation's id.
    Rest {
        method: Method,
        path: &'static str,
        conv: Conv,
        token: Token,
        origin: Option<&'static str>,
        body: Option<Body>,
    },
    Upload {
        conv: Conv,
        token: Token,
        origin: Option<&'static str>,
        form: Form,
    },
    AgentLink(Link),
    /// A visitor's download of A's file through `conv`'s files.
    VisitorDownload {
        conv: Conv,
        token: Token,
    },
    Put(&'static str),
    Socket {
        conv: Conv,
        origin: Option<&'static str>,
        first: Frame,
    },
}

fn rest(method: Method, path: &'static str, conv: Conv, token: Token) -> Http {
    Http::Rest {
        method,
        path,
        conv,
        token,
        origin: Some(ALLOWED_ORIGIN),
        body: None,
    }
}

fn start(body: Body) -> Http {
    Http::Rest {
        method: Method::POST,
        path: "/api/v1/channels/live/conversations",
        conv: Conv::A,
        token: Token::None,
        origin: Some(ALLOWED_ORIGIN),
        body: Some(body),
    }
}

fn start_json(name: &str, email: &str, page_url: &str) -> Http {
    start(Body::Json(
        json!({ "name": name, "email": email, "page_url": page_url }),
    ))
}

fn say(token: Token, conv: Conv, body: Body) -> Http {
    Http::Rest {
        method: Method::POST,
        path: "/api/v1/conversations/{conv}/messages",
        conv,
        token,
        origin: Some(ALLOWED_ORIGIN),
        body: Some(body),
    }
}

fn say_at(path: &'static str, token: Token, conv: Conv, body: Body) -> Http {
    at(path, say(token, conv, body))
}

/// The same request from [`FOREIGN_ORIGIN`].
fn foreign(mut input: Http) -> Http {
    match &mut input {
        Http::Rest { origin, .. } | Http::Upload { origin, .. } | Http::Socket { origin, .. } => {
            *origin = Some(FOREIGN_ORIGIN)
        }
        _ => unreachable!("no origin to change"),
    }
    input
}

/// The same REST request to another path.
fn at(to: &'static str, mut input: Http) -> Http {
    let Http::Rest { path, .. } = &mut input else {
        unreachable!("not a REST request")
    };
    *path = to;
    input
}

fn text(body: &str) -> Body {
    Body::Json(json!({ "client_id": uuid::Uuid::new_v4().to_string(), "body": body }))
}

fn upload(conv: Conv, token: Token, form: Form) -> Http {
    Http::Upload {
        conv,
        token,
        origin: Some(ALLOWED_ORIGIN),
        form,
    }
}

fn socket(conv: Conv, first: Frame) -> Http {
    Http::Socket {
        conv,
        origin: Some(ALLOWED_ORIGIN),
        first,
    }
}

#[rustfmt::skip]
fn http_cases() -> Vec<Case<Http>> {
    use Door::*;
    use Expect::{Close, Http as Status};
    use Kind::*;
    let case = |door, kind, what, input, expect| Case {
        door,
        kind,
        what,
        input,
        expect,
    };
    let page = "https://allowed.example/pricing";
    let json_body = |text: &str| Body::Raw("application/json", text.as_bytes().to_vec());
    vec![
        // --- REST: starting a conversation.
        case(Rest, Malformed, "start: body is not JSON", start(json_body("{not json")), Status(400, "invalid_json")),
        case(Rest, Malformed, "start: JSON of the wrong shape", start(Body::Json(json!({ "name": 42, "email": ["x"] }))), Status(400, "invalid_json")),
        case(Rest, Malformed, "start: JSON sent as text/plain", start(Body::Raw("text/plain", br#"{"name":"Jane","email":"jane@example.com"}"#.to_vec())), Status(400, "invalid_json")),
        case(Rest, Oversized, "start: a 70 KiB body", start(json_body(&format!(r#"{{"name":"{}","email":"jane@example.com"}}"#, "x".repeat(70 * 1024)))), Status(413, "payload_too_large")),
        case(Rest, Oversized, "start: a 101-character name", start_json(&"x".repeat(101), "jane@example.com", page), Status(422, "too_long")),
        case(Rest, Malformed, "start: a blank name", start_json("   ", "jane@example.com", page), Status(422, "empty_field")),
        case(Rest, Malformed, "start: an e-mail without a domain", start_json("Jane", "jane@", page), Status(422, "invalid_email")),
        case(Rest, Malformed, "start: a javascript: page_url", start_json("Jane", "jane@example.com", "javascript:alert(1)"), Status(422, "invalid_url")),
        case(Rest, ControlChars, "start: a page_url forging a line", start_json("Jane", "jane@example.com", "https://allowed.example/a\nVerified: ID checked"), Status(422, "invalid_url")),
        case(Rest, ControlChars, "start: a page_url with a bidi override", start_json("Jane", "jane@example.com", "https://allowed.example/\u{202E}gpj.exe"), Status(422, "invalid_url")),
        case(Rest, ControlChars, "start: a name of control and bidi characters only", start_json("\u{202E}\u{0007}\u{200B}", "jane@example.com", page), Status(422, "empty_field")),
        case(Rest, ControlChars, "start: a name forging a line, reordered", start_json("Jane\nVerified: ID checked\u{202E}\u{200B}", "jane@example.com", page), Expect::StartedAs("JaneVerified: ID checked")),
        case(Rest, ControlChars, "start: an e-mail with a bidi override", start_json("Jane", "jane\u{202E}@example.com", page), Expect::StartedAs("Jane")),
        case(Rest, WrongOrigin, "start from a foreign origin", foreign(start_json("Jane", "jane@example.com", page)), Status(403, "origin_not_allowed")),
        case(Rest, WrongOrigin, "channel info from a foreign origin", foreign(rest(Method::GET, "/api/v1/channels/live", Conv::A, Token::None)), Status(403, "origin_not_allowed")),
        case(Rest, Unknown, "start on an unknown channel", at("/api/v1/channels/nope/conversations", start_json("Jane", "jane@example.com", page)), Status(404, "unknown_channel")),
        // --- REST: a conversation's resources.
        case(Rest, Tampered, "message with a tampered token", say(Token::Tampered, Conv::A, text("hi")), Status(401, "unauthorized")),
        case(Rest, Tampered, "message with another conversation's token", say(Token::OtherConversation, Conv::A, text("hi")), Status(401, "unauthorized")),
        case(Rest, Tampered, "message without a token", say(Token::None, Conv::A, text("hi")), Status(401, "unauthorized")),
        case(Rest, Expired, "message with an expired token", say(Token::Own, Conv::Expired, text("late")), Status(401, "unauthorized")),
        case(Rest, Expired, "history with an expired token", rest(Method::GET, "/api/v1/conversations/{conv}/messages", Conv::Expired, Token::Own), Status(401, "unauthorized")),
        case(Rest, Tampered, "close with a tampered token", say_at("/api/v1/conversations/{conv}/close", Token::Tampered, Conv::A, Body::Json(json!({}))), Status(401, "unauthorized")),
        case(Rest, Oversized, "a 4001-character message", say(Token::Own, Conv::A, text(&"y".repeat(4001))), Status(422, "too_long")),
        case(Rest, Oversized, "a message over the body limit", say(Token::Own, Conv::A, json_body(&format!(r#"{{"client_id":"c","body":"{}"}}"#, "y".repeat(70 * 1024)))), Status(413, "payload_too_large")),
        case(Rest, Malformed, "a blank message", say(Token::Own, Conv::A, text("  \n ")), Status(422, "empty_message")),
        case(Rest, Malformed, "a message that is not JSON", say(Token::Own, Conv::A, json_body("{\"client_id\": ")), Status(400, "invalid_json")),
        case(Rest, ControlChars, "a message of control and bidi characters only", say(Token::Own, Conv::A, text("\u{202E}\u{0007}\u{200B}")), Status(422, "empty_message")),
        case(Rest, ControlChars, "a message with a bidi override and control characters", say(Token::Own, Conv::A, text("Pay\u{202E}fdp.exe\u{0007}\u{200B} now\nok\u{200F}")), Expect::StoredMessage("Payfdp.exe now\nok\u{200F}")),
        case(Rest, WrongOrigin, "message from a foreign origin", foreign(say(Token::Own, Conv::A, text("hi"))), Status(403, "origin_not_allowed")),
        case(Rest, Unknown, "a conversation id that is not one", rest(Method::GET, "/api/v1/conversations/{conv}", Conv::Garbage, Token::Own), Status(404, "unknown_conversation")),
        case(Rest, Unknown, "an unknown conversation", say(Token::Own, Conv::Unknown, text("hi")), Status(404, "unknown_conversation")),
        case(Rest, Unknown, "a message to an ended conversation", say(Token::Own, Conv::Ended, text("still there?")), Status(409, "conversation_ended")),
        // --- Multipart uploads.
        case(Multipart, Tampered, "upload with a tampered token", upload(Conv::A, Token::Tampered, Form::File("a.txt", b"text".to_vec())), Status(401, "unauthorized")),
        case(Multipart, Expired, "upload with an expired token", upload(Conv::Expired, Token::Own, Form::File("a.txt", b"text".to_vec())), Status(401, "unauthorized")),
        case(Multipart, WrongOrigin, "upload from a foreign origin", foreign(upload(Conv::A, Token::Own, Form::File("a.txt", b"text".to_vec()))), Status(403, "origin_not_allowed")),
        case(Multipart, Oversized, "one byte over the channel's file limit", upload(Conv::A, Token::Own, Form::File("big.bin", vec![b'a'; FILE_LIMIT + 1])), Status(413, "file_too_large")),
        case(Multipart, Malformed, "a form without a file part", upload(Conv::A, Token::Own, Form::NoFile), Status(400, "invalid_upload")),
        case(Multipart, Malformed, "a body that is not multipart", upload(Conv::A, Token::Own, Form::Garbage), Status(400, "invalid_upload")),
        case(Multipart, Malformed, "an empty file", upload(Conv::A, Token::Own, Form::File("empty.txt", Vec::new())), Status(422, "empty_file")),
        case(Multipart, Tampered, "HTML named .txt", upload(Conv::A, Token::Own, Form::File("page.txt", b"<html><script>alert(1)</script></html>".to_vec())), Status(415, "file_type_not_allowed")),
        case(Multipart, Tampered, "a name that runs code where it is opened", upload(Conv::A, Token::Own, Form::File("invoice.html", b"plain words".to_vec())), Status(415, "file_type_not_allowed")),
        case(Multipart, ControlChars, "a bidi override hiding .exe", upload(Conv::A, Token::Own, Form::File("invoice\u{202E}fdp.exe", b"plain words".to_vec())), Status(415, "file_type_not_allowed")),
        case(Multipart, ControlChars, "a traversal name with a bidi override", upload(Conv::A, Token::Own, Form::File("../../tmp/invoice\u{202E}fdp.txt", b"plain words".to_vec())), Expect::StoredFile("invoicefdp.txt")),
        case(Multipart, Unknown, "upload to an ended conversation", upload(Conv::Ended, Token::Own, Form::File("late.txt", b"text".to_vec())), Status(409, "conversation_ended")),
        case(Multipart, Unknown, "upload to an unknown conversation", upload(Conv::Unknown, Token::Own, Form::File("a.txt", b"text".to_vec())), Status(404, "unknown_conversation")),
        // --- File links.
        case(FileLink, Tampered, "agent link with a flipped signature", Http::AgentLink(Link::FlippedSignature), Status(403, "invalid_link")),
        case(FileLink, Expired, "agent link past its expiry", Http::AgentLink(Link::PastExpiry), Status(403, "invalid_link")),
        case(FileLink, Tampered, "agent link with its expiry pushed back", Http::AgentLink(Link::PushedBackExpiry), Status(403, "invalid_link")),
        case(FileLink, Malformed, "agent link without a signature", Http::AgentLink(Link::NoSignature), Status(403, "invalid_link")),
        case(FileLink, Tampered, "a valid signature on another file", Http::AgentLink(Link::OtherFile), Status(403, "invalid_link")),
        case(FileLink, Tampered, "visitor download with a tampered token", Http::VisitorDownload { conv: Conv::A, token: Token::Tampered, }, Status(401, "unauthorized")),
        case(FileLink, SpoofedSender, "visitor download of another conversation's file", Http::VisitorDownload { conv: Conv::B, token: Token::Own, }, Status(404, "unknown_file")),
        case(FileLink, Expired, "visitor download with an expired token", Http::VisitorDownload { conv: Conv::Expired, token: Token::Own, }, Status(401, "unauthorized")),
        // --- XEP-0363 PUT URLs.
        case(Put, Tampered, "PUT to a made-up slot", Http::Put("/upload/0123456789abcdef0123456789abcdef/a.txt"), Status(404, "unknown_slot")),
        case(Put, Malformed, "PUT to a slot id that is not one", Http::Put("/upload/..%2F..%2Fetc/passwd"), Status(404, "unknown_slot")),
        // --- The event WebSocket.
        case(WebSocket, WrongOrigin, "stream from a foreign origin", foreign(socket(Conv::A, Frame::Auth(Token::Own))), Close(4403)),
        case(WebSocket, Unknown, "stream of an unknown conversation", socket(Conv::Unknown, Frame::Auth(Token::Own)), Close(4404)),
        case(WebSocket, Unknown, "stream of a conversation id that is not one", socket(Conv::Garbage, Frame::Auth(Token::Own)), Close(4404)),
        case(WebSocket, Tampered, "auth with a tampered token", socket(Conv::A, Frame::Auth(Token::Tampered)), Close(4401)),
        case(WebSocket, Tampered, "auth with another conversation's token", socket(Conv::A, Frame::Auth(Token::OtherConversation)), Close(4401)),
        case(WebSocket, Expired, "auth with an expired token", socket(Conv::Expired, Frame::Auth(Token::Own)), Close(4401)),
        case(WebSocket, Malformed, "a first frame that is not JSON", socket(Conv::A, Frame::Text("{\"type\": \"auth\", \"tok".into())), Close(4401)),
        case(WebSocket, Malformed, "a binary first frame", socket(Conv::A, Frame::Binary(vec![0, 159, 146, 150])), Close(4401)),
        case(WebSocket, Malformed, "a typing frame before auth", socket(Conv::A, Frame::Text(r#"{"type":"typing","state":"composing"}"#.into())), Close(4401)),
        case(WebSocket, Oversized, "a frame header announcing 10 MiB", socket(Conv::A, Frame::Announcing(10 << 20)), Close(1009)),
        case(WebSocket, Oversized, "an auth frame over the frame cap", socket(Conv::A, Frame::Text(json!({ "type": "auth", "token": "f".repeat(20_000) }).to_string())), Close(1009)),
        case(WebSocket, Malformed, "garbage after auth", socket(Conv::A, Frame::AfterAuth("\u{0}\u{7}not json".into())), Expect::Ignored),
        case(WebSocket, ControlChars, "a typing frame with a made-up state", socket(Conv::A, Frame::AfterAuth("{\"type\":\"typing\",\"state\":\"\u{202E}composing\"}".into())), Expect::Ignored),
    ]
}

/// The gateways and conversations the HTTP cases run against.
struct HttpWorld {
    gw: TestGateway,
    /// A gateway with a one-second token lifetime, for expired tokens.
    short: TestGateway,
    a: Session,
    b: Session,
    ended: Session,
    expired: Session,
    /// A's file.
    file_id: String,
    http: reqwest::Client,
}

impl HttpWorld {
    async fn start() -> HttpWorld {
        let adjust = |c: &mut frontdesk::config::Config| {
            c.files.signing_key = Some(SIGNING_KEY.into());
            c.channels[0].limits.max_file_bytes = FILE_LIMIT as u64;
        };
        let gw = TestGateway::spawn_with(adjust).await;
        let short = TestGateway::spawn_with(|c| c.server.visitor_token_ttl_secs = 1).await;
        let visitor = Visitor::new(&gw.url).with_origin(ALLOWED_ORIGIN);
        let a = visitor.start("live", "Alice Visitor").await.unwrap();
        let b = visitor.start("live", "Bob Visitor").await.unwrap();
        let ended = visitor.start("live", "Ended Visitor").await.unwrap();
        assert_eq!(visitor.say(&a, "a-1", "first").await.unwrap().status, 201);
        let uploaded = visitor
            .upload(&a, "notes.txt", b"some notes".to_vec())
            .await
            .unwrap();
        assert_eq!(uploaded.status, 201, "{}", uploaded.body);
        let file_id = uploaded.body["attachment"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(visitor.close(&ended).await.unwrap().status, 200);

        let short_visitor = Visitor::new(&short.url).with_origin(ALLOWED_ORIGIN);
        let expired = short_visitor.start("live", "Late Visitor").await.unwrap();
        // Waits for the lifetime to pass (time itself is the input here).
        tokio::time::timeout(WAIT, async {
            while short_visitor.messages(&expired).await.unwrap().status != 401 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .expect("the token never expired");
        HttpWorld {
            gw,
            short,
            a,
            b,
            ended,
            expired,
            file_id,
            http: reqwest::Client::new(),
        }
    }

    async fn snapshot(&self) -> (Snapshot, Snapshot) {
        (
            Snapshot::take(self.gw.engine.store(), self.gw.data_dir()).await,
            Snapshot::take(self.short.engine.store(), self.short.data_dir()).await,
        )
    }

    /// The gateway URL and session a case addresses.
    fn target(&self, conv: Conv) -> (&str, Session) {
        let (url, session) = match conv {
            Conv::A => (&self.gw.url, self.a.clone()),
            Conv::B => (&self.gw.url, self.b.clone()),
            Conv::Ended => (&self.gw.url, self.ended.clone()),
            Conv::Expired => (&self.short.url, self.expired.clone()),
            Conv::Unknown => (
                &self.gw.url,
                Session {
                    id: uuid::Uuid::new_v4().to_string(),
                    token: self.a.token.clone(),
                },
            ),
            Conv::Garbage => (
                &self.gw.url,
                Session {
                    id: "not-a-uuid".into(),
                    token: self.a.token.clone(),
                },
            ),
        };
        (url.as_str(), session)
    }

    fn token(&self, session: &Session, token: Token) -> Option<String> {
        match token {
            Token::Own => Some(session.token.clone()),
            Token::Tampered => Some(tamper(&session.token)),
            Token::OtherConversation => Some(self.b.token.clone()),
            Token::None => None,
        }
    }

    fn files(&self) -> Files {
        Files::new(
            Arc::new(DirectoryStore::new(self.gw.data_dir().join("files"))),
            UrlSigner::with_key(SIGNING_KEY.as_bytes()),
            Default::default(),
            url::Url::parse(&format!("{}/", self.gw.url)).unwrap(),
            3600,
            0,
        )
    }

    /// Sends a case's input; the answer, as an [`Expect`] to compare, and
    /// the JSON body of an HTTP answer.
    async fn send(&self, input: &Http) -> (Expect, Value) {
        let request = match input {
            Http::Rest {
                method,
                path,
                conv,
                token,
                origin,
                body,
            } => {
                let (url, session) = self.target(*conv);
                let path = path.replace("{conv}", &session.id);
                let mut request = self.http.request(method.clone(), format!("{url}{path}"));
                request = with(request, self.token(&session, *token), *origin);
                match body {
                    Some(Body::Json(value)) => request.json(value),
                    Some(Body::Raw(content_type, bytes)) => request
                        .header("content-type", *content_type)
                        .body(bytes.clone()),
                    None => request,
                }
            }
            Http::Upload {
                conv,
                token,
                origin,
                form,
            } => {
                let (url, session) = self.target(*conv);
                let path = format!("{url}/api/v1/conversations/{}/files", session.id);
                let request = with(self.http.post(path), self.token(&session, *token), *origin);
                match form {
                    Form::File(name, bytes) => request.multipart(
                        reqwest::multipart::Form::new().percent_encode_noop().part(
                            "file",
                            reqwest::multipart::Part::bytes(bytes.clone()).file_name(*name),
                        ),
                    ),
                    Form::NoFile => {
                        request.multipart(reqwest::multipart::Form::new().text("note", "no file"))
                    }
                    Form::Garbage => request
                        .header("content-type", "multipart/form-data; boundary=xyz")
                        .body("this is not a multipart body at all"),
                }
            }
            Http::AgentLink(link) => {
                let url = self.agent_link(*link);
                self.http.get(format!("{}{url}", self.gw.url))
            }
            Http::VisitorDownload { conv, token } => {
                let (url, session) = self.target(*conv);
                let path = format!(
                    "{url}/api/v1/conversations/{}/files/{}",
                    session.id, self.file_id
                );
                with(self.http.get(path), self.token(&session, *token), None)
            }
            Http::Put(path) => self
                .http
                .put(format!("{}{path}", self.gw.url))
                .body(b"hello".to_vec()),
            Http::Socket {
                conv,
                origin,
                first,
            } => return (self.socket(*conv, *origin, first).await, Value::Null),
        };
        let response = request.send().await.expect("the gateway answers");
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let code = body["error"].as_str().unwrap_or_default().to_owned();
        let expect = match status {
            201 if body["conversation_id"].is_string() => {
                Expect::StartedAs(leak(body["conversation"]["visitor"]["name"].as_str()))
            }
            201 if body["attachment"].is_object() => {
                Expect::StoredFile(leak(body["attachment"]["name"].as_str()))
            }
            201 => Expect::StoredMessage(leak(body["body"].as_str())),
            _ => Expect::Http(status, leak(Some(&code))),
        };
        (expect, body)
    }

    fn agent_link(&self, link: Link) -> String {
        let files = self.files();
        let id = self.file_id.parse().unwrap();
        let valid = files.agent_link(&id).unwrap();
        let param = |name: &str| {
            valid
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .unwrap()
        };
        let (path, expires, sig) = (valid.path().to_owned(), param("expires"), param("sig"));
        match link {
            Link::FlippedSignature => format!("{path}?expires={expires}&sig={}", tamper(&sig)),
            Link::PastExpiry => {
                let past = files
                    .agent_link_until(&id, chrono::Utc::now().timestamp() - 1)
                    .unwrap();
                format!("{}?{}", past.path(), past.query().unwrap())
            }
            Link::PushedBackExpiry => {
                let later: i64 = expires.parse::<i64>().unwrap() + 3600;
                format!("{path}?expires={later}&sig={sig}")
            }
            Link::NoSignature => format!("{path}?expires={expires}"),
            Link::OtherFile => format!(
                "/files/{}?expires={expires}&sig={sig}",
                uuid::Uuid::new_v4()
            ),
        }
    }

    /// Opens the event stream, sends `first`, and reports how it ended.
    async fn socket(&self, conv: Conv, origin: Option<&str>, first: &Frame) -> Expect {
        let (url, session) = self.target(conv);
        let ws = url.replacen("http", "ws", 1);
        let mut request = format!("{ws}/api/v1/conversations/{}/events", session.id)
            .into_client_request()
            .unwrap();
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", HeaderValue::from_str(origin).unwrap());
        }
        let (mut socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("the upgrade is accepted");
        let auth = |token: Token| {
            let token = self.token(&session, token).unwrap_or_default();
            Message::Text(
                json!({ "type": "auth", "token": token, "since": 0 })
                    .to_string()
                    .into(),
            )
        };
        let sent = match first {
            Frame::Auth(token) => socket.send(auth(*token)).await,
            Frame::Text(text) => socket.send(Message::Text(text.clone().into())).await,
            Frame::Binary(bytes) => socket.send(Message::Binary(bytes.clone().into())).await,
            Frame::Announcing(len) => {
                let mut frame = vec![0x81, 0x80 | 127];
                frame.extend_from_slice(&len.to_be_bytes());
                frame.extend_from_slice(&[1, 2, 3, 4]);
                frame.extend_from_slice(&[b'x'; 1024]);
                let MaybeTlsStream::Plain(tcp) = socket.get_mut() else {
                    unreachable!("the test gateway serves plain HTTP")
                };
                tcp.write_all(&frame).await.map_err(Into::into)
            }
            Frame::AfterAuth(text) => {
                socket.send(auth(Token::Own)).await.unwrap();
                socket.send(Message::Text(text.clone().into())).await
            }
        };
        // A refused socket may already be closing while we write.
        drop(sent);
        let mut pinged = false;
        loop {
            if matches!(first, Frame::AfterAuth(_)) && !pinged {
                socket
                    .send(Message::Ping(b"still-open".to_vec().into()))
                    .await
                    .unwrap();
                pinged = true;
            }
            let next = tokio::time::timeout(WAIT, socket.next())
                .await
                .expect("the socket answers or closes");
            match next {
                Some(Ok(Message::Close(frame))) => {
                    return Expect::Close(frame.map_or(1005, |f| u16::from(f.code)));
                }
                Some(Ok(Message::Pong(payload))) if &payload[..] == b"still-open" => {
                    let _ = socket.close(None).await;
                    return Expect::Ignored;
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("socket error instead of a close: {e}"),
                None => panic!("the socket ended without a close frame"),
            }
        }
    }

    async fn stop(self) {
        self.gw.stop().await;
        self.short.stop().await;
    }
}

fn with(
    mut request: reqwest::RequestBuilder,
    token: Option<String>,
    origin: Option<&str>,
) -> reqwest::RequestBuilder {
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    request
}

/// `secret` with its first character changed.
fn tamper(secret: &str) -> String {
    let first = if secret.starts_with('0') { "1" } else { "0" };
    format!("{first}{}", &secret[1..])
}

/// A `'static` copy, so answers compare with the table's literals.
fn leak(text: Option<&str>) -> &'static str {
    Box::leak(text.unwrap_or_default().to_owned().into_boxed_str())
}

#[tokio::test]
async fn every_http_door_refuses_bad_input_with_a_clear_error_and_changes_nothing() {
    let world = HttpWorld::start().await;
    let cases = http_cases();
    coverage(&cases);
    let mut failures = Vec::new();
    for case in &cases {
        let before = world.snapshot().await;
        let (got, body) = world.send(&case.input).await;
        let after = world.snapshot().await;
        if got != case.expect {
            failures.push(format!(
                "{case}: expected {:?}, got {got:?} {body}",
                case.expect
            ));
            continue;
        }
        let (gw_before, short_before) = &before;
        let (gw_after, short_after) = &after;
        let unchanged_elsewhere = short_before == short_after;
        let changed_as_expected = match &case.expect {
            Expect::StartedAs(_) => {
                let id = body["conversation_id"].as_str().unwrap();
                let mut expected = gw_before.clone();
                expected
                    .conversations
                    .insert(id.to_owned(), gw_after.conversations[id].clone());
                expected == *gw_after
            }
            Expect::StoredMessage(stored) => {
                let new = gw_after.new_events(gw_before, &world.a.id);
                let only_that = new.len() == 1
                    && new[0].1 == "message"
                    && new[0].2["message"]["body"] == *stored;
                let mut rest_after = gw_after.clone();
                rest_after.conversations.insert(
                    world.a.id.clone(),
                    gw_before.conversations[&world.a.id].clone(),
                );
                only_that && rest_after == *gw_before
            }
            Expect::StoredFile(name) => {
                let new = gw_after.new_events(gw_before, &world.a.id);
                let files_before = &gw_before.conversations[&world.a.id].2;
                let files_after = &gw_after.conversations[&world.a.id].2;
                new.len() == 1
                    && new[0].2["message"]["attachment"]["name"] == *name
                    && files_after.len() == files_before.len() + 1
                    && gw_after.stored_files.len() == gw_before.stored_files.len() + 1
                    && gw_after.partial_files.is_empty()
                    && gw_after.conversations.len() == gw_before.conversations.len()
            }
            _ => gw_before == gw_after,
        };
        if !(unchanged_elsewhere && changed_as_expected) {
            failures.push(format!(
                "{case}: the stored state changed:\nbefore {before:#?}\nafter {after:#?}"
            ));
        }
    }
    // The refused cases wrote no file anywhere outside the store either.
    assert!(!Path::new("/tmp/invoicefdp.txt").exists());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    world.stop().await;
}

// ---------------------------------------------------------------------------
// XMPP stanzas, through a real Prosody, from real clients.

/// Who sends a stanza.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Xmpp {
    /// Agent 101, whose chat it is.
    Alice,
    /// Agent 102, another agent.
    Bob,
    /// An account of the server that is no agent.
    Stranger,
}

/// Where a stanza goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum To {
    /// Alice's active chat.
    Chat,
    /// A visitor address no conversation has.
    UnknownVisitor,
    /// An address of the component that is no visitor's.
    NotAVisitor,
}

#[derive(Debug, Clone)]
enum Stanza {
    /// A chat message with this body.
    Message(Xmpp, To, String),
    /// A disco#info query.
    Disco(Xmpp, To),
    /// An XEP-0363 slot request to the component.
    UploadSlot(Xmpp),
    /// Deliberately malformed XML (`{to}` is the chat's address, `{id}`
    /// the stanza id the answer must carry).
    Raw(Xmpp, &'static str),
}

#[rustfmt::skip]
fn xmpp_cases() -> Vec<Case<Stanza>> {
    use Door::XmppStanza;
    use Expect::StanzaError;
    use Kind::*;
    use Xmpp::*;
    let case = |kind, what, input, expect| Case {
        door: XmppStanza,
        kind,
        what,
        input,
        expect,
    };
    let hi = || "hello there".to_owned();
    vec![
        case(SpoofedSender, "a stranger writes to the chat", Stanza::Message(Stranger, To::Chat, "I am the agent".into()), StanzaError("forbidden")),
        case(SpoofedSender, "a stranger queries the chat's address", Stanza::Disco(Stranger, To::Chat), StanzaError("forbidden")),
        case(SpoofedSender, "a stranger asks for an upload slot", Stanza::UploadSlot(Stranger), StanzaError("forbidden")),
        case(SpoofedSender, "another agent writes to the chat", Stanza::Message(Bob, To::Chat, "let me take this".into()), StanzaError("gone")),
        case(SpoofedSender, "another agent sends /end to the chat", Stanza::Message(Bob, To::Chat, "/end".into()), StanzaError("gone")),
        case(Unknown, "the agent writes to an unknown conversation", Stanza::Message(Alice, To::UnknownVisitor, hi()), StanzaError("gone")),
        case(Unknown, "the agent writes to a component address that is no visitor's", Stanza::Message(Alice, To::NotAVisitor, hi()), StanzaError("gone")),
        case(Unknown, "a stranger writes to an unknown conversation", Stanza::Message(Stranger, To::UnknownVisitor, hi()), StanzaError("forbidden")),
        case(Oversized, "a 70 KiB message", Stanza::Message(Alice, To::Chat, "x".repeat(70 * 1024)), StanzaError("policy-violation")),
        case(Malformed, "a message of a made-up type", Stanza::Raw(Alice, "<message to='{to}' type='bogus' id='{id}'><body>x</body></message>"), StanzaError("bad-request")),
        case(Malformed, "a message with two threads", Stanza::Raw(Alice, "<message to='{to}' type='chat' id='{id}'><thread>a</thread><thread>b</thread><body>x</body></message>"), StanzaError("bad-request")),
        case(ControlChars, "a stranger's bidi-reordered message", Stanza::Message(Stranger, To::Chat, "\u{202E}gpj.exe".into()), StanzaError("forbidden")),
    ]
}

/// A Prosody with agents 101 and 102 and a stranger, a bridged gateway,
/// and a chat agent 101 has answered.
struct XmppWorld {
    _prosody: XmppServer,
    gw: TestGateway,
    alice: XmppAgent,
    bob: XmppAgent,
    stranger: XmppAgent,
    /// The chat's visitor address.
    chat: String,
}

impl XmppWorld {
    async fn start() -> XmppWorld {
        let (prosody, gw) = crate::xmpp_bridge::setup().await;
        let mut alice = prosody.agent("101").await.unwrap();
        let bob = prosody.agent("102").await.unwrap();
        let stranger = prosody.agent("stranger").await.unwrap();
        for ext in ["101", "102"] {
            let ext = ext.parse().unwrap();
            tokio::time::timeout(WAIT, gw.engine.until_available(&ext))
                .await
                .expect("the agents come online");
        }
        let visitor = Visitor::new(&gw.url);
        let (session, mut events) = visitor.start_following("live", "Jane").await.unwrap();
        let chat = format!("{}@{COMPONENT_DOMAIN}", session.agent_localpart());
        alice.expect_message_from(&chat).await.unwrap();
        alice
            .send(&chat, "Hi, Alice here", "alice-1")
            .await
            .unwrap();
        // Alice's message is stored: the chat is hers and settled.
        events
            .next_matching(WAIT, |e| e["type"] == "message")
            .await
            .unwrap();
        XmppWorld {
            _prosody: prosody,
            gw,
            alice,
            bob,
            stranger,
            chat,
        }
    }

    fn client(&mut self, who: Xmpp) -> &mut XmppAgent {
        match who {
            Xmpp::Alice => &mut self.alice,
            Xmpp::Bob => &mut self.bob,
            Xmpp::Stranger => &mut self.stranger,
        }
    }

    fn address(&self, to: To) -> String {
        match to {
            To::Chat => self.chat.clone(),
            To::UnknownVisitor => format!(
                "visitor-{}@{COMPONENT_DOMAIN}",
                uuid::Uuid::new_v4().simple()
            ),
            To::NotAVisitor => format!("frontdesk@{COMPONENT_DOMAIN}"),
        }
    }

    /// Sends a stanza; the error condition it got back.
    async fn send(&mut self, input: &Stanza, n: usize) -> Expect {
        let id = format!("bad-{n}");
        let (who, to, event) = match input {
            Stanza::Message(who, to, body) => {
                let to = self.address(*to);
                let client = self.client(*who);
                client.send(&to, body, &id).await.unwrap();
                (*who, to, "message")
            }
            Stanza::Disco(who, to) => {
                let to = self.address(*to);
                let command = json!({"cmd": "iq", "tag": id, "to": to, "ns": "http://jabber.org/protocol/disco#info"});
                self.client(*who).command(command).await.unwrap();
                (*who, to, "iq")
            }
            Stanza::UploadSlot(who) => {
                let command = json!({"cmd": "upload", "tag": id, "service": COMPONENT_DOMAIN,
                    "filename": "x.txt", "data_hex": "68656c6c6f"});
                self.client(*who).command(command).await.unwrap();
                (*who, COMPONENT_DOMAIN.to_owned(), "upload")
            }
            Stanza::Raw(who, xml) => {
                let to = self.chat.clone();
                let xml = xml.replace("{to}", &to).replace("{id}", &id);
                self.client(*who)
                    .command(json!({"cmd": "raw", "xml": xml}))
                    .await
                    .unwrap();
                (*who, to, "message")
            }
        };
        let client = self.client(who);
        let answer = client
            .expect(WAIT, |e| match event {
                "message" => {
                    e["event"] == "message"
                        && e["id"] == id.as_str()
                        && e["from"].as_str().is_some_and(|f| f.starts_with(&to))
                }
                _ => e["event"] == event && e["tag"] == id.as_str(),
            })
            .await
            .unwrap_or_else(|e| panic!("no answer to {input:?}: {e}"));
        let condition = match event {
            "message" => &answer["error_condition"],
            _ => &answer["condition"],
        };
        let condition = condition.as_str().unwrap_or("(none)");
        Expect::StanzaError(leak(Some(condition)))
    }
}

#[tokio::test]
async fn every_xmpp_stanza_door_refuses_bad_input_with_a_stanza_error_and_changes_nothing() {
    let mut world = XmppWorld::start().await;
    let cases = xmpp_cases();
    coverage(&cases);
    let mut failures = Vec::new();
    for (n, case) in cases.iter().enumerate() {
        let before = Snapshot::take(world.gw.engine.store(), world.gw.data_dir()).await;
        let got = world.send(&case.input, n).await;
        let after = Snapshot::take(world.gw.engine.store(), world.gw.data_dir()).await;
        if got != case.expect {
            failures.push(format!("{case}: expected {:?}, got {got:?}", case.expect));
        } else if before != after {
            failures.push(format!(
                "{case}: the stored state changed:\n{before:#?}\n{after:#?}"
            ));
        }
    }
    // The chat still works for its agent.
    let chat = world.chat.clone();
    world
        .alice
        .send(&chat, "Still here", "alice-2")
        .await
        .unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    world.gw.stop().await;
}

// ---------------------------------------------------------------------------
// SIP requests, through a real Kamailio, from sipp softphones.

#[derive(Debug, Clone)]
enum Sip {
    /// Agent 103's phone through the proxy: content type, body, to whom.
    ViaProxy(&'static str, String, SipTo),
    /// A phone that is no agent's (999), through the proxy.
    StrangerViaProxy(String),
    /// Deliberately malformed bytes over UDP from the proxy's address
    /// (`{via}` is the sender's address, `{to}` the chat's URI).
    Raw(&'static str),
    /// Straight to the gateway from `host` with agent 103's From.
    Direct {
        host: &'static str,
        to: SipTo,
        body: String,
        header: Option<&'static str>,
    },
}

#[derive(Debug, Clone, Copy)]
enum SipTo {
    Chat,
    UnknownVisitor,
    OtherDomain,
}

#[rustfmt::skip]
fn sip_cases() -> Vec<Case<Sip>> {
    use Door::SipRequest;
    use Expect::Sip as Status;
    use Kind::*;
    let case = |kind, what, input, expect| Case {
        door: SipRequest,
        kind,
        what,
        input,
        expect,
    };
    let direct = |host, to, body: &str, header| Sip::Direct {
        host,
        to,
        body: body.to_owned(),
        header,
    };
    let pai = Some("P-Asserted-Identity: <sip:103@pbx.localhost>");
    vec![
        case(SpoofedSender, "an untrusted host writes as agent 103 to the chat", direct("127.0.0.2", SipTo::Chat, "I am the agent", None), Status(403)),
        case(SpoofedSender, "an untrusted host sends /end as agent 103", direct("127.0.0.3", SipTo::Chat, "/end", None), Status(403)),
        case(SpoofedSender, "an untrusted host asserts agent 103's identity", direct("127.0.0.2", SipTo::Chat, "trust me", pai), Status(403)),
        case(SpoofedSender, "an untrusted host writes to an unknown conversation", direct("127.0.0.2", SipTo::UnknownVisitor, "hello?", None), Status(403)),
        case(SpoofedSender, "a phone that is no agent's, through the proxy", Sip::StrangerViaProxy("let me in".into()), Status(403)),
        case(Unknown, "the agent writes to an unknown conversation", Sip::ViaProxy("text/plain", "hello?".into(), SipTo::UnknownVisitor), Status(404)),
        case(Unknown, "the agent writes to a user of another domain", direct("127.0.0.1", SipTo::OtherDomain, "hello?", None), Status(404)),
        case(Malformed, "a From header without a URI", Sip::Raw("MESSAGE {to} SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bK-{id}\r\nFrom: no uri here;tag=x\r\nTo: <{to}>\r\nCall-ID: {id}@test\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"), Status(400)),
        case(Malformed, "a body that is not UTF-8", Sip::Raw("MESSAGE {to} SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bK-{id}\r\nFrom: <sip:103@pbx.localhost>;tag=x\r\nTo: <{to}>\r\nCall-ID: {id}@test\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n\u{fffd}\u{fffd}"), Status(400)),
        case(Malformed, "an INVITE", Sip::Raw("INVITE {to} SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bK-{id}\r\nFrom: <sip:103@pbx.localhost>;tag=x\r\nTo: <{to}>\r\nCall-ID: {id}@test\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"), Status(405)),
        case(Malformed, "an unsupported content type", Sip::ViaProxy("application/x-frontdesk-test", "<b>hi</b>".into(), SipTo::Chat), Status(415)),
        case(Malformed, "an HTML body", Sip::ViaProxy("text/html", "<b>hi</b>".into(), SipTo::Chat), Status(415)),
        case(Malformed, "a broken is-composing document", Sip::ViaProxy("application/im-iscomposing+xml", "<isComposing><state>".into(), SipTo::Chat), Status(400)),
        case(Oversized, "a message over the chat's length limit", Sip::ViaProxy("text/plain", "z".repeat(4001), SipTo::Chat), Status(400)),
        case(ControlChars, "a body of control and bidi characters only", Sip::ViaProxy("text/plain", "\u{202E}\u{200B}".into(), SipTo::Chat), Status(400)),
    ]
}

/// Sends a hand-written request from 127.0.0.1 (the proxy's address) over
/// UDP; the final status it got. `\u{fffd}` in the template stands for a
/// byte that is not UTF-8.
async fn raw_sip(gateway: std::net::SocketAddr, template: &str, to: &str) -> anyhow::Result<u16> {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let text = template
        .replace("{to}", to)
        .replace("{via}", &socket.local_addr()?.to_string())
        .replace("{id}", &id);
    let bytes: Vec<u8> = text
        .split('\u{fffd}')
        .collect::<Vec<_>>()
        .join("\u{1}")
        .bytes()
        .map(|b| if b == 1 { 0xff } else { b })
        .collect();
    // A lost datagram is sent again (same transaction), as a phone would.
    let mut buf = vec![0u8; 65_535];
    for _ in 0..5 {
        socket.send_to(&bytes, gateway).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while let Ok(received) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await
        {
            let (len, _) = received?;
            let status = String::from_utf8_lossy(&buf[..len])
                .strip_prefix("SIP/2.0 ")
                .and_then(|r| r.get(..3))
                .and_then(|s| s.parse::<u16>().ok());
            if let Some(status) = status.filter(|s| *s >= 200) {
                return Ok(status);
            }
        }
    }
    anyhow::bail!("no final response to {text:?}")
}

#[tokio::test]
async fn every_sip_request_door_refuses_bad_input_with_a_status_and_changes_nothing() {
    let pbx = SipPbx::start().await.expect("kamailio did not start");
    let gw = TestGateway::spawn_bridged(|config| pbx.configure_gateway(config)).await;
    let agent = pbx.agent("103", false).await.unwrap();
    let stranger = pbx.agent("999", false).await.unwrap();
    tokio::time::timeout(WAIT, gw.engine.until_available(&"103".parse().unwrap()))
        .await
        .expect("the SIP agent never became available");
    let visitor = Visitor::new(&gw.url);
    let (session, mut events) = visitor.start_following("live", "Jane").await.unwrap();
    let chat = session_uri(&session);
    agent.wait_for(&["New chat waiting"], WAIT).await.unwrap();
    let sent = agent.send_message(&chat, "text/plain", "Hi").await.unwrap();
    assert_eq!(sent, 200);
    events.next_of_type("message").await.unwrap();

    let cases = sip_cases();
    coverage(&cases);
    let mut failures = Vec::new();
    for case in &cases {
        let to = |to: SipTo| match to {
            SipTo::Chat => chat.clone(),
            SipTo::UnknownVisitor => format!(
                "sip:visitor-{}@{GATEWAY_DOMAIN}",
                uuid::Uuid::new_v4().simple()
            ),
            SipTo::OtherDomain => "sip:visitor-1@elsewhere.example".to_owned(),
        };
        let before = Snapshot::take(gw.engine.store(), gw.data_dir()).await;
        let status = match &case.input {
            Sip::ViaProxy(content_type, body, target) => {
                agent.send_message(&to(*target), content_type, body).await
            }
            Sip::StrangerViaProxy(body) => stranger.send_message(&chat, "text/plain", body).await,
            Sip::Raw(template) => raw_sip(pbx.gateway, template, &chat).await,
            Sip::Direct {
                host,
                to: target,
                body,
                header,
            } => {
                let sender: &SippAgent = &agent;
                sender
                    .send_direct(pbx.gateway, host, &to(*target), body, *header)
                    .await
            }
        }
        .unwrap_or_else(|e| panic!("{case}: {e}"));
        let after = Snapshot::take(gw.engine.store(), gw.data_dir()).await;
        if Expect::Sip(status) != case.expect {
            failures.push(format!("{case}: expected {:?}, got {status}", case.expect));
        } else if before != after {
            failures.push(format!(
                "{case}: the stored state changed:\n{before:#?}\n{after:#?}"
            ));
        }
    }
    // The chat goes on: the agent's next message is the next event.
    assert_eq!(
        agent
            .send_message(&chat, "text/plain", "Still me")
            .await
            .unwrap(),
        200
    );
    let next = events.next_event().await.unwrap();
    assert_eq!(next["message"]["body"], "Still me", "{next}");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    gw.stop().await;
}
