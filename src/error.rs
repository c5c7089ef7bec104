//! The errors of the pool.
//!
//! Each message names what failed at this layer; the cause, where there is
//! one, is reached through `source()` and never repeated in the message, so
//! that a reporter walking the chain (anyhow, eyre, tracing) prints each
//! message once.

use std::fmt;

/// Displays an error with its causes, each message once, separated by `": "`
/// (`connecting to https://…/ failed: timed out`): what a log line or a
/// `main` that reports an error wants.
///
/// ```
/// # use wtpool::{ErrorChain, PoolError};
/// let error: PoolError<std::io::Error> = PoolError::Create(std::io::Error::other("refused"));
/// assert_eq!(
///     ErrorChain(&error).to_string(),
///     "could not create a pool object: refused"
/// );
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a dyn std::error::Error);

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// A setting that cannot work, named with its value.
///
/// ```
/// use std::time::Duration;
/// use wtpool::ConfigError;
/// use wtpool_tokio::Pool;
/// # struct Numbers;
/// # impl wtpool::Factory for Numbers {
/// #     type Object = u64;
/// #     type Error = std::io::Error;
/// #     async fn create(&self) -> Result<u64, std::io::Error> { Ok(7) }
/// # }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(Pool::new(Numbers, 0).unwrap_err(), ConfigError::ZeroMaxSize);
///
/// let error = Pool::builder(Numbers).max_size(2).min_idle(3).build().unwrap_err();
/// assert_eq!(error, ConfigError::MinIdleAboveMaxSize { min_idle: 3, max_size: 2 });
///
/// let error = Pool::builder(Numbers).idle_timeout(Duration::ZERO).build().unwrap_err();
/// assert_eq!(error.to_string(), "idle_timeout must be longer than zero");
///
/// // A plain thread is in no tokio runtime: `Pool::new` finds none to bind.
/// let elsewhere = std::thread::spawn(|| Pool::new(Numbers, 4).err()).join().unwrap();
/// assert_eq!(elsewhere, Some(ConfigError::NoRuntime));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `max_size` was 0: a pool must be able to hold one object.
    #[error("max_size must be at least 1, got 0")]
    ZeroMaxSize,
    /// `max_creating` was 0: no object could ever be created.
    #[error("max_creating must be at least 1, got 0")]
    ZeroMaxCreating,
    /// `max_leases` was 0: a shared object must take at least one borrower.
    #[error("max_leases must be at least 1, got 0")]
    ZeroMaxLeases,
    /// `min_idle` above `max_size` could never be met.
    #[error("min_idle ({min_idle}) must not exceed max_size ({max_size})")]
    MinIdleAboveMaxSize {
        /// The `min_idle` asked for.
        min_idle: usize,
        /// The `max_size` in force.
        max_size: usize,
    },
    /// A timeout or lifetime of zero, which would fail or close everything at once.
    #[error("{0} must be longer than zero")]
    ZeroDuration(&'static str),
    /// The runtime cannot run the pool's tasks (its creations, closes and
    /// upkeep): a `wtpool_tokio::Tokio` made outside any tokio runtime, say.
    #[error(
        "the pool's runtime cannot run tasks, so no object could ever be created: \
         build the pool inside the runtime, or give it the runtime's handle"
    )]
    NoRuntime,
}

/// Which wait ran out.
///
/// ```
/// use std::time::Duration;
/// use wtpool::{PoolError, TimeoutKind};
/// use wtpool_tokio::{Factory, Pool};
///
/// struct Hangs; // a server that never answers
///
/// impl Factory for Hangs {
///     type Object = ();
///     type Error = std::io::Error;
///
///     async fn create(&self) -> Result<(), std::io::Error> {
///         std::future::pending().await
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let ms = Duration::from_millis;
/// let pool = Pool::builder(Hangs).create_timeout(ms(20)).build()?;
/// let Err(error) = pool.acquire().await else { unreachable!() };
/// assert!(matches!(error, PoolError::Timeout(TimeoutKind::Create)));
///
/// let pool = Pool::builder(Hangs).wait_timeout(ms(20)).build()?;
/// let Err(error) = pool.acquire().await else { unreachable!() };
/// assert!(matches!(error, PoolError::Timeout(TimeoutKind::Wait)));
/// assert_eq!(error.to_string(), "timed out waiting for a pool object (wait_timeout)");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    /// The whole acquire took longer than the wait timeout.
    Wait,
    /// Creating the object meant for this acquire took longer than the create timeout.
    Create,
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutKind::Wait => "waiting for a pool object (wait_timeout)",
            TimeoutKind::Create => "creating a pool object (create_timeout)",
        })
    }
}

/// Why a pool operation failed. `E` is the factory's error.
///
/// ```
/// use wtpool::PoolError;
/// use wtpool_tokio::{Factory, Pool};
///
/// struct Down; // a server that refuses every connection
///
/// impl Factory for Down {
///     type Object = ();
///     type Error = std::io::Error;
///
///     async fn create(&self) -> Result<(), std::io::Error> {
///         Err(std::io::ErrorKind::ConnectionRefused.into())
///     }
/// }
///
/// /// What a caller tells its own caller.
/// fn describe(error: &PoolError<std::io::Error>) -> String {
///     match error {
///         PoolError::Timeout(kind) => format!("busy, try again ({kind})"),
///         PoolError::Create(cause) => format!("cannot connect: {cause}"),
///         PoolError::Closed => "shutting down".to_owned(),
///         other => format!("internal error: {other}"),
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = Pool::new(Down, 4)?;
/// let Err(error) = pool.acquire().await else { unreachable!() };
/// assert_eq!(describe(&error), "cannot connect: connection refused");
///
/// pool.close().await?;
/// let Err(error) = pool.acquire().await else { unreachable!() };
/// assert_eq!(describe(&error), "shutting down");
/// # Ok(()) }
/// ```
#[derive(Debug, thiserror::Error)]
pub enum PoolError<E: std::error::Error + 'static> {
    /// The pool was closed before, or while, the caller waited.
    #[error("the pool is closed")]
    Closed,
    /// A timeout ran out; the kind says which.
    #[error("timed out {0}")]
    Timeout(TimeoutKind),
    /// The factory could not create the object meant for this caller.
    #[error("could not create a pool object")]
    Create(#[source] E),
    /// The task creating the object meant for this caller was dropped before
    /// it finished: the pool's runtime shut down, or could not run it.
    #[error("creating a pool object was abandoned: its task ended before it finished")]
    CreateAborted,
    /// The factory panicked while creating the object meant for this caller.
    /// The panic was caught in the creation's task; the slot was freed.
    #[error("the factory panicked while creating a pool object")]
    CreatePanicked,
    /// The factory could not close an object given back dead or discarded.
    #[error("could not close a pool object")]
    Close(#[source] E),
    /// An object was released to a pool that did not hand it out; it went
    /// back to its own pool.
    #[error("an object was released to a pool that did not hand it out")]
    ForeignObject,
    /// Nothing was ready, and the peer refused a creation lately
    /// ([`Factory::is_refusal`](crate::Factory::is_refusal)): the pool backs
    /// off for `retry_in` more before it tries again, rather than make an
    /// attempt for each caller.
    #[error("the peer refused a new pool object lately: the pool tries again in {retry_in:?}")]
    Refused {
        /// How long the back-off still runs.
        retry_in: std::time::Duration,
    },
}

/// What [`Pool::close`](crate::Pool::close) could not close: the factory's
/// errors, one for each idle object whose close failed. Its `source()` is
/// the first of them.
///
/// ```
/// use wtpool_tokio::{Factory, Pool};
///
/// struct Stubborn; // its objects refuse to close
///
/// impl Factory for Stubborn {
///     type Object = ();
///     type Error = std::io::Error;
///
///     async fn create(&self) -> Result<(), std::io::Error> {
///         Ok(())
///     }
///
///     async fn close(&self, _object: ()) -> Result<(), std::io::Error> {
///         Err(std::io::Error::other("still busy"))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = Pool::new(Stubborn, 2)?;
/// let (a, b) = (pool.acquire().await?, pool.acquire().await?);
/// drop((a, b)); // both idle
///
/// let closing = pool.close().await.unwrap_err();
/// assert_eq!(closing.errors.len(), 2);
/// assert_eq!(
///     wtpool::ErrorChain(&closing).to_string(),
///     "closing the pool failed for 2 idle object(s): still busy"
/// );
/// assert!(pool.is_closed()); // closed all the same
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct CloseErrors<E: std::error::Error + 'static> {
    /// The errors, at least one.
    pub errors: Vec<E>,
}

impl<E: std::error::Error + 'static> fmt::Display for CloseErrors<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "closing the pool failed for {} idle object(s)",
            self.errors.len()
        )
    }
}

impl<E: std::error::Error + 'static> std::error::Error for CloseErrors<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.errors.first().map(|error| error as _)
    }
}
