//! The synchronisation primitives of the async pool: std's, or loom's when
//! built with `RUSTFLAGS="--cfg loom"`, so that `tests/loom.rs` can explore
//! every interleaving of the pool's lock, its wakes and its hand-offs.
//!
//! loom's `Arc` has no `Weak`, so under loom the pool has no upkeep task (it
//! holds the pool weakly): the loom models use pools without `min_idle`,
//! `idle_timeout`, `max_lifetime` and `idle_check_interval`.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard, Weak};
