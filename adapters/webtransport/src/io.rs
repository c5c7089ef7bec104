//! Where wtransport's I/O runs: it needs a tokio runtime with I/O and timers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::runtime::Handle;
use tokio::task::{JoinError, JoinHandle};

use crate::WebTransportError;

/// A [`wtpool::Runtime`] that can also say which tokio runtime wtransport's
/// endpoints and handshakes run on. `wtpool-tokio` answers with its own
/// runtime; `wtpool-smol` with a small background tokio runtime it owns.
/// A handshake spawned there is aborted as soon as its creation is given up.
///
/// Code meant for either runtime takes it as a type parameter; the caller
/// picks `wtpool_tokio::Tokio` or `wtpool_smol::Smol`:
///
/// ```
/// use wtpool_webtransport::{ClientOptions, SessionPool, TransportRuntime, client_endpoint};
///
/// /// One round trip through an echo server at `url`, on the runtime `R`.
/// async fn echo<R: TransportRuntime>(
///     options: &ClientOptions,
///     url: url::Url,
/// ) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
///     let sessions = SessionPool::<R>::new(client_endpoint::<R>(options)?, url, 1)?;
///     let session = sessions.acquire().await?;
///     let (mut send, mut recv) = session.open_bi().await?.await?;
///     send.write_all(b"ping").await?;
///     send.finish().await?;
///     Ok(recv.quic_stream_mut().read_to_end(64).await?)
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
/// # assert_eq!(echo::<Tokio>(&options, server.url()).await?, b"ping");
/// # Ok(())
/// # }
/// ```
pub trait TransportRuntime: wtpool::Runtime + Default {
    /// The tokio runtime for endpoint creation and `connect()`, used when the
    /// caller is not already running inside a tokio runtime.
    fn io_handle(&self) -> Option<Handle>;
}

/// Runs `make` (which creates an endpoint) inside a tokio runtime context.
pub(crate) fn enter<T>(
    io: Option<&Handle>,
    make: impl FnOnce() -> T,
) -> Result<T, WebTransportError> {
    if Handle::try_current().is_ok() {
        return Ok(make());
    }
    let handle = io.ok_or(WebTransportError::NoIoRuntime)?;
    let _entered = handle.enter();
    Ok(make())
}

/// Runs `future` (a handshake) where tokio I/O works: in place when already on
/// a tokio runtime, else spawned on `io` and awaited from any executor. If the
/// caller stops waiting (a create timeout, a dropped acquire), the spawned
/// handshake is aborted where it runs, as it would be in place: a handshake
/// given up is not left in flight, so `max_creating` bounds the handshakes
/// really in flight on every runtime.
pub(crate) async fn run<T: Send + 'static>(
    io: Option<&Handle>,
    future: impl Future<Output = T> + Send + 'static,
) -> Result<T, WebTransportError> {
    if Handle::try_current().is_ok() {
        return Ok(future.await);
    }
    let handle = io.ok_or(WebTransportError::NoIoRuntime)?;
    AbortOnDrop(handle.spawn(future))
        .await
        .map_err(|_| WebTransportError::IoTaskLost)
}

/// A spawned task that is aborted when its handle is dropped.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
