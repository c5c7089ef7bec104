//! A pool of bidirectional streams on one session: [`StreamPool`].
//!
//! A WebTransport stream cannot be reused once finished or reset, so a pooled
//! stream is one that stays open, with messages framed by the user on top.
//! [`Stream`] tracks what its borrower did with it: once it was finished,
//! reset or stopped, once the peer finished it, or once an I/O call on it
//! failed, it is closed instead of pooled again.

use std::io;
use std::ops::Deref;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::channel::oneshot;
use futures::future::{Either, select};
use wtransport::StreamId;
use wtransport::error::{StreamReadError, StreamReadExactError, StreamWriteError};
use wtransport::{Connection, RecvStream, SendStream, VarInt};

use crate::{Builder, TransportRuntime, WebTransportError};

/// A bidirectional stream with both halves, as the [`StreamPool`] hands it out.
///
/// Its I/O methods and its `AsyncRead`/`AsyncWrite` implementations (tokio's
/// and futures'), keep track of whether it can be used again.
#[derive(Debug)]
pub struct Stream {
    send: SendStream,
    recv: RecvStream,
    /// Set once the stream cannot carry another message.
    spent: bool,
}

impl Stream {
    fn new((send, recv): (SendStream, RecvStream)) -> Self {
        Stream {
            send,
            recv,
            spent: false,
        }
    }

    /// Whether the stream can still be used: not finished, reset or stopped
    /// by its borrower, not finished by the peer, and no I/O call on it failed.
    pub fn is_reusable(&self) -> bool {
        !self.spent
    }

    /// The id of the sending half.
    pub fn id(&self) -> StreamId {
        self.send.id()
    }

    fn spend_on<T, E>(&mut self, result: Result<T, E>) -> Result<T, E> {
        if result.is_err() {
            self.spent = true;
        }
        result
    }

    /// Writes all of `buf`.
    pub async fn write_all(&mut self, buf: &[u8]) -> Result<(), StreamWriteError> {
        let result = self.send.write_all(buf).await;
        self.spend_on(result)
    }

    /// Writes some of `buf`; returns how much.
    pub async fn write(&mut self, buf: &[u8]) -> Result<usize, StreamWriteError> {
        let result = self.send.write(buf).await;
        self.spend_on(result)
    }

    /// Reads into `buf`; `None` once the peer finished the stream (which then
    /// is not pooled again).
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<Option<usize>, StreamReadError> {
        let result = self.recv.read(buf).await;
        if matches!(result, Ok(None)) {
            self.spent = true;
        }
        self.spend_on(result)
    }

    /// Fills `buf` exactly.
    pub async fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), StreamReadExactError> {
        let result = self.recv.read_exact(buf).await;
        self.spend_on(result)
    }

    /// Finishes the sending half; the stream is then not pooled again.
    pub async fn finish(&mut self) -> Result<(), StreamWriteError> {
        self.spent = true;
        self.send.finish().await
    }

    /// Resets the sending half; the stream is then not pooled again.
    pub fn reset(&mut self, error_code: VarInt) {
        self.spent = true;
        // Only fails when already finished or reset, which is what was asked.
        let _ = self.send.reset(error_code);
    }

    /// Stops the receiving half (asks the peer to stop sending), giving up
    /// the stream: it is then not pooled again.
    pub fn stop(self, error_code: VarInt) {
        self.recv.stop(error_code);
    }

    /// The two halves, for uses beyond this type's methods.
    pub fn into_parts(self) -> (SendStream, RecvStream) {
        (self.send, self.recv)
    }
}

impl tokio::io::AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = ready!(Pin::new(&mut self.send).poll_write(cx, buf));
        Poll::Ready(self.spend_on(result))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = ready!(Pin::new(&mut self.send).poll_flush(cx));
        Poll::Ready(self.spend_on(result))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.spent = true;
        Pin::new(&mut self.send).poll_shutdown(cx)
    }
}

impl tokio::io::AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = ready!(Pin::new(&mut self.recv).poll_read(cx, buf));
        if result.is_ok() && buf.filled().len() == before && buf.remaining() > 0 {
            // The peer finished the stream.
            self.spent = true;
        }
        Poll::Ready(self.spend_on(result))
    }
}

impl futures::io::AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        tokio::io::AsyncWrite::poll_write(self, cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::io::AsyncWrite::poll_flush(self, cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::io::AsyncWrite::poll_shutdown(self, cx)
    }
}

impl futures::io::AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut buf = tokio::io::ReadBuf::new(buf);
        ready!(tokio::io::AsyncRead::poll_read(self, cx, &mut buf))?;
        Poll::Ready(Ok(buf.filled().len()))
    }
}

/// Opens bidirectional streams on one session.
pub struct StreamFactory {
    session: Connection,
}

impl StreamFactory {
    /// The session streams are opened on.
    pub fn session(&self) -> &Connection {
        &self.session
    }

    fn session_alive(&self) -> bool {
        self.session.quic_connection().close_reason().is_none()
    }
}

impl wtpool::Factory for StreamFactory {
    type Object = Stream;
    type Error = WebTransportError;

    async fn create(&self) -> Result<Stream, WebTransportError> {
        let opening = self
            .session
            .open_bi()
            .await
            .map_err(WebTransportError::SessionClosed)?;
        let halves = opening.await.map_err(WebTransportError::StreamOpen)?;
        Ok(Stream::new(halves))
    }

    fn is_alive(&self, stream: &Stream) -> bool {
        stream.is_reusable() && self.session_alive()
    }

    /// Finishes the stream, so that the peer sees its end.
    async fn close(&self, mut stream: Stream) -> Result<(), WebTransportError> {
        if !stream.spent {
            // A finish that fails means the stream is already gone: nothing left to close.
            let _ = stream.send.finish().await;
        }
        Ok(())
    }
}

/// The builder of a [`StreamPool`].
pub type StreamPoolBuilder<R> = Builder<StreamFactory, R, StreamPool<R>>;

/// A pool of bidirectional streams on one WebTransport session.
///
/// It derefs to [`wtpool::Pool`], which has `acquire`, `release`, `get`,
/// `close`, `status` and the rest. When the session dies, the idle streams
/// are dropped at once, streams in use are dropped when given back, and
/// acquire fails with [`WebTransportError::SessionClosed`].
pub struct StreamPool<R: TransportRuntime> {
    pool: wtpool::Pool<StreamFactory, R>,
    /// Dropped with the last handle, which ends the session watcher.
    _watch: std::sync::Arc<oneshot::Sender<()>>,
}

impl<R: TransportRuntime> StreamPool<R> {
    /// A pool of at most `max_size` streams on `session`.
    pub fn new(session: Connection, max_size: usize) -> Result<Self, WebTransportError> {
        Self::builder(session, max_size).build()
    }

    /// A builder, to change the engine's options before the pool is made.
    pub fn builder(session: Connection, max_size: usize) -> StreamPoolBuilder<R> {
        Builder::new(StreamFactory { session }, max_size, Self::watching)
    }

    /// Wraps the pool, with a task that empties it when the session dies.
    fn watching(pool: wtpool::Pool<StreamFactory, R>) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let watched = pool.clone();
        let runtime = R::default();
        wtpool::Runtime::spawn(&runtime, async move {
            let session = watched.factory().session().clone();
            let closed = std::pin::pin!(session.closed());
            if let Either::Left(_) = select(closed, stopped).await {
                watched.retain(|_, _| false);
            }
        });
        StreamPool {
            pool,
            _watch: std::sync::Arc::new(stop),
        }
    }
}

impl<R: TransportRuntime> Deref for StreamPool<R> {
    type Target = wtpool::Pool<StreamFactory, R>;

    fn deref(&self) -> &Self::Target {
        &self.pool
    }
}

impl<R: TransportRuntime> Clone for StreamPool<R> {
    fn clone(&self) -> Self {
        StreamPool {
            pool: self.pool.clone(),
            _watch: self._watch.clone(),
        }
    }
}
