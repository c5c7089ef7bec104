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
//!
//! Observability, off by default: the feature `tracing` gives spans and
//! events (acquire with its wait, create with its outcome and duration,
//! close with its reason), the feature `metrics` wait-time and create-time
//! histograms and counters through the `metrics` facade; each carries the
//! pool's [name](Builder::name). See [`observe`] for the names, levels and
//! fields.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod builder;
mod error;
mod factory;
pub mod machine;
pub mod observe;
mod pool;
mod pooled;
mod runtime;
mod shared;
mod sync;

pub use builder::{Builder, DEFAULT_MAX_SIZE, DEFAULT_NAME};
pub use error::{CloseErrors, ConfigError, ErrorChain, PoolError, TimeoutKind};
pub use factory::Factory;
pub use machine::{Counters, ObjectMeta, Status};
pub use pool::Pool;
pub use pooled::Pooled;
pub use runtime::Runtime;
pub use shared::{Lease, SharedPool};

/// The README's snippets, compiled and run as doctests, so that each
/// compiles exactly as pasted.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
