//! wtpool on smol: the [`Smol`] runtime binding and the pool types bound to it.
//!
//! ```
//! use wtpool_smol::{Factory, Pool};
//!
//! struct Numbers;
//!
//! impl Factory for Numbers {
//!     type Object = u64;
//!     type Error = std::io::Error;
//!
//!     async fn create(&self) -> Result<u64, std::io::Error> {
//!         Ok(42)
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! smol::block_on(async {
//!     let pool = Pool::new(Numbers, 4)?;
//!     let n = pool.acquire().await?;
//!     assert_eq!(*n, 42);
//!     Ok(())
//! })
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

pub use wtpool::{
    CloseErrors, ConfigError, Counters, ErrorChain, Factory, ObjectMeta, PoolError, Status,
    TimeoutKind, machine, observe,
};

/// smol's timers and its global executor, for the pool.
///
/// A pool on it spawns its creations, closes and upkeep task on smol's
/// global executor, whichever executor or thread calls into the pool, and
/// reads its time from the system's monotonic clock, the one smol's timers
/// count on ([`Runtime::now`](wtpool::Runtime::now)'s default). None of it
/// needs a runtime context: a pool on smol works from any thread.
///
/// ```
/// use std::time::Duration;
/// use wtpool_smol::{Builder, Factory, Pool, Smol};
/// # struct Numbers;
/// # impl Factory for Numbers {
/// #     type Object = u64;
/// #     type Error = std::io::Error;
/// #     async fn create(&self) -> Result<u64, std::io::Error> { Ok(7) }
/// # }
///
/// // Built on a plain thread (`Pool::builder(Numbers)` is the same):
/// let pool: Pool<Numbers> = Builder::new(Numbers, Smol)
///     .max_size(4)
///     .wait_timeout(Duration::from_secs(5))
///     .build()?;
/// let n = smol::block_on(pool.acquire())?;
/// assert_eq!(*n, 7);
/// drop(n); // back to the pool
///
/// // Another thread, the same pool: the idle object is handed out again.
/// let shared = pool.clone();
/// let checkouts = std::thread::spawn(move || {
///     smol::block_on(shared.acquire()).map(|n| n.meta().checkouts)
/// });
/// assert_eq!(checkouts.join().unwrap()?, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Smol;

impl wtpool::Runtime for Smol {
    // An `async fn` would borrow `self`; the timer must be `'static`.
    #[allow(clippy::manual_async_fn)]
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send + 'static {
        async move {
            smol::Timer::after(duration).await;
        }
    }

    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        smol::spawn(future).detach();
    }
}

/// The tokio runtime that wtransport's endpoints and handshakes run on under
/// smol: one worker thread, started on first use and kept for the life of the
/// process. Streams, `closed()` and `close()` work from smol directly.
fn io_runtime() -> &'static tokio::runtime::Runtime {
    static IO: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    IO.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("wtpool-smol-io")
            .enable_all()
            .build()
            .expect("the background tokio runtime for wtransport could not start")
    })
}

impl wtpool_webtransport::TransportRuntime for Smol {
    fn io_handle(&self) -> Option<tokio::runtime::Handle> {
        Some(io_runtime().handle().clone())
    }
}

/// A pool on smol.
pub type Pool<F> = wtpool::Pool<F, Smol>;
/// An object borrowed from a [`Pool`] on smol.
pub type Pooled<F> = wtpool::Pooled<F, Smol>;
/// The builder of a [`Pool`] on smol.
pub type Builder<F> = wtpool::Builder<F, Smol>;
/// A pool that lends each object to several borrowers at once, on smol.
pub type SharedPool<F> = wtpool::SharedPool<F, Smol>;
/// A lease on an object of a [`SharedPool`] on smol.
pub type Lease<F> = wtpool::Lease<F, Smol>;

/// A pool of WebTransport connections to `https://host:port/path`, with an endpoint of its own.
pub type ConnectionPool = wtpool_webtransport::ConnectionPool<Smol>;
/// A pool of WebTransport sessions to a URL, from a client endpoint you own.
pub type SessionPool = wtpool_webtransport::SessionPool<Smol>;
/// A pool of bidirectional streams on one WebTransport session.
pub type StreamPool = wtpool_webtransport::StreamPool<Smol>;
/// A pool of WebTransport sessions to a URL, each shared by several borrowers.
pub type SharedSessionPool = wtpool_webtransport::SharedSessionPool<Smol>;
/// A stream opened by [`SharedSessionPool::open_bi`], with its session's lease.
pub type SharedStream = wtpool_webtransport::SharedStream<Smol>;
/// Shared sessions to any number of servers, under one cap.
pub type Fleet = wtpool_webtransport::Fleet<Smol>;

pub use wtpool_webtransport::{
    ClientEndpoint, ClientOptions, DEFAULT_MAX_LEASES, FleetSettings, FleetStatus,
    ServerCertificate, ServerStatus, SessionFactory, SharedSessionError, Stream, StreamFactory,
    WebTransportError, echo,
};
pub use {url, wtransport};

/// A client endpoint for [`SessionPool`]s (several can share it), built from
/// `options` on the background tokio runtime that wtransport needs: no tokio
/// in your code.
pub fn client_endpoint(options: &ClientOptions) -> Result<ClientEndpoint, WebTransportError> {
    wtpool_webtransport::client_endpoint::<Smol>(options)
}
