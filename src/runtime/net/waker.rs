//! Where a task leaves its waker: one slot, replaced only when a different task (or the same
//! task with a new waker) registers, so a task that polls often does not clone its waker each
//! time.

use std::cell::RefCell;
use std::task::Waker;

/// Keeps `w` in `slot`, unless the waker there already wakes the same task.
pub fn store(slot: &mut Option<Waker>, w: &Waker) {
    match slot {
        Some(old) if old.will_wake(w) => {}
        _ => *slot = Some(w.clone()),
    }
}

/// A single-threaded waker slot: the waiting task registers, whoever has news wakes it.
#[derive(Default)]
pub struct WakerSlot(RefCell<Option<Waker>>);

impl WakerSlot {
    pub fn register(&self, w: &Waker) {
        store(&mut self.0.borrow_mut(), w);
    }

    /// Wakes the registered task, if any (once: it registers again when it waits again).
    pub fn wake(&self) {
        // Taken before waking: the wake may run code that registers again.
        let w = self.0.borrow_mut().take();
        if let Some(w) = w {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_slot_wakes_its_task_once() {
        let n = Arc::new(Count(AtomicUsize::new(0)));
        let w = Waker::from(n.clone());
        let slot = WakerSlot::default();
        slot.register(&w);
        slot.register(&w);
        slot.wake();
        slot.wake();
        assert_eq!(n.0.load(Ordering::SeqCst), 1);
        let mut raw = None;
        store(&mut raw, &w);
        assert!(raw.as_ref().is_some_and(|x| x.will_wake(&w)));
    }
}
