//! Property tests (proptest) of every parser fed by the network or the user: markers, URL
//! templates, scenario files and flag values, the HTTP heads of both handshake sides, and the
//! loss/duplicate tracker. None may panic on any input; the ones with an inverse must round-trip.
//!
//! Inputs are structured (valid HTTP heads, URLs and scenario files, then mutated) so that the
//! cases reach the branches that hold the asserts; the structured properties count the branch
//! each case took and assert each branch's share, so a generator that drifts into only refusals
//! fails the test instead of passing it with nothing checked.
//!
//! Case counts are small by default so the suite stays fast; `HERD_FUZZ_CASES=N` raises them
//! (benches/fuzz.sh does).

use herd::cli::{Command, ParseError};
use herd::config::args as scenario;
use herd::config::template::{UrlTemplate, Vars};
use herd::config::units;
use herd::measure::marker::{self, DecodeError, Marker};
use herd::ws::handshake::{self, ReadHeadError};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use std::cell::RefCell;
use std::collections::BTreeMap;

fn cases(default: u32) -> ProptestConfig {
    let n = std::env::var("HERD_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    ProptestConfig { cases: n, failure_persistence: None, ..ProptestConfig::default() }
}

fn any_marker() -> impl Strategy<Value = Marker> {
    (any::<u32>(), any::<u64>(), any::<u32>(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
        |(run, conv, sender, seq, intended_ns, sent_ns)| Marker { run, conv, sender, seq, intended_ns, sent_ns },
    )
}

/// Bytes that look like markers often: the marker alphabet, the prefix, and anything else.
fn markerish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"~h1.".to_vec()),
        Just(b"~".to_vec()),
        Just(b".".to_vec()),
        proptest::collection::vec(prop_oneof![Just(b'0'), Just(b'f'), Just(b'9'), Just(b'a'), Just(b'g')], 0..20),
        proptest::collection::vec(any::<u8>(), 0..8),
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

/// The scenario keys the file property writes.
const SCENARIO_KEYS: &[&str] = &[
    "conversations",
    "members",
    "senders",
    "rate",
    "size",
    "connect-rate",
    "duration",
    "drain",
    "connect-timeout",
    "threads",
    "server-threads",
    "max-frame",
    "cores",
    "url",
    "seed",
    "reconnect",
    "quiet",
];

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn marker_scan_never_panics_and_reports_every_prefix(frame in markerish()) {
        let mut calls = 0;
        let found = marker::find_all(&frame, |_| calls += 1);
        prop_assert_eq!(found, calls);
        if frame.len() >= 4 {
            let _ = marker::decode_at(&frame);
        }
    }

    #[test]
    fn markers_round_trip_among_any_other_text(ms in proptest::collection::vec(any_marker(), 1..5),
                                               noise in proptest::collection::vec("[^~]{0,40}", 6),
                                               size in 0usize..300) {
        let mut frame = String::new();
        let mut buf = String::new();
        for (i, m) in ms.iter().enumerate() {
            frame.push_str(&noise[i]);
            m.encode_padded(size, &mut buf);
            frame.push_str(&buf);
        }
        frame.push_str(&noise[5]);
        let mut got = vec![];
        let n = marker::find_all(frame.as_bytes(), |r| got.push(r));
        prop_assert_eq!(n, ms.len());
        prop_assert_eq!(got, ms.iter().map(|m| Ok(*m)).collect::<Vec<_>>());
    }

    #[test]
    fn a_cut_or_damaged_marker_is_an_error_never_a_panic(m in any_marker(), cut in 0usize..120, at in 0usize..120, b in any::<u8>()) {
        let s = m.encode();
        let cut = cut.min(s.len());
        if cut >= 4 && cut < s.len() {
            prop_assert_eq!(marker::decode_at(&s.as_bytes()[..cut]).map(|x| x.0), Err(DecodeError::Truncated));
        }
        let mut damaged = s.into_bytes();
        let at = 4 + at % (damaged.len() - 4);
        damaged[at] = b;
        let _ = marker::decode_at(&damaged);
    }

    #[test]
    fn url_templates_render_what_they_say(host in "[a-z][a-z0-9.-]{0,20}", port in 1u16.., segs in proptest::collection::vec(
        prop_oneof![Just("{conv}".to_string()), Just("{member}".to_string()), Just("{user}".to_string()), "[a-z0-9_=&?-]{1,8}"], 0..6),
        conv: u64, member: u32, user: u64) {
        let path: String = segs.iter().map(|s| format!("/{s}")).collect();
        let t = UrlTemplate::parse(&format!("ws://{host}:{port}{path}")).unwrap();
        prop_assert_eq!(&t.host, &host);
        prop_assert_eq!(t.port, port);
        let mut out = String::new();
        t.render_target(&Vars { conv, member, user }, &mut out);
        let want = path.replace("{conv}", &conv.to_string()).replace("{member}", &member.to_string()).replace("{user}", &user.to_string());
        prop_assert_eq!(out, if want.is_empty() { "/".to_string() } else { want });
    }

    #[test]
    fn flag_values_never_panic(s in "\\PC{0,24}") {
        let _ = units::parse_count(&s);
        let _ = units::parse_count_u32(&s);
        let _ = units::parse_rate(&s);
        let _ = units::parse_duration(&s);
        let _ = scenario::parse_core_list(&s);
    }

    #[test]
    fn counts_round_trip(n: u64, k in 0u64..18_446_744_073_709_551) {
        prop_assert_eq!(units::parse_count(&n.to_string()), Ok(n));
        prop_assert_eq!(units::parse_count(&format!("{k}k")), Ok(k * 1000));
    }

    #[test]
    fn core_lists_stay_small_and_sorted_input_round_trips(a in 0usize..2000, len in 0usize..2000) {
        match scenario::parse_core_list(&format!("{a}-{}", a + len)) {
            Ok(v) => prop_assert_eq!(v, (a..=a + len).collect::<Vec<_>>()),
            Err(e) => prop_assert!(a + len >= scenario::MAX_CORE, "{}", e),
        }
    }

    #[test]
    fn scenario_keys_with_any_values_resolve_or_name_their_error(pairs in proptest::collection::vec((
        proptest::sample::select(SCENARIO_KEYS),
        prop_oneof![any::<i64>().prop_map(|i| i.to_string()), (0i64..100).prop_map(|i| i.to_string()),
                    any::<f64>().prop_map(|f| format!("{f:?}")), "\"[0-9.]{0,6}[kmgsh/]{0,2}\"", "\"\\PC{0,12}\"",
                    Just("true".to_string()), Just("\"4000000000\"".to_string()), Just("\"0-99999999999\"".to_string())],
    ), 0..8)) {
        let mut text = String::new();
        let mut seen = std::collections::HashSet::new();
        for (k, v) in pairs {
            if seen.insert(k) {
                text.push_str(&format!("{k} = {v}\n"));
            }
        }
        // A value the key's flag refuses: the error names the key.
        let a = match herd::cli::parse_with_file(&["herd", "run"], &text).map(|c| c.command) {
            Ok(Command::Run(a)) => a,
            Ok(_) => unreachable!("herd run parses as run"),
            Err(ParseError::Setup(e)) => {
                let m = e.to_string();
                // A bad value names its key; text TOML cannot read shows the key's line.
                prop_assert!(
                    seen.iter().any(|k| m.contains(&format!("'{k}'")) || m.contains(&format!("{k} ="))),
                    "file error without its key: {}", m
                );
                return Ok(());
            }
            Err(ParseError::Clap(e)) => {
                // Two keys that cannot go together (threads and cores): clap names both flags.
                let m = e.to_string();
                prop_assert!(seen.iter().any(|k| m.contains(&format!("--{k}"))), "clap error without a flag: {}", m);
                return Ok(());
            }
        };
        match scenario::resolve(&a, &[0, 1]) {
            Ok(s) => {
                prop_assert!(s.members >= 2 && s.senders >= 1 && s.senders <= s.members);
                prop_assert!(s.max_frame >= s.size && !s.connect_timeout.is_zero());
                prop_assert!(!s.cores.is_empty() && s.cores.len() <= herd::runtime::executor::MAX_THREADS as usize);
                prop_assert!(s.server_threads >= 1 && s.server_threads <= herd::runtime::executor::MAX_THREADS);
            }
            Err(e) => {
                prop_assert_eq!(e.exit_code(), 64, "{}", e);
                // Named as a scenario key or as its flag; a limit between two keys (size and
                // max-frame, senders and members) may name the other one, which may be a default.
                let m = e.to_string();
                prop_assert!(
                    SCENARIO_KEYS.iter().any(|k| m.contains(&format!("'{k}'")) || m.contains(&format!("--{k}"))),
                    "error names no key: {}", m
                );
            }
        }
    }

    #[test]
    fn http_requests_never_panic(head in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = handshake::parse_request(&head);
        let _ = handshake::check_response(&head, "dGhlIHNhbXBsZSBub25jZQ==");
    }

    #[test]
    fn upgrade_requests_round_trip(path in "/[a-zA-Z0-9/_.=&?%-]{0,100}", seed: u64) {
        let key = handshake::client_key(seed);
        let req = handshake::client_request("127.0.0.1:9", &path, &key, &[]);
        let r = handshake::parse_request(&req).unwrap();
        prop_assert_eq!(r.path, path);
        prop_assert_eq!(r.ws_key.as_deref(), Some(key.as_str()));
        prop_assert_eq!(handshake::check_response(&handshake::accept_response(&key), &key), Ok(()));
    }

    #[test]
    fn the_tracker_matches_a_brute_force_model(seqs in proptest::collection::vec(0u64..60, 0..200)) {
        use herd::measure::accounting::{Receipt, StreamTracker};
        let mut t = StreamTracker::default();
        let mut seen = std::collections::HashSet::new();
        let mut max: Option<u64> = None;
        for s in seqs {
            let want = if !seen.insert(s) {
                Receipt::Duplicate
            } else if max.is_some_and(|m| s < m) {
                Receipt::Reordered
            } else {
                Receipt::First
            };
            max = Some(max.map_or(s, |m| m.max(s)));
            prop_assert_eq!(t.receive(s), want);
        }
    }
}

/// One byte-level change to `base`: none, a byte replaced, inserted or removed, or a cut.
fn mutated(base: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (base, 0u8..10, any::<usize>(), any::<u8>()).prop_map(|(mut v, how, at, b)| {
        let at = if v.is_empty() { 0 } else { at % v.len() };
        match how {
            0..=4 => {}
            5 if !v.is_empty() => v[at] = b,
            6 => v.insert(at, b),
            7 if !v.is_empty() => {
                v.remove(at);
            }
            8 => v.truncate(at),
            _ => {}
        }
        v
    })
}

/// Runs `cases` cases of `strategy` through `test`, which names the branch each case took; then
/// checks that every branch in `least` got at least that share of the cases.
fn shares<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<&'static str, TestCaseError>,
    least: &[(&str, f64)],
) {
    let seen: RefCell<BTreeMap<&'static str, u32>> = RefCell::default();
    let mut runner = TestRunner::new(self::cases(cases));
    runner
        .run(&strategy, |v| {
            let branch = test(v)?;
            *seen.borrow_mut().entry(branch).or_default() += 1;
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let seen = seen.into_inner();
    let total: u32 = seen.values().sum();
    eprintln!("{name}: branches over {total} cases: {seen:?}");
    for (branch, share) in least {
        let got = seen.get(branch).copied().unwrap_or(0) as f64 / total.max(1) as f64;
        assert!(got >= *share, "{name}: {branch} in {got:.3} of {total} cases, want >= {share}: {seen:?}");
    }
}

fn valid_head() -> impl Strategy<Value = Vec<u8>> {
    let request = ("/[a-z0-9/?=&]{0,30}", "[a-z0-9.]{1,20}", 0usize..4).prop_map(|(path, host, extra)| {
        let mut h = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n");
        h.push_str("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n");
        for i in 0..extra {
            h.push_str(&format!("X-Extra-{i}: {}\r\n", "v".repeat(i * 40)));
        }
        h + "\r\n"
    });
    let response = (100u16..600, "[A-Za-z ]{0,20}").prop_map(|(code, reason)| {
        format!("HTTP/1.1 {code} {reason}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
    });
    prop_oneof![request, response].prop_map(String::into_bytes)
}

fn http_head() -> impl Strategy<Value = Vec<u8>> {
    let head = valid_head();
    // What follows the head: nothing, frames or a body, or (rarely) a head too long to take.
    let tail = prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..64),
        1 => Just(vec![b'a'; herd::ws::handshake::MAX_HEAD]),
    ];
    prop_oneof![
        8 => (mutated(head), tail).prop_map(|(mut h, t)| { h.extend(t); h }),
        1 => (Just(b"X-Long: ".to_vec()), proptest::collection::vec(Just(b'a'), herd::ws::handshake::MAX_HEAD..herd::ws::handshake::MAX_HEAD + 100)).prop_map(|(mut a, b)| { a.extend(b); a }),
        1 => proptest::collection::vec(any::<u8>(), 0..200),
        // A head the peer stopped sending halfway.
        1 => (valid_head(), any::<usize>()).prop_map(|(h, at)| h[..at % h.len()].to_vec()),
    ]
}

#[test]
fn http_heads_are_found_however_the_bytes_arrive() {
    // A reader that hands out at most `chunk` bytes per read.
    struct Chunked<'a>(&'a [u8], usize);
    impl futures_lite::AsyncRead for Chunked<'_> {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut [u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            std::task::Poll::Ready(Ok(n))
        }
    }
    shares(
        "read_head",
        512,
        (http_head(), 1usize..64),
        |(body, chunk)| {
            let r = futures_lite::future::block_on(handshake::read_head(&mut Chunked(&body, chunk)));
            Ok(match r {
                Ok((buf, end)) => {
                    prop_assert!(end <= buf.len() && end <= handshake::MAX_HEAD);
                    prop_assert!(buf[..end].ends_with(b"\r\n\r\n"));
                    // The head ends at the first blank line, and nothing past the input is read.
                    let first = body.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
                    prop_assert_eq!(Some(end), first);
                    prop_assert_eq!(&buf[..], &body[..buf.len()]);
                    "ok"
                }
                Err(ReadHeadError::TooLarge) => {
                    prop_assert!(body.len() >= handshake::MAX_HEAD);
                    "too large"
                }
                Err(ReadHeadError::NotHttp) => "not http",
                Err(ReadHeadError::Eof) => {
                    prop_assert!(!body.windows(4).any(|w| w == b"\r\n\r\n"));
                    "eof"
                }
                Err(ReadHeadError::Io(e)) => return Err(TestCaseError::fail(format!("io error from a slice: {e}"))),
            })
        },
        &[("ok", 0.5), ("too large", 0.03), ("not http", 0.02), ("eof", 0.04)],
    );
}

fn url() -> impl Strategy<Value = String> {
    let scheme = prop_oneof![6 => Just("ws://"), 3 => Just("wss://"), 1 => Just("http://"), 1 => Just("")];
    let host = prop_oneof![
        8 => "[a-z][a-z0-9-]{0,12}(\\.[a-z]{2,5}){0,2}",
        1 => Just("127.0.0.1".to_string()),
        1 => Just("[::1]".to_string()),
        1 => Just(String::new()),
    ];
    let port = prop_oneof![6 => (1u16..).prop_map(|p| format!(":{p}")), 2 => Just(String::new()), 1 => Just(":0".to_string()), 1 => Just(":99999".to_string())];
    let seg = prop_oneof![
        3 => Just("{conv}".to_string()),
        2 => Just("{member}".to_string()),
        2 => Just("{user}".to_string()),
        1 => Just("{nope}".to_string()),
        6 => "[a-z0-9_=&?-]{1,8}",
    ];
    (scheme, host, port, proptest::collection::vec(seg, 0..5))
        .prop_map(|(sc, h, p, segs)| format!("{sc}{h}{p}{}", segs.iter().map(|s| format!("/{s}")).collect::<String>()))
}

#[test]
fn url_templates_never_panic() {
    let strategy = (mutated(url().prop_map(String::into_bytes)), any::<u64>(), any::<u32>(), any::<u64>());
    shares(
        "UrlTemplate::parse",
        512,
        strategy,
        |(bytes, conv, member, user)| {
            let s = String::from_utf8_lossy(&bytes);
            Ok(match UrlTemplate::parse(&s) {
                Ok(t) => {
                    let mut out = String::new();
                    t.render_target(&Vars { conv, member, user }, &mut out);
                    prop_assert!(out.starts_with('/'));
                    let clean = !out.contains(char::is_whitespace) && !out.contains(['{', '}']);
                    prop_assert!(clean, "{:?}", out);
                    prop_assert!(!t.host.is_empty(), "{:?} parsed with no host", s);
                    let _ = t.host_header();
                    "parsed"
                }
                Err(e) => {
                    prop_assert!(!e.is_empty());
                    "refused"
                }
            })
        },
        &[("parsed", 0.3), ("refused", 0.1)],
    );
}

fn scenario_text() -> impl Strategy<Value = Vec<u8>> {
    // Values of each key's type, mostly valid ones, some out of range.
    let value = |k: &str| -> BoxedStrategy<String> {
        match k {
            "url" => prop_oneof![Just("\"ws://127.0.0.1:9/conv/{conv}\""), Just("\"ftp://x\"")].prop_map(String::from).boxed(),
            "reconnect" | "quiet" => any::<bool>().prop_map(|b| b.to_string()).boxed(),
            "seed" => any::<u32>().prop_map(|n| n.to_string()).boxed(),
            "cores" => prop_oneof![Just("\"0\""), Just("\"0-1\""), Just("\"9-2\"")].prop_map(String::from).boxed(),
            "duration" | "drain" | "connect-timeout" => {
                prop_oneof![(1u64..20).prop_map(|n| format!("\"{n}s\"")), Just("\"0s\"".to_string())].boxed()
            }
            _ => prop_oneof![6 => (1u64..50).prop_map(|n| n.to_string()), 1 => Just("\"1k\"".to_string()), 1 => Just("0".to_string())]
                .boxed(),
        }
    };
    proptest::collection::btree_set(proptest::sample::select(SCENARIO_KEYS), 0..6)
        .prop_flat_map(move |keys| {
            keys.into_iter().map(|k| value(k).prop_map(move |v| format!("{k} = {v}\n"))).collect::<Vec<_>>()
        })
        .prop_map(|lines| lines.concat().into_bytes())
}

#[test]
fn scenario_files_never_panic() {
    shares(
        "scenario files",
        512,
        mutated(scenario_text()),
        |bytes| {
            let text = String::from_utf8_lossy(&bytes);
            let a = match herd::cli::parse_with_file(&["herd", "run"], &text).map(|c| c.command) {
                Ok(Command::Run(a)) => a,
                Ok(_) => return Err(TestCaseError::fail("herd run parses as run")),
                // Not TOML, or a value its key's flag refuses: named, never a panic.
                Err(ParseError::Setup(_) | ParseError::Clap(_)) => return Ok("not a scenario"),
            };
            Ok(match scenario::resolve(&a, &[0, 1]) {
                Ok(s) => {
                    prop_assert!(s.members >= 2 && s.senders >= 1 && s.senders <= s.members);
                    "resolved"
                }
                Err(e) => {
                    prop_assert_eq!(e.exit_code(), 64, "{}", e);
                    "refused"
                }
            })
        },
        &[("resolved", 0.3), ("refused", 0.1), ("not a scenario", 0.02)],
    );
}
