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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `max_size` was 0: a pool must be able to hold one object.
    #[error("max_size must be at least 1, got 0")]
    ZeroMaxSize,
    /// `max_creating` was 0: no object could ever be created.
    #[error("max_creating must be at least 1, got 0")]
    ZeroMaxCreating,
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
}

/// What [`Pool::close`](crate::Pool::close) could not close: the factory's
/// errors, one for each idle object whose close failed. Its `source()` is
/// the first of them.
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
