//! When a core has nothing to run, its reactor waits in the kernel itself (`ppoll` on the core's
//! epoll set) instead of letting glommio put the executor to sleep.
//!
//! Why: glommio 0.9's sleep costs a `membarrier` (an IPI to every CPU running one of herd's
//! threads, so it grows with the cores in use) and several `io_uring_enter` calls per wake, and
//! on a busy core that is most of the cost of a delivered message beyond the socket calls
//! themselves. Every wake-up herd needs comes from the core's epoll set (sockets, the scheduler's
//! timerfd, the inbox's eventfd) or from a glommio timer, so the reactor can block on the set
//! when it knows two things:
//! - no task is runnable: every task herd spawns is [`Tracked`]; its waker counts it runnable
//!   until its next poll;
//! - no glommio timer is near: herd's timers ([`sleep`], [`timeout`], [`Delay`]) note their
//!   deadlines here. When one is near, the reactor lets glommio sleep instead, which fires it.

use std::cell::{OnceCell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

thread_local! {
    /// This thread's tasks that were woken and not polled since (one counter per thread for the
    /// process's life, so that a task's state holds a plain reference to it).
    static RUNNABLE: OnceCell<&'static AtomicUsize> = const { OnceCell::new() };
    /// Deadlines (clock ns) of this thread's glommio timers, with how many share each.
    static DEADLINES: RefCell<BTreeMap<u64, u32>> = const { RefCell::new(BTreeMap::new()) };
}

fn runnable_counter() -> &'static AtomicUsize {
    RUNNABLE.with(|r| *r.get_or_init(|| Box::leak(Box::new(AtomicUsize::new(0)))))
}

/// Tasks of this thread woken and not yet polled.
pub fn runnable() -> usize {
    RUNNABLE.with(|r| r.get().map_or(0, |c| c.load(Ordering::Acquire)))
}

/// The earliest deadline (clock ns) of this thread's timers.
pub fn next_deadline() -> Option<u64> {
    DEADLINES.with(|d| d.borrow().keys().next().copied())
}

/// How long the reactor may block at `now`: `None` when a task is runnable or a timer is due
/// within `margin`; otherwise until `margin` before the next timer, at most `cap`. Pure.
pub fn block_for(runnable: usize, next_deadline: Option<u64>, now: u64, margin: u64, cap: u64) -> Option<u64> {
    if runnable > 0 {
        return None;
    }
    match next_deadline {
        Some(d) if d <= now.saturating_add(margin) => None,
        Some(d) => Some((d - now - margin).min(cap)),
        None => Some(cap),
    }
}

/// A task's wake-up state: woken since its last poll, and the executor's own waker. Kept small:
/// every connection's task has one.
struct State {
    woken: AtomicBool,
    runnable: &'static AtomicUsize,
    inner: OnceLock<Waker>,
}

impl futures_util::task::ArcWake for State {
    fn wake_by_ref(this: &Arc<Self>) {
        if !this.woken.swap(true, Ordering::AcqRel) {
            this.runnable.fetch_add(1, Ordering::AcqRel);
        }
        if let Some(w) = this.inner.get() {
            w.wake_by_ref();
        }
    }
}

pin_project_lite::pin_project! {
    /// A future whose task counts as runnable from a wake until its next poll.
    pub struct Tracked<F> {
        #[pin]
        fut: F,
        state: Arc<State>,
    }

    impl<F> PinnedDrop for Tracked<F> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped while woken: it will never be polled.
            if this.state.woken.swap(false, Ordering::AcqRel) {
                this.state.runnable.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

impl<F: Future> Tracked<F> {
    /// A new task is runnable until its first poll.
    pub fn new(fut: F) -> Tracked<F> {
        let runnable = runnable_counter();
        runnable.fetch_add(1, Ordering::AcqRel);
        let state = Arc::new(State { woken: AtomicBool::new(true), runnable, inner: OnceLock::new() });
        Tracked { fut, state }
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if this.state.woken.swap(false, Ordering::AcqRel) {
            this.state.runnable.fetch_sub(1, Ordering::AcqRel);
        }
        // A glommio task's waker stays the same for the task's life.
        let _ = this.state.inner.get_or_init(|| cx.waker().clone());
        let waker = futures_util::task::waker_ref(this.state);
        this.fut.poll(&mut Context::from_waker(&waker))
    }
}

/// Spawns a tracked task on this executor's current task queue.
pub fn spawn<F: Future + 'static>(fut: F) -> glommio::Task<F::Output> {
    glommio::spawn_local(Tracked::new(fut))
}

/// Spawns a tracked task into `tq`.
pub fn spawn_into<F: Future + 'static>(
    fut: F,
    tq: glommio::TaskQueueHandle,
) -> glommio::Result<glommio::Task<F::Output>, ()> {
    glommio::spawn_local_into(Tracked::new(fut), tq)
}

/// A timer's deadline, noted while it lives.
struct Deadline(u64);

impl Deadline {
    fn after(d: Duration) -> Deadline {
        let at = crate::measure::clock::now_ns().saturating_add(d.as_nanos().min(u64::MAX as u128) as u64);
        DEADLINES.with(|m| *m.borrow_mut().entry(at).or_insert(0) += 1);
        Deadline(at)
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        DEADLINES.with(|m| {
            let mut m = m.borrow_mut();
            if let Some(n) = m.get_mut(&self.0) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&self.0);
                }
            }
        });
    }
}

/// glommio's `timer::sleep`, with its deadline noted.
pub async fn sleep(d: Duration) {
    let _deadline = Deadline::after(d);
    glommio::timer::sleep(d).await;
}

/// glommio's `timer::timeout`, with its deadline noted: `fut`'s result, or
/// `GlommioError::TimedOut` once `d` has passed.
///
/// A future of its own rather than an `async fn` around glommio's: an `async fn` keeps its
/// argument and the future it moved it into, so each wrapping layer held another copy of `fut`
/// (a connection attempt's state, held three times, was 3.4 KB of every connection in flight).
pub fn timeout<T, F>(d: Duration, fut: F) -> Timeout<F>
where
    F: Future<Output = glommio::Result<T, ()>>,
{
    Timeout { fut, delay: Delay::new(d), d }
}

pin_project_lite::pin_project! {
    /// See [`timeout`].
    pub struct Timeout<F> {
        #[pin]
        fut: F,
        delay: Delay,
        d: Duration,
    }
}

impl<T, F: Future<Output = glommio::Result<T, ()>>> Future for Timeout<F> {
    type Output = glommio::Result<T, ()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // A result that is ready wins over a deadline that passed at the same time.
        if let Poll::Ready(v) = this.fut.poll(cx) {
            return Poll::Ready(v);
        }
        match Pin::new(this.delay).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(glommio::GlommioError::TimedOut(*this.d))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// glommio's `timer::Timer` (a future that fires once), with its deadline noted.
pub struct Delay {
    timer: glommio::timer::Timer,
    _deadline: Deadline,
}

impl Delay {
    pub fn new(d: Duration) -> Delay {
        Delay { timer: glommio::timer::Timer::new(d), _deadline: Deadline::after(d) }
    }
}

impl Future for Delay {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.timer).poll(cx).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn blocks_only_when_nothing_runs_and_no_timer_is_near() {
        let cap = 50 * MS;
        assert_eq!(block_for(1, None, 0, MS, cap), None);
        assert_eq!(block_for(0, None, 0, MS, cap), Some(cap));
        // A timer within the margin: glommio must sleep and fire it.
        assert_eq!(block_for(0, Some(10 * MS + MS), 10 * MS, MS, cap), None);
        assert_eq!(block_for(0, Some(5 * MS), 10 * MS, MS, cap), None);
        // Up to the margin before the timer, never past the cap.
        assert_eq!(block_for(0, Some(10 * MS), 0, MS, cap), Some(9 * MS));
        assert_eq!(block_for(0, Some(500 * MS), 0, MS, cap), Some(cap));
    }

    #[test]
    fn a_task_counts_as_runnable_from_its_wake_to_its_next_poll() {
        let before = runnable();
        let mut t = Box::pin(Tracked::new(std::future::poll_fn(|cx| {
            cx.waker().wake_by_ref();
            Poll::<()>::Pending
        })));
        assert_eq!(runnable(), before + 1, "a new task is runnable");
        let noop = Waker::noop();
        let mut cx = Context::from_waker(noop);
        // It wakes itself while polled: still runnable after, once.
        assert!(t.as_mut().poll(&mut cx).is_pending());
        assert_eq!(runnable(), before + 1);
        futures_util::task::waker_ref(&t.state).wake_by_ref();
        assert_eq!(runnable(), before + 1, "a second wake before the poll counts once");
        drop(t);
        assert_eq!(runnable(), before, "a dropped task is no longer runnable");
    }

    #[test]
    fn a_polled_task_that_is_not_woken_is_not_runnable() {
        let before = runnable();
        let mut t = Box::pin(Tracked::new(std::future::pending::<()>()));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(t.as_mut().poll(&mut cx).is_pending());
        assert_eq!(runnable(), before);
        futures_util::task::waker_ref(&t.state).wake_by_ref();
        assert_eq!(runnable(), before + 1);
        assert!(t.as_mut().poll(&mut cx).is_pending());
        assert_eq!(runnable(), before);
    }

    #[test]
    fn deadlines_are_noted_while_their_timers_live() {
        assert_eq!(next_deadline(), None);
        let a = Deadline::after(Duration::from_secs(10));
        let b = Deadline::after(Duration::from_secs(1));
        assert_eq!(next_deadline(), Some(b.0));
        drop(b);
        assert_eq!(next_deadline(), Some(a.0));
        drop(a);
        assert_eq!(next_deadline(), None);
    }

    #[test]
    fn a_timeout_holds_its_future_once_and_gives_its_result_or_timed_out() {
        // The future inside is stored once (an `async fn` wrapper stored it twice per layer).
        type Big = std::future::Ready<glommio::Result<[u8; 1000], ()>>;
        let size = std::mem::size_of::<Timeout<Big>>();
        assert!(size <= std::mem::size_of::<Big>() + std::mem::size_of::<Delay>() + 16, "Timeout is {size} bytes");
        let ex = glommio::LocalExecutor::default();
        ex.run(async {
            let ready = timeout(Duration::from_secs(5), async { Ok(7) }).await;
            assert!(matches!(ready, Ok(7)));
            let t0 = std::time::Instant::now();
            let late = timeout(Duration::from_millis(20), async {
                std::future::pending::<()>().await;
                Ok(0)
            })
            .await;
            assert!(matches!(late, Err(glommio::GlommioError::TimedOut(d)) if d == Duration::from_millis(20)));
            assert!(t0.elapsed() >= Duration::from_millis(20), "timed out early: {:?}", t0.elapsed());
        });
    }
}
