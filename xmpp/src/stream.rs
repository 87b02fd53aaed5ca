//! The XEP-0114 stream, one level below `tokio_xmpp::Component`.
//!
//! `tokio_xmpp::Component` turns three different things into the same
//! `None`: its idle read timeout, a stanza that xmpp-parsers cannot parse
//! (any XMPP user can send one, e.g. `<show>sleeping</show>`), and a real end
//! of stream. A loop over it either dies on a stranger's bad stanza or never
//! notices a dead server. So this module does the handshake itself with the
//! public `xmlstream` API and keeps the distinctions: a bad stanza comes back
//! as [`Incoming::Invalid`] with its header (so it can be answered with a
//! stanza error), idleness as [`Incoming::Idle`], and only I/O errors, stream
//! errors and the stream footer end the connection ([`Incoming::Closed`]).
//! Liveness is the caller's job (XEP-0199 pings, see `component.rs`).
//!
//! With [`ComponentTls`] the TCP connection is wrapped in TLS (rustls)
//! before the stream header: direct TLS, as ejabberd's `tls: true`
//! component listeners speak it. The server's certificate is verified
//! against the configured CA or the Mozilla roots, for the configured
//! name; there is no way to turn verification off.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, BufStream, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_xmpp::xmlstream::{
    initiate_stream, FallibleStreamElement, RawStanzaHeader, ReadError, StreamElementError,
    StreamHeader, Timeouts, XmppStream, XmppStreamElement,
};
use tokio_xmpp::PrintRawXml;
use xmpp_parsers::component::Handshake;
use xmpp_parsers::jid::BareJid;
use xmpp_parsers::ns;
use xmpp_parsers::stanza::Stanza;

use crate::config::{ComponentConfig, ComponentTls, ConfigError};

/// Why a connection attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// TCP or XML stream I/O failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The TLS handshake failed: most often the server's certificate does
    /// not chain to the configured CA or is not valid for the configured
    /// name (the text says which), or the port does not speak TLS.
    #[error("TLS handshake with {server_name} failed: {reason}")]
    Tls {
        /// The name the certificate was checked against.
        server_name: String,
        /// rustls' reason.
        reason: String,
    },
    /// The server did not complete the handshake in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The server refused the stream, e.g. `not-authorized` (wrong secret)
    /// or `conflict` (another connection holds the domain).
    #[error("server refused the component: {0}")]
    Refused(String),
    /// The server's stream header had no id to hash the secret with.
    #[error("server sent no stream id")]
    NoStreamId,
    /// The server closed the stream during the handshake.
    #[error("stream closed during handshake")]
    Closed,
}

/// The kind of stanza that failed to parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StanzaKind {
    Message,
    Presence,
    Iq,
}

/// One read from the stream.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A well-formed, typed stanza and its serialised size in bytes.
    Stanza(Box<Stanza>, usize),
    /// A stanza xmpp-parsers rejected; the connection is fine.
    Invalid {
        kind: StanzaKind,
        header: RawStanzaHeader,
        error: String,
    },
    /// Something that is not a stanza and not fatal (ignored, logged).
    Ignored(String),
    /// No data for the read timeout; the connection may still be fine.
    Idle,
    /// The connection is over.
    Closed(String),
}

/// A TLS client for one [`ComponentTls`], built once at start.
#[derive(Clone)]
pub(crate) struct Tls {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl Tls {
    /// Checks the settings and builds the client (no I/O).
    pub(crate) fn new(settings: &ComponentTls) -> Result<Tls, ConfigError> {
        let name = ServerName::try_from(settings.server_name.clone()).map_err(|_| {
            ConfigError::Tls(format!(
                "server name {:?} is neither a DNS name nor an IP address",
                settings.server_name
            ))
        })?;
        let mut roots = rustls::RootCertStore::empty();
        match &settings.ca_pem {
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            Some(pem) => {
                for cert in CertificateDer::pem_slice_iter(pem) {
                    let cert =
                        cert.map_err(|e| ConfigError::Tls(format!("unreadable CA PEM: {e}")))?;
                    roots
                        .add(cert)
                        .map_err(|e| ConfigError::Tls(format!("unusable CA certificate: {e}")))?;
                }
                if roots.is_empty() {
                    return Err(ConfigError::Tls("no certificate in the CA PEM".into()));
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Tls {
            connector: TlsConnector::from(Arc::new(config)),
            name,
        })
    }
}

/// The bytes under the XML stream: plain TCP or TLS over it.
enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Connects once with `config` (TLS included), authenticates, and closes
/// the stream again: `Ok` when the component could serve, else why not.
/// For set-up checks; the component task reconnects by itself.
pub async fn probe(config: &ComponentConfig) -> Result<(), ConnectError> {
    let tls = match &config.tls {
        Some(settings) => Some(
            Tls::new(settings).map_err(|e| ConnectError::Refused(format!("bad settings: {e}")))?,
        ),
        None => None,
    };
    let timeouts = Timeouts {
        read_timeout: config.ping_timeout,
        response_timeout: config.ping_timeout,
    };
    let conn = Connection::connect(
        &config.server,
        tls.as_ref(),
        &config.domain,
        &config.secret,
        timeouts,
        config.ping_timeout,
    )
    .await?;
    conn.close().await?;
    Ok(())
}

/// An authenticated component stream.
pub(crate) struct Connection {
    stream: XmppStream<BufStream<Transport>>,
}

impl Connection {
    /// Connects to `server` (over TLS with `tls`) and authenticates as
    /// `domain` with `secret`, all within `timeout`.
    pub(crate) async fn connect(
        server: &str,
        tls: Option<&Tls>,
        domain: &BareJid,
        secret: &str,
        timeouts: Timeouts,
        timeout: Duration,
    ) -> Result<Self, ConnectError> {
        tokio::time::timeout(
            timeout,
            Self::connect_inner(server, tls, domain, secret, timeouts),
        )
        .await
        .map_err(|_| ConnectError::Timeout(timeout))?
    }

    async fn connect_inner(
        server: &str,
        tls: Option<&Tls>,
        domain: &BareJid,
        secret: &str,
        timeouts: Timeouts,
    ) -> Result<Self, ConnectError> {
        let tcp = TcpStream::connect(server).await?;
        tcp.set_nodelay(true)?;
        let transport = match tls {
            None => Transport::Plain(tcp),
            Some(tls) => {
                let stream = tls
                    .connector
                    .connect(tls.name.clone(), tcp)
                    .await
                    .map_err(|e| ConnectError::Tls {
                        server_name: tls.name.to_str().into_owned(),
                        reason: e.to_string(),
                    })?;
                Transport::Tls(Box::new(stream))
            }
        };
        let header = StreamHeader {
            to: Some(Cow::Borrowed(domain.as_str())),
            from: None,
            id: None,
        };
        let mut pending =
            initiate_stream(BufStream::new(transport), ns::COMPONENT, header, timeouts).await?;
        let stream_id = pending
            .take_header()
            .id
            .ok_or(ConnectError::NoStreamId)?
            .into_owned();
        let mut stream: XmppStream<_> = pending.skip_features();
        let handshake = Handshake::from_stream_id_and_password(stream_id, secret);
        stream
            .send(&XmppStreamElement::ComponentHandshake(handshake))
            .await?;
        loop {
            match stream.next().await {
                Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::ComponentHandshake(_)))) => {
                    return Ok(Self { stream })
                }
                Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::StreamError(e)))) => {
                    return Err(ConnectError::Refused(e.0.to_string()))
                }
                Some(Ok(other)) => {
                    tracing::debug!(?other, "ignoring element before handshake completed");
                }
                Some(Err(ReadError::SoftTimeout)) => {}
                Some(Err(ReadError::HardError(e))) => return Err(e.into()),
                Some(Err(ReadError::ParseError(e))) => {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e).into())
                }
                Some(Err(ReadError::StreamFooterReceived)) | None => {
                    return Err(ConnectError::Closed)
                }
            }
        }
    }

    /// Reads the next element. Cancel-safe: the parser state lives in the
    /// stream, not in the returned future.
    pub(crate) async fn next(&mut self) -> Incoming {
        match self.stream.next().await {
            Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::Stanza(stanza)))) => {
                let size = serialized_len(&stanza);
                Incoming::Stanza(Box::new(stanza), size)
            }
            Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::StreamError(e)))) => {
                Incoming::Closed(e.to_string())
            }
            Some(Ok(FallibleStreamElement::Ok(other))) => {
                Incoming::Ignored(format!("unexpected nonza {other:?}"))
            }
            Some(Ok(FallibleStreamElement::Err(StreamElementError::InvalidStanza {
                name,
                header,
                error,
                ..
            }))) => {
                let kind = match name.to_string().as_str() {
                    "message" => StanzaKind::Message,
                    "presence" => StanzaKind::Presence,
                    _ => StanzaKind::Iq,
                };
                Incoming::Invalid {
                    kind,
                    header,
                    error: error.to_string(),
                }
            }
            Some(Ok(FallibleStreamElement::Err(e @ StreamElementError::InvalidNonza { .. }))) => {
                Incoming::Ignored(e.to_string())
            }
            Some(Err(ReadError::SoftTimeout)) => Incoming::Idle,
            // Unknown top-level elements: the parser skipped them whole.
            Some(Err(ReadError::ParseError(e))) => Incoming::Ignored(e.to_string()),
            Some(Err(ReadError::HardError(e))) => Incoming::Closed(format!("i/o error: {e}")),
            Some(Err(ReadError::StreamFooterReceived)) => {
                Incoming::Closed("server closed the stream".to_owned())
            }
            None => Incoming::Closed("end of stream".to_owned()),
        }
    }

    /// Writes and flushes one stanza.
    pub(crate) async fn send(&mut self, stanza: Stanza) -> io::Result<()> {
        self.stream.send(&XmppStreamElement::Stanza(stanza)).await
    }

    /// Sends the stream footer and closes the socket.
    pub(crate) async fn close(mut self) -> io::Result<()> {
        <XmppStream<_> as SinkExt<&XmppStreamElement>>::close(&mut self.stream).await
    }
}

/// Byte length of a stanza's XML, without allocating the text.
pub(crate) fn serialized_len(stanza: &Stanza) -> usize {
    struct Counter(usize);
    impl fmt::Write for Counter {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0 += s.len();
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing into a counter cannot fail.
    let _ = write!(counter, "{}", PrintRawXml(stanza));
    counter.0
}
