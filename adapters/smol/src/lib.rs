//! wtpool on smol: the [`Smol`] runtime binding and the pool types bound to it.
//!
//! ```
//! use wtpool_smol::{Factory, Pool};
//!
//! struct Numbers;
//!
//! impl Factory for Numbers {
//!     type Object = u64;
//!     type Error = std::io::Error;
//!
//!     async fn create(&self) -> Result<u64, std::io::Error> {
//!         Ok(42)
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! smol::block_on(async {
//!     let pool = Pool::new(Numbers, 4)?;
//!     let n = pool.acquire().await?;
//!     assert_eq!(*n, 42);
//!     Ok(())
//! })
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::future::Future;
use std::time::Duration;

pub use wtpool::{
    CloseErrors, ConfigError, Counters, Factory, ObjectMeta, PoolError, Status, TimeoutKind,
    machine,
};

/// smol's timers and its global executor, for the pool.
#[derive(Debug, Clone, Copy, Default)]
pub struct Smol;

impl wtpool::Runtime for Smol {
    // An `async fn` would borrow `self`; the timer must be `'static`.
    #[allow(clippy::manual_async_fn)]
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send + 'static {
        async move {
            smol::Timer::after(duration).await;
        }
    }

    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        smol::spawn(future).detach();
    }
}

/// A pool on smol.
pub type Pool<F> = wtpool::Pool<F, Smol>;
/// An object borrowed from a [`Pool`] on smol.
pub type Pooled<F> = wtpool::Pooled<F, Smol>;
/// The builder of a [`Pool`] on smol.
pub type Builder<F> = wtpool::Builder<F, Smol>;
