//! Client settings fit for pooling.

use std::net::SocketAddr;
use std::time::Duration;

use wtransport::ClientConfig;
use wtransport::tls::Sha256Digest;

use crate::WebTransportError;

/// How often an idle pooled connection pings its peer by default.
pub const DEFAULT_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(2);
/// After how long without a packet a connection is taken for dead by default.
/// With the keep-alive above, a peer that vanished without closing is noticed
/// within this time (QUIC uses the smaller of both sides' idle timeouts).
pub const DEFAULT_MAX_IDLE_TIMEOUT: Duration = Duration::from_secs(6);

/// How the client checks the server's certificate.
///
/// ```
/// use wtpool_webtransport::echo::{EchoServer, EchoServerOptions};
/// use wtpool_webtransport::{ClientOptions, ServerCertificate};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // A public server: its chain is checked against the system's roots.
/// let public = ClientOptions::default();
/// assert!(matches!(public.server_certificate, ServerCertificate::NativeRoots));
///
/// // A server with a short-lived self-signed certificate: pin its hash.
/// let server = EchoServer::start(EchoServerOptions::default())?; // on 127.0.0.1
/// let pinned = ClientOptions {
///     server_certificate: ServerCertificate::Hashes(vec![server.certificate_hash()]),
///     bind: Some(([127, 0, 0, 1], 0).into()),
///     ..ClientOptions::default()
/// };
/// let client = wtransport::Endpoint::client(pinned.build()?)?;
/// let session = client.connect(server.url().as_str()).await?; // the pin matches
/// # drop(session);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub enum ServerCertificate {
    /// Validate the chain against the system's root certificates (the default).
    #[default]
    NativeRoots,
    /// Accept only a certificate whose SHA-256 hash is listed (pinning, as the
    /// browsers' `serverCertificateHashes`; the certificate must be ECDSA P-256
    /// and valid for 14 days or less).
    Hashes(Vec<Sha256Digest>),
    /// Accept any certificate. Only with the `dangerous-configuration`
    /// feature: it gives up all protection against an active attacker.
    #[cfg(feature = "dangerous-configuration")]
    NoValidation,
}

/// Client settings that build a [`wtransport::ClientConfig`] fit for pooling:
/// keep-alive and idle timeout set so that a dead peer is noticed within
/// seconds, and certificate validation on.
///
/// ```
/// use std::time::Duration;
/// use wtpool_webtransport::{ClientOptions, ServerCertificate};
///
/// let options = ClientOptions {
///     max_idle_timeout: Some(Duration::from_secs(3)),
///     ..ClientOptions::default()
/// };
/// assert!(matches!(options.server_certificate, ServerCertificate::NativeRoots));
/// ```
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The local address to bind; `None` binds an unspecified dual-stack
    /// address with a free port.
    pub bind: Option<SocketAddr>,
    /// How the server's certificate is checked.
    pub server_certificate: ServerCertificate,
    /// Keep-alive pings while idle; `None` sends none.
    pub keep_alive_interval: Option<Duration>,
    /// The QUIC idle timeout; `None` means no timeout (a vanished peer is
    /// then never noticed while the connection is idle).
    pub max_idle_timeout: Option<Duration>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            bind: None,
            server_certificate: ServerCertificate::default(),
            keep_alive_interval: Some(DEFAULT_KEEP_ALIVE_INTERVAL),
            max_idle_timeout: Some(DEFAULT_MAX_IDLE_TIMEOUT),
        }
    }
}

impl ClientOptions {
    /// Pins the server certificate by its hash (see [`ServerCertificate::Hashes`]).
    pub fn with_certificate_hash(mut self, hash: Sha256Digest) -> Self {
        self.server_certificate = ServerCertificate::Hashes(vec![hash]);
        self
    }

    /// Builds the `ClientConfig`.
    pub fn build(&self) -> Result<ClientConfig, WebTransportError> {
        // QUIC reads an idle timeout of 0 as "none" (RFC 9000, 18.2), and a
        // keep-alive of 0 would ping without pause: `None` says "off".
        if self.max_idle_timeout.is_some_and(|t| t.is_zero()) {
            return Err(WebTransportError::InvalidIdleTimeout(self.max_idle_timeout));
        }
        if self.keep_alive_interval.is_some_and(|t| t.is_zero()) {
            return Err(WebTransportError::InvalidKeepAlive(Duration::ZERO));
        }
        let builder = ClientConfig::builder();
        let builder = match self.bind {
            Some(address) => builder.with_bind_address(address),
            None => builder.with_bind_default(),
        };
        let builder = match &self.server_certificate {
            ServerCertificate::NativeRoots => builder.with_native_certs(),
            ServerCertificate::Hashes(hashes) => {
                builder.with_server_certificate_hashes(hashes.iter().cloned())
            }
            #[cfg(feature = "dangerous-configuration")]
            ServerCertificate::NoValidation => builder.with_no_cert_validation(),
        };
        Ok(builder
            .max_idle_timeout(self.max_idle_timeout)
            .map_err(|_| WebTransportError::InvalidIdleTimeout(self.max_idle_timeout))?
            .keep_alive_interval(self.keep_alive_interval)
            .build())
    }
}
