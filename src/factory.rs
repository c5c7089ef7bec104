//! What the pool pools: the [`Factory`] that makes, checks and disposes objects.

use std::future::Future;

/// Makes, checks and disposes of the objects of a pool.
///
/// ```
/// use wtpool::Factory;
///
/// struct Numbers;
///
/// impl Factory for Numbers {
///     type Object = u64;
///     type Error = std::io::Error;
///
///     async fn create(&self) -> Result<u64, std::io::Error> {
///         Ok(42)
///     }
///
///     fn is_alive(&self, n: &mut u64) -> bool {
///         *n != 0
///     }
/// }
/// ```
pub trait Factory: Send + Sync + 'static {
    /// The pooled object.
    type Object: Send + 'static;
    /// What creating or closing an object can fail with.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Makes a new object. It runs in a task of its own, so a caller that gives
    /// up waiting does not waste it: the object goes to the next waiter or idles.
    /// A `create` that panics fails the waiter it was meant for with
    /// [`PoolError::CreatePanicked`](crate::PoolError::CreatePanicked) and
    /// frees its slot.
    fn create(&self) -> impl Future<Output = Result<Self::Object, Self::Error>> + Send;

    /// Whether an object can still be used: a cheap check that does not block.
    /// It is asked before an idle object is handed out, when one is given
    /// back, and by the idle check; a dead object is closed and its slot
    /// freed. Alive by default.
    ///
    /// The pool holds the object alone while it asks, so the check may look
    /// at it mutably (poll it once without waiting, say). A check that panics
    /// counts as "dead".
    fn is_alive(&self, object: &mut Self::Object) -> bool {
        let _ = object;
        true
    }

    /// Whether a creation's error says that the peer refused it (an HTTP 429
    /// or 503, a refused handshake), so that the next attempts would be
    /// refused too. A refusal puts the pool into a back-off (0.5 s, doubling
    /// up to 30 s, reset by a creation that succeeds): no creation starts,
    /// the waiters it would have served fail at once with
    /// [`PoolError::Refused`](crate::PoolError::Refused), and so does an
    /// acquire that finds nothing ready, rather than each making an attempt
    /// of its own. No error is a refusal by default; a check that panics
    /// says no.
    fn is_refusal(&self, error: &Self::Error) -> bool {
        let _ = error;
        false
    }

    /// Disposes of an object that leaves the pool. Drops it by default.
    ///
    /// A close that fails or panics is counted as a failed close
    /// ([`Counters`](crate::Counters)). Where the caller awaits the close
    /// ([`Pool::release`](crate::Pool::release), [`Pooled::discard`](crate::Pooled::discard),
    /// [`Pool::close`](crate::Pool::close)), the error is returned to it and
    /// the panic resumed in it; a close in the background only counts.
    fn close(&self, object: Self::Object) -> impl Future<Output = Result<(), Self::Error>> + Send {
        drop(object);
        std::future::ready(Ok(()))
    }
}
