//! wtpool on tokio: the [`Tokio`] runtime binding and the pool types bound to it.
//!
//! ```
//! use wtpool_tokio::{Factory, Pool};
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
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = Pool::new(Numbers, 4)?;
//! let n = pool.acquire().await?;
//! assert_eq!(*n, 42);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::future::Future;
use std::time::Duration;

pub use wtpool::{
    CloseErrors, ConfigError, Counters, Factory, ObjectMeta, PoolError, Status, TimeoutKind,
    machine,
};

/// tokio's timers and spawning, for the pool.
///
/// It keeps the handle of the runtime it was made in, so that an object given
/// back from a thread outside that runtime can still be closed on it.
#[derive(Debug, Clone)]
pub struct Tokio {
    handle: Option<tokio::runtime::Handle>,
}

impl Tokio {
    /// Binds to the runtime this is called in, if any; spawning falls back to
    /// it when called from outside any runtime.
    pub fn current() -> Self {
        Tokio {
            handle: tokio::runtime::Handle::try_current().ok(),
        }
    }

    /// Binds to the given runtime.
    pub fn with_handle(handle: tokio::runtime::Handle) -> Self {
        Tokio {
            handle: Some(handle),
        }
    }
}

impl Default for Tokio {
    /// The same as [`Tokio::current`].
    fn default() -> Self {
        Tokio::current()
    }
}

impl wtpool::Runtime for Tokio {
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send + 'static {
        tokio::time::sleep(duration)
    }

    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match tokio::runtime::Handle::try_current()
            .ok()
            .or_else(|| self.handle.clone())
        {
            Some(handle) => drop(handle.spawn(future)),
            // No runtime to run it on: dropping the future is all that can be
            // done, and the pool's drop guards keep its accounting right.
            None => drop(future),
        }
    }
}

impl wtpool_webtransport::TransportRuntime for Tokio {
    fn io_handle(&self) -> Option<tokio::runtime::Handle> {
        self.handle.clone()
    }
}

/// A pool on tokio.
pub type Pool<F> = wtpool::Pool<F, Tokio>;
/// An object borrowed from a [`Pool`] on tokio.
pub type Pooled<F> = wtpool::Pooled<F, Tokio>;
/// The builder of a [`Pool`] on tokio.
pub type Builder<F> = wtpool::Builder<F, Tokio>;

/// A pool of WebTransport connections to `https://host:port/path`, with an endpoint of its own.
pub type ConnectionPool = wtpool_webtransport::ConnectionPool<Tokio>;
/// A pool of WebTransport sessions to a URL, from a client endpoint you own.
pub type SessionPool = wtpool_webtransport::SessionPool<Tokio>;
/// A pool of bidirectional streams on one WebTransport session.
pub type StreamPool = wtpool_webtransport::StreamPool<Tokio>;

pub use wtpool_webtransport::{
    ClientEndpoint, ClientOptions, ServerCertificate, SessionFactory, Stream, StreamFactory,
    WebTransportError, echo,
};
pub use {url, wtransport};

/// A client endpoint for [`SessionPool`]s (several can share it), built from `options`.
pub fn client_endpoint(options: &ClientOptions) -> Result<ClientEndpoint, WebTransportError> {
    wtpool_webtransport::client_endpoint::<Tokio>(options)
}
