//! permessage-deflate negotiation (RFC 7692 section 7.1), pure: the client's offers
//! ([`Mode::offer`]), checking a server's answer ([`answered`]), and a server choosing among a
//! client's offers ([`accept`]) and writing its answer ([`Params::header`]).

use std::fmt;

/// The extension's name in `Sec-WebSocket-Extensions`.
pub const NAME: &str = "permessage-deflate";

/// What herd offers (`--deflate`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// No offer: frames go uncompressed.
    #[default]
    Off,
    /// Exactly what Chrome and Firefox offer; contexts are kept across messages as the server
    /// chooses.
    Browser,
    /// No context takeover in either direction and small windows: nothing compression-related is
    /// held per idle connection.
    Lean,
}

/// The window lean mode asks for, both ways: 1 KiB, enough for chat messages.
pub const LEAN_WINDOW_BITS: u8 = 10;

impl Mode {
    /// The `Sec-WebSocket-Extensions` value offered, if any.
    pub fn offer(self) -> Option<&'static str> {
        match self {
            Mode::Off => None,
            Mode::Browser => Some("permessage-deflate; client_max_window_bits"),
            Mode::Lean => Some(
                "permessage-deflate; client_no_context_takeover; server_no_context_takeover; \
                 server_max_window_bits=10; client_max_window_bits=10",
            ),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Browser => "browser",
            Mode::Lean => "lean",
        }
    }

    /// `--deflate`'s value parser.
    pub fn parse(s: &str) -> Result<Mode, String> {
        match s {
            "off" => Ok(Mode::Off),
            "browser" => Ok(Mode::Browser),
            "lean" => Ok(Mode::Lean),
            _ => Err(format!("'{s}' is not one of off, browser, lean")),
        }
    }
}

/// The parameters in force on a connection, as the server's answer set them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message.
    pub client_no_context_takeover: bool,
    /// The server's LZ77 window (8-15; 15 when unsaid).
    pub server_max_window_bits: u8,
    /// The client's window, when the answer limits it.
    pub client_max_window_bits: Option<u8>,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: None,
        }
    }
}

impl Params {
    /// The answer a server sends for these parameters (the server's window only when below 15).
    pub fn header(&self) -> String {
        let mut s = String::from(NAME);
        if self.server_no_context_takeover {
            s.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            s.push_str("; client_no_context_takeover");
        }
        if self.server_max_window_bits < 15 {
            s.push_str(&format!("; server_max_window_bits={}", self.server_max_window_bits));
        }
        if let Some(b) = self.client_max_window_bits {
            s.push_str(&format!("; client_max_window_bits={b}"));
        }
        s
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.header())
    }
}

/// One element of `Sec-WebSocket-Extensions`: its name and parameters (values unquoted).
fn parse_element(e: &str) -> (String, Vec<(String, Option<String>)>) {
    let mut parts = e.split(';').map(str::trim);
    let name = parts.next().unwrap_or("").to_ascii_lowercase();
    let params = parts
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim().trim_matches('"').to_string())),
            None => (p.to_ascii_lowercase(), None),
        })
        .collect();
    (name, params)
}

fn window_bits(name: &str, v: Option<&str>) -> Result<u8, String> {
    match v.map(str::parse::<u8>) {
        Some(Ok(b)) if (8..=15).contains(&b) => Ok(b),
        _ => Err(format!("{name} must be 8-15, got {}", v.unwrap_or("no value"))),
    }
}

/// Reads one permessage-deflate element's parameters. `answer`: a server's answer (every window
/// needs a value) rather than a client's offer (`client_max_window_bits` may stand alone).
fn read_params(params: &[(String, Option<String>)], answer: bool) -> Result<(Params, bool), String> {
    let mut p = Params::default();
    let mut seen: Vec<&str> = Vec::new();
    // An offer's bare `client_max_window_bits`: the client accepts a limit on its window.
    let mut client_bits_offered = false;
    for (k, v) in params {
        if seen.contains(&k.as_str()) {
            return Err(format!("{k} given twice"));
        }
        seen.push(k);
        match (k.as_str(), v) {
            ("server_no_context_takeover", None) => p.server_no_context_takeover = true,
            ("client_no_context_takeover", None) => p.client_no_context_takeover = true,
            ("server_max_window_bits", _) => p.server_max_window_bits = window_bits(k, v.as_deref())?,
            ("client_max_window_bits", None) if !answer => client_bits_offered = true,
            ("client_max_window_bits", _) => {
                client_bits_offered = true;
                p.client_max_window_bits = Some(window_bits(k, v.as_deref())?);
            }
            ("server_no_context_takeover" | "client_no_context_takeover", Some(_)) => {
                return Err(format!("{k} takes no value"))
            }
            _ => return Err(format!("unknown parameter '{k}'")),
        }
    }
    Ok((p, client_bits_offered))
}

/// Checks a server's `Sec-WebSocket-Extensions` answer (its values, comma-split) against what
/// `mode` offered. `Ok(None)`: the server declined (no extension). Fails, as RFC 7692 section
/// 7.1 requires of a client, on an extension not offered, on more than one, on an unknown or
/// repeated parameter, on a bad window, and on `client_max_window_bits` when the offer had none.
pub fn answered(mode: Mode, values: &[String]) -> Result<Option<Params>, String> {
    let Some(offer) = mode.offer() else {
        return match values.first() {
            None => Ok(None),
            Some(_) => Err(format!("extension '{}' was not offered", values.join(", "))),
        };
    };
    match values {
        [] => Ok(None),
        [one] => {
            let (name, params) = parse_element(one);
            if name != NAME {
                return Err(format!("extension '{one}' was not offered"));
            }
            let (p, client_bits) = read_params(&params, true).map_err(|e| format!("'{one}': {e}"))?;
            if client_bits && !offer.contains("client_max_window_bits") {
                return Err(format!("'{one}': client_max_window_bits was not offered"));
            }
            Ok(Some(p))
        }
        _ => Err(format!("more than one extension answered: '{}'", values.join(", "))),
    }
}

/// The answer herd's server gives to a client's offers (`Sec-WebSocket-Extensions` values,
/// comma-split, in the client's order of preference): the first permessage-deflate offer it can
/// accept, with what that offer asked for. herd's server keeps no compressor context (it never
/// needs to say so) and takes any client window.
pub fn accept(values: &[String]) -> Option<Params> {
    values.iter().find_map(|v| {
        let (name, params) = parse_element(v);
        if name != NAME {
            return None;
        }
        let (p, _) = read_params(&params, false).ok()?;
        // A window the client asked for in its offer is not echoed: the client's compressor is
        // the client's business, and 15 is what the server's inflater assumes.
        Some(Params { client_max_window_bits: None, ..p })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn offers_are_what_browsers_send_and_lean_asks_for_no_context() {
        assert_eq!(Mode::Off.offer(), None);
        assert_eq!(Mode::Browser.offer(), Some("permessage-deflate; client_max_window_bits"));
        let lean = Mode::Lean.offer().unwrap();
        let (name, params) = parse_element(lean);
        assert_eq!(name, NAME);
        let (p, bits) = read_params(&params, false).unwrap();
        assert!(p.client_no_context_takeover && p.server_no_context_takeover && bits);
        assert_eq!((p.server_max_window_bits, p.client_max_window_bits), (10, Some(10)));
        for m in [Mode::Off, Mode::Browser, Mode::Lean] {
            assert_eq!(Mode::parse(m.name()), Ok(m));
        }
        assert!(Mode::parse("on").unwrap_err().contains("off, browser, lean"));
    }

    #[test]
    fn answers_of_real_servers_are_read() {
        // Python websockets' default answer to a browser's offer.
        let py =
            answered(Mode::Browser, &v(&["permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"]));
        let p = py.unwrap().unwrap();
        assert_eq!((p.server_max_window_bits, p.client_max_window_bits), (12, Some(12)));
        assert!(!p.server_no_context_takeover);
        // Node ws's answer: a bare name means windows of 15 and contexts kept.
        assert_eq!(answered(Mode::Browser, &v(&["permessage-deflate"])), Ok(Some(Params::default())));
        // Quoted values and any case.
        let q =
            answered(Mode::Lean, &v(&["Permessage-Deflate; Server_No_Context_Takeover; server_max_window_bits=\"9\""]));
        assert_eq!(q.unwrap().unwrap().server_max_window_bits, 9);
        assert_eq!(answered(Mode::Lean, &[]), Ok(None));
    }

    #[test]
    fn bad_answers_fail_with_a_reason() {
        let e = |m: Mode, s: &[&str]| answered(m, &v(s)).unwrap_err();
        assert!(e(Mode::Off, &["permessage-deflate"]).contains("not offered"));
        assert!(e(Mode::Browser, &["x-webkit-deflate-frame"]).contains("not offered"));
        assert!(e(Mode::Browser, &["permessage-deflate", "permessage-deflate"]).contains("more than one"));
        assert!(e(Mode::Browser, &["permessage-deflate; server_max_window_bits=16"]).contains("8-15"));
        assert!(e(Mode::Browser, &["permessage-deflate; server_max_window_bits"]).contains("8-15"));
        assert!(e(Mode::Browser, &["permessage-deflate; client_max_window_bits"]).contains("8-15"));
        assert!(e(Mode::Browser, &["permessage-deflate; mystery=1"]).contains("unknown parameter 'mystery'"));
        assert!(e(Mode::Browser, &["permessage-deflate; server_no_context_takeover; server_no_context_takeover"])
            .contains("twice"));
        assert!(e(Mode::Browser, &["permessage-deflate; client_no_context_takeover=1"]).contains("no value"));
    }

    #[test]
    fn a_server_accepts_the_first_offer_it_can_and_answers_it() {
        assert_eq!(accept(&v(&["x-webkit-deflate-frame"])), None);
        assert_eq!(accept(&v(&["permessage-deflate; client_max_window_bits"])), Some(Params::default()));
        let lean = accept(&v(&[Mode::Lean.offer().unwrap()])).unwrap();
        assert_eq!(
            lean.header(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10"
        );
        // An offer it cannot read is skipped for the next.
        let two = accept(&v(&["permessage-deflate; bogus", "permessage-deflate; server_max_window_bits=9"]));
        assert_eq!(two.unwrap().server_max_window_bits, 9);
        // What herd's server answers, herd's client reads back as the same parameters.
        for offer in [Mode::Browser, Mode::Lean] {
            let p = accept(&v(&[offer.offer().unwrap()])).unwrap();
            assert_eq!(answered(offer, &v(&[&p.header()])), Ok(Some(p)));
        }
    }
}
