//! Messages from other cores: a bounded queue per receiving core plus an eventfd in that core's
//! epoll set. A sender rings the eventfd only when the queue goes from "seen" to "not seen", so
//! a burst costs one wake; the receiver takes everything queued at once.
//!
//! One inbox per core (not one channel per pair of cores): memory and setup grow linearly with
//! the executor count, and nothing has to rendezvous at startup.

use super::reactor::Reactor;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;

pub struct Inbox<T> {
    queue: Mutex<Vec<T>>,
    cap: usize,
    /// Set by the first sender after the receiver last looked; cleared by the receiver.
    rung: AtomicBool,
    efd: OwnedFd,
}

impl<T: Send> Inbox<T> {
    /// An inbox that holds at most `cap` messages not yet taken.
    pub fn new(cap: usize) -> io::Result<Arc<Inbox<T>>> {
        let efd = super::sys::eventfd()?;
        Ok(Arc::new(Inbox { queue: Mutex::new(Vec::new()), cap: cap.max(1), rung: AtomicBool::new(false), efd }))
    }

    /// Queues a message from any thread; gives it back when the inbox is full (the caller
    /// waits and tries again: backpressure rather than loss).
    pub fn push(&self, item: T) -> Result<(), T> {
        {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            if q.len() >= self.cap {
                return Err(item);
            }
            q.push(item);
        }
        if !self.rung.swap(true, Ordering::SeqCst) {
            self.ring();
        }
        Ok(())
    }

    /// Queues a message whatever the queue's length (few messages whose order matters).
    pub fn push_always(&self, item: T) {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).push(item);
        if !self.rung.swap(true, Ordering::SeqCst) {
            self.ring();
        }
    }

    fn ring(&self) {
        super::sys::ring(self.efd.as_raw_fd());
    }

    /// Wakes the receiver without a message (it then sees whatever else changed, e.g. a stop).
    pub fn nudge(&self) {
        self.ring();
    }

    /// Moves everything queued into `out` (which should be empty); returns how many.
    fn take(&self, out: &mut Vec<T>) -> usize {
        self.rung.store(false, Ordering::SeqCst);
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::swap(&mut *q, out);
        out.len()
    }
}

/// The receiving end, on the owning core.
pub struct Receiver<T> {
    inbox: Arc<Inbox<T>>,
    reactor: Rc<Reactor>,
    token: u32,
}

impl<T: Send> Receiver<T> {
    /// Registers the inbox's eventfd with this core's reactor.
    pub fn new(inbox: Arc<Inbox<T>>) -> io::Result<Receiver<T>> {
        let reactor = Reactor::current()?;
        let token = reactor.register_control(inbox.efd.as_raw_fd())?;
        Ok(Receiver { inbox, reactor, token })
    }

    /// Waits until messages are queued (or `stop()` says so), then moves them all into `out`.
    pub async fn recv(&self, out: &mut Vec<T>, stop: impl Fn() -> bool) -> usize {
        std::future::poll_fn(|cx| {
            let n = self.inbox.take(out);
            if n > 0 || stop() {
                return Poll::Ready(n);
            }
            // Clear the counter, then look once more: a message queued in between rang again.
            super::sys::take_count(self.inbox.efd.as_raw_fd());
            let n = self.inbox.take(out);
            if n > 0 {
                return Poll::Ready(n);
            }
            self.reactor.wait_read(self.token, cx.waker());
            Poll::Pending
        })
        .await
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        // The eventfd stays open (the inbox owns it); take it out of this core's set.
        self.reactor.deregister(self.token);
        let _ = self.reactor.remove_control(self.inbox.efd.as_raw_fd());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_batched() {
        let ib = Inbox::new(2).unwrap();
        assert!(ib.push(1).is_ok());
        assert!(ib.push(2).is_ok());
        assert_eq!(ib.push(3), Err(3));
        let mut out = Vec::new();
        assert_eq!(ib.take(&mut out), 2);
        assert_eq!(out, vec![1, 2]);
        assert!(ib.push(3).is_ok());
    }
}
