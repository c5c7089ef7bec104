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
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use tokio::runtime::{EnterGuard, Handle, RuntimeFlavor};
pub use wtpool::{
    CloseErrors, ConfigError, Counters, ErrorChain, Factory, ObjectMeta, PoolError, Status,
    TimeoutKind, machine, observe,
};

/// tokio's clock, timers and spawning, for the pool: those of one runtime,
/// whose handle it holds.
///
/// Everything a pool asks of it goes to that runtime, whichever thread or
/// runtime calls into the pool:
///
/// - **Spawning**: the pool's creations, closes and upkeep task are spawned
///   on that runtime, never on the caller's. A short-lived runtime that
///   acquires from the pool takes none of the pool's work down with it when
///   it shuts down; an object given back from a plain thread is closed there.
/// - **Time**: the clock and the timers are that runtime's (created inside
///   [`Handle::enter`]), so a runtime with paused time (`tokio::time::pause`,
///   `start_paused`, tokio's `test-util` feature) drives the pool's
///   timeouts, idle timeouts, lifetimes and back-offs.
/// - **Anywhere**: none of it panics outside a runtime; a pool's `acquire`
///   with a wait timeout works from a plain thread or another executor.
///
/// Bind it with [`Tokio::current`] inside the runtime (what `Default`,
/// `Pool::new` and `Pool::builder` do) or with [`Tokio::with_handle`] from
/// anywhere. One made outside any runtime holds no handle and cannot run
/// tasks: a pool refuses to be built on it (with
/// [`ConfigError::NoRuntime`]), and its timers never fire.
///
/// ```
/// use wtpool_tokio::{Builder, Factory, Pool, Tokio};
/// # struct Numbers;
/// # impl Factory for Numbers {
/// #     type Object = u64;
/// #     type Error = std::io::Error;
/// #     async fn create(&self) -> Result<u64, std::io::Error> { Ok(7) }
/// # }
///
/// let runtime = tokio::runtime::Runtime::new()?;
///
/// // Inside the runtime, `Tokio::default()` binds to it: `Pool::builder` and
/// // `Pool::new` use that.
/// let pool = runtime.block_on(async { Pool::builder(Numbers).max_size(4).build() })?;
/// assert!(pool.runtime().handle().is_some());
///
/// // Outside any runtime it binds to none: give it the runtime's handle.
/// assert!(Tokio::default().handle().is_none());
/// let bound = Tokio::with_handle(runtime.handle().clone());
/// let pool: Pool<Numbers> = Builder::new(Numbers, bound).max_size(4).build()?;
///
/// // Acquired from another runtime, its creations still run on `runtime`.
/// let caller = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// assert_eq!(*caller.block_on(pool.acquire())?, 7);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Tokio {
    handle: Option<Handle>,
    /// Whether the bound runtime's clock is the system's: a multi-thread
    /// runtime's is (tokio pauses only a current-thread runtime's), and is
    /// read without entering the runtime (see [`Tokio::now`]).
    system_clock: bool,
}

impl Tokio {
    /// Binds to the runtime this is called in; outside any runtime, to none
    /// (see [`Tokio`]).
    pub fn current() -> Self {
        Self::bound(Handle::try_current().ok())
    }

    /// Binds to the given runtime.
    pub fn with_handle(handle: Handle) -> Self {
        Self::bound(Some(handle))
    }

    fn bound(handle: Option<Handle>) -> Self {
        let system_clock = handle
            .as_ref()
            .is_some_and(|handle| handle.runtime_flavor() == RuntimeFlavor::MultiThread);
        Tokio {
            handle,
            system_clock,
        }
    }

    /// The runtime it is bound to, if any.
    pub fn handle(&self) -> Option<&Handle> {
        self.handle.as_ref()
    }
}

impl Default for Tokio {
    /// The same as [`Tokio::current`].
    fn default() -> Self {
        Tokio::current()
    }
}

impl wtpool::Runtime for Tokio {
    /// A timer of the bound runtime, made inside its context so that it can
    /// be awaited from anywhere. Without a runtime, it never fires.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send + 'static {
        let sleep = self.handle.as_ref().and_then(|handle| {
            let _entered = enter(handle)?;
            Some(tokio::time::sleep(duration))
        });
        async move {
            match sleep {
                Some(sleep) => sleep.await,
                None => std::future::pending().await,
            }
        }
    }

    /// Spawns on the bound runtime. Without one, or once it has shut down,
    /// the future is dropped unrun (and the pool's drop guards keep its
    /// accounting right).
    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match &self.handle {
            Some(handle) => drop(handle.spawn(future)),
            None => drop(future),
        }
    }

    /// The bound runtime's clock: paused with it. Without a runtime, the
    /// clock of the caller's runtime, if any, else the system's.
    ///
    /// tokio pauses only a current-thread runtime's clock: a multi-thread
    /// runtime's is the system's, read directly (entering the runtime to
    /// read it would cost more than the read).
    fn now(&self) -> Instant {
        if self.system_clock {
            return Instant::now();
        }
        let _entered = self.handle.as_ref().and_then(enter);
        tokio::time::Instant::now().into_std()
    }

    /// Whether it is bound to a runtime.
    fn can_run_tasks(&self) -> bool {
        self.handle.is_some()
    }
}

/// Enters the runtime of `handle`, unless this thread no longer can: while
/// its thread-locals are being destroyed (a guard dropped by a thread-local's
/// destructor), [`Handle::enter`] panics, and a panic there would abort the
/// process.
fn enter(handle: &Handle) -> Option<EnterGuard<'_>> {
    catch_unwind(AssertUnwindSafe(|| handle.enter())).ok()
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
/// A pool that lends each object to several borrowers at once, on tokio.
pub type SharedPool<F> = wtpool::SharedPool<F, Tokio>;
/// A lease on an object of a [`SharedPool`] on tokio.
pub type Lease<F> = wtpool::Lease<F, Tokio>;

/// A pool of WebTransport connections to `https://host:port/path`, with an endpoint of its own.
pub type ConnectionPool = wtpool_webtransport::ConnectionPool<Tokio>;
/// A pool of WebTransport sessions to a URL, from a client endpoint you own.
pub type SessionPool = wtpool_webtransport::SessionPool<Tokio>;
/// A pool of bidirectional streams on one WebTransport session.
pub type StreamPool = wtpool_webtransport::StreamPool<Tokio>;
/// A pool of WebTransport sessions to a URL, each shared by several borrowers.
pub type SharedSessionPool = wtpool_webtransport::SharedSessionPool<Tokio>;
/// A stream opened by [`SharedSessionPool::open_bi`], with its session's lease.
pub type SharedStream = wtpool_webtransport::SharedStream<Tokio>;
/// Shared sessions to any number of servers, under one cap.
pub type Fleet = wtpool_webtransport::Fleet<Tokio>;

pub use wtpool_webtransport::{
    ClientEndpoint, ClientOptions, DEFAULT_MAX_LEASES, FleetSettings, FleetStatus,
    ServerCertificate, ServerStatus, SessionFactory, SharedSessionError, Stream, StreamFactory,
    WebTransportError, echo,
};
pub use {url, wtransport};

/// A client endpoint for [`SessionPool`]s (several can share it), built from `options`.
pub fn client_endpoint(options: &ClientOptions) -> Result<ClientEndpoint, WebTransportError> {
    wtpool_webtransport::client_endpoint::<Tokio>(options)
}
