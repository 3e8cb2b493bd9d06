//! The `Connection`: owns the socket (plain or TLS) and its read buffer.
//! Reading a line is cancel-safe (the partial line lives in `self`), so a
//! session can wait for a line and for change notifications at the same time
//! (IDLE).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf,
};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Placeholder while the stream is being upgraded to TLS.
    Closed,
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "connection closed")
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Closed => Poll::Ready(Err(closed())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Closed => Poll::Ready(Err(closed())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Closed => Poll::Ready(Ok(())),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Closed => Poll::Ready(Ok(())),
        }
    }
}

/// What reading a line produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// The line without its CRLF (or bare LF).
    Text(Vec<u8>),
    /// The line exceeded the limit; it was read and discarded up to its end.
    /// `start`: its first bytes (up to [`TOO_LONG_KEPT`]), where the tag is.
    TooLong {
        start: Vec<u8>,
    },
    Eof,
}

/// Bytes kept of a line too long (see [`Line::TooLong`]).
pub(crate) const TOO_LONG_KEPT: usize = 64;

/// Read buffer of a connection (lines longer than this are read in pieces).
pub(crate) const READ_CAPACITY: usize = 1024;

/// What holds `Connection::io`'s place while its stream moves to a new
/// reader: a one-byte buffer (tokio refuses none; `BufReader::new` would
/// allocate 8 KiB for nothing).
fn placeholder() -> BufReader<Stream> {
    BufReader::with_capacity(1, Stream::Closed)
}

pub(crate) struct Connection {
    io: BufReader<Stream>,
    partial: Vec<u8>,
    discarding: bool,
    pub(crate) tls: bool,
    read_capacity: usize,
}

impl Connection {
    pub(crate) fn new(stream: Stream) -> Self {
        let tls = matches!(stream, Stream::Tls(_));
        Connection {
            io: BufReader::with_capacity(READ_CAPACITY, stream),
            read_capacity: READ_CAPACITY,
            partial: Vec::new(),
            discarding: false,
            tls,
        }
    }

    /// Reads one line of at most `max` bytes. Cancel-safe.
    pub(crate) async fn read_line(&mut self, max: usize) -> io::Result<Line> {
        loop {
            let buf = self.io.fill_buf().await?;
            if buf.is_empty() {
                return Ok(Line::Eof);
            }
            let (take, done) = match buf.iter().position(|b| *b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            if !self.discarding {
                self.partial.extend_from_slice(&buf[..take]);
            }
            self.io.consume(take);
            if !self.discarding && self.partial.len() > max + 2 {
                // Only the start is kept (the tag is there).
                self.partial.truncate(TOO_LONG_KEPT);
                self.partial.shrink_to_fit();
                self.discarding = true;
            }
            if done {
                if self.discarding {
                    self.discarding = false;
                    let start = std::mem::take(&mut self.partial);
                    return Ok(Line::TooLong { start });
                }
                let mut line = std::mem::take(&mut self.partial);
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.len() > max {
                    line.truncate(TOO_LONG_KEPT);
                    return Ok(Line::TooLong { start: line });
                }
                return Ok(Line::Text(line));
            }
        }
    }

    pub(crate) async fn read_exact_vec(&mut self, len: usize) -> io::Result<Vec<u8>> {
        let mut v = vec![0u8; len];
        self.io.read_exact(&mut v).await?;
        Ok(v)
    }

    /// Copies `len` bytes into `w` in chunks (spooling a large literal to disk).
    pub(crate) async fn read_into<W: std::io::Write>(
        &mut self,
        mut len: u64,
        w: &mut W,
    ) -> io::Result<()> {
        let mut chunk = vec![0u8; 64 * 1024];
        while len > 0 {
            let n = (len as usize).min(chunk.len());
            self.io.read_exact(&mut chunk[..n]).await?;
            w.write_all(&chunk[..n])?;
            len -= n as u64;
        }
        Ok(())
    }

    pub(crate) async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        let s = self.io.get_mut();
        s.write_all(data).await?;
        s.flush().await
    }

    pub(crate) async fn shutdown(&mut self) {
        let _ = self.io.get_mut().shutdown().await;
    }

    /// Sets the read buffer's capacity (IDLE needs only room for `DONE`;
    /// thousands of idle sessions make every byte count). Only when nothing is
    /// buffered, so no input is ever dropped.
    pub(crate) fn set_read_capacity(&mut self, capacity: usize) {
        if !self.io.buffer().is_empty() || self.read_capacity == capacity {
            return;
        }
        let stream = std::mem::replace(&mut self.io, placeholder()).into_inner();
        self.io = BufReader::with_capacity(capacity, stream);
        self.read_capacity = capacity;
    }

    /// STARTTLS: anything the client pipelined after the command is discarded
    /// together with the plaintext read buffer (RFC 9051 6.2.1, CVE-2011-0411 class).
    pub(crate) async fn upgrade(&mut self, acceptor: &tokio_rustls::TlsAcceptor) -> io::Result<()> {
        let old = std::mem::replace(&mut self.io, placeholder());
        self.partial.clear();
        let tcp = match old.into_inner() {
            Stream::Plain(t) => t,
            _ => {
                return Err(io::Error::other(
                    "STARTTLS on a stream that is not plain TCP",
                ))
            }
        };
        let tls = acceptor.accept(tcp).await?;
        self.io = BufReader::with_capacity(READ_CAPACITY, Stream::Tls(Box::new(tls)));
        self.read_capacity = READ_CAPACITY;
        self.tls = true;
        Ok(())
    }
}
