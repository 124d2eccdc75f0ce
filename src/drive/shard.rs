//! Starting the shards of one scenario together: `--start-at` (a wall-clock time) and
//! `--start-when` (K of N shards connected, met on the Pushgateway), and what each process
//! reports about its start. Which conversations a shard owns is `config::shard`'s.

use crate::config::scenario::Scenario;
pub use crate::config::shard::{conversations, Shard};
pub use crate::outcome::start::StartReport;
use crate::runtime::signal::Signals;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where sharded workers meet for `--start-when`: the Pushgateway, the job, and this worker's
/// metrics group.
#[derive(Clone, Debug)]
pub struct Meeting {
    pub pushgateway: String,
    pub job: String,
    /// The run id (`--run-id`): only the run's own shards count.
    pub run: Option<String>,
    pub group_url: String,
}

/// Unix time now, in seconds.
pub fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// What to do at `now` about a start at `at`: how long to wait (0 when late) and how late.
pub fn start_plan(at: f64, now: f64) -> (Duration, f64) {
    if now >= at {
        (Duration::ZERO, now - at)
    } else {
        (Duration::from_secs_f64(at - now), 0.0)
    }
}

/// Once connected: waits for `--start-at` or `--start-when` if the scenario has one (a signal
/// ends the wait), saying what it waits for once per second. `None` without either; `Err` when
/// `--start-when` waited `--start-when-timeout` in vain.
pub fn wait_to_send(
    s: &Scenario,
    meeting: Option<&Meeting>,
    open: impl Fn() -> u64,
    signals: &Signals,
    say: impl Fn(String),
) -> Result<Option<StartReport>, String> {
    let connected = unix_now();
    let mut r = StartReport { connected_at_unix_s: connected, ..Default::default() };
    if let Some(at) = s.start_at {
        r.start_at_unix_s = Some(at);
        let (wait, late_s) = start_plan(at, connected);
        r.late_s = late_s;
        if wait.is_zero() {
            say(format!("connected {late_s:.3}s after --start-at; sending at once"));
        }
        let mut next_line = std::time::Instant::now();
        while signals.count() == 0 {
            let left = at - unix_now();
            if left <= 0.0 {
                break;
            }
            if std::time::Instant::now() >= next_line {
                say(format!("waiting for --start-at: {} open, sending starts in {left:.1}s", open()));
                next_line += Duration::from_secs(1);
            }
            std::thread::sleep(Duration::from_secs_f64(left.min(0.05)));
        }
    } else if let (Some(k), Some(m)) = (s.start_when, meeting) {
        r.start_when = Some(k);
        let ready = crate::drive::start_when::ready_url(&m.group_url);
        let group = crate::drive::start_when::Group { pushgateway: &m.pushgateway, job: &m.job, run: m.run.as_deref() };
        r.shards_ready = Some(crate::drive::start_when::wait(&group, &ready, k, s.start_when_timeout, signals, say)?);
    } else {
        return Ok(None);
    }
    r.sending_at_unix_s = unix_now();
    r.waited_s = r.sending_at_unix_s - connected;
    Ok(Some(r))
}

/// At the end of a run: removes the `--start-when` ready group; an error for the notes.
pub fn leave(s: &Scenario, meeting: Option<&Meeting>) -> Option<String> {
    let m = meeting.filter(|_| s.start_when.is_some())?;
    crate::drive::start_when::withdraw(&crate::drive::start_when::ready_url(&m.group_url))
        .err()
        .map(|e| format!("--start-when: the ready group could not be deleted ({e}); delete it before the next run"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_spreads_over_every_core() {
        // Shard 0/2 owns only even conversations; with 2 cores both still get half.
        let cores = crate::client::assign(conversations(10, Some(Shard { index: 0, count: 2 })), 2);
        assert_eq!(cores, vec![vec![0, 4, 8], vec![2, 6]]);
    }

    #[test]
    fn start_plan_waits_or_reports_lateness() {
        assert_eq!(start_plan(100.0, 97.5), (Duration::from_secs_f64(2.5), 0.0));
        assert_eq!(start_plan(100.0, 103.0), (Duration::ZERO, 3.0));
    }
}
