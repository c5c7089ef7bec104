//! A pool of bidirectional streams on one session: [`StreamPool`].
//!
//! A WebTransport stream cannot be reused once finished or reset, so a pooled
//! stream is one that stays open, with messages framed by the user on top.
//! A stream also carries protocol state: unread bytes, a half-written message,
//! a peer's finish. Handed to the next borrower, any of them would mix two
//! borrowers' data, so the pool reuses a stream only when it is known clean.
//!
//! The rules are [`StreamPool`]'s reuse contract.

use std::io;
use std::ops::Deref;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::FutureExt;
use futures::channel::oneshot;
use futures::future::{Either, select};
use wtransport::StreamId;
use wtransport::error::{StreamReadError, StreamReadExactError, StreamWriteError};
use wtransport::{Connection, RecvStream, SendStream, VarInt};

use crate::{Builder, TransportRuntime, WebTransportError};

/// The error code of the RESET_STREAM and STOP_SENDING that end a stream
/// which leaves unclean (see [`StreamPool`]): `0x77747031`, "wtp1" in ASCII.
pub const ABANDONED_STREAM_CODE: VarInt = VarInt::from_u32(0x7774_7031);

/// A bidirectional stream with both halves, as the [`StreamPool`] hands it out.
///
/// Use it through its methods or its `AsyncRead`/`AsyncWrite`
/// implementations (tokio's and futures'), which record what the pool needs
/// to know; when an exchange is over, call
/// [`mark_complete`](Self::mark_complete), or the stream is reset rather than
/// reused (see [the reuse contract](StreamPool#the-reuse-contract)).
///
/// Dropped anywhere while unclean, it is reset, not finished.
///
/// ```
/// use wtpool_webtransport::{StreamPool, TransportRuntime};
///
/// async fn demo<R: TransportRuntime>(
///     streams: &StreamPool<R>, // on a session to an echo server
/// ) -> Result<(), Box<dyn std::error::Error>> {
///     let mut stream = streams.acquire().await?;
///     stream.write_all(b"ping").await?;
///     let mut reply = [0; 4];
///     stream.read_exact(&mut reply).await?;
///     assert_eq!(&reply, b"ping");
///     stream.mark_complete(); // the whole reply was read: nothing left in flight
///     let id = stream.id();
///     drop(stream); // clean: back to the pool
///
///     let mut stream = streams.acquire().await?;
///     assert_eq!(stream.id(), id); // the same stream, for the next exchange
///     stream.write_all(b"half an exchange").await?;
///     drop(stream); // not marked complete: reset, never handed out again
///     assert_eq!(streams.status().size, 0);
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
/// # let sessions = wtpool_webtransport::SessionPool::<Tokio>::new(client, server.url(), 1)?;
/// # let session = sessions.acquire().await?;
/// # let streams = StreamPool::<Tokio>::new((*session).clone(), 4)?;
/// # demo(&streams).await
/// # }
/// ```
#[derive(Debug)]
pub struct Stream {
    /// Both halves; `None` only inside `into_parts`.
    halves: Option<(SendStream, RecvStream)>,
    /// The borrower marked the exchange complete and made no I/O call since.
    complete: bool,
    /// An I/O call was abandoned halfway. Sticky: nothing clears it.
    torn: bool,
    /// An async I/O call started and has not returned. Found set when the
    /// next call starts, at the mark or when the stream is given back, it
    /// means that the call's future was dropped: the stream is torn.
    busy: bool,
    /// The last poll of a poll-based write (read) returned `Pending`: the
    /// future built on it (`write_all`, `read_exact`…) has not finished.
    /// Found set at the mark, when an async call starts or when the stream is
    /// given back, it means that future was dropped: the stream is torn.
    write_pending: bool,
    read_pending: bool,
    /// An I/O call failed, the borrower reset or stopped a half, the peer
    /// reset its half, or bytes arrived that nobody read.
    broken: bool,
    /// The borrower finished the sending half.
    finished: bool,
    /// The peer finished its sending half, and every byte of it was read.
    peer_finished: bool,
}

impl Stream {
    fn new(halves: (SendStream, RecvStream)) -> Self {
        Stream {
            halves: Some(halves),
            // A new stream carries no exchange yet.
            complete: true,
            torn: false,
            busy: false,
            write_pending: false,
            read_pending: false,
            broken: false,
            finished: false,
            peer_finished: false,
        }
    }

    /// Declares the borrower's exchange complete: every message it wrote was
    /// written whole and every reply it expects was read whole. Only then can
    /// the stream serve the next borrower; any I/O call after this takes the
    /// mark back. A call abandoned before the mark (its future dropped) still
    /// keeps the stream from being reused.
    ///
    /// ```no_run
    /// # async fn demo<R: wtpool_webtransport::TransportRuntime>(
    /// #     streams: wtpool_webtransport::StreamPool<R>,
    /// # ) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut stream = streams.acquire().await?;
    /// stream.write_all(b"ping").await?;
    /// let mut reply = [0; 4];
    /// stream.read_exact(&mut reply).await?;
    /// stream.mark_complete(); // dropped now, it goes back for the next borrower
    /// # Ok(()) }
    /// ```
    pub fn mark_complete(&mut self) {
        self.note_abandoned();
        self.complete = true;
    }

    /// Whether the stream can serve another borrower as far as its own calls
    /// tell: marked complete, no call abandoned or under way, neither half
    /// ended, nothing broken. The pool also checks, without waiting, that
    /// nothing arrived unread and that the session lives.
    pub fn is_reusable(&self) -> bool {
        self.ends_cleanly() && !self.finished && !self.peer_finished
    }

    /// Whether the stream may end with a FIN rather than a reset: its
    /// exchange is complete and whole, though a half may have ended.
    fn ends_cleanly(&self) -> bool {
        self.complete
            && !self.torn
            && !self.busy
            && !self.write_pending
            && !self.read_pending
            && !self.broken
    }

    /// The id of the sending half.
    pub fn id(&self) -> StreamId {
        self.halves().0.id()
    }

    fn halves(&self) -> &(SendStream, RecvStream) {
        self.halves.as_ref().expect("a stream holds its halves")
    }

    fn send(&mut self) -> &mut SendStream {
        &mut self.halves.as_mut().expect("a stream holds its halves").0
    }

    fn recv(&mut self) -> &mut RecvStream {
        &mut self.halves.as_mut().expect("a stream holds its halves").1
    }

    /// Turns a call left unfinished (an async call still busy, a poll-based
    /// call whose last poll was pending) into a tear: its future was dropped.
    fn note_abandoned(&mut self) {
        if self.busy || self.write_pending || self.read_pending {
            self.torn = true;
            self.busy = false;
            self.write_pending = false;
            self.read_pending = false;
        }
    }

    /// Records that an async I/O call starts; `finished_call` records its end.
    fn begin_async(&mut self) {
        self.note_abandoned();
        self.complete = false;
        self.busy = true;
    }

    /// Records that an async I/O call returned `result`.
    fn finished_call<T, E>(&mut self, result: Result<T, E>) -> Result<T, E> {
        self.busy = false;
        if result.is_err() {
            self.broken = true;
        }
        result
    }

    /// Records one poll of a poll-based call on the sending (`send`) or
    /// receiving half. One poll that returns `Pending` moves no bytes, but
    /// the future built on it may have moved some in earlier polls: if it is
    /// dropped now, the stream is torn (see `note_abandoned`).
    fn polled<T>(&mut self, send: bool, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        self.complete = false;
        let pending = if send {
            &mut self.write_pending
        } else {
            &mut self.read_pending
        };
        *pending = poll.is_pending();
        if let Poll::Ready(Err(_)) = &poll {
            self.broken = true;
        }
        poll
    }

    /// Before the sending half is finished: a torn stream is reset instead,
    /// so that the peer never sees a cut message followed by a clean end.
    fn refuse_torn_finish(&mut self) -> bool {
        self.note_abandoned();
        self.complete = false;
        if self.torn {
            self.reset(ABANDONED_STREAM_CODE);
        }
        self.torn
    }

    /// Writes all of `buf`.
    pub async fn write_all(&mut self, buf: &[u8]) -> Result<(), StreamWriteError> {
        self.begin_async();
        let result = self.send().write_all(buf).await;
        self.finished_call(result)
    }

    /// Writes some of `buf`; returns how much.
    pub async fn write(&mut self, buf: &[u8]) -> Result<usize, StreamWriteError> {
        self.begin_async();
        let result = self.send().write(buf).await;
        self.finished_call(result)
    }

    /// Reads into `buf`; `None` once the peer finished the stream (which then
    /// is not pooled again).
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<Option<usize>, StreamReadError> {
        self.begin_async();
        let result = self.recv().read(buf).await;
        if matches!(result, Ok(None)) {
            self.peer_finished = true;
        }
        self.finished_call(result)
    }

    /// Fills `buf` exactly.
    pub async fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), StreamReadExactError> {
        self.begin_async();
        let result = self.recv().read_exact(buf).await;
        self.finished_call(result)
    }

    /// Finishes the sending half and waits until the peer acknowledged all
    /// data; the stream is then not pooled again. A torn stream is reset
    /// instead (with [`ABANDONED_STREAM_CODE`]), and this fails with
    /// [`StreamWriteError::Closed`].
    pub async fn finish(&mut self) -> Result<(), StreamWriteError> {
        if self.refuse_torn_finish() {
            return Err(StreamWriteError::Closed);
        }
        self.finished = true;
        self.send().finish().await
    }

    /// Resets the sending half with `error_code`; the stream is then not
    /// pooled again (and its receiving half is stopped as it leaves).
    pub fn reset(&mut self, error_code: VarInt) {
        self.complete = false;
        self.broken = true;
        // Only fails when already finished or reset, which is what was asked.
        let _ = self.send().reset(error_code);
    }

    /// Stops the receiving half with `error_code` (asks the peer to stop
    /// sending); the stream is then not pooled again (and its sending half is
    /// reset as it leaves).
    pub fn stop(&mut self, error_code: VarInt) {
        self.complete = false;
        self.broken = true;
        // Only fails when already stopped or fully read.
        let _ = self.recv().quic_stream_mut().stop(quic_code(error_code));
    }

    /// The two halves, for uses beyond this type's methods. From then on the
    /// halves are yours: dropping them finishes the sending half and stops
    /// the receiving one with code 0, as wtransport does.
    pub fn into_parts(mut self) -> (SendStream, RecvStream) {
        self.halves.take().expect("a stream holds its halves")
    }

    /// Checks, without waiting, that nothing arrived on the receiving half
    /// since its borrower's last call: a byte nobody read, or the peer's
    /// reset, breaks the stream; the peer's finish ends it.
    ///
    /// A STOP_SENDING from the peer is not looked for here: quinn's
    /// `stopped()` would keep a record per stream for the life of the
    /// session. It is seen by the next write, which fails.
    fn check_arrivals(&mut self) {
        if self.broken || self.peer_finished {
            return;
        }
        let mut byte = [0; 1];
        let arrived = self.recv().quic_stream_mut().read(&mut byte).now_or_never();
        match arrived {
            None => {}
            Some(Ok(None)) => self.peer_finished = true,
            Some(_) => self.broken = true,
        }
    }

    /// Whether the pool may hand the stream to another borrower: the whole
    /// reuse contract but the session's life (see [`StreamPool`]).
    fn is_clean(&mut self) -> bool {
        self.note_abandoned();
        if self.is_reusable() {
            self.check_arrivals();
        }
        self.is_reusable()
    }
}

impl Drop for Stream {
    /// Resets a stream that leaves unclean, so that the peer sees its end as
    /// abrupt rather than as a complete message (quinn finishes a dropped
    /// sending half). A sending half its borrower finished, and a receiving
    /// half the peer finished, have ended already.
    fn drop(&mut self) {
        self.note_abandoned();
        if self.halves.is_none() || self.ends_cleanly() {
            return;
        }
        let (finished, peer_finished) = (self.finished, self.peer_finished);
        let (send, recv) = self.halves.as_mut().expect("checked above");
        // Each fails only when that half already ended, which is fine.
        if !finished {
            let _ = send.reset(ABANDONED_STREAM_CODE);
        }
        if !peer_finished {
            let _ = recv
                .quic_stream_mut()
                .stop(quic_code(ABANDONED_STREAM_CODE));
        }
    }
}

/// The same error code in quinn's type (wtransport passes codes through as they are).
fn quic_code(code: VarInt) -> wtransport::quinn::VarInt {
    wtransport::quinn::VarInt::from_u64(code.into_inner()).expect("a VarInt fits in a VarInt")
}

impl tokio::io::AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(self.send()).poll_write(cx, buf);
        self.polled(true, poll)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(self.send()).poll_flush(cx);
        self.polled(true, poll)
    }

    /// Finishes the sending half; a torn stream is reset instead, and this
    /// fails.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.refuse_torn_finish() {
            return Poll::Ready(Err(io::Error::other(
                "the stream was torn by an abandoned call: reset instead of finished",
            )));
        }
        self.finished = true;
        Pin::new(self.send()).poll_shutdown(cx)
    }
}

impl tokio::io::AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(self.recv()).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(())))
            && buf.filled().len() == before
            && buf.remaining() > 0
        {
            self.peer_finished = true;
        }
        self.polled(false, poll)
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
///
/// A [`StreamPool`] makes it from the session it is given, and lends it with
/// [`factory`](wtpool::Pool::factory):
///
/// ```
/// use wtpool_webtransport::{StreamFactory, StreamPool, TransportRuntime};
/// use wtransport::Connection;
///
/// fn demo<R: TransportRuntime>(session: Connection) -> Result<(), Box<dyn std::error::Error>> {
///     let streams = StreamPool::<R>::new(session.clone(), 16)?;
///     let factory: &StreamFactory = streams.factory();
///     assert_eq!(factory.session().stable_id(), session.stable_id());
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
/// # let sessions = wtpool_webtransport::SessionPool::<Tokio>::new(client, server.url(), 1)?;
/// # let session = sessions.acquire().await?;
/// # demo::<Tokio>((*session).clone())
/// # }
/// ```
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

    /// The reuse contract (see [`StreamPool`]).
    fn is_alive(&self, stream: &mut Stream) -> bool {
        stream.is_clean() && self.session_alive()
    }

    /// Finishes a clean stream, without waiting for the peer's
    /// acknowledgement; resets any other (see [`StreamPool`]).
    async fn close(&self, mut stream: Stream) -> Result<(), WebTransportError> {
        stream.note_abandoned();
        if stream.ends_cleanly() {
            stream.check_arrivals();
        }
        if stream.ends_cleanly() && !stream.finished {
            // Fails only when the stream already ended: nothing left to finish.
            let _ = stream.send().quic_stream_mut().finish();
        }
        // Dropping it resets it if it is not clean.
        Ok(())
    }
}

/// The builder of a [`StreamPool`].
pub type StreamPoolBuilder<R> = Builder<StreamFactory, R, StreamPool<R>>;

/// A pool of bidirectional streams on one WebTransport session.
///
/// It derefs to [`wtpool::Pool`], which has `acquire`, `release`, `get`,
/// `close`, `status` and the rest. A stream serves the next borrower only
/// when its borrower [marked the exchange complete](Stream::mark_complete)
/// and it is clean; any other is reset (see [the reuse
/// contract](#the-reuse-contract)). When the session dies, the idle streams are
/// dropped at once, streams in use are dropped when given back, and acquire
/// fails with [`WebTransportError::SessionClosed`].
///
/// # The reuse contract
///
/// A stream goes back to the pool for the next borrower only if **all** of
/// these hold when it is given back (and, if it idled, again when it is
/// handed out and at each idle check):
///
/// 1. its borrower said the exchange is complete, with
///    [`Stream::mark_complete`], and made no I/O call after that;
/// 2. no I/O call on it was ever abandoned halfway (its future dropped by a
///    timeout, a `select!` or a cancelled task): this is sticky, no later
///    call clears it. With the async methods this is exact. With the
///    `AsyncRead`/`AsyncWrite` traits the pool sees polls, not the futures
///    built on them (`write_all`, `read_exact`…): such a future dropped
///    halfway is caught when its last poll was pending, unless another call
///    on the same half completes before the mark;
/// 3. no I/O call on it failed, its borrower did not finish, reset or stop
///    it, and the peer did not finish or reset its half;
/// 4. nothing has arrived that nobody read: the receiving half is polled once
///    without waiting, and a byte there, or the peer's reset, breaks the
///    stream;
/// 5. its session is alive.
///
/// Any other stream leaves the pool, and a stream whose exchange was not
/// complete and whole (1, 2, or a failure in 3 or 4) is **reset** as it
/// leaves, whichever way it leaves (given back, discarded, closed, or
/// detached and dropped): RESET_STREAM on the sending half and STOP_SENDING
/// on the receiving half, with [`ABANDONED_STREAM_CODE`], so that the peer
/// can tell a cut message from a complete one. A half that already ended (a
/// finish by the borrower or by the peer, a reset with the borrower's own
/// code) is left as it is, and `finish` on a torn stream resets it instead.
/// A clean stream is finished when the pool closes it (a FIN, without
/// waiting for the peer's acknowledgement).
///
/// A STOP_SENDING from the peer on an idle stream is seen by the next write,
/// which fails (and the stream leaves reset): looking for it earlier would
/// make quinn keep a record per stream for the life of the session.
///
/// Why explicit: the pool cannot know where the user's messages begin and
/// end. A heuristic ("nothing buffered, nothing pending") misses a reply that
/// is still on its way when the stream is given back, and hands it to the next
/// borrower; that is one user's data in another user's hands. With the mark,
/// the safe outcome is the default: a borrower that leaves by an early `?`, a
/// panic, a timeout or a dropped task never marked its exchange complete, so
/// its stream is reset and a fresh one opened (about 1 µs and no round trip on
/// an open session). The checks 2 to 5 still run, to catch what the mark
/// cannot: an exchange torn and then "completed", a reply that overran.
///
/// # Example
///
/// ```no_run
/// use wtpool_webtransport::{StreamPool, TransportRuntime};
///
/// async fn ask<R: TransportRuntime>(
///     streams: &StreamPool<R>,
///     question: &[u8; 4],
/// ) -> Result<[u8; 4], Box<dyn std::error::Error>> {
///     let mut stream = streams.acquire().await?;
///     stream.write_all(question).await?;
///     let mut answer = [0; 4];
///     // Leaving here by `?`, or by a timeout that drops this future, leaves
///     // the exchange unmarked: the stream is reset, never handed to the
///     // next borrower with this answer still on its way.
///     stream.read_exact(&mut answer).await?;
///     stream.mark_complete(); // whole: the stream may serve the next borrower
///     Ok(answer)
/// }
/// ```
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
        Builder::new(StreamFactory { session }, "streams", max_size, |options| {
            Ok(Self::watching(options.build()?))
        })
    }

    /// Wraps the pool, with a task that empties it when the session dies.
    fn watching(pool: wtpool::Pool<StreamFactory, R>) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let watched = pool.clone();
        wtpool::Runtime::spawn(pool.runtime(), async move {
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
