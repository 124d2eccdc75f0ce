//! A connection's byte stream, plain or TLS, over any `AsyncRead + AsyncWrite + Unpin` socket:
//! what the WebSocket layer reads and writes on both ends.

use futures_lite::{AsyncRead, AsyncWrite};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The TLS variants are boxed: a plain connection should not pay for the size of a TLS state,
/// and a TLS one keeps its state behind one pointer.
pub enum Stream<S> {
    Plain(S),
    Client(Box<super::lean::LeanClient<S>>),
    Server(Box<futures_rustls::server::TlsStream<S>>),
}

impl<S> Stream<S> {
    /// The socket underneath.
    pub fn get_ref(&self) -> &S {
        match self {
            Stream::Plain(s) => s,
            Stream::Client(t) => t.get_ref(),
            Stream::Server(t) => t.get_ref().0,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Client(t) => Pin::new(t.as_mut()).poll_read(cx, buf),
            Stream::Server(t) => Pin::new(t.as_mut()).poll_read(cx, buf),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Client(t) => Pin::new(t.as_mut()).poll_write(cx, buf),
            Stream::Server(t) => Pin::new(t.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Client(t) => Pin::new(t.as_mut()).poll_flush(cx),
            Stream::Server(t) => Pin::new(t.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_close(cx),
            Stream::Client(t) => Pin::new(t.as_mut()).poll_close(cx),
            Stream::Server(t) => Pin::new(t.as_mut()).poll_close(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn a_plain_stream_passes_bytes_through() {
        let mut s = Stream::Plain(futures_lite::io::Cursor::new(Vec::new()));
        futures_lite::future::block_on(s.write_all(b"hello")).unwrap();
        let Stream::Plain(c) = &mut s else { unreachable!() };
        c.set_position(0);
        let mut out = String::new();
        futures_lite::future::block_on(s.read_to_string(&mut out)).unwrap();
        assert_eq!(out, "hello");
        assert_eq!(s.get_ref().get_ref().len(), 5);
    }
}
