//! The phases of a run, in order: the orchestrator moves them forward, the cores follow, and
//! `herd_run_phase` exports the number.

use serde::Serialize;

/// Where a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Starting = 0,
    Connecting = 1,
    Sending = 2,
    Draining = 3,
    Closing = 4,
    Done = 5,
}

impl Phase {
    pub const ALL: [Phase; 6] =
        [Phase::Starting, Phase::Connecting, Phase::Sending, Phase::Draining, Phase::Closing, Phase::Done];

    pub fn number(self) -> u8 {
        self as u8
    }

    /// The phase of a number (what [`Phase::number`] gives); above 5 is `Done`.
    pub fn from_number(n: u8) -> Phase {
        Phase::ALL.get(usize::from(n)).copied().unwrap_or(Phase::Done)
    }

    /// The value of the `phase` label.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Connecting => "connecting",
            Phase::Sending => "sending",
            Phase::Draining => "draining",
            Phase::Closing => "closing",
            Phase::Done => "done",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_round_trip_in_order() {
        for (i, p) in Phase::ALL.iter().enumerate() {
            assert_eq!(Phase::from_number(i as u8), *p);
            assert_eq!(p.number() as usize, i);
        }
        assert!(Phase::Sending < Phase::Draining);
        assert_eq!(Phase::from_number(200), Phase::Done);
    }
}
