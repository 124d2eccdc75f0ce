//! A connection's bounded outgoing queue on the server, filled by other connections' readers
//! (and by relays from other cores) and drained by the connection's own task.
//!
//! Bounded: when a consumer falls `cap` frames behind, the queue is marked overflowed, its
//! contents are dropped, and the owner closes the connection. Nothing is buffered without bound.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::task::Waker;
use tungstenite::Utf8Bytes;

pub struct Outgoing {
    pub text: Utf8Bytes,
    /// When it may be written (clock ns); `0` for at once. Used by `--delay`.
    pub due_ns: u64,
    /// The server's answer to a command (`joined`, `left`, `error ...`), not a relayed message.
    pub reply: bool,
}

pub struct Mailbox {
    queue: RefCell<VecDeque<Outgoing>>,
    cap: usize,
    overflowed: Cell<bool>,
    close_requested: Cell<bool>,
    waker: crate::runtime::net::waker::WakerSlot,
}

/// Result of offering a frame to a mailbox.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    Queued,
    /// The queue was full: the consumer is being dropped. Counts how many frames were discarded
    /// (the offered one plus what was queued), the first time only.
    Overflow(usize),
    /// Already overflowed earlier; the frame is discarded.
    Discarded,
}

impl Mailbox {
    pub fn new(cap: usize) -> Mailbox {
        Mailbox {
            queue: RefCell::new(VecDeque::new()),
            cap: cap.max(1),
            overflowed: Cell::new(false),
            close_requested: Cell::new(false),
            waker: Default::default(),
        }
    }

    pub fn offer(&self, item: Outgoing) -> Offer {
        if self.overflowed.get() {
            return Offer::Discarded;
        }
        let mut q = self.queue.borrow_mut();
        if q.len() >= self.cap {
            let n = q.len() + 1;
            *q = VecDeque::new();
            self.overflowed.set(true);
            drop(q);
            self.wake();
            return Offer::Overflow(n);
        }
        q.push_back(item);
        drop(q);
        self.wake();
        Offer::Queued
    }

    pub fn overflowed(&self) -> bool {
        self.overflowed.get()
    }

    /// Asks the owner to close its connection (server shutdown).
    pub fn request_close(&self) {
        self.close_requested.set(true);
        self.wake();
    }

    pub fn close_requested(&self) -> bool {
        self.close_requested.get()
    }

    /// The head's due time, if any frame is queued.
    pub fn head_due(&self) -> Option<u64> {
        self.queue.borrow().front().map(|o| o.due_ns)
    }

    pub fn pop(&self) -> Option<Outgoing> {
        let mut q = self.queue.borrow_mut();
        let item = q.pop_front();
        if q.is_empty() && q.capacity() > 64 {
            // Give back the memory a burst took.
            *q = VecDeque::new();
        }
        item
    }

    pub fn register(&self, w: &Waker) {
        self.waker.register(w);
    }

    fn wake(&self) {
        self.waker.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(s: &str) -> Outgoing {
        Outgoing { text: s.into(), due_ns: 0, reply: false }
    }

    #[test]
    fn bounded_queue_overflows_once() {
        let m = Mailbox::new(2);
        assert_eq!(m.offer(out("a")), Offer::Queued);
        assert_eq!(m.offer(out("b")), Offer::Queued);
        assert_eq!(m.offer(out("c")), Offer::Overflow(3));
        assert!(m.overflowed());
        assert_eq!(m.offer(out("d")), Offer::Discarded);
        assert!(m.pop().is_none());
    }

    #[test]
    fn fifo_order() {
        let m = Mailbox::new(8);
        m.offer(out("a"));
        m.offer(Outgoing { text: "b".into(), due_ns: 5, reply: false });
        assert_eq!(m.pop().unwrap().text.as_str(), "a");
        assert_eq!(m.head_due(), Some(5));
        assert_eq!(m.pop().unwrap().text.as_str(), "b");
        assert_eq!(m.head_due(), None);
    }
}
