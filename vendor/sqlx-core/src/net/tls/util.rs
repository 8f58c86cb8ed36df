use crate::net::Socket;

use std::io::{self, Read, Write};
use std::task::{Context, Poll};

use futures_util::future;

pub struct StdSocket<S> {
    pub socket: S,
    wants_read: bool,
    wants_write: bool,
}

impl<S: Socket> StdSocket<S> {
    pub fn new(socket: S) -> Self {
        Self {
            socket,
            wants_read: false,
            wants_write: false,
        }
    }

    /// Ready once the socket is ready in *either* direction the TLS code is blocked on, with a
    /// wake-up registered for each direction still blocked.
    ///
    /// idgraph's patch (see vendor/README.md), the fix of launchbadge/sqlx#4248 (PR #4251): this
    /// used to wait for both directions in turn. A large write over TLS blocks on the socket
    /// after rustls has also tried a read (which blocks too: a PostgreSQL server in the middle
    /// of a `COPY` has nothing to say); if the socket turned writable before this was polled,
    /// the write readiness was taken, only a read wake-up was registered, and the connection
    /// waited for ever for a server that was waiting for the rest of the data.
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.wants_write && !self.wants_read {
            return Poll::Ready(Ok(()));
        }
        let mut ready = false;
        if self.wants_write {
            if let Poll::Ready(r) = self.socket.poll_write_ready(cx) {
                r?;
                self.wants_write = false;
                ready = true;
            }
        }
        if self.wants_read {
            if let Poll::Ready(r) = self.socket.poll_read_ready(cx) {
                r?;
                self.wants_read = false;
                ready = true;
            }
        }
        if ready {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    pub async fn ready(&mut self) -> io::Result<()> {
        future::poll_fn(|cx| self.poll_ready(cx)).await
    }
}

impl<S: Socket> Read for StdSocket<S> {
    fn read(&mut self, mut buf: &mut [u8]) -> io::Result<usize> {
        self.wants_read = true;
        let read = self.socket.try_read(&mut buf)?;
        self.wants_read = false;

        Ok(read)
    }
}

impl<S: Socket> Write for StdSocket<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.wants_write = true;
        let written = self.socket.try_write(buf)?;
        self.wants_write = false;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        // NOTE: TCP sockets and unix sockets are both no-ops for flushes
        Ok(())
    }
}
