//! Parsers for human-friendly values on the command line and in scenario files: durations
//! (`500ms`, `20s`, `2m`, `1h`), counts (`4000`, `10k`, `1.5m`) and rates (`0.5`, `10`, `5/s`).

use std::time::Duration;

/// Durations in the results and the scenario echo are written as seconds (a float).
pub mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    /// Seconds as written by [`serialize`] (results files read back by `herd merge`).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Duration::try_from_secs_f64(v).map_err(serde::de::Error::custom)
    }

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    /// `None` stays `null`.
    pub fn serialize_opt<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => serialize(d, s),
            None => s.serialize_none(),
        }
    }
}

/// `250ms`, `20s`, `1.5s`, `2m`, `1h`, `100us`, several in a row (`1m30s`); a bare number means
/// seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration (examples: 500ms, 20s, 2m)".into());
    }
    let secs = match t.parse::<f64>() {
        Ok(v) => v,
        Err(_) => {
            let mut total = 0f64;
            let mut rest = t;
            while !rest.is_empty() {
                let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
                let value: f64 = rest[..num_len]
                    .parse()
                    .map_err(|_| format!("'{s}' is not a duration (examples: 500ms, 20s, 2m, 1m30s)"))?;
                rest = &rest[num_len..];
                let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
                let scale = match rest[..unit_len].trim() {
                    "ns" => 1e-9,
                    "us" | "µs" => 1e-6,
                    "ms" => 1e-3,
                    "s" => 1.0,
                    "m" | "min" => 60.0,
                    "h" => 3600.0,
                    "" => return Err(format!("'{s}': a unit must follow {value} (ns, us, ms, s, m or h)")),
                    u => return Err(format!("'{s}' has unknown unit '{u}' (use ns, us, ms, s, m or h)")),
                };
                rest = &rest[unit_len..];
                total += value * scale;
            }
            total
        }
    };
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!("'{s}' is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `4000`, `10k`, `1.5m`, `1g` (thousand, million, billion; case-insensitive), `1_000`.
/// Exact integer arithmetic: `1.0001k` is refused rather than rounded.
pub fn parse_count(text: &str) -> Result<u64, String> {
    let s: String = text.trim().chars().filter(|c| *c != '_').collect();
    let (digits, mult) = match s.chars().last().map(|c| c.to_ascii_lowercase()) {
        Some('k') => (&s[..s.len() - 1], 1_000u64),
        Some('m') => (&s[..s.len() - 1], 1_000_000),
        Some('g') => (&s[..s.len() - 1], 1_000_000_000),
        _ => (s.as_str(), 1),
    };
    scaled(text, digits, mult, "a count (examples: 4000, 10k, 1.5m)")
}

/// A size in bytes: what [`parse_count`] reads (`64k` is 64,000: k, m, g are decimal) plus the
/// binary units `KiB`, `MiB`, `GiB` (`64KiB` is 65,536) and a `B` after either (`1MB`, `512B`).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let s: String = text.trim().chars().filter(|c| *c != '_').collect();
    let lower = s.to_ascii_lowercase();
    let binary = [("kib", 1u64 << 10), ("mib", 1 << 20), ("gib", 1 << 30)];
    if let Some((unit, mult)) = binary.iter().find(|(u, _)| lower.ends_with(u)) {
        return scaled(text, &s[..s.len() - unit.len()], *mult, "a size");
    }
    let without_b = if lower.ends_with('b') { &s[..s.len() - 1] } else { s.as_str() };
    parse_count(without_b)
        .map_err(|_| format!("'{text}' is not a size in bytes (examples: 4096, 64KiB = 65536, 64k = 64000, 1MiB)"))
}

/// `digits` (a whole number with an optional fraction) times `mult`, exactly.
fn scaled(text: &str, digits: &str, mult: u64, what: &str) -> Result<u64, String> {
    let bad = || format!("'{text}' is not {what}");
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 9 {
        return Err(bad());
    }
    let scale = 10u64.pow(frac.len() as u32);
    let frac_value: u64 = if frac.is_empty() { 0 } else { frac.parse().map_err(|_| bad())? };
    let frac_scaled = frac_value.checked_mul(mult).ok_or_else(bad)?;
    if frac_scaled % scale != 0 {
        return Err(format!("'{text}' is not a whole count"));
    }
    whole
        .parse::<u64>()
        .ok()
        .and_then(|w| w.checked_mul(mult))
        .and_then(|v| v.checked_add(frac_scaled / scale))
        .ok_or_else(bad)
}

/// A count that fits in u32 (conversations, members, senders, threads).
pub fn parse_count_u32(s: &str) -> Result<u32, String> {
    let n = parse_count(s)?;
    u32::try_from(n).map_err(|_| format!("'{s}' is too large (at most {})", u32::MAX))
}

/// Messages (or connections) per second: `0.5`, `10`, `5/s`, `300/m`, `2k`.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (num, per) = match t.split_once('/') {
        Some((n, "s")) => (n, 1.0),
        Some((n, "m")) | Some((n, "min")) => (n, 60.0),
        Some((n, "h")) => (n, 3600.0),
        Some(_) => return Err(format!("'{s}' has an unknown rate unit (use /s, /m or /h)")),
        None => (t, 1.0),
    };
    let v = match parse_count(num) {
        Ok(n) => n as f64,
        Err(_) => num.trim().parse::<f64>().map_err(|_| format!("'{s}' is not a rate (examples: 1, 0.5, 5/s, 2k)"))?,
    };
    let r = v / per;
    if !r.is_finite() || r < 0.0 {
        return Err(format!("'{s}' is not a non-negative rate"));
    }
    Ok(r)
}

/// Formats a duration the way the parsers read it back.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 1000.0 && ms.fract() == 0.0 {
        format!("{}ms", ms as u64)
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_take_binary_and_decimal_units() {
        assert_eq!(parse_bytes("64KiB"), Ok(65_536));
        assert_eq!(parse_bytes("64kib"), Ok(65_536));
        assert_eq!(parse_bytes("64k"), Ok(64_000));
        assert_eq!(parse_bytes("64kB"), Ok(64_000));
        assert_eq!(parse_bytes("1MiB"), Ok(1 << 20));
        assert_eq!(parse_bytes("1.5MiB"), Ok(3 << 19));
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("512B"), Ok(512));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert!(parse_bytes("0.3KiB").unwrap_err().contains("whole"));
        assert!(parse_bytes("KiB").is_err());
        assert!(parse_bytes("1TiB").unwrap_err().contains("size in bytes"));
        assert!(parse_bytes("99999999999GiB").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("20s").unwrap(), Duration::from_secs(20));
        assert_eq!(parse_duration("20").unwrap(), Duration::from_secs(20));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("100us").unwrap(), Duration::from_micros(100));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("1m30").is_err());
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 parsecs").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1e400").is_err());
        assert_eq!(fmt_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(fmt_duration(Duration::from_secs(20)), "20s");
    }

    #[test]
    fn counts() {
        for (text, n) in [
            ("4000", 4000),
            ("0", 0),
            ("10k", 10_000),
            ("10K", 10_000),
            ("1.5M", 1_500_000),
            ("2.5m", 2_500_000),
            ("1_000", 1000),
            ("1g", 1_000_000_000),
        ] {
            assert_eq!(parse_count(text), Ok(n), "{text}");
        }
        for bad in [
            "",
            "k",
            "-5",
            "1.5",
            "1.0001k",
            "1e6",
            "ten",
            "1..5m",
            ".5m",
            "99999999999999999999",
            "99999999999g",
            "1.5x",
            "1.1234567891m",
        ] {
            assert!(parse_count(bad).is_err(), "{bad:?}");
        }
        assert!(parse_count_u32("5000000000").is_err());
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("1").unwrap(), 1.0);
        assert_eq!(parse_rate("0.5").unwrap(), 0.5);
        assert_eq!(parse_rate("5/s").unwrap(), 5.0);
        assert_eq!(parse_rate("120/m").unwrap(), 2.0);
        assert_eq!(parse_rate("2k").unwrap(), 2000.0);
        assert_eq!(parse_rate("0").unwrap(), 0.0);
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("5/fortnight").is_err());
        assert!(parse_rate("-1").is_err());
    }
}
