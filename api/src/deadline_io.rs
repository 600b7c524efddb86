//! A connection wrapper that bounds how long one write may stay blocked:
//! hyper's HTTP/1 server has a deadline for reading the request head but none
//! for writing the response, so a client that never reads would hold its
//! connection (and the response in memory) forever. When a write or flush has
//! made no progress for the deadline, it fails with `TimedOut` and hyper
//! drops the connection. Progress of any size re-arms the deadline, so a slow
//! but live reader of a large response is not cut off.

use hyper::rt::{Read, ReadBufCursor, Write};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// `T` with a write deadline.
pub struct DeadlineIo<T> {
    inner: T,
    deadline: Duration,
    timer: Option<Pin<Box<Sleep>>>,
}

impl<T> DeadlineIo<T> {
    /// Wraps `inner`; a write blocked for `deadline` fails.
    pub fn new(inner: T, deadline: Duration) -> Self {
        DeadlineIo { inner, deadline, timer: None }
    }

    /// Called when a write is pending: arms the timer, or fails once it fired.
    fn check(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let deadline = self.deadline;
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, "client did not read the response in time")),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progressed<R>(&mut self, r: Poll<io::Result<R>>, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        match r {
            Poll::Pending => match self.check(cx) {
                Poll::Ready(e) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            },
            ready => {
                self.timer = None;
                ready
            }
        }
    }
}

use std::future::Future;

impl<T: Read + Unpin> Read for DeadlineIo<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for DeadlineIo<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        let r = Pin::new(&mut me.inner).poll_write(cx, buf);
        me.progressed(r, cx)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        let r = Pin::new(&mut me.inner).poll_flush(cx);
        me.progressed(r, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        let r = Pin::new(&mut me.inner).poll_shutdown(cx);
        me.progressed(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        let r = Pin::new(&mut me.inner).poll_write_vectored(cx, bufs);
        me.progressed(r, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper_util::rt::TokioIo;

    #[tokio::test]
    async fn a_write_nobody_reads_fails_after_the_deadline() {
        // A 1 KiB pipe whose reader never reads.
        let (a, _b) = tokio::io::duplex(1024);
        let mut io = DeadlineIo::new(TokioIo::new(a), Duration::from_millis(200));
        let t0 = std::time::Instant::now();
        let data = vec![7u8; 64 * 1024];
        let res = std::future::poll_fn(|cx| loop {
            match Pin::new(&mut io).poll_write(cx, &data) {
                Poll::Ready(Ok(_)) => continue,
                other => return other,
            }
        })
        .await;
        let e = res.expect_err("the write times out");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(t0.elapsed() >= Duration::from_millis(180), "{:?}", t0.elapsed());
    }
}
