//! Files over the real HTTP API (issue 5, spec F1–F4, E2, E3, A3): the
//! exact size limit, refusal before the body is read, the batch limit under
//! concurrency, no partial file after a cancelled upload, safe names,
//! sniffed types, download headers, signed agent links, the agent's copy of
//! the message, and retention. Runs on SQLite and on PostgreSQL
//! (`FRONTDESK_TEST_DB`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use frontdesk::engine::loopback::AgentCall;
use frontdesk::files::{DirectoryStore, Files, UrlSigner};
use frontdesk_tests::config::ALLOWED_ORIGIN;
use frontdesk_tests::gateway::{files_in, TestGateway};
use frontdesk_tests::visitor::{Session, Visitor};
use pbx_adapter::AgentExtension;
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMIT: usize = 5 * 1024 * 1024;
const SIGNING_KEY: &str = "0123456789abcdef0123456789abcdef-test-key";

/// A gateway (with its own data dir, so its own file store) and a visitor.
struct Fixture {
    gw: TestGateway,
    visitor: Visitor,
    http: reqwest::Client,
    /// `files.directory`, when a test sets one.
    store: Option<PathBuf>,
}

impl Fixture {
    async fn spawn() -> Fixture {
        Self::spawn_with(|_| {}).await
    }

    async fn spawn_with(adjust: impl FnOnce(&mut frontdesk::config::Config)) -> Fixture {
        let mut store = None;
        let gw = TestGateway::spawn_with(|c| {
            c.files.signing_key = Some(SIGNING_KEY.into());
            adjust(c);
            store = c.files.directory.clone();
        })
        .await;
        let visitor = Visitor::new(&gw.url).with_origin(ALLOWED_ORIGIN);
        Fixture {
            gw,
            visitor,
            http: reqwest::Client::new(),
            store,
        }
    }

    fn files_dir(&self) -> PathBuf {
        self.store
            .clone()
            .unwrap_or_else(|| self.gw.data_dir().join("files"))
    }

    /// The committed files in the store (not the partial ones).
    fn stored(&self) -> Vec<String> {
        files_in(&self.files_dir())
    }

    fn partials(&self) -> Vec<String> {
        files_in(&self.files_dir().join("tmp"))
    }

    /// The same file handling the gateway uses (same key), for links.
    fn files(&self) -> Files {
        Files::new(
            Arc::new(DirectoryStore::new(self.files_dir())),
            UrlSigner::with_key(SIGNING_KEY.as_bytes()),
            Default::default(),
            url::Url::parse(&format!("{}/", self.gw.url)).unwrap(),
            3600,
            0,
        )
    }

    async fn upload(&self, session: &Session, form: Form, query: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!(
                "{}/api/v1/conversations/{}/files{query}",
                self.gw.url, session.id
            ))
            .bearer_auth(&session.token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn upload_bytes(
        &self,
        session: &Session,
        name: &str,
        bytes: Vec<u8>,
        query: &str,
    ) -> (StatusCode, Value) {
        self.upload(session, file_form(name, bytes), query).await
    }

    async fn download(
        &self,
        session: &Session,
        file_id: &str,
        token: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self.http.get(format!(
            "{}/api/v1/conversations/{}/files/{file_id}",
            self.gw.url, session.id
        ));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }
}

fn file_form(name: &str, bytes: Vec<u8>) -> Form {
    // Raw UTF-8 file names, as browsers send them.
    Form::new()
        .percent_encode_noop()
        .part("file", Part::bytes(bytes).file_name(name.to_owned()))
}

/// Awaits a condition outside the gateway's events (a file appearing or
/// going), checking every 20 ms, failing after 10 s.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let result = tokio::time::timeout(Duration::from_secs(10), async {
        let mut every = tokio::time::interval(Duration::from_millis(20));
        loop {
            every.tick().await;
            if cond() {
                return;
            }
        }
    })
    .await;
    assert!(result.is_ok(), "timed out waiting for {what}");
}

fn ext(s: &str) -> AgentExtension {
    s.parse().unwrap()
}

/// A raw HTTP/1.1 upload of `declared` file bytes, for tests that must
/// control exactly how much of the body is sent.
struct RawUpload {
    stream: tokio::net::TcpStream,
    epilogue: Vec<u8>,
}

impl RawUpload {
    async fn start(fx: &Fixture, session: &Session, declared: usize) -> RawUpload {
        let boundary = "frontdesk-test-boundary";
        let preamble = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        );
        let epilogue = format!("\r\n--{boundary}--\r\n").into_bytes();
        let length = preamble.len() + declared + epilogue.len();
        let addr = fx.gw.url.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST /api/v1/conversations/{}/files HTTP/1.1\r\nHost: {addr}\r\n\
             Authorization: Bearer {}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n\
             Content-Length: {length}\r\n\r\n{preamble}",
            session.id, session.token
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        RawUpload { stream, epilogue }
    }
}

/// Reads one HTTP response (status and JSON body) from `reader`.
async fn read_response(reader: &mut (impl AsyncReadExt + Unpin)) -> (u16, Value) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = reader.read(&mut chunk).await.expect("response readable");
        assert!(n > 0, "connection closed before a response");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < header_end + length {
        let n = reader.read(&mut chunk).await.expect("body readable");
        assert!(n > 0, "connection closed inside the body");
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = serde_json::from_slice(&buf[header_end..header_end + length]).unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn the_exact_limit_is_accepted_and_one_byte_more_is_refused() {
    let fx = Fixture::spawn().await;
    let session = fx.visitor.start("live", "Jane Doe").await.unwrap();
    let info = fx.visitor.channel("live").await.unwrap();
    assert_eq!(info.body["limits"]["max_file_bytes"], LIMIT);

    let (status, body) = fx
        .upload_bytes(&session, "exact.bin", vec![0u8; LIMIT], "")
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["attachment"]["size"], LIMIT);
    assert_eq!(body["attachment"]["name"], "exact.bin");
    assert_eq!(body["sender"], "visitor");

    let (status, body) = fx
        .upload_bytes(&session, "over.bin", vec![0u8; LIMIT + 1], "")
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"], "file_too_large");
    assert_eq!(body["limit_bytes"], LIMIT);
    assert_eq!(fx.stored().len(), 1, "only the accepted file is stored");
    assert_eq!(fx.partials(), Vec::<String>::new());
    fx.gw.stop().await;
}

#[tokio::test]
async fn an_oversized_upload_is_refused_before_the_body_is_sent() {
    let fx = Fixture::spawn().await;
    let session = fx.visitor.start("live", "Jane Doe").await.unwrap();
    let declared = 60 * 1024 * 1024;
    let upload = RawUpload::start(&fx, &session, declared).await;
    let (mut reader, mut writer) = upload.stream.into_split();
    let sent = Arc::new(AtomicU64::new(0));
    let sending = tokio::spawn({
        let sent = sent.clone();
        async move {
            let chunk = vec![0u8; 64 * 1024];
            let mut left = declared;
            while left > 0 {
                let n = left.min(chunk.len());
                if writer.write_all(&chunk[..n]).await.is_err() {
                    return;
                }
                sent.fetch_add(n as u64, Ordering::SeqCst);
                left -= n;
            }
            let _ = writer.write_all(&upload.epilogue).await;
        }
    });
    let (status, body) = tokio::time::timeout(Duration::from_secs(20), read_response(&mut reader))
        .await
        .expect("a response while the client was still sending");
    let sent_when_refused = sent.load(Ordering::SeqCst);
    sending.abort();
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"], "file_too_large");
    assert_eq!(body["limit_bytes"], LIMIT);
    // The refusal came right after the limit, not after reading (or
    // buffering) the whole body: most of it was never sent.
    assert!(
        sent_when_refused < (declared / 2) as u64,
        "the gateway answered only after {sent_when_refused} of {declared} bytes"
    );
    assert_eq!(fx.partials(), Vec::<String>::new(), "no partial file");
    assert_eq!(fx.stored(), Vec::<String>::new());
    fx.gw.stop().await;
}

#[tokio::test]
async fn a_cancelled_upload_leaves_no_file() {
    let fx = Fixture::spawn().await;
    let session = fx.visitor.start("live", "Jane Doe").await.unwrap();
    let mut upload = RawUpload::start(&fx, &session, 3 * 1024 * 1024).await;
    upload
        .stream
        .write_all(&vec![1u8; 1024 * 1024])
        .await
        .unwrap();
    eventually("the upload to reach the store", || {
        !fx.partials().is_empty()
    })
    .await;
    // The visitor pressed "Cancel upload": the browser drops the connection.
    drop(upload);
    eventually("the partial file to go", || fx.partials().is_empty()).await;
    assert_eq!(fx.stored(), Vec::<String>::new());
    let history = fx.visitor.messages(&session).await.unwrap();
    assert_eq!(history.body["messages"], serde_json::json!([]));
    fx.gw.stop().await;
}

#[tokio::test]
async fn the_sixth_file_of_a_batch_is_refused_even_when_sent_at_once() {
    let fx = Fixture::spawn().await;
    let session = fx.visitor.start("live", "Jane Doe").await.unwrap();
    for i in 0..5 {
        let (status, body) = fx
            .upload_bytes(
                &session,
                &format!("f{i}.txt"),
                b"hello".to_vec(),
                "?batch_id=b1",
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = fx
        .upload_bytes(&session, "f5.txt", b"hello".to_vec(), "?batch_id=b1")
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"], "too_many_files");
    assert_eq!(body["limit"], 5);
    // The batch id may also come as a form field, after the file.
    let form = file_form("f6.txt", b"hello".to_vec()).text("batch_id", "b1");
    let (status, body) = fx.upload(&session, form, "").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // Another batch, and files without a batch, are not affected.
    let (status, _) = fx
        .upload_bytes(&session, "g.txt", b"hello".to_vec(), "?batch_id=b2")
        .await;
    assert_eq!(status, StatusCode::CREATED);
    for _ in 0..2 {
        let (status, _) = fx
            .upload_bytes(&session, "lone.txt", b"hi".to_vec(), "")
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }

    // Six at once in one batch: exactly five get in, whatever the timing.
    let names: Vec<String> = (0..6).map(|i| format!("p{i}.txt")).collect();
    let uploads = names
        .iter()
        .map(|name| fx.upload_bytes(&session, name, vec![b'x'; 200_000], "?batch_id=b3"));
    let results = futures::future::join_all(uploads).await;
    let created = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    let refused: Vec<_> = results
        .iter()
        .filter(|(s, _)| *s != StatusCode::CREATED)
        .collect();
    assert_eq!(created, 5, "{results:?}");
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].1["error"], "too_many_files");
    assert_eq!(
        fx.stored().len(),
        5 + 1 + 2 + 5,
        "refused files leave no bytes"
    );
    eventually("no partial file", || fx.partials().is_empty()).await;
    fx.gw.stop().await;
}

#[tokio::test]
async fn a_retry_with_the_same_client_id_is_stored_once() {
    let fx = Fixture::spawn().await;
    let session = fx.visitor.start("live", "Jane Doe").await.unwrap();
    let (first, body1) = fx
        .upload_bytes(&session, "a.txt", b"one".to_vec(), "?client_id=up-1")
        .await;
    let (second, body2) = fx
        .upload_bytes(&session, "a.txt", b"one".to_vec(), "?client_id=up-1")
        .await;
    assert_eq!(first, StatusCode::CREATED);
    assert_eq!(second, StatusCode::OK);
    assert_eq!(body1["id"], body2["id"]);
    assert_eq!(body1["client_id"], "up-1");
    assert_eq!(fx.stored().len(), 1);
    fx.gw.stop().await;
}

#[tokio::test]
async fn traversal_and_bidi_names_are_stored_safely() {
    let fx = Fixture::spawn().await;
    let session = fx.visitor.start("live", "Jane Doe").await.unwrap();
    let cases = [
        ("../../../../tmp/evil.txt", "evil.txt"),
        ("..\\..\\windows\\system.ini", "system.ini"),
        ("..", "file.txt"),
        ("invoice\u{202E}fdp.txt", "invoicefdp.txt"),
        ("a\u{2067}b\u{2069}\u{200B}c\u{FEFF}.txt", "abc.txt"),
    ];
    for (raw, expected) in cases {
        let (status, body) = fx
            .upload_bytes(&session, raw, b"plain text".to_vec(), "")
            .await;
        assert_eq!(status, StatusCode::CREATED, "{raw:?}: {body}");
        assert_eq!(body["attachment"]["name"], expected, "{raw:?}");
        assert_eq!(body["body"], expected);
    }
    let long = format!("{}.txt", "n".repeat(1000));
    let (_, body) = fx
        .upload_bytes(&session, &long, b"text".to_vec(), "?batch_id=long")
        .await;
    let name = body["attachment"]["name"].as_str().unwrap();
    assert!(name.len() <= 150 && name.ends_with(".txt"), "{name}");
    // On disk: random hex names only, all inside the store.
    let stored = fx.stored();
    assert_eq!(stored.len(), 6);
    for name in &stored {
        assert!(
            name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit()),
            "{name}"
        );
    }
    assert!(!fx.gw.data_dir().join("tmp/evil.txt").exists());
    assert!(!Path::new("/tmp/evil.txt").exists());
    fx.gw.stop().await;
}

#[tokio::test]
async fn names_that_run_code_where_they_are_opened_are_refused() {
    let fx = Fixture::spawn().await;
    let session = fx.visitor.start("live", "Jane Doe").await.unwrap();
    for name in [
        "invoice.html",
        "logo.svg",
        "run.js",
        "setup.bat",
        "clean.ps1",
        "app.hta",
        "invoice\u{202E}fdp.exe",
    ] {
        let (status, body) = fx
            .upload_bytes(&session, name, b"plain words, nothing else".to_vec(), "")
            .await;
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{name:?}: {body}"
        );
        assert_eq!(body["error"], "file_type_not_allowed", "{name:?}");
        assert!(body["extension"].is_string(), "{body}");
    }
    assert_eq!(fx.stored(), Vec::<String>::new());
    assert_eq!(fx.partials(), Vec::<String>::new());
    fx.gw.stop().await;
}

#[tokio::test]
async fn the_type_is_sniffed_from_the_content() {
    let fx = Fixture::spawn().await;
    let session = fx.visitor.start("live", "Jane Doe").await.unwrap();
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0".to_vec();
    let form = Form::new().part(
        "file",
        Part::bytes(png)
            .file_name("notes.txt")
            .mime_str("text/plain")
            .unwrap(),
    );
    let (status, body) = fx.upload(&session, form, "").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["attachment"]["content_type"], "image/png");
    // The name's extension follows the content, not the client's claim.
    assert_eq!(body["attachment"]["name"], "notes.png");

    let (status, body) = fx
        .upload_bytes(&session, "x.dat", b"just words".to_vec(), "")
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["attachment"]["content_type"], "text/plain");
    assert_eq!(body["attachment"]["name"], "x.txt");

    let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
    elf.resize(4096, 0);
    let refused: [(&str, Vec<u8>, &str); 4] = [
        (
            "photo.jpg",
            b"<!DOCTYPE html><html><script>alert(1)</script>".to_vec(),
            "text/html",
        ),
        (
            "logo.png",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>".to_vec(),
            "image/svg+xml",
        ),
        ("readme.txt", elf, "application/x-executable"),
        (
            "setup.pdf",
            b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0".to_vec(),
            "application/vnd.microsoft.portable-executable",
        ),
    ];
    for (name, bytes, media_type) in refused {
        let (status, body) = fx.upload_bytes(&session, name, bytes, "").await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{name}: {body}");
        assert_eq!(body["error"], "file_type_not_allowed");
        assert_eq!(body["content_type"], media_type);
    }
    assert_eq!(fx.stored().len(), 2);
    assert_eq!(fx.partials(), Vec::<String>::new());
    fx.gw.stop().await;
}

#[tokio::test]
async fn visitors_download_with_their_token_and_safe_headers() {
    let fx = Fixture::spawn().await;
    let session = fx.visitor.start("live", "Jane Doe").await.unwrap();
    let other = fx.visitor.start("live", "Eve").await.unwrap();
    let content = "Relevé: <script>alert(1)</script>".as_bytes().to_vec();
    let (status, body) = fx
        .upload_bytes(&session, "relevé été.txt", content.clone(), "")
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let file_id = body["attachment"]["id"].as_str().unwrap().to_owned();

    let response = fx.download(&session, &file_id, Some(&session.token)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(
        header("content-disposition").as_deref(),
        Some("attachment; filename=\"relev_ _t_.txt\"; filename*=UTF-8''relev%C3%A9%20%C3%A9t%C3%A9.txt")
    );
    assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(
        header("content-security-policy").as_deref(),
        Some("sandbox; default-src 'none'")
    );
    assert_eq!(
        header("content-type").as_deref(),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(response.bytes().await.unwrap().to_vec(), content);

    // No token, someone else's token, or someone else's file: nothing.
    let anonymous = fx.download(&session, &file_id, None).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let wrong = fx.download(&session, &file_id, Some(&other.token)).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let elsewhere = fx.download(&other, &file_id, Some(&other.token)).await;
    assert_eq!(elsewhere.status(), StatusCode::NOT_FOUND);
    fx.gw.stop().await;
}

#[tokio::test]
async fn agents_get_the_file_and_download_it_with_a_signed_link() {
    let mut fx = Fixture::spawn().await;
    fx.gw.all_agents_available().await;
    let session = fx.visitor.start("live", "Jane Doe").await.unwrap();
    let offer = fx.gw.next_offer().await;
    let id = offer.conversation.id;
    fx.gw
        .engine
        .agent_message(id, &ext("101"), "Hello Jane")
        .await
        .unwrap();
    let mut events = fx.visitor.events(&session, 0).await.unwrap();

    let (status, body) = fx
        .upload_bytes(
            &session,
            "photo of the leak.png",
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec(),
            "",
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let attachment = loop {
        if let AgentCall::Deliver { agent, message, .. } = fx.gw.next_agent_call().await {
            assert_eq!(agent, ext("101"));
            break message
                .attachment
                .expect("the agent's message carries the file");
        }
    };
    assert_eq!(attachment.name, "photo of the leak.png");
    assert_eq!(attachment.content_type, "image/png");
    assert_eq!(attachment.id.to_string(), body["attachment"]["id"]);
    // The widget receives the same message on its stream.
    let mut event = events.next_of_type("message").await.unwrap();
    while event["message"]["attachment"].is_null() {
        event = events.next_of_type("message").await.unwrap();
    }
    assert_eq!(
        event["message"]["attachment"]["name"],
        "photo of the leak.png"
    );

    let files = fx.files();
    let link = files.agent_link(&attachment.id).unwrap();
    let url = format!("{}{}?{}", fx.gw.url, link.path(), link.query().unwrap());
    let ok = fx.http.get(&url).send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert!(ok.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment;"));
    assert_eq!(ok.headers()["x-content-type-options"], "nosniff");
    assert_eq!(ok.bytes().await.unwrap().len(), 16);

    let sig = link
        .query_pairs()
        .find(|(k, _)| k == "sig")
        .unwrap()
        .1
        .into_owned();
    let expires: i64 = link
        .query_pairs()
        .find(|(k, _)| k == "expires")
        .unwrap()
        .1
        .parse()
        .unwrap();
    let flipped = format!(
        "{}{}",
        if sig.starts_with('0') { "1" } else { "0" },
        &sig[1..]
    );
    let expired = files
        .agent_link_until(&attachment.id, chrono::Utc::now().timestamp() - 1)
        .unwrap();
    let path = link.path();
    let refused = [
        format!("{path}?expires={expires}&sig={flipped}"),
        format!("{path}?expires={}&sig={sig}", expires + 3600),
        format!("{path}?expires={expires}"),
        path.to_owned(),
        format!(
            "/files/{}?expires={expires}&sig={sig}",
            uuid::Uuid::new_v4()
        ),
        format!("{}?{}", expired.path(), expired.query().unwrap()),
    ];
    for tampered in refused {
        let response = fx
            .http
            .get(format!("{}{tampered}", fx.gw.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{tampered}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_link");
    }
    events.close().await;
    fx.gw.stop().await;
}

#[tokio::test]
async fn uploads_need_a_token_a_file_and_an_open_conversation() {
    let fx = Fixture::spawn().await;
    let session = fx.visitor.start("live", "Jane Doe").await.unwrap();
    let anonymous = fx
        .http
        .post(format!(
            "{}/api/v1/conversations/{}/files",
            fx.gw.url, session.id
        ))
        .multipart(file_form("a.txt", b"x".to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let (status, body) = fx
        .upload(&session, Form::new().text("note", "no file here"), "")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_upload");
    let (status, body) = fx.upload_bytes(&session, "empty.txt", Vec::new(), "").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"], "empty_file");
    fx.visitor.close(&session).await.unwrap();
    let (status, body) = fx
        .upload_bytes(&session, "late.txt", b"x".to_vec(), "")
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "conversation_ended");
    assert_eq!(fx.stored(), Vec::<String>::new());

    // The contract is published with the rest of the API.
    let doc = fx.visitor.get("/api/v1/openapi.json", None).await.unwrap();
    for path in [
        "/api/v1/conversations/{id}/files",
        "/api/v1/conversations/{id}/files/{file_id}",
        "/files/{file_id}",
    ] {
        assert!(
            doc.body["paths"][path].is_object(),
            "{path} missing from OpenAPI"
        );
    }
    assert!(doc.body["components"]["schemas"]["AttachmentView"].is_object());
    fx.gw.stop().await;
}

#[tokio::test]
async fn conversations_and_their_files_go_after_the_retention_period() {
    let fx = Fixture::spawn().await;
    let old = fx.visitor.start("live", "Old Visitor").await.unwrap();
    let recent = fx.visitor.start("live", "Recent Visitor").await.unwrap();
    let open = fx.visitor.start("live", "Still Chatting").await.unwrap();
    for session in [&old, &recent, &open] {
        let (status, _) = fx
            .upload_bytes(session, "a.txt", b"data".to_vec(), "")
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    fx.visitor.close(&old).await.unwrap();
    assert_eq!(fx.stored().len(), 3);
    let channels: Vec<_> = fx
        .gw
        .engine
        .channels()
        .iter()
        .map(|c| c.config.clone())
        .collect();
    assert_eq!(
        channels
            .iter()
            .find(|c| c.key.as_str() == "live")
            .unwrap()
            .retention_days,
        90
    );
    let store = fx.gw.engine.store();
    let day_ms = 24 * 3600 * 1000;
    let now = frontdesk::store::now_ms();
    // 89 days later nothing goes; 91 days later the ended ones do, and so
    // does the one left open without a change for as long.
    let early =
        frontdesk::files::retention::sweep(&fx.files(), store, &channels, now + 89 * day_ms)
            .await
            .unwrap();
    assert_eq!(early.conversations, 0);
    fx.visitor.close(&recent).await.unwrap();
    let swept =
        frontdesk::files::retention::sweep(&fx.files(), store, &channels, now + 91 * day_ms)
            .await
            .unwrap();
    assert_eq!(swept.conversations, 3);
    assert_eq!(swept.files, 3);
    assert_eq!(fx.stored(), Vec::<String>::new());
    for session in [&old, &open] {
        let gone = fx.visitor.messages(session).await.unwrap();
        assert_eq!(gone.status, StatusCode::NOT_FOUND);
    }
    fx.gw.stop().await;
}

#[tokio::test]
async fn files_without_a_batch_id_are_held_to_the_batch_limit() {
    let fx = Fixture::spawn().await;
    let session = fx.visitor.start("live", "Jane Doe").await.unwrap();
    let mut statuses = Vec::new();
    for i in 0..8 {
        let (status, body) = fx
            .upload_bytes(&session, &format!("f{i}.txt"), b"hello".to_vec(), "")
            .await;
        if status != StatusCode::CREATED {
            assert_eq!(body["error"], "too_many_files", "{body}");
            assert_eq!(body["limit"], 5);
        }
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, [201, 201, 201, 201, 201, 422, 422, 422]);
    assert_eq!(fx.stored().len(), 5);
    fx.gw.stop().await;
}

#[tokio::test]
async fn a_conversation_holds_at_most_its_file_quota() {
    let fx = Fixture::spawn_with(|c| {
        let limits = &mut c.channels[0].limits;
        limits.max_file_bytes = 8 * 1024;
        limits.max_files_per_conversation = 3;
        limits.max_bytes_per_conversation = 20 * 1024;
    })
    .await;
    let session = fx.visitor.start("live", "Jane Doe").await.unwrap();
    // A fresh batch id per file does not get around the quota.
    let upload = |i: usize, size: usize| {
        let name = format!("f{i}.txt");
        let query = format!("?batch_id=b{i}");
        let fx = &fx;
        let session = &session;
        async move {
            fx.upload_bytes(session, &name, vec![b'x'; size], &query)
                .await
        }
    };
    for i in 0..3 {
        assert_eq!(upload(i, 100).await.0, StatusCode::CREATED);
    }
    let (status, body) = upload(3, 100).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"], "conversation_files_full");
    assert_eq!(body["limit_files"], 3);

    // Bytes count too: 8 KiB + 8 KiB fit in 20 KiB, 8 KiB more do not.
    let other = fx.visitor.start("live", "Joe Doe").await.unwrap();
    let big = |i: usize| {
        let name = format!("big{i}.txt");
        let query = format!("?batch_id=c{i}");
        let fx = &fx;
        let other = &other;
        async move {
            fx.upload_bytes(other, &name, vec![b'y'; 8 * 1024], &query)
                .await
        }
    };
    assert_eq!(big(0).await.0, StatusCode::CREATED);
    assert_eq!(big(1).await.0, StatusCode::CREATED);
    let (status, body) = big(2).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"], "conversation_files_full");
    assert_eq!(fx.stored().len(), 5);
    assert_eq!(fx.partials(), Vec::<String>::new());
    fx.gw.stop().await;
}

/// A small tmpfs for the file store, unmounted on drop (tests run as root
/// here, as CI does; a machine where `mount` is refused fails loudly).
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(bytes: u64) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("cannot run mount");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (CI runs as root)"
        );
        SmallDisk { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test]
async fn uploads_stop_with_507_below_the_free_space_floor_and_chat_goes_on() {
    let disk = SmallDisk::mount(2 * 1024 * 1024);
    let dir = disk.path();
    let fx = Fixture::spawn_with(|c| c.files.directory = Some(dir)).await;
    let session = fx.visitor.start("live", "Jane Doe").await.unwrap();
    let (status, body) = fx
        .upload_bytes(&session, "a.txt", b"hello".to_vec(), "")
        .await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{body}");
    assert_eq!(body["error"], "storage_full");
    assert_eq!(files_in(&disk.path()), Vec::<String>::new());
    let reply = fx.visitor.say(&session, "m1", "still here").await.unwrap();
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    fx.gw.stop().await;
}

#[tokio::test]
async fn a_disk_that_fills_under_an_upload_gets_507_and_keeps_nothing() {
    let disk = SmallDisk::mount(1024 * 1024);
    let dir = disk.path();
    let fx = Fixture::spawn_with(|c| {
        c.files.directory = Some(dir);
        c.files.min_free_bytes = 0;
    })
    .await;
    let session = fx.visitor.start("live", "Jane Doe").await.unwrap();
    let (status, body) = fx
        .upload_bytes(&session, "big.txt", vec![b'z'; 2 * 1024 * 1024], "")
        .await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{body}");
    assert_eq!(body["error"], "storage_full");
    assert_eq!(fx.partials(), Vec::<String>::new());
    assert_eq!(fx.stored(), Vec::<String>::new());
    // Nothing was left behind: the next (small) file fits.
    let (status, body) = fx
        .upload_bytes(&session, "small.txt", b"fits".to_vec(), "")
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    fx.gw.stop().await;
}

#[tokio::test]
async fn uploaded_files_are_readable_by_the_gateway_user_only() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::spawn().await;
    let session = fx.visitor.start("live", "Jane Doe").await.unwrap();
    let (status, _) = fx
        .upload_bytes(&session, "a.txt", b"private".to_vec(), "")
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = fx.files_dir();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("tmp")), 0o700);
    for name in fx.stored() {
        assert_eq!(mode(&dir.join(&name)), 0o600, "{name}");
    }
    fx.gw.stop().await;
}
