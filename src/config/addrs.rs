//! Source address lists for `--source-ip`: `127.0.0.2`, `127.0.0.2-127.0.0.50`, `10.1.0.0/24`,
//! or several of these separated by commas. Connections are spread over them round-robin, each
//! bound with IP_BIND_ADDRESS_NO_PORT, so the ephemeral port range applies per source address
//! (and destination) instead of once per host.

use std::net::{IpAddr, Ipv4Addr};

/// Most addresses one list may expand to.
pub const MAX_SOURCES: usize = 1 << 16;

pub fn parse_sources(spec: &str) -> Result<Vec<IpAddr>, String> {
    let mut out: Vec<IpAddr> = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if let Some((net, bits)) = item.split_once('/') {
            let net: Ipv4Addr = net.parse().map_err(|_| format!("'{item}': not an IPv4 CIDR block"))?;
            let bits: u32 =
                bits.parse().ok().filter(|b| *b <= 32).ok_or_else(|| format!("'{item}': bad prefix length"))?;
            let size = 1u64 << (32 - bits);
            let base = u32::from(net) as u64 & !(size - 1);
            // Skip the network and broadcast addresses of blocks that have them.
            let (first, last) = if bits >= 31 { (base, base + size - 1) } else { (base + 1, base + size - 2) };
            push_range(&mut out, first, last, item)?;
        } else if let Some((a, b)) = item.split_once('-') {
            let a: Ipv4Addr = a.trim().parse().map_err(|_| format!("'{item}': not an IPv4 range"))?;
            let b: Ipv4Addr = b.trim().parse().map_err(|_| format!("'{item}': not an IPv4 range"))?;
            let (a, b) = (u32::from(a) as u64, u32::from(b) as u64);
            if a > b {
                return Err(format!("'{item}': the range runs backwards"));
            }
            push_range(&mut out, a, b, item)?;
        } else {
            let ip: IpAddr = item.parse().map_err(|_| format!("'{item}' is not an IP address, range or CIDR block"))?;
            out.push(ip);
        }
        if out.len() > MAX_SOURCES {
            return Err(format!("more than {MAX_SOURCES} addresses"));
        }
    }
    if out.is_empty() {
        return Err("no addresses given".into());
    }
    Ok(out)
}

fn push_range(out: &mut Vec<IpAddr>, first: u64, last: u64, item: &str) -> Result<(), String> {
    if last + 1 - first > MAX_SOURCES as u64 {
        return Err(format!("'{item}' has more than {MAX_SOURCES} addresses"));
    }
    out.extend((first..=last).map(|v| IpAddr::V4(Ipv4Addr::from(v as u32))));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn lists_ranges_and_blocks() {
        assert_eq!(parse_sources("127.0.0.2").unwrap(), vec![v4("127.0.0.2")]);
        let r = parse_sources("127.0.0.2-127.0.0.5, ::1").unwrap();
        assert_eq!(r, vec![v4("127.0.0.2"), v4("127.0.0.3"), v4("127.0.0.4"), v4("127.0.0.5"), v4("::1")]);
        let c = parse_sources("127.0.1.0/24").unwrap();
        assert_eq!((c.len(), c[0], c[253]), (254, v4("127.0.1.1"), v4("127.0.1.254")));
        assert_eq!(parse_sources("10.0.0.7/32").unwrap(), vec![v4("10.0.0.7")]);
        assert_eq!(parse_sources("10.0.0.9/31").unwrap(), vec![v4("10.0.0.8"), v4("10.0.0.9")]);
    }

    #[test]
    fn bad_lists_say_why() {
        for (bad, why) in [
            ("", "no addresses"),
            ("127.0.0.300", "not an IP"),
            ("127.0.0.9-127.0.0.2", "backwards"),
            ("127.0.0.0/33", "prefix"),
            ("10.0.0.0/8", "more than"),
            ("::1/64", "CIDR"),
        ] {
            let e = parse_sources(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
