//! A console user's HTTP client for the admin API, as the console's
//! script is one: logs in with a password, then sends the session cookie
//! and the session's CSRF token with every request. The account is made
//! beforehand (in-process with `frontdesk::api::admin::create_user`, or
//! with `frontdesk admin create-user` for a gateway process).

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::config::ALLOWED_ORIGIN;

/// A logged-in console user.
pub struct Admin {
    /// The client holding the session cookie (cookies are per host, not
    /// per port: every loopback gateway gets it).
    pub http: reqwest::Client,
    /// The gateway (or load balancer) it sends requests to.
    pub base: String,
    /// The session's CSRF token.
    pub csrf: String,
}

impl Admin {
    /// Logs `username` in at `base` (`POST /api/v1/admin/login`).
    pub async fn log_in(base: &str, username: &str, password: &str) -> anyhow::Result<Admin> {
        Admin::session(base, username, password)
            .await
            .map_err(|status| anyhow::anyhow!("login of {username} at {base}: {status}"))
    }

    /// A new session of `username`, or the status the login was refused
    /// with.
    pub async fn session(base: &str, username: &str, password: &str) -> Result<Admin, StatusCode> {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .expect("an HTTP client");
        let reply = http
            .post(format!("{base}/api/v1/admin/login"))
            .json(&json!({ "username": username, "password": password }))
            .send()
            .await
            .expect("the login request was sent");
        if reply.status() != StatusCode::OK {
            return Err(reply.status());
        }
        let body: Value = reply.json().await.expect("the login answer is JSON");
        let csrf = body["csrf"].as_str().expect("a csrf in the login answer");
        Ok(Admin {
            http,
            base: base.to_owned(),
            csrf: csrf.to_owned(),
        })
    }

    /// The same session against another gateway (another node, or the
    /// load balancer in front of them).
    pub fn at(&self, base: &str) -> Admin {
        Admin {
            http: self.http.clone(),
            base: base.to_owned(),
            csrf: self.csrf.clone(),
        }
    }

    /// Sends a request with the CSRF token and `body` as JSON; returns the
    /// status and the body (JSON, else the text as a JSON string).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let (status, _, body) = self.send_full(method, path, body).await;
        (status, body)
    }

    /// [`Admin::send`], with the response headers too.
    pub async fn send_full(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("x-csrf-token", &self.csrf);
        if let Some(body) = body {
            request = request.json(body);
        }
        let reply = request.send().await.expect("the admin request was sent");
        let status = reply.status();
        let headers = reply.headers().clone();
        let text = reply.text().await.expect("the admin answer was read");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, headers, body)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn post_json(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, Some(&body)).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::PATCH, path, Some(&body)).await
    }

    /// A console page's status and HTML.
    pub async fn page(&self, path: &str) -> (StatusCode, String) {
        let reply = (self.http.get(format!("{}{path}", self.base)))
            .send()
            .await
            .expect("the page request was sent");
        let status = reply.status();
        (status, reply.text().await.expect("the page was read"))
    }

    /// The id of the user `username` in the caller's users list.
    pub async fn user_id(&self, username: &str) -> String {
        let (status, users) = self.get("/api/v1/admin/users").await;
        assert_eq!(status, StatusCode::OK, "{users}");
        (users.as_array().unwrap().iter())
            .find(|u| u["username"] == username)
            .unwrap_or_else(|| panic!("{username} in {users}"))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// A chatbot channel `key` for `PUT /api/v1/admin/channels/{key}`: two
/// options, to the test configuration's queues 600 and 601, the first
/// answering `welcome`.
pub fn chatbot_channel(key: &str, welcome: &str) -> Value {
    json!({
        "key": key,
        "name": "Acme Web",
        "mode": "chatbot",
        "allowed_origins": [ALLOWED_ORIGIN],
        "options": [
            { "id": "buy", "label": "Buy", "welcome": welcome, "queue": "600" },
            { "id": "help", "label": "Get help", "welcome": "Support is on its way.", "queue": "601" },
        ],
    })
}
