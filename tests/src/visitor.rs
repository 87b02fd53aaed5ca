//! A visitor as the widget is one: the HTTP API plus the event WebSocket.
//! Used by the integration tests and the load generator alike.

use std::time::Duration;

use anyhow::{bail, Context};
use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// An HTTP response reduced to what tests check.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
}

impl Reply {
    /// The stable error code of an error body.
    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
}

/// A started conversation, as the widget keeps it.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub token: String,
}

impl Session {
    /// The session in a start's `201` body.
    pub fn from_start(body: &Value) -> anyhow::Result<Session> {
        Ok(Session {
            id: body["conversation_id"]
                .as_str()
                .context("no conversation_id")?
                .to_owned(),
            token: body["token"].as_str().context("no token")?.to_owned(),
        })
    }

    /// The localpart agents see the visitor write from on every protocol:
    /// `visitor-<id without hyphens>`.
    pub fn agent_localpart(&self) -> String {
        let id: uuid::Uuid = self.id.parse().expect("conversation ids are UUIDs");
        format!("visitor-{}", id.simple())
    }
}

#[derive(Clone)]
pub struct Visitor {
    http: reqwest::Client,
    base: String,
    origin: Option<String>,
}

impl Visitor {
    pub fn new(base: &str) -> Visitor {
        Visitor {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("a plain HTTP client builds"),
            base: base.trim_end_matches('/').to_owned(),
            origin: None,
        }
    }

    /// Sends this `Origin` header, as a browser on that site would.
    pub fn with_origin(mut self, origin: &str) -> Visitor {
        self.origin = Some(origin.to_owned());
        self
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(origin) = &self.origin {
            request = request.header("origin", origin);
        }
        request
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Reply> {
        let response = request.send().await?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok(Reply {
            status,
            body,
            retry_after,
        })
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> anyhow::Result<Reply> {
        let mut request = self.request(reqwest::Method::GET, path);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> anyhow::Result<Reply> {
        let mut request = self.request(reqwest::Method::POST, path).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    /// Posts a raw body (for malformed or oversized input tests).
    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> anyhow::Result<Reply> {
        let request = self
            .request(reqwest::Method::POST, path)
            .header("content-type", "application/json")
            .body(body);
        self.send(request).await
    }

    pub async fn channel(&self, key: &str) -> anyhow::Result<Reply> {
        self.get(&format!("/api/v1/channels/{key}"), None).await
    }

    pub async fn try_start(&self, key: &str, name: &str, email: &str) -> anyhow::Result<Reply> {
        self.post(
            &format!("/api/v1/channels/{key}/conversations"),
            None,
            &json!({ "name": name, "email": email, "page_url": "https://allowed.example/pricing", "language": "en" }),
        )
        .await
    }

    /// Starts a conversation, failing unless the gateway says 201.
    pub async fn start(&self, key: &str, name: &str) -> anyhow::Result<Session> {
        let reply = self.try_start(key, name, "jane@example.com").await?;
        if reply.status != StatusCode::CREATED {
            bail!("start: {} {}", reply.status, reply.body);
        }
        Session::from_start(&reply.body)
    }

    /// Starts a live chat on channel `key` and follows its events from
    /// the start, as the widget does.
    pub async fn start_following(
        &self,
        key: &str,
        name: &str,
    ) -> anyhow::Result<(Session, EventStream)> {
        let session = self.start(key, name).await?;
        let events = self.events(&session, 0).await?;
        Ok((session, events))
    }

    pub async fn say(
        &self,
        session: &Session,
        client_id: &str,
        body: &str,
    ) -> anyhow::Result<Reply> {
        self.post(
            &format!("/api/v1/conversations/{}/messages", session.id),
            Some(&session.token),
            &json!({ "client_id": client_id, "body": body }),
        )
        .await
    }

    pub async fn choose(&self, session: &Session, option_id: &str) -> anyhow::Result<Reply> {
        self.post(
            &format!("/api/v1/conversations/{}/choice", session.id),
            Some(&session.token),
            &json!({ "option_id": option_id }),
        )
        .await
    }

    pub async fn close(&self, session: &Session) -> anyhow::Result<Reply> {
        self.post(
            &format!("/api/v1/conversations/{}/close", session.id),
            Some(&session.token),
            &json!({}),
        )
        .await
    }

    /// Uploads one file as the widget does (multipart part `file`).
    pub async fn upload(
        &self,
        session: &Session,
        name: &str,
        bytes: Vec<u8>,
    ) -> anyhow::Result<Reply> {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
        );
        let request = self
            .request(
                reqwest::Method::POST,
                &format!("/api/v1/conversations/{}/files", session.id),
            )
            .bearer_auth(&session.token)
            .multipart(form);
        self.send(request).await
    }

    pub async fn messages(&self, session: &Session) -> anyhow::Result<Reply> {
        self.get(
            &format!("/api/v1/conversations/{}/messages", session.id),
            Some(&session.token),
        )
        .await
    }

    pub async fn conversation(&self, session: &Session) -> anyhow::Result<Reply> {
        self.get(
            &format!("/api/v1/conversations/{}", session.id),
            Some(&session.token),
        )
        .await
    }

    /// Opens the event stream and authenticates with `since`.
    pub async fn events(&self, session: &Session, since: i64) -> anyhow::Result<EventStream> {
        let ws_base = self.base.replacen("http", "ws", 1);
        let mut request = format!("{ws_base}/api/v1/conversations/{}/events", session.id)
            .into_client_request()?;
        if let Some(origin) = &self.origin {
            request
                .headers_mut()
                .insert("origin", HeaderValue::from_str(origin)?);
        }
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
        let auth = json!({ "type": "auth", "token": session.token, "since": since });
        socket.send(Message::Text(auth.to_string().into())).await?;
        Ok(EventStream { socket })
    }
}

/// The widget's WebSocket: yields each JSON event.
pub struct EventStream {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What the stream yielded.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    Event(Value),
    Closed(Option<u16>),
}

impl EventStream {
    /// The next item within `within`, skipping pings.
    pub async fn next_item(&mut self, within: Duration) -> anyhow::Result<StreamItem> {
        tokio::time::timeout(within, async {
            loop {
                match self.socket.next().await {
                    Some(Ok(Message::Text(text))) => {
                        return Ok(StreamItem::Event(serde_json::from_str(&text)?))
                    }
                    Some(Ok(Message::Close(frame))) => {
                        return Ok(StreamItem::Closed(frame.map(|f| u16::from(f.code))))
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(e.into()),
                    None => return Ok(StreamItem::Closed(None)),
                }
            }
        })
        .await
        .context("no event in time")?
    }

    /// The next JSON event, failing on close or timeout.
    pub async fn next_event(&mut self) -> anyhow::Result<Value> {
        match self.next_item(Duration::from_secs(10)).await? {
            StreamItem::Event(event) => Ok(event),
            StreamItem::Closed(code) => bail!("stream closed ({code:?})"),
        }
    }

    /// Skips events until one of type `kind` arrives.
    pub async fn next_of_type(&mut self, kind: &str) -> anyhow::Result<Value> {
        self.next_matching(Duration::from_secs(10), |e| e["type"] == kind)
            .await
    }

    /// Skips events until one matching `pred` arrives, waiting at most
    /// `within` for each; fails on close or timeout.
    pub async fn next_matching(
        &mut self,
        within: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        loop {
            match self.next_item(within).await? {
                StreamItem::Event(event) if pred(&event) => return Ok(event),
                StreamItem::Event(_) => {}
                StreamItem::Closed(code) => bail!("stream closed ({code:?})"),
            }
        }
    }

    /// Sends a client frame (typing, read, message).
    pub async fn send(&mut self, frame: Value) -> anyhow::Result<()> {
        self.socket
            .send(Message::Text(frame.to_string().into()))
            .await?;
        Ok(())
    }

    /// Sends a message as a `message` frame, as the widget does while its
    /// socket is open; its answer (`message_ack` or `message_error`, with
    /// this `client_id`) comes on the stream.
    pub async fn send_message(&mut self, client_id: &str, body: &str) -> anyhow::Result<()> {
        self.send(json!({ "type": "message", "client_id": client_id, "body": body }))
            .await
    }

    /// Skips events until the answer to the message frame `client_id`
    /// (`message_ack` or `message_error`) arrives.
    pub async fn answer_to(&mut self, client_id: &str) -> anyhow::Result<Value> {
        self.next_matching(Duration::from_secs(10), |e| {
            matches!(e["type"].as_str(), Some("message_ack" | "message_error"))
                && e["client_id"] == client_id
        })
        .await
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }

    /// The TCP stream under the WebSocket, to write bytes no well-behaved
    /// client would (an oversized frame header) or to read without
    /// answering pings.
    pub fn tcp(&mut self) -> &mut TcpStream {
        match self.socket.get_mut() {
            MaybeTlsStream::Plain(tcp) => tcp,
            _ => unreachable!("the test gateway serves plain HTTP"),
        }
    }
}
