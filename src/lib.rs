//! wtpool: a pool engine for WebTransport connections, sessions and streams
//! (and anything else), correct under cancellation and failure.
//!
//! Two layers:
//!
//! - [`machine`]: the pool as a pure, synchronous state machine, sans-IO:
//!   capacity accounting, idle list, FIFO waiter registry, closed flag. It
//!   reads no clock and spawns nothing; embed it in any executor or test it
//!   with none.
//! - [`Pool`]: the async pool that drives it, generic over a [`Factory`] (what
//!   is pooled) and a [`Runtime`] (clock, timers and spawning). The adapter crates
//!   `wtpool-tokio` and `wtpool-smol` bind the runtime and add the
//!   WebTransport factories.
//!
//! This crate depends on no runtime and no WebTransport crate.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod builder;
mod error;
mod factory;
pub mod machine;
mod pool;
mod pooled;
mod runtime;
mod sync;

pub use builder::{Builder, DEFAULT_MAX_SIZE};
pub use error::{CloseErrors, ConfigError, PoolError, TimeoutKind};
pub use factory::Factory;
pub use machine::{Counters, ObjectMeta, Status};
pub use pool::Pool;
pub use pooled::Pooled;
pub use runtime::Runtime;

/// The README's snippets, compiled and run as doctests, so that each
/// compiles exactly as pasted.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
