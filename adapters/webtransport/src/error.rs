//! The errors of the WebTransport pools, one for each way a session can fail
//! to come about.
//!
//! Each message names what failed at this layer; the cause, where there is
//! one, is reached through `source()` and never repeated in the message, so
//! that a reporter walking the chain (anyhow, eyre, tracing) prints each
//! message once.

use std::time::Duration;

use wtransport::error::{ConnectingError, ConnectionError, StreamOpeningError};

/// Why a WebTransport session or stream could not be had, or a pool not made.
///
/// The URL a connect error names is the pool's URL without credentials,
/// query or fragment, since errors end up in logs (`InvalidUrl` alone
/// shows the URL as given, to say what is wrong with it).
///
/// An acquire from a session pool reports it as
/// [`PoolError::Create`](wtpool::PoolError::Create):
///
/// ```
/// use wtpool::PoolError;
/// use wtpool_webtransport::echo::EchoServer;
/// use wtpool_webtransport::{ClientOptions, SessionPool, TransportRuntime, WebTransportError};
/// use wtpool_webtransport::client_endpoint;
///
/// fn advice(error: &PoolError<WebTransportError>) -> &'static str {
///     match error {
///         PoolError::Create(e) => match e {
///             WebTransportError::SessionRejected { .. } => "wrong path, or server full",
///             WebTransportError::Unreachable { .. } => "no server there",
///             WebTransportError::CertificateNotPinned { .. } => "not the pinned certificate",
///             _ => "cannot connect",
///         },
///         _ => "try again later",
///     }
/// }
///
/// async fn demo<R: TransportRuntime>(
///     server: &EchoServer,
///     pinned: ClientOptions,
/// ) -> Result<(), Box<dyn std::error::Error>> {
///     let url = server.url().join("/nowhere")?; // it serves /echo alone: 404
///     let pool = SessionPool::<R>::new(client_endpoint::<R>(&pinned)?, url, 1)?;
///     let Err(error) = pool.acquire().await else { unreachable!() };
///     assert_eq!(advice(&error), "wrong path, or server full");
///
///     let other = pinned.with_certificate_hash([0; 32].into()); // pins another certificate
///     let pool = SessionPool::<R>::new(client_endpoint::<R>(&other)?, server.url(), 1)?;
///     let Err(error) = pool.acquire().await else { unreachable!() };
///     assert_eq!(advice(&error), "not the pinned certificate");
///     Ok(())
/// }
/// # use wtpool_tokio::Tokio;
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = wtpool_webtransport::echo::EchoServer::start(Default::default())?;
/// # let options = wtpool_webtransport::ClientOptions {
/// #     bind: Some(([127, 0, 0, 1], 0).into()),
/// #     ..Default::default()
/// # }
/// # .with_certificate_hash(server.certificate_hash());
/// # demo::<Tokio>(&server, options).await
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
pub enum WebTransportError {
    /// A pool setting cannot work (a `max_size` of 0, say).
    #[error("invalid pool setting")]
    Config(#[source] wtpool::ConfigError),
    /// The URL cannot be used for WebTransport.
    #[error("invalid WebTransport URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The idle timeout is zero (QUIC would read it as none) or too large for QUIC.
    #[error(
        "invalid QUIC idle timeout {0:?}: it must be above zero and fit QUIC (use None for no timeout)"
    )]
    InvalidIdleTimeout(Option<Duration>),
    /// A keep-alive interval of zero (use `None` for no keep-alive).
    #[error("invalid keep-alive interval {0:?}: use None for no keep-alive")]
    InvalidKeepAlive(Duration),
    /// The client endpoint (its UDP socket) could not be set up.
    #[error("could not set up the client endpoint")]
    Endpoint(#[source] std::io::Error),
    /// The host name of the URL does not resolve.
    #[error("cannot resolve the host of {url}: {reason}")]
    Resolve {
        /// The URL.
        url: String,
        /// What the resolver said.
        reason: String,
    },
    /// Nothing answered at the server's address before the QUIC idle timeout
    /// (6 s with [`ClientOptions::default`](crate::ClientOptions); QUIC waits
    /// at least three probe timeouts, 3 s at first, however short it is).
    #[error("no WebTransport server answered at {url} (QUIC handshake timed out)")]
    Unreachable {
        /// The URL.
        url: String,
    },
    /// The TLS handshake failed: the certificate was refused (not trusted,
    /// wrong name, wrong pinned hash) or the peers share no cipher or protocol.
    #[error("TLS handshake with {url} failed")]
    Tls {
        /// The URL.
        url: String,
        /// What QUIC reported.
        #[source]
        source: ConnectionError,
    },
    /// The endpoint pins server certificates by hash
    /// ([`ServerCertificate::Hashes`](crate::ServerCertificate::Hashes)), and
    /// the server's certificate matches none of the hashes, or is not fit for
    /// pinning (it must be ECDSA P-256 and valid 14 days at most).
    #[error(
        "the certificate of {url} matches no pinned hash (a pinned certificate must also be \
         ECDSA P-256 and valid 14 days at most)"
    )]
    CertificateNotPinned {
        /// The URL.
        url: String,
        /// What QUIC reported.
        #[source]
        source: ConnectionError,
    },
    /// The server answered the WebTransport request with an error status
    /// (404 Not Found, 429 Too Many Requests, 403 Forbidden…). wtransport
    /// 0.7.2 drops the status itself (its `SessionRejected` carries none), so
    /// this error cannot say which one it was.
    #[error("the server at {url} refused the WebTransport session (HTTP error status)")]
    SessionRejected {
        /// The URL.
        url: String,
    },
    /// The connection was closed during the handshake: for instance a server
    /// that speaks another WebTransport draft ("h3_settings validate invalid").
    #[error("the connection to {url} failed during the handshake")]
    Handshake {
        /// The URL.
        url: String,
        /// What QUIC or HTTP/3 reported.
        #[source]
        source: ConnectionError,
    },
    /// Another connect failure.
    #[error("connecting to {url} failed")]
    Connect {
        /// The URL.
        url: String,
        /// What wtransport reported.
        #[source]
        source: ConnectingError,
    },
    /// The session the stream pool opens streams on is closed.
    #[error("the session is closed")]
    SessionClosed(#[source] ConnectionError),
    /// The peer refused a new stream.
    #[error("could not open a stream")]
    StreamOpen(#[source] StreamOpeningError),
    /// wtransport needs a tokio runtime, and none was there.
    #[error(
        "no tokio runtime to run wtransport on: call this inside a tokio runtime, or use wtpool-smol"
    )]
    NoIoRuntime,
    /// The background task running a handshake ended without a result (its runtime shut down).
    #[error("the background handshake task ended without a result")]
    IoTaskLost,
}

impl WebTransportError {
    /// Sorts a connect failure into the error a user can act on; `pinned`
    /// says whether the endpoint pins certificates by hash.
    pub(crate) fn from_connecting(url: &str, error: ConnectingError, pinned: bool) -> Self {
        let url = url.to_owned();
        match error {
            ConnectingError::InvalidUrl(reason) => WebTransportError::InvalidUrl { url, reason },
            ConnectingError::DnsLookup(error) => WebTransportError::Resolve {
                url,
                reason: error.to_string(),
            },
            ConnectingError::DnsNotFound => WebTransportError::Resolve {
                url,
                reason: "no address found".into(),
            },
            ConnectingError::SessionRejected => WebTransportError::SessionRejected { url },
            ConnectingError::ConnectionError(ConnectionError::TimedOut) => {
                WebTransportError::Unreachable { url }
            }
            // wtransport's hash verifier refuses a certificate as it would an
            // unknown issuer: only the endpoint's pins tell the two apart.
            ConnectingError::ConnectionError(source)
                if pinned && is_tls_failure(&source) && is_certificate_refused(&source) =>
            {
                WebTransportError::CertificateNotPinned { url, source }
            }
            ConnectingError::ConnectionError(source) if is_tls_failure(&source) => {
                WebTransportError::Tls { url, source }
            }
            ConnectingError::ConnectionError(source) => {
                WebTransportError::Handshake { url, source }
            }
            source => WebTransportError::Connect { url, source },
        }
    }
}

impl WebTransportError {
    /// Whether the handshake was closed, by either side, with an HTTP/3
    /// frame error (`H3_FRAME_UNEXPECTED`, `H3_FRAME_ERROR`,
    /// `H3_EXCESSIVE_LOAD`).
    ///
    /// wtransport 0.7.2 reads the frames of its HTTP/3 control streams inside
    /// a `select!` loop that drops a read halfway whenever another event
    /// comes first; the next read then starts in the middle of a frame and
    /// the connection is closed with one of these codes. It is rare, and more
    /// likely on a busy machine. A [`SessionFactory`](crate::SessionFactory)
    /// tries such a handshake once more before it reports the failure.
    pub fn is_torn_handshake(&self) -> bool {
        const FRAME_ERRORS: std::ops::RangeInclusive<u64> = 0x105..=0x107;
        match self {
            WebTransportError::Handshake { source, .. } => match source {
                ConnectionError::ApplicationClosed(close) => {
                    FRAME_ERRORS.contains(&close.code().into_inner())
                }
                // wtransport keeps the code of a local HTTP/3 error private:
                // its name is in the text.
                ConnectionError::LocalH3Error(error) => {
                    let name = error.to_string();
                    ["FrameUnexpectedError", "FrameError", "ExcessiveLoad"].contains(&name.as_str())
                }
                _ => false,
            },
            _ => false,
        }
    }
}

/// Whether the TLS failure is ours refusing the server's certificate
/// (rustls names the certificate error in the text).
fn is_certificate_refused(error: &ConnectionError) -> bool {
    error.to_string().contains("certificate")
}

/// Whether QUIC closed the connection with a TLS alert (a CRYPTO_ERROR,
/// transport error codes 0x100 to 0x1ff). wtransport does not expose the
/// code itself, only in the text: "... (code: N)" for a local error, and
/// "the cryptographic handshake failed" for one the peer sent.
fn is_tls_failure(error: &ConnectionError) -> bool {
    let text = error.to_string();
    let code = text
        .rsplit_once("(code: ")
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .and_then(|n| n.parse::<u64>().ok());
    code.is_some_and(|c| (0x100..0x200).contains(&c))
        || text.contains("cryptographic handshake failed")
}
