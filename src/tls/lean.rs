//! A TLS client stream on rustls' unbuffered API, so that an idle connection holds no TLS
//! buffers: received TLS bytes are kept only while a record is incomplete, decrypted bytes only
//! until the reader takes them, encrypted bytes only until the socket takes them. (rustls'
//! buffered `ClientConnection` keeps a 4 KiB receive buffer per connection for its whole life.)

use futures_lite::{AsyncRead, AsyncWrite};
use rustls::client::UnbufferedClientConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// Bytes read from the socket per call (on the stack; only what arrives is kept).
const READ_CHUNK: usize = 8192;

pub struct LeanClient<S> {
    io: S,
    conn: UnbufferedClientConnection,
    /// TLS bytes received and not yet processed (an incomplete record); empty when idle.
    incoming: Vec<u8>,
    /// TLS bytes to send, from `out_pos`; empty when idle.
    outgoing: Vec<u8>,
    out_pos: usize,
    /// Decrypted bytes the reader has not taken, from `plain_pos`; empty when idle.
    plain: Vec<u8>,
    plain_pos: usize,
    eof: bool,
    close_queued: bool,
}

/// What processing the received bytes came to.
enum Step {
    /// More to do right away.
    Again,
    /// Waiting for bytes from the peer.
    NeedInput,
    /// The handshake is done and application data may be sent.
    Writable,
    /// The peer closed the TLS session.
    Closed,
}

fn to_io(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Appends what `f` writes to `out`, growing `out` by exactly what it asks for.
fn append<E>(
    out: &mut Vec<u8>,
    mut f: impl FnMut(&mut [u8]) -> Result<usize, E>,
    size: fn(&E) -> Option<usize>,
) -> io::Result<()>
where
    E: std::fmt::Display,
{
    let start = out.len();
    loop {
        match f(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(e) => match size(&e) {
                Some(need) if need > out.len() - start => out.resize(start + need, 0),
                _ => {
                    out.truncate(start);
                    return Err(io::Error::other(e.to_string()));
                }
            },
        }
    }
}

fn encode_size(e: &EncodeError) -> Option<usize> {
    match e {
        EncodeError::InsufficientSize(s) => Some(s.required_size),
        _ => None,
    }
}

fn encrypt_size(e: &EncryptError) -> Option<usize> {
    match e {
        EncryptError::InsufficientSize(s) => Some(s.required_size),
        _ => None,
    }
}

impl<S> LeanClient<S> {
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    pub fn connection(&self) -> &UnbufferedClientConnection {
        &self.conn
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> LeanClient<S> {
    /// Runs the handshake on a connected socket.
    pub async fn connect(conn: UnbufferedClientConnection, io: S) -> io::Result<LeanClient<S>> {
        let mut s = LeanClient {
            io,
            conn,
            incoming: Vec::new(),
            outgoing: Vec::new(),
            out_pos: 0,
            plain: Vec::new(),
            plain_pos: 0,
            eof: false,
            close_queued: false,
        };
        std::future::poll_fn(|cx| s.poll_handshake(cx)).await?;
        Ok(s)
    }

    /// One round of rustls' state machine over `incoming`; `payload` receives what may be
    /// encrypted now (a write), if the state allows it.
    fn step(&mut self, payload: Option<&[u8]>, wrote: &mut bool) -> io::Result<Step> {
        let UnbufferedStatus { mut discard, state } = self.conn.process_tls_records(&mut self.incoming);
        let step = match state.map_err(to_io)? {
            ConnectionState::ReadTraffic(mut r) => {
                while let Some(rec) = r.next_record() {
                    let rec = rec.map_err(to_io)?;
                    discard += rec.discard;
                    self.plain.extend_from_slice(rec.payload);
                }
                Step::Again
            }
            ConnectionState::EncodeTlsData(mut e) => {
                append(&mut self.outgoing, |b| e.encode(b), encode_size)?;
                Step::Again
            }
            // The bytes are in `outgoing`, ahead of anything written later; they leave in order.
            ConnectionState::TransmitTlsData(t) => {
                t.done();
                Step::Again
            }
            ConnectionState::WriteTraffic(mut w) => {
                if let Some(p) = payload.filter(|_| !*wrote) {
                    append(&mut self.outgoing, |b| w.encrypt(p, b), encrypt_size)?;
                    *wrote = true;
                }
                Step::Writable
            }
            ConnectionState::BlockedHandshake => Step::NeedInput,
            ConnectionState::PeerClosed | ConnectionState::Closed => Step::Closed,
            _ => Step::NeedInput,
        };
        if discard > 0 {
            self.incoming.drain(..discard);
        }
        if self.incoming.is_empty() && self.incoming.capacity() > 0 {
            self.incoming = Vec::new();
        }
        Ok(step)
    }

    /// Reads what the socket has; `true` at end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        let mut chunk = [0u8; READ_CHUNK];
        let n = ready!(Pin::new(&mut self.io).poll_read(cx, &mut chunk))?;
        self.incoming.extend_from_slice(&chunk[..n]);
        Poll::Ready(Ok(n == 0))
    }

    /// Sends what `outgoing` holds.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_pos < self.outgoing.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.outgoing[self.out_pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_pos += n;
        }
        if self.outgoing.capacity() > 0 {
            self.outgoing = Vec::new();
            self.out_pos = 0;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.poll_send(cx))?;
            match self.step(None, &mut false)? {
                Step::Again => {}
                Step::Writable => return self.poll_send(cx),
                Step::NeedInput => {
                    if ready!(self.poll_fill(cx))? {
                        return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
                    }
                }
                Step::Closed => return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for LeanClient<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let s = self.get_mut();
        loop {
            if s.plain_pos < s.plain.len() {
                let n = buf.len().min(s.plain.len() - s.plain_pos);
                buf[..n].copy_from_slice(&s.plain[s.plain_pos..s.plain_pos + n]);
                s.plain_pos += n;
                if s.plain_pos == s.plain.len() {
                    s.plain = Vec::new();
                    s.plain_pos = 0;
                }
                return Poll::Ready(Ok(n));
            }
            if s.eof {
                return Poll::Ready(Ok(0));
            }
            // TLS output the session owes (e.g. an answer to a key update); a full socket does
            // not stop reading.
            if let Poll::Ready(Err(e)) = s.poll_send(cx) {
                return Poll::Ready(Err(e));
            }
            match s.step(None, &mut false)? {
                Step::Again => {}
                Step::Closed => s.eof = true,
                Step::NeedInput | Step::Writable => {
                    if s.plain_pos < s.plain.len() {
                        continue;
                    }
                    if ready!(s.poll_fill(cx))? {
                        // The peer hung up without close_notify: an end of stream all the same
                        // (unless a record was cut short).
                        s.eof = true;
                        if !s.incoming.is_empty() {
                            return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
                        }
                    }
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for LeanClient<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let s = self.get_mut();
        // Back-pressure: what was encrypted before leaves first.
        ready!(s.poll_send(cx))?;
        let mut wrote = false;
        loop {
            match s.step(Some(buf), &mut wrote)? {
                Step::Again => {}
                Step::Writable if wrote => break,
                Step::Writable | Step::NeedInput => {
                    return Poll::Ready(Err(io::Error::other("TLS session cannot send (handshake not done)")))
                }
                Step::Closed => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            }
        }
        // The bytes are encrypted and ours to send; a full socket is waited for at the next
        // write or flush.
        if let Poll::Ready(Err(e)) = s.poll_send(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let s = self.get_mut();
        ready!(s.poll_send(cx))?;
        Pin::new(&mut s.io).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let s = self.get_mut();
        if !s.close_queued {
            s.close_queued = true;
            let UnbufferedStatus { state, .. } = s.conn.process_tls_records(&mut []);
            if let Ok(ConnectionState::WriteTraffic(mut w)) = state {
                let _ = append(&mut s.outgoing, |b| w.queue_close_notify(b), encrypt_size);
            }
        }
        ready!(s.poll_send(cx))?;
        Pin::new(&mut s.io).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::rc::Rc;
    use std::sync::Arc;
    use std::task::Waker;

    /// One direction of an in-memory connection.
    #[derive(Default)]
    struct Pipe {
        buf: VecDeque<u8>,
        waker: Option<Waker>,
        closed: bool,
    }

    struct End {
        rx: Rc<RefCell<Pipe>>,
        tx: Rc<RefCell<Pipe>>,
    }

    fn pair() -> (End, End) {
        let (a, b) = (Rc::new(RefCell::new(Pipe::default())), Rc::new(RefCell::new(Pipe::default())));
        (End { rx: a.clone(), tx: b.clone() }, End { rx: b, tx: a })
    }

    impl AsyncRead for End {
        fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
            let mut p = self.rx.borrow_mut();
            if p.buf.is_empty() {
                if p.closed {
                    return Poll::Ready(Ok(0));
                }
                p.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let n = buf.len().min(p.buf.len());
            for (d, s) in buf.iter_mut().zip(p.buf.drain(..n)) {
                *d = s;
            }
            Poll::Ready(Ok(n))
        }
    }

    impl AsyncWrite for End {
        fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            let mut p = self.tx.borrow_mut();
            p.buf.extend(buf);
            if let Some(w) = p.waker.take() {
                w.wake();
            }
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            let mut p = self.tx.borrow_mut();
            p.closed = true;
            if let Some(w) = p.waker.take() {
                w.wake();
            }
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn bytes_round_trip_and_nothing_is_held_while_idle() {
        let s = crate::tls::certs::self_signed().unwrap();
        let server = crate::tls::server::config(vec![s.cert.clone()], s.key.clone_key()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(s.cert.clone()).unwrap();
        let client = Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        );
        let (a, b) = pair();
        // More than one record each way (16 KiB each), so records arrive in pieces.
        let msg: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let client_side = async {
            let conn = UnbufferedClientConnection::new(client, "localhost".try_into().unwrap()).unwrap();
            let mut c = LeanClient::connect(conn, a).await.unwrap();
            c.write_all(&msg).await.unwrap();
            c.flush().await.unwrap();
            let mut back = vec![0u8; msg.len()];
            c.read_exact(&mut back).await.unwrap();
            assert!(back == msg, "the echo differs");
            assert_eq!((c.incoming.capacity(), c.outgoing.capacity(), c.plain.capacity()), (0, 0, 0));
            c.close().await.unwrap();
        };
        let server_side = async {
            let mut t = futures_rustls::TlsAcceptor::from(server).accept(b).await.unwrap();
            let mut got = vec![0u8; msg.len()];
            t.read_exact(&mut got).await.unwrap();
            t.write_all(&got).await.unwrap();
            t.flush().await.unwrap();
            // The client's close_notify ends the stream cleanly.
            let mut rest = vec![];
            t.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty());
        };
        futures_lite::future::block_on(futures_lite::future::zip(client_side, server_side));
    }
}
