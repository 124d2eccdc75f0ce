//! Pure parsers for the text of /proc files.

use std::fmt;

/// Why a piece of /proc text or a count could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(msg.into()))
}

fn number(word: &str) -> Result<u64, ParseError> {
    word.parse::<u64>().or_else(|_| err(format!("not a non-negative integer: {word:?}")))
}

/// Parses exactly `n` whitespace-separated integers, as in `net.ipv4.tcp_mem`.
pub fn parse_fields(text: &str, n: usize) -> Result<Vec<u64>, ParseError> {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.len() != n {
        return err(format!("expected {n} numbers, found {}: {:?}", words.len(), text.trim()));
    }
    words.into_iter().map(number).collect()
}

/// Parses a single-integer sysctl such as `fs.nr_open` (`"1048576\n"`).
pub fn parse_u64(text: &str) -> Result<u64, ParseError> {
    Ok(parse_fields(text, 1)?[0])
}

/// Parses the first field of a multi-field file, such as the allocated count in `fs/file-nr`.
pub fn parse_first_u64(text: &str) -> Result<u64, ParseError> {
    match text.split_whitespace().next() {
        Some(word) => number(word),
        None => err("empty"),
    }
}

/// Parses `net.ipv4.ip_local_port_range` (`"32768\t60999\n"`) into `(low, high)`.
pub fn parse_port_range(text: &str) -> Result<(u64, u64), ParseError> {
    let f = parse_fields(text, 2)?;
    let (low, high) = (f[0], f[1]);
    if low > high || high > 65535 {
        return err(format!("not a port range: {low} {high}"));
    }
    Ok((low, high))
}

/// Parses `net.ipv4.tcp_mem` (`"low pressure high"`, in pages).
pub fn parse_tcp_mem(text: &str) -> Result<[u64; 3], ParseError> {
    let f = parse_fields(text, 3)?;
    Ok([f[0], f[1], f[2]])
}

/// Finds `key` (such as `MemAvailable`) in /proc/meminfo text and returns its value in bytes.
pub fn parse_meminfo(text: &str, key: &str) -> Result<u64, ParseError> {
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        if name.trim() != key {
            continue;
        }
        let mut words = rest.split_whitespace();
        let value = number(words.next().unwrap_or(""))?;
        let unit = match words.next() {
            None => 1,
            Some("kB") => 1024,
            Some(other) => return err(format!("unknown unit {other:?} for {key}")),
        };
        return value.checked_mul(unit).map_or_else(|| err("overflow"), Ok);
    }
    err(format!("{key} not found"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_range() {
        assert_eq!(parse_port_range("32768\t60999\n"), Ok((32768, 60999)));
        assert_eq!(parse_port_range("1024 65535"), Ok((1024, 65535)));
        for bad in ["", "\n", "32768", "60999 32768", "1 2 3", "a b", "-1 5", "1 70000"] {
            assert!(parse_port_range(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn single_values() {
        assert_eq!(parse_u64("1048576\n"), Ok(1048576));
        assert_eq!(parse_u64(" 0 "), Ok(0));
        assert_eq!(parse_u64("9223372036854775807\n"), Ok(9223372036854775807));
        for bad in ["", "x", "1 2", "-5", "99999999999999999999999", "1.5"] {
            assert!(parse_u64(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_first_u64("1632\t0\t2466170\n"), Ok(1632));
        assert!(parse_first_u64("").is_err());
    }

    #[test]
    fn tcp_mem() {
        assert_eq!(parse_tcp_mem("287898\t383867\t575796\n"), Ok([287898, 383867, 575796]));
        for bad in ["", "1 2", "1 2 3 4", "1 x 3"] {
            assert!(parse_tcp_mem(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn meminfo() {
        let text = "MemTotal:       24684084 kB\nMemFree:        23931668 kB\n\
                    MemAvailable:   24334996 kB\nHugePages_Total:       0\n";
        assert_eq!(parse_meminfo(text, "MemAvailable"), Ok(24334996 * 1024));
        assert_eq!(parse_meminfo(text, "HugePages_Total"), Ok(0));
        assert!(parse_meminfo(text, "Missing").is_err());
        assert!(parse_meminfo("MemAvailable: lots kB", "MemAvailable").is_err());
        assert!(parse_meminfo("MemAvailable: 5 MB", "MemAvailable").is_err());
        assert!(parse_meminfo("MemAvailable:", "MemAvailable").is_err());
        assert!(parse_meminfo("MemAvailable: 99999999999999999999 kB", "MemAvailable").is_err());
        assert!(parse_meminfo("garbage\n\n:::", "MemAvailable").is_err());
    }
}
