//! The load-shape flags of `herd run` (`--stage`, `--churn`, `--storm`) and their scenario-file
//! keys, resolved against the run's conversations.

use super::{parse_stage, Shape};
use clap::Args;
use serde::Serialize;
use std::time::Duration;

#[derive(Args, Debug, Default, Clone)]
pub struct ShapeArgs {
    /// A stage DURATION:CONNECTIONS:RATE, repeatable: ramp linearly to CONNECTIONS (whole
    /// conversations) and RATE messages/s per sender over DURATION, e.g. --stage 30s:10k:1/s
    /// --stage 2m:10k:5/s --stage 30s:0:0. Starts from 0 and 0/s; CONNECTIONS empty (30s::5/s)
    /// keeps all of -c x -k open. Replaces --duration and --rate
    #[arg(long = "stage", value_name = "DUR:CONNS:RATE")]
    pub stages: Vec<String>,
    /// Receivers leaving and joining again, per second across the scenario: each leaves after
    /// every message owed to it has arrived, then connects and joins again at once
    #[arg(long, value_parser = crate::config::units::parse_rate, value_name = "RATE")]
    pub churn: Option<f64>,
    /// Reconnect storm AT:FRACTION[:OVER]: AT into the send phase, close FRACTION (0.5 or 50%)
    /// of the open connections and open them again at once or spread over OVER, e.g. 30s:0.5:5s
    #[arg(long, value_name = "AT:FRACTION[:OVER]")]
    pub storm: Option<String>,
    /// Stages a subcommand builds itself (`herd knee`'s rate steps) instead of `--stage`: they
    /// go through the same resolution and checks.
    #[arg(skip)]
    pub built: Option<Shape>,
}

/// `--storm`: when, how many, and over how long the connections come back.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct Storm {
    #[serde(with = "crate::config::units::secs")]
    pub at: Duration,
    pub fraction: f64,
    #[serde(with = "crate::config::units::secs")]
    pub over: Duration,
}

pub fn parse_storm(s: &str) -> Result<Storm, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (at, frac, over) = match parts[..] {
        [a, f] => (a, f, None),
        [a, f, o] => (a, f, Some(o)),
        _ => return Err(format!("'{s}' is not AT:FRACTION[:OVER] (e.g. 30s:0.5 or 30s:50%:5s)")),
    };
    let at = crate::config::units::parse_duration(at).map_err(|e| format!("'{s}': AT {e}"))?;
    let f = frac.trim();
    let fraction = match f.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
        None => f.parse::<f64>(),
    }
    .map_err(|_| format!("'{s}': FRACTION '{frac}' is not a number (0.5 or 50%)"))?;
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(format!("'{s}': FRACTION must be above 0 and at most 1 (100%)"));
    }
    let over = match over {
        Some(o) => crate::config::units::parse_duration(o).map_err(|e| format!("'{s}': OVER {e}"))?,
        None => Duration::ZERO,
    };
    Ok(Storm { at, fraction, over })
}

/// The shapes of a run, checked.
pub struct Resolved {
    pub shape: Option<Shape>,
    pub churn: Option<f64>,
    pub storm: Option<Storm>,
}

pub fn resolve(a: &ShapeArgs) -> Result<Resolved, String> {
    // `stage = []` in a scenario file (`--stage ''`): no stages.
    let specs: Vec<&String> = a.stages.iter().filter(|s| !s.is_empty()).collect();
    let shape = if let Some(built) = &a.built {
        Some(built.clone())
    } else if specs.is_empty() {
        None
    } else {
        let stages =
            specs.iter().map(|s| parse_stage(s)).collect::<Result<Vec<_>, _>>().map_err(|e| format!("--stage {e}"))?;
        Some(Shape::new(stages).map_err(|e| format!("--stage: {e}"))?)
    };
    let churn = a.churn;
    if churn.is_some_and(|c| c > 1e6) {
        return Err("--churn: at most 1000000 per second".into());
    }
    let storm = match &a.storm {
        Some(s) => Some(parse_storm(s).map_err(|e| format!("--storm {e}"))?),
        None => None,
    };
    Ok(Resolved { shape, churn: churn.filter(|&c| c > 0.0), storm })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storms_parse_with_fractions_or_percentages() {
        let s = parse_storm("30s:0.5").unwrap();
        assert_eq!((s.at, s.fraction, s.over), (Duration::from_secs(30), 0.5, Duration::ZERO));
        let s = parse_storm("2s:25%:500ms").unwrap();
        assert_eq!((s.fraction, s.over), (0.25, Duration::from_millis(500)));
        assert!(parse_storm("30s").unwrap_err().contains("AT:FRACTION"));
        assert!(parse_storm("30s:1.5").unwrap_err().contains("at most 1"));
        assert!(parse_storm("30s:0").unwrap_err().contains("above 0"));
        assert!(parse_storm("30s:half").unwrap_err().contains("FRACTION"));
        assert!(parse_storm("later:0.5").unwrap_err().contains("AT"));
    }
}
