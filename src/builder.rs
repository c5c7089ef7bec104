//! Settings of the async pool, gathered by [`Builder`].

use std::sync::Arc;
use std::time::Duration;

use crate::error::ConfigError;
use crate::machine::{Limits, PoolState};
use crate::pool::State;
use crate::{Factory, Pool, Runtime, SharedPool};

/// Gathers the settings of a [`Pool`]; [`build`](Builder::build) checks them.
///
/// Every option is off unless set: no timeouts, no idle timeout, no lifetime,
/// no `min_idle`, and creations capped only by `max_size` (10 by default).
/// [`Pool::builder`] starts one on the runtime's default handle.
///
/// ```
/// use std::time::Duration;
/// use wtpool::{Builder, ConfigError};
/// use wtpool_tokio::Tokio;
/// # struct Numbers;
/// # impl wtpool::Factory for Numbers {
/// #     type Object = u64;
/// #     type Error = std::io::Error;
/// #     async fn create(&self) -> Result<u64, std::io::Error> { Ok(7) }
/// # }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = Builder::new(Numbers, Tokio::current())
///     .name("api")
///     .max_size(4)
///     .max_creating(2)
///     .wait_timeout(Duration::from_secs(5))
///     .create_timeout(Duration::from_secs(2))
///     .idle_timeout(Duration::from_secs(60))
///     .build()?;
/// assert_eq!(pool.name(), "api");
/// assert_eq!(pool.status().max_size, 4);
///
/// // `build` checks the settings:
/// let zero = Builder::new(Numbers, Tokio::current()).wait_timeout(Duration::ZERO).build();
/// assert_eq!(zero.unwrap_err(), ConfigError::ZeroDuration("wait_timeout"));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Builder<F, R> {
    factory: F,
    runtime: R,
    limits: Limits,
    max_creating: Option<usize>,
    timing: Timing,
    name: Arc<str>,
}

/// The driver's own time settings (the machine's are in its `Limits`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Timing {
    pub(crate) wait_timeout: Option<Duration>,
    pub(crate) create_timeout: Option<Duration>,
    pub(crate) idle_check_interval: Option<Duration>,
}

/// The `max_size` of a pool whose builder was not given one.
pub const DEFAULT_MAX_SIZE: usize = 10;
/// The name of a pool whose builder was not given one.
pub const DEFAULT_NAME: &str = "wtpool";

impl<F: Factory, R: Runtime> Builder<F, R> {
    /// A builder for a pool of `factory`'s objects on `runtime`.
    pub fn new(factory: F, runtime: R) -> Self {
        Builder {
            factory,
            runtime,
            limits: Limits::new(DEFAULT_MAX_SIZE),
            max_creating: None,
            timing: Timing::default(),
            name: Arc::from(DEFAULT_NAME),
        }
    }

    /// The pool's name ([`DEFAULT_NAME`] by default): the `pool` field of
    /// its `tracing` spans and events and the `pool` label of its metrics
    /// (features `tracing` and `metrics`), and what [`Pool::name`] gives.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Most objects at once, idle, in use and being created. At least 1.
    pub fn max_size(mut self, max_size: usize) -> Self {
        self.limits.max_size = max_size;
        self
    }

    /// Idle objects kept ready: created at start and refilled in the
    /// background. A refill that fails is retried after a back-off that
    /// grows from 100 ms to 5 s.
    pub fn min_idle(mut self, min_idle: usize) -> Self {
        self.limits.min_idle = min_idle;
        self
    }

    /// Most creations in flight at once (a cap on handshake storms). By
    /// default there is no cap beyond `max_size`, whatever it is resized to.
    pub fn max_creating(mut self, max_creating: usize) -> Self {
        self.max_creating = Some(max_creating);
        self
    }

    /// How long [`acquire`](Pool::acquire) may take in all before it fails
    /// with a wait timeout.
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.timing.wait_timeout = Some(timeout);
        self
    }

    /// How long one creation may take; one that takes longer fails the
    /// waiter it was meant for with a create timeout.
    pub fn create_timeout(mut self, timeout: Duration) -> Self {
        self.timing.create_timeout = Some(timeout);
        self
    }

    /// Every `interval`, idle objects are checked with
    /// [`Factory::is_alive`] and dead ones closed, their slots freed (and
    /// `min_idle` refilled), so that an object that died while idle does not
    /// hold a slot until someone asks for it. Off by default: idle objects are
    /// otherwise checked only at checkout.
    pub fn idle_check_interval(mut self, interval: Duration) -> Self {
        self.timing.idle_check_interval = Some(interval);
        self
    }

    /// An object idle this long is closed in the background (never bringing
    /// the idle list below `min_idle`).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.limits.idle_timeout = Some(timeout);
        self
    }

    /// An object this old is closed: never handed out again, closed when given
    /// back, and closed in the background while idle.
    pub fn max_lifetime(mut self, lifetime: Duration) -> Self {
        self.limits.max_lifetime = Some(lifetime);
        self
    }

    /// The first pause after the factory's peer refused a creation
    /// ([`Factory::is_refusal`]): no creation starts meanwhile, and callers
    /// that find nothing ready fail at once with
    /// [`PoolError::Refused`](crate::PoolError::Refused). Each refusal in a
    /// row doubles it, up to 30 s (or this, if longer); a creation that
    /// succeeds resets it. 500 ms by default.
    pub fn refusal_backoff(mut self, pause: Duration) -> Self {
        self.limits.refusal_backoff = pause;
        self
    }

    /// Checks the settings and makes the pool. With `min_idle`,
    /// `idle_timeout`, `max_lifetime` or `idle_check_interval` set, this
    /// spawns the pool's upkeep task on the runtime.
    ///
    /// A runtime that cannot run tasks ([`Runtime::can_run_tasks`]) is
    /// refused with [`ConfigError::NoRuntime`]: on it, no creation, close or
    /// upkeep would ever run.
    pub fn build(self) -> Result<Pool<F, R>, ConfigError> {
        self.build_with(PoolState::new)
    }

    /// Checks the settings and makes a shared pool, which lends each object
    /// to up to `max_leases` borrowers at once (see [`SharedPool`]). Every
    /// other setting means what it means for [`build`](Self::build):
    /// `max_size` counts objects, not borrowers.
    ///
    /// A `max_leases` of 0 is refused with [`ConfigError::ZeroMaxLeases`].
    pub fn build_shared(self, max_leases: usize) -> Result<SharedPool<F, R>, ConfigError>
    where
        F::Object: Clone,
    {
        let pool = self.build_with(|limits| PoolState::shared(limits, max_leases))?;
        Ok(SharedPool::new(pool, max_leases))
    }

    fn build_with(
        mut self,
        machine: impl FnOnce(Limits) -> Result<State<F>, ConfigError>,
    ) -> Result<Pool<F, R>, ConfigError> {
        if let Some(max_creating) = self.max_creating {
            self.limits.max_creating = max_creating;
        }
        for (name, value) in [
            ("wait_timeout", self.timing.wait_timeout),
            ("create_timeout", self.timing.create_timeout),
            ("idle_check_interval", self.timing.idle_check_interval),
        ] {
            if value == Some(Duration::ZERO) {
                return Err(ConfigError::ZeroDuration(name));
            }
        }
        Pool::from_parts(
            self.factory,
            self.runtime,
            machine(self.limits)?,
            self.timing,
            self.name,
        )
    }
}
