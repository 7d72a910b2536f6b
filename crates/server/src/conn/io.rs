//! The two sides of a connection's byte stream, for plain TCP and for TLS.
//!
//! Plain TCP uses one shared `Arc<TcpStream>` for both tasks (readiness + non-blocking
//! reads and writes), so a publisher's reader can also write small replies straight to a
//! subscriber's socket ("inline flush") without waking its writer task. TLS streams go
//! through tokio's split halves.

use std::future::Future;
use std::io::{self, IoSlice};
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where the reader gets bytes from.
pub(crate) trait ReadSource: Send {
    /// Read into the spare capacity of `buf`; 0 means end of stream.
    fn read_into(&mut self, buf: &mut BytesMut) -> impl Future<Output = io::Result<usize>> + Send;
}

/// Where the writer sends bytes to.
pub(crate) trait WriteSink: Send + 'static {
    /// Write some of `iov`, waiting until the socket takes at least one byte.
    fn write_iov(&mut self, iov: &[IoSlice<'_>]) -> impl Future<Output = io::Result<usize>> + Send;
    /// Finish the write side (FIN).
    fn finish(&mut self) -> impl Future<Output = io::Result<()>> + Send;
}

/// A plain TCP stream shared by the reader, the writer and inline flushes.
#[derive(Clone)]
pub(crate) struct SharedTcp(pub Arc<TcpStream>);

impl ReadSource for SharedTcp {
    async fn read_into(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        loop {
            self.0.readable().await?;
            match self.0.try_read_buf(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return other,
            }
        }
    }
}

impl WriteSink for SharedTcp {
    async fn write_iov(&mut self, iov: &[IoSlice<'_>]) -> io::Result<usize> {
        loop {
            self.0.writable().await?;
            match self.0.try_write_vectored(iov) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return other,
            }
        }
    }

    async fn finish(&mut self) -> io::Result<()> {
        socket2::SockRef::from(&*self.0).shutdown(std::net::Shutdown::Write)
    }
}

/// Any async stream half (TLS).
pub(crate) struct Half<T>(pub T);

impl<R: AsyncRead + Unpin + Send> ReadSource for Half<R> {
    async fn read_into(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        self.0.read_buf(buf).await
    }
}

impl<W: AsyncWrite + Unpin + Send + 'static> WriteSink for Half<W> {
    async fn write_iov(&mut self, iov: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.write_vectored(iov).await
    }

    async fn finish(&mut self) -> io::Result<()> {
        self.0.shutdown().await
    }
}
