//! Network fuzzing of herd run's frame handling: a server (tests/common/hostile.rs, mode
//! `random`) sends every receiver seeded random frames between real relays: forged and cut
//! markers, junk, pings, fragments, invalid UTF-8, reserved opcodes, oversized lengths, closes.
//! herd must finish, write its results, and keep its accounting: nothing forged is ever a
//! delivery, nothing is delivered twice.
//!
//! `HERD_FUZZ_SEED` picks the generator's seed; `HERD_FUZZ_CONVS` the number of conversations
//! (each a separate random stream) and `HERD_FUZZ_SECS` the run's length (benches/fuzz.sh).

mod common;
use common::hostile::Hostile;
use common::*;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn random_server_frames_never_crash_herd_nor_bend_its_accounting() {
    let srv = Hostile::start();
    let dir = tempfile::tempdir().unwrap();
    let url = srv.url("random");
    let convs = env("HERD_FUZZ_CONVS", 24).to_string();
    let secs = format!("{}s", env("HERD_FUZZ_SECS", 2));
    let (_, v) = run_herd(
        dir.path(),
        &[
            "--url",
            &url,
            "-c",
            &convs,
            "-k",
            "3",
            "--rate",
            "10",
            "-d",
            &secs,
            "--drain",
            "1s",
            "--reconnect",
            "--max-frame",
            "64k",
        ],
    );
    let (expected, delivered) = (u(&v, "messages.expected"), u(&v, "messages.delivered"));
    assert!(delivered > 0, "{v}");
    assert!(delivered <= expected, "{v}");
    assert_eq!(u(&v, "messages.duplicated"), 0, "{v}");
    // Every message due went out (reconnecting senders catch up), and each was owed to both
    // receivers of its conversation unless that receiver was away at the time.
    let sent = u(&v, "messages.sent");
    assert_eq!(sent + u(&v, "messages.unsent"), env("HERD_FUZZ_CONVS", 24) * 10 * env("HERD_FUZZ_SECS", 2), "{v}");
    assert_eq!(expected + u(&v, "messages.missed_while_away"), 2 * sent, "{}", v["messages"]);
    // Forged markers are errors by category, never deliveries.
    for forged in ["marker_foreign", "marker_malformed", "marker_out_of_range"] {
        assert!(u(&v, &format!("errors.{forged}")) > 0, "{forged}: {}", v["errors"]);
    }
    let errors: u64 = v["errors"].as_object().unwrap().values().map(|x| x.as_u64().unwrap()).sum();
    assert!(errors > 0, "the random frames were counted: {}", v["errors"]);
    eprintln!("seed {} errors {}", common::hostile::random_seed(), v["errors"]);
}
