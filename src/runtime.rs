//! What the async pool needs of an executor: a clock, a timer and a way to spawn.

use std::future::Future;
use std::time::{Duration, Instant};

/// The executor services the async [`Pool`](crate::Pool) uses: a clock and
/// timers for its timeouts and background upkeep, and spawning for
/// creations, closes and that upkeep. `wtpool-tokio` and `wtpool-smol`
/// implement it; implement it yourself to run the pool on another executor.
///
/// # One runtime per pool
///
/// A pool keeps the runtime it was built with and uses it alone, whichever
/// task or thread calls into the pool:
///
/// - **Spawning** goes to that runtime: every creation, close and the upkeep
///   task run there, never on the caller's runtime. A short-lived runtime
///   that acquires from a long-lived pool takes none of the pool's work down
///   with it when it shuts down.
/// - **Time** comes from that runtime: every time the pool reads (for idle
///   timeouts, lifetimes, the refill back-off, [`ObjectMeta`](crate::ObjectMeta))
///   is [`now`](Runtime::now), and every wait is a [`sleep`](Runtime::sleep)
///   on the same clock. A runtime with paused or virtual time (tokio's
///   `test-util`, a simulator) thus drives all of the pool's timing.
/// - **Calls from anywhere**: `sleep`, `now` and `spawn` may be called from
///   any thread, inside or outside any runtime, and must not panic there.
///
/// A runtime that cannot run tasks (see [`can_run_tasks`](Runtime::can_run_tasks))
/// is refused when the pool is built.
///
/// An executor of your own, here a thread per task and a thread per timer
/// (`smol::block_on` polls each task on its thread):
///
/// ```
/// use std::future::Future;
/// use std::time::Duration;
///
/// #[derive(Clone, Default)]
/// struct Threads;
///
/// impl wtpool::Runtime for Threads {
///     fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send + 'static {
///         let (done, wait) = futures::channel::oneshot::channel::<()>();
///         std::thread::spawn(move || {
///             std::thread::sleep(duration);
///             let _ = done.send(());
///         });
///         async move {
///             let _ = wait.await;
///         }
///     }
///
///     fn spawn<F: Future<Output = ()> + Send + 'static>(&self, future: F) {
///         std::thread::spawn(move || smol::block_on(future));
///     }
/// }
///
/// struct Numbers;
///
/// impl wtpool::Factory for Numbers {
///     type Object = u64;
///     type Error = std::io::Error;
///
///     async fn create(&self) -> Result<u64, std::io::Error> {
///         Ok(7)
///     }
/// }
///
/// let pool: wtpool::Pool<Numbers, Threads> = wtpool::Pool::builder(Numbers)
///     .wait_timeout(Duration::from_secs(5))
///     .build()?;
/// let n = smol::block_on(pool.acquire())?;
/// assert_eq!(*n, 7);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Runtime: Clone + Send + Sync + 'static {
    /// A future that completes after `duration`, on the clock of
    /// [`now`](Runtime::now).
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send + 'static;

    /// Runs `future` to completion in the background, on this runtime.
    ///
    /// If the runtime cannot run it (it shut down), dropping `future` at
    /// once, even inside this call, is allowed: the pool's drop guards keep
    /// its accounting right.
    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static;

    /// The current time on this runtime's clock: the clock its
    /// [`sleep`](Runtime::sleep) counts on. The system's monotonic clock by
    /// default.
    fn now(&self) -> Instant {
        Instant::now()
    }

    /// Whether [`spawn`](Runtime::spawn) runs tasks at all. A pool refuses
    /// to be built on a runtime that says no
    /// ([`ConfigError::NoRuntime`](crate::ConfigError::NoRuntime)), since its
    /// creations, closes and upkeep would silently never run. Yes by default.
    fn can_run_tasks(&self) -> bool {
        true
    }
}
