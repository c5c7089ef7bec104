//! The builder the three WebTransport pools share.

use std::time::Duration;

use wtpool::Factory;

use crate::{TransportRuntime, WebTransportError};

/// Most handshakes in flight at once by default. On loopback, 200 connects
/// at once overflow the UDP receive buffer and spread to seconds; in batches
/// of 25 they all finish in under 100 ms. 16 leaves room on slower links.
pub const DEFAULT_MAX_CREATING: usize = 16;
/// How long one creation (a handshake, or opening a stream) may take by default.
pub const DEFAULT_CREATE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often idle sessions and streams are checked by default: one that died
/// while idle (closed by the peer, timed out) frees its slot within this time.
pub const DEFAULT_IDLE_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// Settings of a WebTransport pool: the engine's options (see
/// [`wtpool::Builder`]) with WebTransport defaults: at most
/// [`DEFAULT_MAX_CREATING`] creations at once, a create timeout of
/// [`DEFAULT_CREATE_TIMEOUT`], and idle objects checked for life every
/// [`DEFAULT_IDLE_CHECK_INTERVAL`], and named for what they reach (the URL
/// for sessions and connections, `streams` for streams) in their `tracing`
/// events and metrics; [`wtpool::Builder::name`] renames them.
///
/// Each pool's `builder` makes one (`SessionPool::builder`,
/// `ConnectionPool::builder`, `StreamPool::builder`); `new` is `builder`
/// then [`build`](Self::build).
///
/// ```
/// use std::time::Duration;
/// use wtpool::ConfigError;
/// use wtpool_webtransport::{ClientEndpoint, SessionPool, TransportRuntime, WebTransportError};
///
/// fn demo<R: TransportRuntime>(
///     client: ClientEndpoint,
///     url: url::Url,
/// ) -> Result<(), Box<dyn std::error::Error>> {
///     let pool = SessionPool::<R>::builder(client.clone(), url.clone(), 8)?
///         .options(|o| o.name("echo").max_lifetime(Duration::from_secs(600)))
///         .build()?;
///     assert_eq!(pool.name(), "echo"); // else its URL
///
///     let builder = SessionPool::<R>::builder(client, url, 8)?.options(|o| o.min_idle(9));
///     let Err(WebTransportError::Config(error)) = builder.build() else { unreachable!() };
///     assert_eq!(error, ConfigError::MinIdleAboveMaxSize { min_idle: 9, max_size: 8 });
///     Ok(())
/// }
/// # use wtpool_tokio::Tokio;
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = wtpool_webtransport::echo::EchoServer::start(Default::default())?;
/// # let options = wtpool_webtransport::ClientOptions {
/// #     bind: Some(([127, 0, 0, 1], 0).into()),
/// #     ..Default::default()
/// # }
/// # .with_certificate_hash(server.certificate_hash());
/// # let client = wtpool_webtransport::client_endpoint::<Tokio>(&options)?;
/// # demo::<Tokio>(client, server.url())
/// # }
/// ```
pub struct Builder<F: Factory, R: TransportRuntime, P> {
    options: wtpool::Builder<F, R>,
    /// Builds the engine's pool (exclusive or shared) and wraps it.
    finish: Box<Finish<F, R, P>>,
}

type Finish<F, R, P> = dyn FnOnce(wtpool::Builder<F, R>) -> Result<P, wtpool::ConfigError> + Send;

impl<F: Factory, R: TransportRuntime, P> Builder<F, R, P> {
    pub(crate) fn new(
        factory: F,
        name: impl Into<std::sync::Arc<str>>,
        max_size: usize,
        finish: impl FnOnce(wtpool::Builder<F, R>) -> Result<P, wtpool::ConfigError> + Send + 'static,
    ) -> Self {
        let options = wtpool::Builder::new(factory, R::default())
            .name(name)
            .max_size(max_size)
            .max_creating(DEFAULT_MAX_CREATING)
            .create_timeout(DEFAULT_CREATE_TIMEOUT)
            .idle_check_interval(DEFAULT_IDLE_CHECK_INTERVAL);
        Builder {
            options,
            finish: Box::new(finish),
        }
    }

    /// Changes the engine's options: `configure` gets the [`wtpool::Builder`].
    ///
    /// ```
    /// # use std::time::Duration;
    /// # fn demo<R: wtpool_webtransport::TransportRuntime>(builder: wtpool_webtransport::SessionPoolBuilder<R>) {
    /// let builder = builder.options(|o| o.name("api").min_idle(2).wait_timeout(Duration::from_secs(5)));
    /// # }
    /// ```
    pub fn options(
        mut self,
        configure: impl FnOnce(wtpool::Builder<F, R>) -> wtpool::Builder<F, R>,
    ) -> Self {
        self.options = configure(self.options);
        self
    }

    /// Checks the settings and makes the pool.
    pub fn build(self) -> Result<P, WebTransportError> {
        Ok((self.finish)(self.options)?)
    }
}
