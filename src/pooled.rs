//! The guard that [`Pool::acquire`](crate::Pool::acquire) hands out.

use std::future::Future;
use std::ops::{Deref, DerefMut};

use crate::machine::{Checkout, ObjectMeta};
use crate::pool::{Driver, close_awaited};
use crate::{Factory, Pool, PoolError, Runtime};

/// An object borrowed from a [`Pool`]. It derefs to the object and goes back
/// to the pool when dropped (closed instead if the factory finds it dead).
///
/// ```
/// # async fn demo<F: wtpool::Factory, R: wtpool::Runtime + Default>(pool: wtpool::Pool<F, R>)
/// #     -> Result<(), Box<dyn std::error::Error>> {
/// let object = pool.acquire().await?;      // a Pooled: derefs to F::Object
/// println!("object {} handed out {} times", object.meta().id, object.meta().checkouts);
/// drop(object);                            // back to the pool
///
/// let broken = pool.acquire().await?;
/// broken.discard().await?;                 // closed instead, its slot freed
///
/// let mine = pool.acquire().await?.detach(); // out of the pool for good
/// # drop(mine);
/// # Ok(()) }
/// ```
pub struct Pooled<F: Factory, R: Runtime> {
    /// `None` only once the object was given back, detached or discarded.
    checkout: Option<Checkout<F::Object>>,
    pool: Pool<F, R>,
}

impl<F: Factory, R: Runtime> Pooled<F, R> {
    pub(crate) fn new(pool: Pool<F, R>, checkout: Checkout<F::Object>) -> Self {
        Pooled {
            checkout: Some(checkout),
            pool,
        }
    }

    fn checkout(&self) -> &Checkout<F::Object> {
        self.checkout
            .as_ref()
            .expect("a live guard holds its object")
    }

    pub(crate) fn into_checkout(mut self) -> Checkout<F::Object> {
        self.checkout.take().expect("a live guard holds its object")
    }

    /// The pool the object came from.
    pub fn pool(&self) -> &Pool<F, R> {
        &self.pool
    }

    /// What the pool knows of the object: its id, when it was created, how
    /// often it was handed out.
    pub fn meta(&self) -> &ObjectMeta {
        self.checkout().meta()
    }

    /// Takes the object out of the pool for good; its slot is freed for a new one.
    pub fn detach(self) -> F::Object {
        let pool = self.pool.clone();
        pool.inner().detach(self.into_checkout())
    }

    /// Closes a broken object instead of giving it back; its slot is freed
    /// at once. The future closes it and returns the factory's close error, if
    /// any; dropped before it runs, it leaves the close to a task of the pool's.
    pub fn discard(self) -> impl Future<Output = Result<(), PoolError<F::Error>>> + Send + 'static {
        let inner = self.pool.inner().clone();
        let object = inner.give_back(self.into_checkout(), false, true);
        close_awaited(inner, object)
    }
}

impl<F: Factory, R: Runtime> Deref for Pooled<F, R> {
    type Target = F::Object;

    fn deref(&self) -> &F::Object {
        self.checkout().object()
    }
}

impl<F: Factory, R: Runtime> DerefMut for Pooled<F, R> {
    fn deref_mut(&mut self) -> &mut F::Object {
        self.checkout
            .as_mut()
            .expect("a live guard holds its object")
            .object_mut()
    }
}

impl<F: Factory, R: Runtime> Drop for Pooled<F, R> {
    fn drop(&mut self) {
        if let Some(mut checkout) = self.checkout.take() {
            let inner = self.pool.inner();
            let alive = inner.is_alive(checkout.object_mut());
            inner.give_back(checkout, alive, false);
        }
    }
}

impl<F: Factory, R: Runtime> std::fmt::Debug for Pooled<F, R>
where
    F::Object: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pooled")
            .field("object", self.checkout().object())
            .field("meta", self.meta())
            .finish()
    }
}
