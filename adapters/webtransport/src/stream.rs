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
/// and futures') keep track of whether it can carry another message: not
/// after it was finished, reset or stopped, not after the peer finished it,
/// not after an I/O call failed, and not after an I/O call was cancelled
/// halfway (a half-written message would run into the next borrower's).
///
/// With the poll-based traits, a call that returned (say, a partial write)
/// counts as complete: if your own framing stops halfway through a message,
/// [`discard`](wtpool::Pooled::discard) the stream.
#[derive(Debug)]
pub struct Stream {
    send: SendStream,
    recv: RecvStream,
    /// Finished, reset, stopped, ended by the peer, or failed.
    spent: bool,
    /// An I/O call started and has not completed (its future was dropped, or
    /// a poll returned `Pending` last).
    interrupted: bool,
}

impl Stream {
    fn new((send, recv): (SendStream, RecvStream)) -> Self {
        Stream {
            send,
            recv,
            spent: false,
            interrupted: false,
        }
    }

    /// Whether the stream can carry another message (see the type's docs).
    pub fn is_reusable(&self) -> bool {
        !self.spent && !self.interrupted
    }

    /// The id of the sending half.
    pub fn id(&self) -> StreamId {
        self.send.id()
    }

    /// Records that an I/O call completed with `result`.
    fn completed<T, E>(&mut self, result: Result<T, E>) -> Result<T, E> {
        self.interrupted = false;
        if result.is_err() {
            self.spent = true;
        }
        result
    }

    /// Records a poll of an I/O call.
    fn polled<T>(&mut self, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match poll {
            Poll::Pending => {
                self.interrupted = true;
                Poll::Pending
            }
            Poll::Ready(result) => Poll::Ready(self.completed(result)),
        }
    }

    /// Writes all of `buf`.
    pub async fn write_all(&mut self, buf: &[u8]) -> Result<(), StreamWriteError> {
        self.interrupted = true;
        let result = self.send.write_all(buf).await;
        self.completed(result)
    }

    /// Writes some of `buf`; returns how much.
    pub async fn write(&mut self, buf: &[u8]) -> Result<usize, StreamWriteError> {
        self.interrupted = true;
        let result = self.send.write(buf).await;
        self.completed(result)
    }

    /// Reads into `buf`; `None` once the peer finished the stream (which then
    /// is not pooled again).
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<Option<usize>, StreamReadError> {
        self.interrupted = true;
        let result = self.recv.read(buf).await;
        if matches!(result, Ok(None)) {
            self.spent = true;
        }
        self.completed(result)
    }

    /// Fills `buf` exactly.
    pub async fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), StreamReadExactError> {
        self.interrupted = true;
        let result = self.recv.read_exact(buf).await;
        self.completed(result)
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
        let poll = Pin::new(&mut self.send).poll_write(cx, buf);
        self.polled(poll)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.send).poll_flush(cx);
        self.polled(poll)
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
        let poll = Pin::new(&mut self.recv).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(())))
            && buf.filled().len() == before
            && buf.remaining() > 0
        {
            // The peer finished the stream.
            self.spent = true;
        }
        self.polled(poll)
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

    fn is_alive(&self, stream: &mut Stream) -> bool {
        stream.is_reusable() && self.session_alive()
    }

    /// Finishes the stream, so that the peer sees its end.
    async fn close(&self, mut stream: Stream) -> Result<(), WebTransportError> {
        if stream.is_reusable() {
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
