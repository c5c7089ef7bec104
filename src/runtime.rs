//! What the async pool needs of an executor: a timer and a way to spawn.

use std::future::Future;
use std::time::Duration;

/// The executor services the async [`Pool`](crate::Pool) uses: timers for its
/// timeouts and background upkeep, and spawning for creations, closes and that
/// upkeep. `wtpool-tokio` and `wtpool-smol` implement it; implement it
/// yourself to run the pool on another executor.
pub trait Runtime: Clone + Send + Sync + 'static {
    /// A future that completes after `duration`.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send + 'static;

    /// Runs `future` to completion in the background.
    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static;
}
