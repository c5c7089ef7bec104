//! Pools of WebTransport sessions: [`ConnectionPool`] and [`SessionPool`].
//!
//! In wtransport one QUIC connection carries exactly one WebTransport
//! session, so both pool the same object, a [`wtransport::Connection`]. They
//! differ in who owns the client endpoint (the UDP socket and its settings):
//! a `ConnectionPool` makes its own from a `ClientConfig` and a host, port and
//! path; a `SessionPool` uses an endpoint the caller already has (and may
//! share between pools, one socket for many servers) and a full URL.

use std::ops::Deref;
use std::sync::Arc;

use tokio::runtime::Handle;
use url::Url;
use wtransport::endpoint::endpoint_side::Client;
use wtransport::{ClientConfig, Connection, Endpoint, VarInt};

use crate::fleet::FleetPlace;
use crate::{Builder, ClientOptions, TransportRuntime, WebTransportError, io};

/// A client endpoint (a UDP socket and its settings), shareable between
/// pools: cheap to clone, and it derefs to wtransport's [`Endpoint`].
///
/// It remembers whether it pins server certificates by hash, so that a
/// certificate refused by the pins is reported as
/// [`WebTransportError::CertificateNotPinned`] rather than as a plain TLS
/// failure (wtransport reports both alike). Make one with
/// [`client_endpoint`]; an endpoint of your own converts with `From` (and
/// then counts as not pinning).
///
/// ```
/// # fn demo(endpoint: wtransport::Endpoint<wtransport::endpoint::endpoint_side::Client>) {
/// use std::sync::Arc;
/// use wtpool_webtransport::ClientEndpoint;
///
/// let shared = ClientEndpoint::from(Arc::new(endpoint));
/// assert!(!shared.pins_certificates());
/// # }
/// ```
#[derive(Clone)]
pub struct ClientEndpoint {
    endpoint: Arc<Endpoint<Client>>,
    pinned: bool,
}

impl ClientEndpoint {
    /// Tells endpoints apart: the same for its clones, different for any
    /// other endpoint alive.
    pub(crate) fn id(&self) -> usize {
        Arc::as_ptr(&self.endpoint) as usize
    }

    /// Whether it accepts only server certificates pinned by hash
    /// ([`ServerCertificate::Hashes`](crate::ServerCertificate::Hashes)).
    pub fn pins_certificates(&self) -> bool {
        self.pinned
    }
}

impl From<Arc<Endpoint<Client>>> for ClientEndpoint {
    fn from(endpoint: Arc<Endpoint<Client>>) -> Self {
        ClientEndpoint {
            endpoint,
            pinned: false,
        }
    }
}

impl Deref for ClientEndpoint {
    type Target = Endpoint<Client>;

    fn deref(&self) -> &Endpoint<Client> {
        &self.endpoint
    }
}

impl std::fmt::Debug for ClientEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientEndpoint")
            .field("pinned", &self.pinned)
            .finish_non_exhaustive()
    }
}

/// Makes a client endpoint from `options`, on the runtime wtransport needs
/// (see [`TransportRuntime`]).
pub fn client_endpoint<R: TransportRuntime>(
    options: &ClientOptions,
) -> Result<ClientEndpoint, WebTransportError> {
    let config = options.build()?;
    let endpoint = endpoint_from(R::default().io_handle().as_ref(), config)?;
    Ok(ClientEndpoint {
        endpoint,
        pinned: matches!(
            options.server_certificate,
            crate::ServerCertificate::Hashes(_)
        ),
    })
}

fn endpoint_from(
    io: Option<&Handle>,
    config: ClientConfig,
) -> Result<Arc<Endpoint<Client>>, WebTransportError> {
    io::enter(io, || Endpoint::client(config))?
        .map(Arc::new)
        .map_err(WebTransportError::Endpoint)
}

/// Makes WebTransport sessions to one URL from one client endpoint.
///
/// A [`SessionPool`] or [`ConnectionPool`] makes it from its endpoint and
/// URL, and lends it with [`factory`](wtpool::Pool::factory):
///
/// ```
/// use wtpool_webtransport::{ClientEndpoint, SessionFactory, SessionPool, TransportRuntime};
///
/// fn demo<R: TransportRuntime>(
///     client: ClientEndpoint, // pins the server's certificate
///     url: url::Url,
/// ) -> Result<(), Box<dyn std::error::Error>> {
///     let sessions = SessionPool::<R>::new(client, url.clone(), 8)?;
///     let factory: &SessionFactory = sessions.factory();
///     assert_eq!(factory.url(), &url);
///     assert!(factory.endpoint().pins_certificates());
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
/// # let client = wtpool_webtransport::client_endpoint::<Tokio>(&options)?;
/// # demo::<Tokio>(client, server.url())
/// # }
/// ```
pub struct SessionFactory {
    endpoint: ClientEndpoint,
    url: Url,
    io: Option<Handle>,
    /// In a [`Fleet`](crate::Fleet): the cap on sessions across its servers,
    /// which each session takes a place in.
    cap: Option<FleetPlace>,
}

impl SessionFactory {
    pub(crate) fn new<R: TransportRuntime>(
        endpoint: ClientEndpoint,
        url: Url,
    ) -> Result<Self, WebTransportError> {
        check_url(&url)?;
        Ok(SessionFactory {
            endpoint,
            url,
            io: R::default().io_handle(),
            cap: None,
        })
    }

    /// Its sessions count against a fleet's cap, as those of the server `place` names.
    pub(crate) fn in_fleet(mut self, place: FleetPlace) -> Self {
        self.cap = Some(place);
        self
    }

    /// The URL sessions are made to.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The client endpoint sessions are made from.
    pub fn endpoint(&self) -> &ClientEndpoint {
        &self.endpoint
    }
}

impl SessionFactory {
    /// One handshake.
    async fn connect(&self) -> Result<Connection, WebTransportError> {
        let endpoint = self.endpoint.clone();
        let url = self.url.to_string();
        io::run(self.io.as_ref(), async move { endpoint.connect(url).await })
            .await?
            .map_err(|error| {
                // Errors are logged: the URL without credentials or query.
                WebTransportError::from_connecting(
                    &public_part(&self.url),
                    error,
                    self.endpoint.pinned,
                )
            })
    }
}

impl wtpool::Factory for SessionFactory {
    type Object = Connection;
    type Error = WebTransportError;

    /// Connects; a handshake torn by wtransport's frame-reading race (see
    /// [`WebTransportError::is_torn_handshake`]) is tried once more.
    async fn create(&self) -> Result<Connection, WebTransportError> {
        // In a fleet, a place under its cap first; given back if this fails.
        let place = match &self.cap {
            Some(cap) => Some(cap.take().await),
            None => None,
        };
        let connected = match self.connect().await {
            Err(error) if error.is_torn_handshake() => {
                #[cfg(feature = "tracing")]
                tracing::debug!(
                    url = public_part(&self.url),
                    cause = %wtpool::ErrorChain(&error),
                    "handshake torn by wtransport's race: trying once more"
                );
                self.connect().await
            }
            connected => connected,
        };
        #[cfg(feature = "tracing")]
        if let Err(WebTransportError::SessionRejected { .. }) = &connected {
            tracing::warn!(
                url = public_part(&self.url),
                "session refused by the server"
            );
        }
        if let (Ok(_), Some(place)) = (&connected, place) {
            // Held by the session until it is closed.
            place.keep();
        }
        connected
    }

    /// A session the server rejected (an HTTP status other than 200 at the
    /// CONNECT: 429, 503, 404...) or a handshake it refused (a WebTransport
    /// draft it does not speak) is a refusal: the pool backs off rather than
    /// have every waiter try a handshake of its own.
    fn is_refusal(&self, error: &WebTransportError) -> bool {
        matches!(
            error,
            WebTransportError::SessionRejected { .. } | WebTransportError::Handshake { .. }
        )
    }

    /// A session is alive until its QUIC connection has a close reason:
    /// closed by either side, or timed out.
    fn is_alive(&self, session: &mut Connection) -> bool {
        session.quic_connection().close_reason().is_none()
    }

    async fn close(&self, session: Connection) -> Result<(), WebTransportError> {
        session.close(VarInt::from_u32(0), b"closed by the pool");
        if let Some(cap) = &self.cap {
            cap.give_back();
        }
        Ok(())
    }
}

/// A URL WebTransport can use: `https`, with a host.
fn check_url(url: &Url) -> Result<(), WebTransportError> {
    let reason = if url.scheme() != "https" {
        format!("the scheme must be https, not {:?}", url.scheme())
    } else if url.host().is_none() {
        "it has no host".to_owned()
    } else {
        return Ok(());
    };
    Err(WebTransportError::InvalidUrl {
        url: url.to_string(),
        reason,
    })
}

/// The name a session or connection pool gets by default, and what its
/// events say of its URL: scheme, host, port and path, without credentials,
/// query or fragment, which must not reach logs and metric labels.
pub(crate) fn public_part(url: &Url) -> String {
    let mut public = url.clone();
    // Infallible for an https URL with a host (checked before).
    let _ = public.set_username("");
    let _ = public.set_password(None);
    public.set_query(None);
    public.set_fragment(None);
    public.into()
}

/// The builder of a [`SessionPool`].
pub type SessionPoolBuilder<R> = Builder<SessionFactory, R, SessionPool<R>>;
/// The builder of a [`ConnectionPool`].
pub type ConnectionPoolBuilder<R> = Builder<SessionFactory, R, ConnectionPool<R>>;

/// A pool of WebTransport sessions to one URL, made from a client endpoint
/// the caller owns and may share.
///
/// It derefs to [`wtpool::Pool`], which has `acquire`, `release`, `get`,
/// `close`, `status` and the rest. A session closed by either side, or timed
/// out, is never handed out, and its slot is freed at once.
///
/// ```no_run
/// use wtpool_webtransport::{ClientOptions, SessionPool, TransportRuntime, client_endpoint};
///
/// async fn demo<R: TransportRuntime>() -> Result<(), Box<dyn std::error::Error>> {
///     let client = client_endpoint::<R>(&ClientOptions::default())?; // one socket, shareable
///     let sessions = SessionPool::<R>::new(client, "https://example.com:4433/chat".parse()?, 8)?;
///     let session = sessions.acquire().await?; // derefs to wtransport::Connection
///     let (mut send, _recv) = session.open_bi().await?.await?;
///     send.write_all(b"hello").await?;
///     Ok(())
/// }
/// ```
pub struct SessionPool<R: TransportRuntime> {
    pool: wtpool::Pool<SessionFactory, R>,
}

impl<R: TransportRuntime> SessionPool<R> {
    /// A pool of at most `max_size` sessions to `url` (which must be https)
    /// from `client`, with the WebTransport defaults of [`Builder`].
    pub fn new(
        client: impl Into<ClientEndpoint>,
        url: Url,
        max_size: usize,
    ) -> Result<Self, WebTransportError> {
        Self::builder(client, url, max_size)?.build()
    }

    /// A builder, to change the engine's options before the pool is made.
    pub fn builder(
        client: impl Into<ClientEndpoint>,
        url: Url,
        max_size: usize,
    ) -> Result<SessionPoolBuilder<R>, WebTransportError> {
        let name = public_part(&url);
        let factory = SessionFactory::new::<R>(client.into(), url)?;
        Ok(Builder::new(factory, name, max_size, |options| {
            Ok(SessionPool {
                pool: options.build()?,
            })
        }))
    }
}

impl<R: TransportRuntime> Deref for SessionPool<R> {
    type Target = wtpool::Pool<SessionFactory, R>;

    fn deref(&self) -> &Self::Target {
        &self.pool
    }
}

impl<R: TransportRuntime> Clone for SessionPool<R> {
    fn clone(&self) -> Self {
        SessionPool {
            pool: self.pool.clone(),
        }
    }
}

/// A pool of WebTransport connections to `https://host:port/path`, from a
/// client endpoint the pool makes and owns.
///
/// It derefs to [`wtpool::Pool`], which has `acquire`, `release`, `get`,
/// `close`, `status` and the rest.
///
/// ```no_run
/// use wtpool_webtransport::{ClientOptions, ConnectionPool, TransportRuntime};
///
/// async fn demo<R: TransportRuntime>() -> Result<(), Box<dyn std::error::Error>> {
///     let config = ClientOptions::default().build()?; // keep-alive and idle timeout set
///     let pool = ConnectionPool::<R>::new(config, "example.com", 4433, "/chat", 4)?;
///     let connection = pool.acquire().await?;
///     connection.send_datagram(b"ping")?;
///     Ok(())
/// }
/// ```
pub struct ConnectionPool<R: TransportRuntime> {
    pool: wtpool::Pool<SessionFactory, R>,
}

impl<R: TransportRuntime> ConnectionPool<R> {
    /// A pool of at most `max_size` connections to `https://host:port/path`
    /// (an empty path is "/"), from an endpoint made with `config`.
    ///
    /// `config` is used as given: build it with
    /// [`ClientOptions`](crate::ClientOptions) for keep-alive and idle-timeout
    /// settings fit for pooling.
    pub fn new(
        config: ClientConfig,
        host: &str,
        port: u16,
        path: &str,
        max_size: usize,
    ) -> Result<Self, WebTransportError> {
        Self::builder(config, host, port, path, max_size)?.build()
    }

    /// A builder, to change the engine's options before the pool is made.
    pub fn builder(
        config: ClientConfig,
        host: &str,
        port: u16,
        path: &str,
        max_size: usize,
    ) -> Result<ConnectionPoolBuilder<R>, WebTransportError> {
        let url = url_of(host, port, path)?;
        let io = R::default().io_handle();
        let endpoint = io::enter(io.as_ref(), || Endpoint::client(config))?
            .map_err(WebTransportError::Endpoint)?;
        let name = public_part(&url);
        let factory = SessionFactory::new::<R>(Arc::new(endpoint).into(), url)?;
        Ok(Builder::new(factory, name, max_size, |options| {
            Ok(ConnectionPool {
                pool: options.build()?,
            })
        }))
    }
}

/// `https://host:port/path`, with an IPv6 host in brackets. A host that
/// holds anything but a name or an address (a `/`, `?`, `#`, `@`, `:`,
/// blanks…) is refused rather than allowed to move the target.
fn url_of(host: &str, port: u16, path: &str) -> Result<Url, WebTransportError> {
    let invalid = |reason: &str| WebTransportError::InvalidUrl {
        url: format!("https://{host}:{port}{path}"),
        reason: reason.to_owned(),
    };
    let host = if host.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{host}]")
    } else if !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_alphanumeric() || "-._".contains(c))
    {
        host.to_owned()
    } else {
        return Err(invalid("the host must be a name or an IP address"));
    };
    let path = path.strip_prefix('/').unwrap_or(path);
    let url = Url::parse(&format!("https://{host}:{port}/{path}"))
        .map_err(|e| invalid(&e.to_string()))?;
    if url.port_or_known_default() != Some(port) {
        return Err(invalid("the path moves the port"));
    }
    Ok(url)
}

impl<R: TransportRuntime> Deref for ConnectionPool<R> {
    type Target = wtpool::Pool<SessionFactory, R>;

    fn deref(&self) -> &Self::Target {
        &self.pool
    }
}

impl<R: TransportRuntime> Clone for ConnectionPool<R> {
    fn clone(&self) -> Self {
        ConnectionPool {
            pool: self.pool.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_built_and_checked() {
        assert_eq!(
            url_of("localhost", 4433, "").unwrap().as_str(),
            "https://localhost:4433/"
        );
        assert_eq!(
            url_of("::1", 4433, "/echo").unwrap().as_str(),
            "https://[::1]:4433/echo"
        );
        assert!(matches!(
            url_of("", 1, "/"),
            Err(WebTransportError::InvalidUrl { .. })
        ));
        let http = Url::parse("http://localhost/").unwrap();
        let error = check_url(&http).unwrap_err().to_string();
        assert!(error.contains("scheme must be https"), "{error}");
    }
}
