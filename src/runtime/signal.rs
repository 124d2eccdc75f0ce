//! SIGINT/SIGTERM/SIGHUP handling: the first asks the run to stop sending, drain and report; a
//! second asks it to stop at once (results are still written). SIGHUP (the terminal went away)
//! is a stop like SIGTERM rather than the default end of the process, which would lose the
//! results. SIGPIPE is ignored so a peer that
//! goes away mid-write is an error on one connection, never the end of the process.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The count of the installed handlers, for code that has no [`Signals`] at hand (reading a
/// file that may never end).
static INSTALLED: std::sync::OnceLock<Arc<AtomicUsize>> = std::sync::OnceLock::new();

/// Whether a stop signal has arrived since the handlers were installed.
pub fn stop_requested() -> bool {
    INSTALLED.get().is_some_and(|c| c.load(Ordering::SeqCst) > 0)
}

#[derive(Clone)]
pub struct Signals {
    count: Arc<AtomicUsize>,
}

impl Signals {
    pub fn install() -> Result<Signals> {
        let count = Arc::new(AtomicUsize::new(0));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
            let c = count.clone();
            // SAFETY: the handler only increments an atomic, which is async-signal-safe.
            unsafe {
                signal_hook::low_level::register(sig, move || {
                    c.fetch_add(1, Ordering::SeqCst);
                })
            }
            .map_err(|e| Error::Software(format!("cannot install signal handler: {e}")))?;
        }
        let _ = INSTALLED.set(count.clone());
        // SAFETY: setting SIGPIPE to ignore has no preconditions.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        Ok(Signals { count })
    }

    /// A handle that no signal reaches (for library callers and tests).
    pub fn none() -> Signals {
        Signals { count: Arc::new(AtomicUsize::new(0)) }
    }

    /// How many stop signals have arrived.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Asks for a stop as a signal would (tests, embedding).
    pub fn raise(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
    }
}
