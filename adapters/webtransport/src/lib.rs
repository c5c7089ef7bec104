//! The WebTransport pools of wtpool, over [wtransport]: [`ConnectionPool`],
//! [`SessionPool`] and [`StreamPool`], for any runtime adapter.
//!
//! Use them through `wtpool-tokio` or `wtpool-smol`, which bind the runtime
//! (`wtpool_tokio::SessionPool`, `wtpool_smol::SessionPool`, …). Each pool
//! derefs to [`wtpool::Pool`], with its `acquire`, `release`, `get`, `close`,
//! `status`, `resize` and `retain`.
//!
//! | pool | pools | made from |
//! |---|---|---|
//! | [`ConnectionPool`] | sessions ([`wtransport::Connection`]) | a `ClientConfig` and host, port, path: it owns its endpoint |
//! | [`SessionPool`] | sessions ([`wtransport::Connection`]) | a client endpoint the caller owns and may share, and a URL |
//! | [`SharedSessionPool`] | sessions, each lent to up to `max_leases` borrowers at once | a client endpoint and a URL |
//! | [`StreamPool`] | bidirectional streams ([`Stream`]) | one session |
//! | [`Fleet`] | shared sessions to any number of servers, under one cap | a client endpoint; URLs as they come |
//!
//! wtransport needs a tokio runtime for its I/O; [`TransportRuntime`] says
//! which one to use when the pool runs elsewhere. A handshake runs there
//! only as long as its creation is awaited: one given up (a create timeout,
//! a dropped acquire) is aborted where it runs, so `max_creating` bounds
//! the handshakes really in flight on every runtime.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod builder;
mod config;
pub mod echo;
mod error;
mod fleet;
mod io;
mod session;
mod shared;
mod stream;

pub use builder::{
    Builder, DEFAULT_CREATE_TIMEOUT, DEFAULT_IDLE_CHECK_INTERVAL, DEFAULT_MAX_CREATING,
};
pub use config::{
    ClientOptions, DEFAULT_KEEP_ALIVE_INTERVAL, DEFAULT_MAX_IDLE_TIMEOUT, ServerCertificate,
};
pub use error::WebTransportError;
pub use fleet::{Fleet, FleetSettings, FleetStatus, ServerStatus};
pub use io::TransportRuntime;
pub use session::{
    ClientEndpoint, ConnectionPool, ConnectionPoolBuilder, SessionFactory, SessionPool,
    SessionPoolBuilder, client_endpoint,
};
pub use shared::{
    DEFAULT_MAX_LEASES, SessionLease, SharedSessionError, SharedSessionPool,
    SharedSessionPoolBuilder, SharedStream,
};
pub use stream::{ABANDONED_STREAM_CODE, Stream, StreamFactory, StreamPool, StreamPoolBuilder};

/// The engine's configuration error, as a pool's construction reports it.
impl From<wtpool::ConfigError> for WebTransportError {
    fn from(error: wtpool::ConfigError) -> Self {
        WebTransportError::Config(error)
    }
}
