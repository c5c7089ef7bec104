//! Sessions shared by many borrowers: [`SharedSessionPool`].
//!
//! A WebTransport session multiplexes many streams, so it need not be lent
//! to one borrower at a time as a database connection is. A shared pool
//! lends each session to up to `max_leases` borrowers at once and sends each
//! new borrower to the live session with the fewest, so that 64 concurrent
//! requests need 4 sessions rather than 64 handshakes.

use std::ops::Deref;

use url::Url;
use wtransport::error::SendDatagramError;
use wtransport::{Connection, RecvStream, SendStream};

use crate::session::{SessionFactory, public_part};
use crate::{Builder, ClientEndpoint, TransportRuntime, WebTransportError};

/// Borrowers per session that [`SharedSessionPool`] users can start from.
///
/// A borrower that opens one stream at a time then needs at most 16
/// concurrent bidirectional streams of a session, well within what servers
/// grant (quinn's default is 100; wtransport's server keeps it), so that no
/// borrower waits for stream credit that another holds. On loopback, 4
/// sessions of 16 borrowers carry more requests a second than 64 sessions
/// of one (see docs/benchmarks.md).
pub const DEFAULT_MAX_LEASES: usize = 16;

/// The builder of a [`SharedSessionPool`].
pub type SharedSessionPoolBuilder<R> = Builder<SessionFactory, R, SharedSessionPool<R>>;

/// A lease on a session of a [`SharedSessionPool`]: it derefs to
/// [`wtransport::Connection`] (shared access).
pub type SessionLease<R> = wtpool::Lease<SessionFactory, R>;

/// A pool of WebTransport sessions to one URL, each shared by up to
/// `max_leases` borrowers at once (see [`wtpool::SharedPool`]).
///
/// It derefs to [`wtpool::SharedPool`], whose `acquire` gives a
/// [`SessionLease`]. [`open_bi`](Self::open_bi) opens a stream on the least
/// busy live session and holds that session's lease for as long as the
/// stream lives; [`send_datagram`](Self::send_datagram) sends a datagram on
/// it. A session closed by either side, or timed out, takes no new lease: the
/// next borrowers go to another session, and its slot is freed when its last
/// lease comes back.
///
/// ```no_run
/// use wtpool_webtransport::{
///     ClientOptions, DEFAULT_MAX_LEASES, SharedSessionPool, TransportRuntime, client_endpoint,
/// };
///
/// async fn demo<R: TransportRuntime>() -> Result<(), Box<dyn std::error::Error>> {
///     let client = client_endpoint::<R>(&ClientOptions::default())?;
///     let url = "https://example.com:4433/chat".parse()?;
///     // At most 4 sessions, 16 borrowers on each.
///     let sessions = SharedSessionPool::<R>::new(client, url, 4, DEFAULT_MAX_LEASES)?;
///     let mut stream = sessions.open_bi().await?;
///     stream.send().write_all(b"hello").await?;
///     stream.send().finish().await?;
///     let mut reply = [0; 64];
///     let n = stream.recv().read(&mut reply).await?;
///     # drop(n);
///     Ok(())
/// }
/// ```
pub struct SharedSessionPool<R: TransportRuntime> {
    pool: wtpool::SharedPool<SessionFactory, R>,
}

impl<R: TransportRuntime> SharedSessionPool<R> {
    /// A pool of at most `max_sessions` sessions to `url` (which must be
    /// https) from `client`, each lent to up to `max_leases` borrowers, with
    /// the WebTransport defaults of [`Builder`].
    pub fn new(
        client: impl Into<ClientEndpoint>,
        url: Url,
        max_sessions: usize,
        max_leases: usize,
    ) -> Result<Self, WebTransportError> {
        Self::builder(client, url, max_sessions, max_leases)?.build()
    }

    /// A builder, to change the engine's options before the pool is made.
    pub fn builder(
        client: impl Into<ClientEndpoint>,
        url: Url,
        max_sessions: usize,
        max_leases: usize,
    ) -> Result<SharedSessionPoolBuilder<R>, WebTransportError> {
        let factory = SessionFactory::new::<R>(client.into(), url)?;
        Ok(Self::with_factory(factory, max_sessions, max_leases))
    }

    pub(crate) fn with_factory(
        factory: SessionFactory,
        max_sessions: usize,
        max_leases: usize,
    ) -> SharedSessionPoolBuilder<R> {
        let name = public_part(factory.url());
        Builder::new(factory, name, max_sessions, move |options| {
            Ok(SharedSessionPool {
                pool: options.build_shared(max_leases)?,
            })
        })
    }

    /// Opens a bidirectional stream on the least busy live session (making
    /// one if every session is full and there is room), holding the
    /// session's lease until the stream is dropped.
    ///
    /// A session that died between the pool's check and the opening fails
    /// this call ([`SharedSessionError::Open`]); its lease, given back, retires
    /// it, so the next call goes to another session.
    pub async fn open_bi(&self) -> Result<SharedStream<R>, SharedSessionError> {
        let lease = self.pool.acquire().await?;
        match open_bi(&lease).await {
            Ok((send, recv)) => Ok(SharedStream { send, recv, lease }),
            Err(error) => Err(SharedSessionError::Open(error)),
        }
    }

    /// Sends one datagram on the least busy live session.
    pub async fn send_datagram(&self, payload: impl AsRef<[u8]>) -> Result<(), SharedSessionError> {
        let lease = self.pool.acquire().await?;
        lease
            .send_datagram(payload)
            .map_err(SharedSessionError::Datagram)
    }
}

async fn open_bi(session: &Connection) -> Result<(SendStream, RecvStream), WebTransportError> {
    let opening = session
        .open_bi()
        .await
        .map_err(WebTransportError::SessionClosed)?;
    opening.await.map_err(WebTransportError::StreamOpen)
}

impl<R: TransportRuntime> Deref for SharedSessionPool<R> {
    type Target = wtpool::SharedPool<SessionFactory, R>;

    fn deref(&self) -> &Self::Target {
        &self.pool
    }
}

impl<R: TransportRuntime> Clone for SharedSessionPool<R> {
    fn clone(&self) -> Self {
        SharedSessionPool {
            pool: self.pool.clone(),
        }
    }
}

/// A bidirectional stream opened by [`SharedSessionPool::open_bi`], with the
/// lease on its session: the session takes no more borrowers than it has
/// room for while the stream lives. Dropping it drops both halves (a half
/// not finished is reset) and gives the lease back.
pub struct SharedStream<R: TransportRuntime> {
    send: SendStream,
    recv: RecvStream,
    lease: SessionLease<R>,
}

impl<R: TransportRuntime> SharedStream<R> {
    /// The sending half.
    pub fn send(&mut self) -> &mut SendStream {
        &mut self.send
    }

    /// The receiving half.
    pub fn recv(&mut self) -> &mut RecvStream {
        &mut self.recv
    }

    /// The session the stream is on.
    pub fn session(&self) -> &Connection {
        &self.lease
    }

    /// Both halves and the lease, to be dropped when the caller is done.
    pub fn into_parts(self) -> (SendStream, RecvStream, SessionLease<R>) {
        (self.send, self.recv, self.lease)
    }
}

/// Why a [`SharedSessionPool`] could not open a stream or send a datagram.
#[derive(Debug, thiserror::Error)]
pub enum SharedSessionError {
    /// No session could be leased (the pool is closed, a wait or a
    /// handshake timed out, the server refused the session...).
    #[error("no session could be leased")]
    Acquire(#[source] wtpool::PoolError<WebTransportError>),
    /// A session was leased, but the stream could not be opened on it.
    #[error("a stream could not be opened on a leased session")]
    Open(#[source] WebTransportError),
    /// A session was leased, but the datagram could not be sent on it.
    #[error("a datagram could not be sent on a leased session")]
    Datagram(#[source] SendDatagramError),
    /// A [`Fleet`](crate::Fleet) cannot pool sessions to this server (its
    /// URL is not https, or has no host).
    #[error("the fleet cannot reach this server")]
    Server(#[source] WebTransportError),
}

impl From<wtpool::PoolError<WebTransportError>> for SharedSessionError {
    fn from(error: wtpool::PoolError<WebTransportError>) -> Self {
        SharedSessionError::Acquire(error)
    }
}
