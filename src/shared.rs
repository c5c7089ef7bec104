//! The shared pool: each object lent to several borrowers at once.
//!
//! A [`SharedPool`] is a [`Pool`] whose machine was made with
//! [`PoolState::shared`](crate::machine::PoolState::shared): the same driver,
//! the same guarantees, with a guard that gives shared access only.

use std::future::Future;
use std::ops::Deref;

use futures::FutureExt;

use crate::machine::ObjectMeta;
use crate::{
    CloseErrors, ConfigError, Counters, Factory, Pool, PoolError, Pooled, Runtime, Status,
};

/// A pool that lends each object to up to `max_leases` borrowers at once:
/// for objects that multiplex, such as a WebTransport session, which carries
/// many streams at a time. Made with [`Builder::build_shared`](crate::Builder::build_shared).
///
/// Each borrower holds a [`Lease`], which derefs to a clone of the object
/// (`F::Object` is a handle, such as an `Arc` or a connection handle) and
/// gives shared access only. A borrower goes to an idle object if there is
/// one, else to the live object with the fewest leases that has room; a new
/// object is made only when every live one is full (and `max_size`
/// allows), and a queue of `n` waiters starts only `ceil(n / max_leases)`
/// creations. When every object is full, borrowers queue, first come first
/// served, and a lease given back goes straight to the oldest of them.
///
/// An object found dead when a borrower asks, given back dead (or
/// [discarded](Lease::discard)), or past `max_lifetime` takes no new lease;
/// it is closed and its slot freed when its last lease comes back.
///
/// ```
/// use std::sync::Arc;
/// use wtpool_tokio::{Builder, Tokio};
/// # struct Sessions;
/// # impl wtpool::Factory for Sessions {
/// #     type Object = Arc<String>;
/// #     type Error = std::io::Error;
/// #     async fn create(&self) -> Result<Arc<String>, std::io::Error> { Ok(Arc::new("a session".into())) }
/// # }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // At most 2 sessions, each shared by up to 16 borrowers.
/// let pool = Builder::new(Sessions, Tokio::current()).max_size(2).build_shared(16)?;
/// let a = pool.acquire().await?;
/// let b = pool.acquire().await?;
/// assert!(Arc::ptr_eq(&a, &b)); // one session, two borrowers
/// let status = pool.status();
/// assert_eq!((status.size, status.in_use, status.leases), (1, 1, 2));
/// drop((a, b));
/// assert_eq!(pool.status().idle, 1);
/// # Ok(()) }
/// ```
pub struct SharedPool<F: Factory, R: Runtime> {
    pool: Pool<F, R>,
    max_leases: usize,
}

impl<F: Factory, R: Runtime> SharedPool<F, R> {
    pub(crate) fn new(pool: Pool<F, R>, max_leases: usize) -> Self {
        SharedPool { pool, max_leases }
    }

    /// Takes a lease: on an idle object, else on the live object with the
    /// fewest leases, else on a new one if there is room, else on the next
    /// lease given back, first come first served.
    ///
    /// Dropping the returned future at any point loses nothing, as with
    /// [`Pool::acquire`].
    pub fn acquire(&self) -> impl Future<Output = Result<Lease<F, R>, PoolError<F::Error>>> {
        // A map of the pool's own future, not an `async` layer around it.
        self.pool
            .acquire()
            .map(|acquired| acquired.map(|pooled| Lease { pooled }))
    }

    /// The same as [`acquire`](Self::acquire), under the name deadpool and bb8 use.
    pub fn get(&self) -> impl Future<Output = Result<Lease<F, R>, PoolError<F::Error>>> {
        self.acquire()
    }

    /// Most borrowers of one object at once.
    pub fn max_leases(&self) -> usize {
        self.max_leases
    }

    /// Closes the pool as [`Pool::close`] does; objects still lent are
    /// closed when their last lease comes back.
    pub async fn close(&self) -> Result<(), CloseErrors<F::Error>> {
        self.pool.close().await
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.pool.is_closed()
    }

    /// Changes `max_size` (in objects), as [`Pool::resize`] does.
    pub fn resize(&self, max_size: usize) -> Result<(), ConfigError> {
        self.pool.resize(max_size)
    }

    /// Closes every idle object (no lease out) for which `keep` says false;
    /// returns how many. `keep` runs under the pool's lock.
    pub fn retain(&self, keep: impl FnMut(&F::Object, &ObjectMeta) -> bool) -> usize {
        self.pool.retain(keep)
    }

    /// A snapshot of the occupancy: objects, and the leases on them.
    pub fn status(&self) -> Status {
        self.pool.status()
    }

    /// Running totals; each lease counts as a checkout.
    pub fn counters(&self) -> Counters {
        self.pool.counters()
    }

    /// The name it was built with.
    pub fn name(&self) -> &str {
        self.pool.name()
    }

    /// The factory.
    pub fn factory(&self) -> &F {
        self.pool.factory()
    }

    /// The runtime the pool runs on.
    pub fn runtime(&self) -> &R {
        self.pool.runtime()
    }
}

impl<F: Factory, R: Runtime> Clone for SharedPool<F, R> {
    fn clone(&self) -> Self {
        SharedPool {
            pool: self.pool.clone(),
            max_leases: self.max_leases,
        }
    }
}

impl<F: Factory, R: Runtime> std::fmt::Debug for SharedPool<F, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedPool")
            .field("name", &self.name())
            .field("max_leases", &self.max_leases())
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

/// A lease on an object of a [`SharedPool`]: it derefs to the borrower's
/// handle on the object (shared access only) and gives the lease back when
/// dropped. If the factory then finds the object dead, it takes no new
/// lease and is closed when its last lease comes back.
pub struct Lease<F: Factory, R: Runtime> {
    pooled: Pooled<F, R>,
}

impl<F: Factory, R: Runtime> Lease<F, R> {
    /// What the pool knew of the object when this lease was taken: its id,
    /// when it was created, how many leases it had been given before.
    pub fn meta(&self) -> &ObjectMeta {
        self.pooled.meta()
    }

    /// Gives the lease back with the object found broken: it takes no new
    /// lease, and its slot is freed when the last lease comes back. If this
    /// was the last, the future closes it and returns the factory's close
    /// error, if any.
    pub fn discard(self) -> impl Future<Output = Result<(), PoolError<F::Error>>> + Send + 'static {
        self.pooled.discard()
    }
}

impl<F: Factory, R: Runtime> Deref for Lease<F, R> {
    type Target = F::Object;

    fn deref(&self) -> &F::Object {
        &self.pooled
    }
}

impl<F: Factory, R: Runtime> std::fmt::Debug for Lease<F, R>
where
    F::Object: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("object", &**self)
            .field("meta", self.meta())
            .finish()
    }
}
