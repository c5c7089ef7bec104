//! What a pool tells the outside world, behind two features that cost
//! nothing when off (every hook here is then empty and reads no clock):
//!
//! - **`tracing`**: spans and events, target `wtpool::observe`, each with
//!   the pool's `pool` field (its name, [`Builder::name`](crate::Builder::name)):
//!
//!   | span or event | level | fields | when |
//!   |---|---|---|---|
//!   | span `acquire` | DEBUG | `pool`, `wait_us` | around each [`Pool::acquire`](crate::Pool::acquire); `wait_us` is recorded when it ends |
//!   | event `acquired` | DEBUG | `pool`, `wait_us` | an acquire is served |
//!   | event `acquire failed` | WARN (DEBUG when the pool is closed) | `pool`, `wait_us`, `error`, `cause` | an acquire fails; `error` is its kind (`wait_timeout`, `create_timeout`, `create`, `create_aborted`, `create_panicked`, `refused`, `closed`), `cause` the error with its causes (none for `closed`) |
//!   | event `acquire cancelled` | DEBUG | `pool`, `wait_us` | the caller dropped an acquire before it ended (its own timeout, say) |
//!   | span `create` | DEBUG | `pool` | around each creation (the factory's own events nest in it); it has no parent, since a creation serves the queue, not the caller whose acquire started it |
//!   | event `created` | DEBUG | `pool`, `duration_us` | a creation succeeds |
//!   | event `create failed` | WARN | `pool`, `duration_us`, `outcome`, `cause` | a creation fails: `outcome` is `error` (with `cause`), `timeout`, `panic` or `aborted` |
//!   | event `closing` | DEBUG | `pool`, `reason`, `object`, `checkouts` | an object leaves the pool to be closed; `reason` is a [`CloseReason`] (`dead`, `idle_timeout` and `max_lifetime` are the evictions) |
//!   | event `close failed` | WARN | `pool`, `cause` | the factory's close failed (`cause`: the error with its causes) or panicked (`cause`: `the factory panicked`) |
//!   | event `pool closed` | INFO | `pool` | [`Pool::close`](crate::Pool::close) is first called |
//!
//!   The WebTransport pools (feature `tracing` of `wtpool-webtransport`, or
//!   of the adapters) add two events, target `wtpool_webtransport::session`,
//!   inside the `create` span (which carries `pool`): `session refused by the
//!   server` (WARN, `url`), and `handshake torn by wtransport's race: trying
//!   once more` (DEBUG, `url`, `cause`). Their `url`, like a session pool's
//!   default name, is scheme, host, port and path only: credentials, query
//!   and fragment are left out.
//!
//!   A panic while an event is formatted (an error whose `Display`
//!   panics) is caught and dropped: it never costs a slot or a result.
//! - **`metrics`**: through the [`metrics`](https://docs.rs/metrics) facade,
//!   to whatever recorder the application installs, each labelled `pool`:
//!   the histograms [`ACQUIRE_WAIT_SECONDS`] and [`CREATE_SECONDS`] (label
//!   `outcome`: `created`, `error`, `timeout`, `panic`, `aborted`), and the
//!   counters [`ACQUIRE_FAILURES`] (label `error`, as above, or `cancelled`), [`CLOSED`]
//!   (label `reason`, as above) and [`CLOSE_FAILURES`].
//!
//! Durations are read from the pool's clock ([`Runtime::now`]).

use std::future::Future;
use std::sync::Arc;
#[cfg(any(feature = "tracing", feature = "metrics"))]
use std::time::{Duration, Instant};

use crate::Runtime;
#[cfg(feature = "tracing")]
use crate::error::ErrorChain;
#[cfg(any(feature = "tracing", feature = "metrics"))]
use crate::error::{PoolError, TimeoutKind};
use crate::machine::{CloseReason, ObjectMeta};

/// Histogram: seconds from the call to `acquire` until it was served (the
/// acquires that fail or are cancelled are counted in [`ACQUIRE_FAILURES`]).
pub const ACQUIRE_WAIT_SECONDS: &str = "wtpool_acquire_wait_seconds";
/// Counter: acquires that ended without an object, labelled with the
/// `error` (`cancelled` when the caller dropped the acquire).
pub const ACQUIRE_FAILURES: &str = "wtpool_acquire_failures_total";
/// Histogram: seconds each creation took, labelled with its `outcome`.
pub const CREATE_SECONDS: &str = "wtpool_create_seconds";
/// Counter: objects closed, labelled with the `reason`.
pub const CLOSED: &str = "wtpool_closed_total";
/// Counter: closes that failed or panicked.
pub const CLOSE_FAILURES: &str = "wtpool_close_failures_total";

/// The pool's name, and through it the label of everything it reports.
#[derive(Debug)]
pub(crate) struct Observer {
    name: Arc<str>,
}

/// The moment an operation started, read from the pool's clock only when a
/// feature needs it.
#[derive(Clone, Copy)]
pub(crate) struct Stopwatch {
    #[cfg(any(feature = "tracing", feature = "metrics"))]
    started: Instant,
}

impl Stopwatch {
    /// Starts timing on `runtime`'s clock (no clock read with the features off).
    #[cfg_attr(not(any(feature = "tracing", feature = "metrics")), allow(unused))]
    pub(crate) fn start(runtime: &impl Runtime) -> Self {
        Stopwatch {
            #[cfg(any(feature = "tracing", feature = "metrics"))]
            started: runtime.now(),
        }
    }

    #[cfg(any(feature = "tracing", feature = "metrics"))]
    fn elapsed(self, runtime: &impl Runtime) -> Duration {
        runtime.now().saturating_duration_since(self.started)
    }
}

/// How a creation ended, as reported.
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) enum CreateOutcome<'a, E> {
    Created,
    Failed(&'a E),
    TimedOut,
    Panicked,
    Aborted,
}

impl<E> CreateOutcome<'_, E> {
    #[cfg(any(feature = "tracing", feature = "metrics"))]
    fn label(&self) -> &'static str {
        match self {
            CreateOutcome::Created => "created",
            CreateOutcome::Failed(_) => "error",
            CreateOutcome::TimedOut => "timeout",
            CreateOutcome::Panicked => "panic",
            CreateOutcome::Aborted => "aborted",
        }
    }
}

/// How an acquire ended.
#[cfg(any(feature = "tracing", feature = "metrics"))]
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
enum Ended<'a> {
    Served,
    /// Its kind (see [`error_kind`]) and the error.
    Failed(&'static str, &'a dyn std::error::Error),
    /// The caller dropped the acquire before it ended.
    Cancelled,
}

/// An acquire in progress; dropped before it ended, it reports it cancelled.
#[cfg(any(feature = "tracing", feature = "metrics"))]
struct Watched<'a, R: Runtime> {
    observer: &'a Observer,
    runtime: &'a R,
    watch: Stopwatch,
    #[cfg(feature = "tracing")]
    span: tracing::Span,
    ended: bool,
}

#[cfg(any(feature = "tracing", feature = "metrics"))]
impl<R: Runtime> Watched<'_, R> {
    fn report(&self, ended: Ended<'_>) {
        let wait = self.watch.elapsed(self.runtime);
        let name = &self.observer.name;
        #[cfg(feature = "tracing")]
        quietly(|| {
            let wait_us = micros(wait);
            let span = &self.span;
            span.record("wait_us", wait_us);
            match ended {
                Ended::Served => tracing::debug!(parent: span, pool = %name, wait_us, "acquired"),
                Ended::Failed(error @ "closed", _) => {
                    tracing::debug!(parent: span, pool = %name, wait_us, error, "acquire failed")
                }
                Ended::Failed(error, cause) => tracing::warn!(
                    parent: span,
                    pool = %name,
                    wait_us,
                    error,
                    cause = %ErrorChain(cause),
                    "acquire failed"
                ),
                Ended::Cancelled => {
                    tracing::debug!(parent: span, pool = %name, wait_us, "acquire cancelled")
                }
            }
        });
        #[cfg(feature = "metrics")]
        match ended {
            Ended::Served => {
                metrics::histogram!(ACQUIRE_WAIT_SECONDS, "pool" => self.observer.label())
                    .record(wait.as_secs_f64())
            }
            Ended::Failed(error, _) => self.observer.acquire_failed(error),
            Ended::Cancelled => self.observer.acquire_failed("cancelled"),
        }
        #[cfg(not(feature = "tracing"))]
        let _ = (wait, name);
    }
}

#[cfg(any(feature = "tracing", feature = "metrics"))]
impl<R: Runtime> Drop for Watched<'_, R> {
    fn drop(&mut self) {
        if !self.ended {
            self.report(Ended::Cancelled);
        }
    }
}

/// Emits an event, and drops a panic in it: an error whose `Display` panics
/// (formatted by the subscriber) must not cost the pool a slot or the
/// caller its result.
#[cfg(feature = "tracing")]
fn quietly(report: impl FnOnce()) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(report));
}

impl Observer {
    pub(crate) fn new(name: Arc<str>) -> Self {
        #[cfg(feature = "metrics")]
        describe_metrics();
        Observer { name }
    }

    /// The pool's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Runs an acquire in its span, and reports how it ended: served (with
    /// its wait), failed, or given up by its caller (the future dropped).
    #[cfg(any(feature = "tracing", feature = "metrics"))]
    pub(crate) async fn acquire<T, E: std::error::Error + 'static>(
        &self,
        runtime: &impl Runtime,
        acquire: impl Future<Output = Result<T, PoolError<E>>>,
    ) -> Result<T, PoolError<E>> {
        let mut watched = Watched {
            observer: self,
            runtime,
            watch: Stopwatch::start(runtime),
            #[cfg(feature = "tracing")]
            span: tracing::debug_span!(
                "acquire",
                pool = %self.name,
                wait_us = tracing::field::Empty,
            ),
            ended: false,
        };
        #[cfg(feature = "tracing")]
        let result = tracing::Instrument::instrument(acquire, watched.span.clone()).await;
        #[cfg(not(feature = "tracing"))]
        let result = acquire.await;
        watched.ended = true;
        let ended = match &result {
            Ok(_) => Ended::Served,
            Err(error) => Ended::Failed(error_kind(error), error),
        };
        watched.report(ended);
        result
    }

    /// Runs a creation in its span, so that the factory's own events nest
    /// in it. The span has no parent: a creation serves the queue, not the
    /// caller whose acquire started it.
    pub(crate) fn create<C: Future>(
        &self,
        creation: C,
    ) -> impl Future<Output = C::Output> + use<C> {
        #[cfg(feature = "tracing")]
        return tracing::Instrument::instrument(
            creation,
            tracing::debug_span!(parent: None, "create", pool = %self.name),
        );
        #[cfg(not(feature = "tracing"))]
        creation
    }

    /// Reports how a creation ended; `watch` was started with it.
    #[cfg_attr(not(any(feature = "tracing", feature = "metrics")), allow(unused))]
    pub(crate) fn created<E: std::error::Error>(
        &self,
        runtime: &impl Runtime,
        watch: Stopwatch,
        outcome: CreateOutcome<'_, E>,
    ) {
        #[cfg(any(feature = "tracing", feature = "metrics"))]
        let took = watch.elapsed(runtime);
        #[cfg(feature = "tracing")]
        quietly(|| {
            let duration_us = micros(took);
            match &outcome {
                CreateOutcome::Created => {
                    tracing::debug!(pool = %self.name, duration_us, "created")
                }
                CreateOutcome::Failed(error) => tracing::warn!(
                    pool = %self.name,
                    duration_us,
                    outcome = outcome.label(),
                    cause = %ErrorChain(*error),
                    "create failed"
                ),
                _ => tracing::warn!(
                    pool = %self.name,
                    duration_us,
                    outcome = outcome.label(),
                    "create failed"
                ),
            }
        });
        #[cfg(feature = "metrics")]
        metrics::histogram!(CREATE_SECONDS, "pool" => self.label(), "outcome" => outcome.label())
            .record(took.as_secs_f64());
    }

    /// Reports an object leaving the pool to be closed.
    #[cfg_attr(not(feature = "tracing"), allow(unused))]
    pub(crate) fn closing(&self, reason: CloseReason, meta: &ObjectMeta) {
        #[cfg(feature = "tracing")]
        tracing::debug!(
            pool = %self.name,
            reason = reason.as_str(),
            object = meta.id,
            checkouts = meta.checkouts,
            "closing"
        );
        #[cfg(feature = "metrics")]
        metrics::counter!(CLOSED, "pool" => self.label(), "reason" => reason.as_str()).increment(1);
    }

    /// Reports a close that failed (`error`) or panicked (`None`).
    #[cfg_attr(not(feature = "tracing"), allow(unused))]
    pub(crate) fn close_failed<E: std::error::Error>(&self, error: Option<&E>) {
        #[cfg(feature = "tracing")]
        quietly(|| match error {
            Some(error) => tracing::warn!(
                pool = %self.name,
                cause = %ErrorChain(error),
                "close failed"
            ),
            None => {
                tracing::warn!(pool = %self.name, cause = "the factory panicked", "close failed")
            }
        });
        #[cfg(feature = "metrics")]
        metrics::counter!(CLOSE_FAILURES, "pool" => self.label()).increment(1);
    }

    /// Reports the pool closed.
    pub(crate) fn pool_closed(&self) {
        #[cfg(feature = "tracing")]
        tracing::info!(pool = %self.name, "pool closed");
    }

    #[cfg(feature = "metrics")]
    fn acquire_failed(&self, error: &'static str) {
        metrics::counter!(ACQUIRE_FAILURES, "pool" => self.label(), "error" => error).increment(1);
    }

    #[cfg(feature = "metrics")]
    fn label(&self) -> metrics::SharedString {
        metrics::SharedString::from(self.name.clone())
    }
}

/// A name for each way an acquire fails, as the `error` field and label.
#[cfg(any(feature = "tracing", feature = "metrics"))]
fn error_kind<E: std::error::Error>(error: &PoolError<E>) -> &'static str {
    match error {
        PoolError::Closed => "closed",
        PoolError::Timeout(TimeoutKind::Wait) => "wait_timeout",
        PoolError::Timeout(TimeoutKind::Create) => "create_timeout",
        PoolError::Create(_) => "create",
        PoolError::CreateAborted => "create_aborted",
        PoolError::CreatePanicked => "create_panicked",
        PoolError::Close(_) => "close",
        PoolError::ForeignObject => "foreign_object",
        PoolError::Refused { .. } => "refused",
    }
}

#[cfg(feature = "tracing")]
fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// Describes the metrics to the recorder (their units and meaning).
#[cfg(feature = "metrics")]
fn describe_metrics() {
    use metrics::Unit;
    metrics::describe_histogram!(
        ACQUIRE_WAIT_SECONDS,
        Unit::Seconds,
        "How long each acquire waited until it was served"
    );
    metrics::describe_counter!(ACQUIRE_FAILURES, "Acquires that failed, by error");
    metrics::describe_histogram!(
        CREATE_SECONDS,
        Unit::Seconds,
        "How long each creation took, by outcome"
    );
    metrics::describe_counter!(CLOSED, "Objects closed, by reason");
    metrics::describe_counter!(CLOSE_FAILURES, "Closes that failed or panicked");
}
