//! Load shapes: `--stage DURATION:CONNECTIONS:RATE` targets that a run ramps to linearly.
//!
//! A run with stages starts at 0 connections and 0 messages/s per sender; each stage moves
//! linearly from where the previous one ended to its own targets over its duration (a stage with
//! the same targets as the one before holds them; a `0s` stage jumps). The send phase lasts the
//! sum of the stages' durations.
//!
//! Sends stay open-model through a ramp: every sender has a fixed offset `phase` in `[0, 1)`, and
//! its messages are due where the cumulative rate `Λ(t) = ∫₀ᵗ rate` crosses `j + phase` for whole
//! `j`. At a constant rate that is the plain schedule (`phase` periods after the start, then one
//! period apart); through a rate change the due times follow the rate, so nothing is ever owed
//! from the past and latency stays corrected.
//!
//! Connections are counted in whole conversations: at time `t` the run holds the first
//! `ceil(connections(t) / members)` conversations (by conversation number), so a conversation's
//! members come and go together. Stages may leave CONNECTIONS empty (`30s::5/s`): the run then
//! opens all `-c x -k` connections before sending, as without stages, and holds them.

use std::time::Duration;

pub mod args;
pub mod results;
pub mod tally;
pub use args::{ShapeArgs, Storm};

/// Largest per-sender rate a stage may ask for (as `--rate`).
pub const MAX_RATE: f64 = 1e6;
/// Most stages in one run.
pub const MAX_STAGES: usize = 1000;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stage {
    #[serde(with = "crate::config::units::secs")]
    pub duration: Duration,
    /// Connections to reach by the end of the stage; `None`: all of `-c x -k`, opened before
    /// sending.
    pub connections: Option<u64>,
    /// Messages per second per sender to reach by the end of the stage.
    pub rate: f64,
    /// Starts at its own targets instead of ramping from the previous stage's (`herd knee`'s
    /// steps; on the command line a `0s` stage before it does the same).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub step: bool,
}

/// Parses `DURATION:CONNECTIONS:RATE`, e.g. `30s:10k:1/s`, `2m::5`, `0s:500:0`.
pub fn parse_stage(s: &str) -> Result<Stage, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let [d, c, r] = parts[..] else {
        return Err(format!(
            "'{s}' is not DURATION:CONNECTIONS:RATE (e.g. 30s:10k:1/s, or 30s::1/s to keep every connection)"
        ));
    };
    let duration = crate::config::units::parse_duration(d).map_err(|e| format!("'{s}': duration {e}"))?;
    let connections = match c.trim() {
        "" => None,
        c => Some(crate::config::units::parse_count(c).map_err(|e| format!("'{s}': connections {e}"))?),
    };
    let rate = crate::config::units::parse_rate(r).map_err(|e| format!("'{s}': rate {e}"))?;
    if rate > MAX_RATE {
        return Err(format!("'{s}': at most {MAX_RATE} messages/s per sender"));
    }
    Ok(Stage { duration, connections, rate, step: false })
}

/// A run's stages, with the cumulative figures the schedules need.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(into = "Vec<Stage>")]
pub struct Shape {
    stages: Vec<Stage>,
    /// End of each stage, ns from the start of sending.
    ends: Vec<u64>,
    /// Λ at the end of each stage.
    lambda_ends: Vec<f64>,
}

impl Shape {
    pub fn new(stages: Vec<Stage>) -> Result<Shape, String> {
        if stages.is_empty() {
            return Err("at least one stage is needed".into());
        }
        if stages.len() > MAX_STAGES {
            return Err(format!("at most {MAX_STAGES} stages, got {}", stages.len()));
        }
        let with = stages.iter().filter(|s| s.connections.is_some()).count();
        if with != 0 && with != stages.len() {
            return Err("either every stage gives CONNECTIONS or none does (30s::5/s keeps all of -c x -k)".into());
        }
        let mut ends = Vec::with_capacity(stages.len());
        let mut lambda_ends = Vec::with_capacity(stages.len());
        let (mut t, mut lambda, mut prev_rate) = (0u64, 0.0, 0.0);
        for s in &stages {
            let d = u64::try_from(s.duration.as_nanos()).map_err(|_| "a stage is too long".to_string())?;
            t = t.checked_add(d).ok_or("the stages are too long in all")?;
            let from = if s.step { s.rate } else { prev_rate };
            lambda += (from + s.rate) / 2.0 * s.duration.as_secs_f64();
            prev_rate = s.rate;
            ends.push(t);
            lambda_ends.push(lambda);
        }
        if t == 0 {
            return Err("the stages last 0s in all".into());
        }
        Ok(Shape { stages, ends, lambda_ends })
    }

    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// Length of the send phase.
    pub fn total(&self) -> Duration {
        Duration::from_nanos(self.total_ns())
    }

    pub fn total_ns(&self) -> u64 {
        *self.ends.last().expect("a shape has stages")
    }

    /// Whether the stages set the connection count (else every connection opens before sending).
    pub fn ramps_connections(&self) -> bool {
        self.stages[0].connections.is_some()
    }

    /// The most connections any stage asks for.
    pub fn max_connections(&self) -> Option<u64> {
        self.stages.iter().filter_map(|s| s.connections).max()
    }

    /// Start (ns from the start of sending) and end of stage `i`.
    pub fn span(&self, i: usize) -> (u64, u64) {
        (if i == 0 { 0 } else { self.ends[i - 1] }, self.ends[i])
    }

    /// The stage that holds time `t` (ns from the start of sending); the last one from its end on.
    pub fn stage_of(&self, t: u64) -> usize {
        self.ends.partition_point(|&e| e <= t).min(self.stages.len() - 1)
    }

    /// Targets at the start of stage `i`: the previous stage's (or 0 connections, 0/s).
    fn from(&self, i: usize) -> (f64, f64) {
        let s = &self.stages[i];
        match i {
            _ if s.step => (s.connections.unwrap_or(0) as f64, s.rate),
            0 => (0.0, 0.0),
            _ => (self.stages[i - 1].connections.unwrap_or(0) as f64, self.stages[i - 1].rate),
        }
    }

    /// (stage, seconds into it, its length in seconds) at `t`.
    fn locate(&self, t: u64) -> (usize, f64, f64) {
        let i = self.stage_of(t);
        let (a, b) = self.span(i);
        let len = (b - a) as f64 / 1e9;
        (i, (t.min(b).saturating_sub(a)) as f64 / 1e9, len)
    }

    fn ramp(from: f64, to: f64, into: f64, len: f64) -> f64 {
        if len <= 0.0 {
            to
        } else {
            from + (to - from) * (into / len)
        }
    }

    /// The connection target at `t` (ns from the start of sending).
    pub fn connections_at(&self, t: u64) -> f64 {
        let (i, into, len) = self.locate(t);
        let to = self.stages[i].connections.unwrap_or(0) as f64;
        Self::ramp(self.from(i).0, to, into, len)
    }

    /// The per-sender rate at `t`.
    pub fn rate_at(&self, t: u64) -> f64 {
        let (i, into, len) = self.locate(t);
        Self::ramp(self.from(i).1, self.stages[i].rate, into, len)
    }

    /// Λ(t): messages per sender due in `[0, t)` at the shaped rate (a real number).
    pub fn lambda(&self, t: u64) -> f64 {
        let (i, into, len) = self.locate(t);
        let before = if i == 0 { 0.0 } else { self.lambda_ends[i - 1] };
        let r0 = self.from(i).1;
        let r = Self::ramp(r0, self.stages[i].rate, into, len);
        before + (r0 + r) / 2.0 * into
    }

    /// The first time `t` (ns from the start of sending) with `Λ(t) >= x`, if within the shape.
    pub fn time_of(&self, x: f64) -> Option<u64> {
        if x <= 0.0 {
            return Some(0);
        }
        let i = self.lambda_ends.partition_point(|&l| l < x);
        if i >= self.stages.len() {
            return None;
        }
        let (a, b) = self.span(i);
        let len = (b - a) as f64 / 1e9;
        let before = if i == 0 { 0.0 } else { self.lambda_ends[i - 1] };
        let y = x - before;
        let r0 = self.from(i).1;
        let r1 = self.stages[i].rate;
        // Solve r0*s + (r1-r0)/len * s²/2 = y for s in [0, len], in the form that stays exact
        // when the rate does not change or starts from 0.
        let acc = if len > 0.0 { (r1 - r0) / len } else { 0.0 };
        let disc = (r0 * r0 + 2.0 * acc * y).max(0.0);
        let denom = r0 + disc.sqrt();
        let s = if denom > 0.0 { 2.0 * y / denom } else { len };
        let t = a + ((s.clamp(0.0, len) * 1e9).ceil() as u64).min(b - a);
        Some(t)
    }
}

impl From<Shape> for Vec<Stage> {
    fn from(s: Shape) -> Vec<Stage> {
        s.stages
    }
}

/// A sender's offset in `[0, 1)`: where in each "period" its messages fall, spread evenly and
/// repeatable for the same seed.
pub fn phase(seed: u64, sender_index: u64) -> f64 {
    (crate::measure::pacing::splitmix64(seed ^ sender_index.wrapping_mul(0x9e37_79b9_7f4a_7c15)) >> 11) as f64
        / (1u64 << 53) as f64
}

/// One sender's schedule under a shape: message `seq` is due where `Λ` reaches `base + seq`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shaped {
    /// Clock ns of the start of sending.
    pub start_ns: u64,
    pub base: f64,
    /// Messages due at or after this clock time are never sent (the shape's end, or the time the
    /// sender's conversation was closed by a ramp down).
    pub end_ns: u64,
}

impl Shaped {
    /// A sender that joins at clock time `now` having sent `sent` messages: its next message is
    /// the first of its ticks (`j + phase`) at or after `Λ(now)`.
    pub fn joining(shape: &Shape, start_ns: u64, now: u64, phase: f64, sent: u64) -> Shaped {
        let l = shape.lambda(now.saturating_sub(start_ns));
        let tick = (l - phase).ceil().max(0.0) + phase;
        Shaped { start_ns, base: tick - sent as f64, end_ns: start_ns + shape.total_ns() }
    }

    /// When message `seq` is due, if before the end.
    pub fn due_ns(&self, shape: &Shape, seq: u64) -> Option<u64> {
        let t = self.start_ns + shape.time_of(self.base + seq as f64)?;
        (t < self.end_ns).then_some(t)
    }

    /// How many messages are due by `now`: exactly those whose [`Shaped::due_ns`] is at or
    /// before `now` (the estimate from `Λ` is corrected against `due_ns`, so rounding can never
    /// make the two disagree).
    pub fn due_count(&self, shape: &Shape, now: u64) -> u64 {
        // Nothing at or after the end is due: estimating from there keeps the correction short.
        let now = now.min(self.end_ns.saturating_sub(1));
        let l = shape.lambda(now.saturating_sub(self.start_ns));
        let mut c = ((l - self.base).floor() + 1.0).max(0.0) as u64;
        while c > 0 && self.due_ns(shape, c - 1).is_none_or(|t| t > now) {
            c -= 1;
        }
        while self.due_ns(shape, c).is_some_and(|t| t <= now) {
            c += 1;
        }
        c
    }

    /// When the message after the first `sent` is due, if any.
    pub fn next_due_ns(&self, shape: &Shape, sent: u64) -> Option<u64> {
        self.due_ns(shape, sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn shape(specs: &[&str]) -> Shape {
        Shape::new(specs.iter().map(|s| parse_stage(s).unwrap()).collect()).unwrap()
    }

    #[test]
    fn stages_parse_and_errors_name_the_part() {
        assert_eq!(
            parse_stage("30s:10k:1/s").unwrap(),
            Stage { duration: Duration::from_secs(30), connections: Some(10_000), rate: 1.0, step: false }
        );
        assert_eq!(parse_stage("2m::5").unwrap().connections, None);
        assert!(parse_stage("30s:10k").unwrap_err().contains("DURATION:CONNECTIONS:RATE"));
        assert!(parse_stage("soon:1:1").unwrap_err().contains("duration"));
        assert!(parse_stage("1s:many:1").unwrap_err().contains("connections"));
        assert!(parse_stage("1s:1:fast").unwrap_err().contains("rate"));
        assert!(parse_stage("1s:1:2000000").unwrap_err().contains("at most"));
        let mixed = vec![parse_stage("1s:10:1").unwrap(), parse_stage("1s::1").unwrap()];
        assert!(Shape::new(mixed).unwrap_err().contains("every stage"));
        assert!(Shape::new(vec![parse_stage("0s:1:1").unwrap()]).unwrap_err().contains("0s"));
        assert!(Shape::new(vec![]).is_err());
    }

    #[test]
    fn targets_ramp_linearly_and_hold() {
        let s = shape(&["10s:1000:10", "10s:1000:10", "0s:200:2", "5s:0:0"]);
        assert_eq!(s.total(), Duration::from_secs(25));
        assert_eq!(s.connections_at(0), 0.0);
        assert_eq!(s.connections_at(5 * S), 500.0);
        assert_eq!(s.rate_at(5 * S), 5.0);
        assert_eq!(s.connections_at(15 * S), 1000.0);
        // The 0s stage jumps; the last one ramps down from its targets.
        assert_eq!(s.stage_of(20 * S), 3);
        assert_eq!(s.connections_at(20 * S), 200.0);
        assert!((s.connections_at(22 * S + S / 2) - 100.0).abs() < 1e-9);
        assert_eq!(s.connections_at(30 * S), 0.0);
        assert_eq!(s.max_connections(), Some(1000));
        assert_eq!(s.stage_of(0), 0);
        assert_eq!(s.stage_of(10 * S - 1), 0);
        assert_eq!(s.stage_of(10 * S), 1);
    }

    #[test]
    fn lambda_integrates_the_rate_and_time_of_inverts_it() {
        let s = shape(&["10s::10", "10s::10", "10s::0"]);
        // Ramp 0 -> 10/s over 10 s: 50 messages; hold: 100 more; ramp down: 50 more.
        assert!((s.lambda(10 * S) - 50.0).abs() < 1e-9);
        assert!((s.lambda(20 * S) - 150.0).abs() < 1e-9);
        assert!((s.lambda(30 * S) - 200.0).abs() < 1e-9);
        assert!((s.lambda(5 * S) - 12.5).abs() < 1e-9);
        for x in [0.5, 12.5, 49.9, 50.0, 100.0, 150.0, 175.0, 199.9] {
            let t = s.time_of(x).unwrap();
            assert!(s.lambda(t) >= x - 1e-6, "Λ({t}) = {} < {x}", s.lambda(t));
            assert!(s.lambda(t.saturating_sub(2)) < x + 1e-6);
        }
        assert_eq!(s.time_of(200.5), None);
    }

    #[test]
    fn steps_start_at_their_own_rate() {
        let step = |secs, rate| Stage { duration: Duration::from_secs(secs), connections: None, rate, step: true };
        let s = Shape::new(vec![step(2, 10.0), step(2, 20.0)]).unwrap();
        assert_eq!(s.rate_at(0), 10.0);
        assert_eq!(s.rate_at(2 * S), 20.0);
        assert!((s.lambda(2 * S) - 20.0).abs() < 1e-9);
        assert!((s.lambda(4 * S) - 60.0).abs() < 1e-9);
        let sched = Shaped::joining(&s, 0, 0, 0.5, 0);
        assert_eq!(sched.due_count(&s, 2 * S - 1), 20);
        assert_eq!(sched.due_count(&s, 4 * S - 1), 60);
    }

    #[test]
    fn a_held_rate_is_the_plain_schedule() {
        let s = shape(&["0s::4", "5s::4"]);
        let p = 0.25;
        let sched = Shaped::joining(&s, 100 * S, 100 * S, p, 0);
        // 4/s with phase 1/4 of a period: due at 62.5 ms, 312.5 ms, ...
        assert_eq!(sched.due_ns(&s, 0), Some(100 * S + 62_500_000));
        assert_eq!(sched.due_ns(&s, 1), Some(100 * S + 312_500_000));
        assert_eq!(sched.due_count(&s, 100 * S + 62_499_999), 0);
        assert_eq!(sched.due_count(&s, 100 * S + 62_500_000), 1);
        assert_eq!(sched.due_count(&s, 200 * S), 20, "4/s for 5 s");
        assert_eq!(sched.next_due_ns(&s, 20), None);
    }

    #[test]
    fn counts_per_stage_are_exact_whatever_the_phase() {
        // Holding r for d seconds gives exactly r*d messages per sender in that stage; a ramp
        // from a to b gives (a+b)/2*d.
        let s = shape(&["0s::5", "2s::5", "2s::10", "2s::20", "1s::0"]);
        for i in 0..200 {
            let p = phase(7, i);
            let sched = Shaped::joining(&s, S, S, p, 0);
            let at = |t: u64| sched.due_count(&s, S + t - 1);
            assert_eq!(at(2 * S), 10, "phase {p}");
            assert_eq!(at(4 * S) - at(2 * S), 15, "ramp 5 -> 10 over 2 s, phase {p}");
            assert_eq!(at(6 * S) - at(4 * S), 30, "ramp 10 -> 20 over 2 s, phase {p}");
            assert_eq!(at(7 * S) - at(6 * S), 10, "ramp 20 -> 0 over 1 s, phase {p}");
        }
    }

    #[test]
    fn due_count_and_due_ns_agree_at_every_due_time() {
        let s = shape(&["3s::7", "4s::0.5", "2s::1000"]);
        let sched = Shaped::joining(&s, 0, 0, phase(3, 1), 0);
        let mut seq = 0;
        while let Some(t) = sched.due_ns(&s, seq) {
            assert_eq!(sched.due_count(&s, t), seq + 1, "at the due time of {seq}");
            assert_eq!(sched.due_count(&s, t - 1), seq, "just before the due time of {seq}");
            seq += 1;
        }
        assert!(seq > 1000);
    }

    #[test]
    fn a_sender_joining_late_owes_nothing_from_before() {
        let s = shape(&["0s::10", "10s::10"]);
        // Joins 5 s in, having sent 3 messages in an earlier life: message 3 is its first tick
        // after 5 s, and no message is due at once.
        let sched = Shaped::joining(&s, 0, 5 * S, 0.5, 3);
        let first = sched.due_ns(&s, 3).unwrap();
        assert!(first >= 5 * S, "{first}");
        assert_eq!(sched.due_count(&s, 5 * S), 3);
        assert!(s.lambda(first) - s.lambda(5 * S) <= 1.0 + 1e-9);
        // Closed early (a ramp down): nothing due after its end.
        let closed = Shaped { end_ns: 7 * S, ..sched };
        assert!(closed.due_count(&s, 20 * S) < sched.due_count(&s, 20 * S));
        assert!(closed.due_ns(&s, closed.due_count(&s, 20 * S)).is_none());
    }

    #[test]
    fn phases_are_in_range_and_spread() {
        let mut buckets = [0u32; 10];
        for i in 0..10_000 {
            let p = phase(11, i);
            assert!((0.0..1.0).contains(&p));
            buckets[(p * 10.0) as usize] += 1;
        }
        assert!(buckets.iter().all(|&b| (800..1200).contains(&b)), "{buckets:?}");
    }
}
