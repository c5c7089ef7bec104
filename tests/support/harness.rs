//! What the integration tests share to run one scenario on both runtimes:
//! the `scenarios!` macro expands each generic scenario into
//! `on_tokio::<name>` (a multi-thread tokio runtime with 2 workers) and
//! `on_smol::<name>` (`smol::block_on`, the pools' own tasks on smol's global
//! executor and the tests' tasks on a 2-thread executor of their own), each
//! failing if it runs longer than `SCENARIO_DEADLINE`.
//!
//! Include it with `#[macro_use] #[path = "support/harness.rs"] mod harness;`.
#![allow(dead_code, unused_macros)]

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::{Pin, pin};
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::{Either, select};
use wtpool_smol::Smol;
use wtpool_tokio::Tokio;
use wtpool_webtransport::TransportRuntime;

/// How long a whole scenario may run before it is declared hung.
pub const SCENARIO_DEADLINE: Duration = Duration::from_secs(20);

/// A runtime the scenarios run on: the pools' runtime, plus a way for the
/// test itself to spawn tasks.
pub trait TestRuntime: TransportRuntime {
    /// The runtime's name, for messages.
    const NAME: &'static str;

    fn spawn_task<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> Task<T>;
}

/// A spawned test task. Awaiting it gives its output (a panic in it is
/// resumed here); dropping it cancels it, on both runtimes.
pub enum Task<T> {
    Tokio(tokio::task::JoinHandle<T>),
    Smol(smol::Task<T>),
}

impl<T> Future for Task<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match self.get_mut() {
            Task::Tokio(handle) => match Pin::new(handle).poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(output)) => Poll::Ready(output),
                Poll::Ready(Err(error)) if error.is_panic() => resume_unwind(error.into_panic()),
                Poll::Ready(Err(error)) => panic!("test task ended early: {error}"),
            },
            Task::Smol(task) => Pin::new(task).poll(cx),
        }
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        if let Task::Tokio(handle) = self {
            handle.abort();
        }
    }
}

impl TestRuntime for Tokio {
    const NAME: &'static str = "tokio";

    fn spawn_task<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> Task<T> {
        Task::Tokio(tokio::spawn(future))
    }
}

impl TestRuntime for Smol {
    const NAME: &'static str = "smol";

    fn spawn_task<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> Task<T> {
        Task::Smol(test_executor().spawn(future))
    }
}

/// The executor of the smol tests' own tasks: two threads, apart from smol's
/// global executor where the pools spawn their creations and closes.
fn test_executor() -> &'static smol::Executor<'static> {
    static EXECUTOR: OnceLock<&'static smol::Executor<'static>> = OnceLock::new();
    EXECUTOR.get_or_init(|| {
        let executor: &'static smol::Executor<'static> = Box::leak(Box::default());
        for n in 0..2 {
            std::thread::Builder::new()
                .name(format!("smol-test-{n}"))
                .spawn(move || {
                    loop {
                        let run = || smol::block_on(executor.run(std::future::pending::<()>()));
                        let _ = catch_unwind(AssertUnwindSafe(run));
                    }
                })
                .expect("spawn a test executor thread");
        }
        executor
    })
}

pub fn run_tokio(scenario: impl Future<Output = ()>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build a tokio runtime");
    runtime.block_on(within_deadline::<Tokio>(scenario));
}

pub fn run_smol(scenario: impl Future<Output = ()>) {
    smol::block_on(within_deadline::<Smol>(scenario));
}

async fn within_deadline<R: TestRuntime>(scenario: impl Future<Output = ()>) {
    if within::<R, _>(SCENARIO_DEADLINE, scenario).await.is_none() {
        panic!("the scenario still runs after {SCENARIO_DEADLINE:?}: it hangs");
    }
}

/// Runs `future` for at most `limit`; `None` when the time ran out.
pub async fn within<R: TransportRuntime, T>(
    limit: Duration,
    future: impl Future<Output = T>,
) -> Option<T> {
    match select(pin!(future), pin!(R::default().sleep(limit))).await {
        Either::Left((output, _)) => Some(output),
        Either::Right(((), _)) => None,
    }
}

/// A pool's status, checked for consistency: `size` adds up, nothing is
/// pooled while over the size, and no waiter queues beside an idle object.
pub fn checked(status: wtpool::Status) -> wtpool::Status {
    assert_eq!(
        status.size,
        status.idle + status.in_use + status.creating,
        "size adds up: {status:?}"
    );
    assert!(
        status.size <= status.max_size || status.idle == 0,
        "pooling over size: {status:?}"
    );
    assert!(
        status.waiting == 0 || status.idle == 0,
        "waiters beside idle objects: {status:?}"
    );
    assert!(
        status.leases >= status.in_use,
        "an object in use without a lease: {status:?}"
    );
    status
}

/// Expands each named generic scenario into a test on each runtime.
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        /// Each scenario on a multi-thread tokio runtime with 2 workers.
        mod on_tokio {
            $(
                #[test]
                fn $name() {
                    $crate::harness::run_tokio(super::$name::<wtpool_tokio::Tokio>());
                }
            )*
        }

        /// Each scenario under `smol::block_on`.
        mod on_smol {
            $(
                #[test]
                fn $name() {
                    $crate::harness::run_smol(super::$name::<wtpool_smol::Smol>());
                }
            )*
        }
    };
}

/// Locks `m`, whether or not a panic poisoned it (the tests' factories keep
/// their books consistent between calls).
pub fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Takes one from `counter` if it is above zero.
pub fn take_one(counter: &std::sync::atomic::AtomicUsize) -> bool {
    use std::sync::atomic::Ordering;
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}
