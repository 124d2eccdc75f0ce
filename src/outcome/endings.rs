//! Honest endings: what a reader of a run's figures must be told when the run did not end
//! cleanly, even though it "completed". Each finding becomes a note in the summary and the
//! results, and makes the run's `verdict` `attention` rather than `clean`.

use crate::outcome::results::RunResult;

/// Standard meanings of close codes a server sends (RFC 6455 section 7.4.1 and the IANA
/// registry), so a note can say why connections ended without the reader looking them up.
pub fn close_code_meaning(code: u16) -> &'static str {
    match code {
        1000 => "normal closure",
        1001 => "going away",
        1002 => "protocol error",
        1003 => "unsupported data",
        1005 => "close frame without a code",
        1006 => "dropped without a close frame",
        1007 => "invalid payload data",
        1008 => "policy violation",
        1009 => "message too big",
        1010 => "mandatory extension",
        1011 => "internal server error",
        1012 => "service restart",
        1013 => "try again later",
        1014 => "bad gateway",
        3000..=3999 => "registered by a library or framework",
        4000..=4999 => "application-defined",
        _ => "not allowed on the wire",
    }
}

/// The notes for a finished run. `pending_at_drain_end` is how many deliveries were still owed
/// when the drain stopped waiting.
pub fn notes(r: &RunResult, pending_at_drain_end: u64) -> Vec<String> {
    let mut out = vec![];
    let s = &r.scenario;
    let m = &r.messages;
    let c = &r.connections;
    let nothing_delivered = m.expected > 0 && m.delivered == 0 && m.sent > 0;
    if nothing_delivered && r.outcome != "aborted" {
        out.push(nothing_delivered_note(r));
    } else if pending_at_drain_end > 0 && r.outcome != "aborted" {
        out.push(format!(
            "the drain ended after {} with {pending_at_drain_end} deliveries still pending: missed ({}) counts \
             messages still in flight as well as lost ones; a longer --drain tells them apart",
            crate::config::units::fmt_duration(s.drain),
            m.missed
        ));
    }
    if s.rate > 0.0 && m.sent == 0 && c.established > 0 {
        let why = if r.phases.send_s < 1.0 / s.rate {
            format!("the sending phase ({:.2}s) was shorter than one message interval", r.phases.send_s)
        } else if m.unsent > 0 {
            format!("{} messages were due but could not be written (sender connections down or not reading)", m.unsent)
        } else {
            "no sender connection was open while sending".to_string()
        };
        out.push(format!("nothing was sent: {why}"));
    }
    if let Some((status, _)) = r.websocket.handshake_statuses.iter().max_by_key(|(_, n)| **n) {
        let body = r.websocket.handshake_body.as_deref().map(|b| format!(", body: \"{b}\"")).unwrap_or_default();
        let hint = if *status == 403 && !r.scenario.protocol.sends_origin() {
            "; no Origin header was sent, and many servers refuse upgrades without one: try --origin URL"
        } else {
            ""
        };
        out.push(format!("the server refused upgrades with HTTP {status}{body}{hint}"));
    }
    if c.established > 0 && c.closed_by_peer * 2 > c.established {
        let codes: Vec<String> = r
            .websocket
            .close_codes_received
            .iter()
            .map(|(code, n)| format!("{code} ({}) x{n}", close_code_meaning(*code)))
            .collect();
        // Said here too: a 1005 or 1006 the server sent would otherwise read like herd's own.
        let invalid = match r.websocket.invalid_close_codes {
            0 => String::new(),
            n => format!("; {n} invalid"),
        };
        out.push(format!(
            "most connections were closed by the peer: {} of {} established{}{invalid}",
            c.closed_by_peer,
            c.established,
            if codes.is_empty() { String::new() } else { format!("; close codes {}", codes.join(", ")) }
        ));
    }
    out
}

/// Messages were sent and owed, and not one reached a member: that is not a matter of the drain
/// (some would have arrived), so say so and name what usually causes it.
fn nothing_delivered_note(r: &RunResult) -> String {
    let m = &r.messages;
    let send = match &r.scenario.protocol.send {
        Some(t) => format!("--send '{}'", t.source),
        None => "the bare payload (no --send envelope)".to_string(),
    };
    let mut causes = vec![format!(
        "the server does not relay this envelope or event to the room's other members (herd sent {send}, \
         preset {}; check --target, --send and --join against what the server expects)",
        r.scenario.protocol.target
    )];
    let marker_missing = r.errors.get("marker_missing").copied().unwrap_or(0);
    for (n, counter) in
        [(r.websocket.unmarked_frames, "websocket.unmarked_frames"), (marker_missing, "errors.marker_missing")]
    {
        if n > 0 {
            causes.push(format!(
                "the server answered with {n} frames without herd's marker ({counter}): it relays something \
                 else, or changes the payload"
            ));
        }
    }
    causes.push(format!(
        "the server holds every message longer than the run waited for it (--drain {}): a longer --drain \
         tells that apart",
        crate::config::units::fmt_duration(r.scenario.drain)
    ));
    format!(
        "no message reached any member: 0 of {} owed deliveries of {} sent messages arrived, so missed ({}) \
         is more than a drain cut short; likely causes: {}",
        m.expected,
        m.sent,
        m.missed,
        causes.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result() -> RunResult {
        let args = crate::config::args::RunArgs::default();
        let s = crate::config::args::resolve(&args, &[0]).unwrap();
        let mut r = RunResult {
            herd_version: "test",
            run_id: "0".into(),
            started_at_unix_s: 0.0,
            scenario: s,
            target: "ws://127.0.0.1:1/conv/{conv}".into(),
            embedded_server: false,
            outcome: "completed".into(),
            stalled_cores: vec![],
            connections: Default::default(),
            messages: Default::default(),
            latency: Default::default(),
            connect: Default::default(),
            errors: Default::default(),
            websocket: Default::default(),
            duration_s: 21.0,
            phases: Default::default(),
            process: Default::default(),
            server: None,
            generator: Default::default(),
            push: None,
            notes: vec![],
            judged: Default::default(),
            shape: None,
            population: None,
            start: None,
            histograms: Default::default(),
            connect_phases: Default::default(),
            tls: None,
        };
        r.phases.send_s = 20.0;
        r.connections.established = 4000;
        r.messages.sent = 20_000;
        r
    }

    #[test]
    fn a_clean_run_has_no_notes() {
        assert!(notes(&result(), 0).is_empty());
    }

    #[test]
    fn pending_deliveries_at_the_drain_end_are_explained() {
        let mut r = result();
        r.messages.missed = 40;
        let n = notes(&r, 30);
        assert_eq!(n.len(), 1);
        assert!(n[0].contains("30 deliveries still pending") && n[0].contains("missed (40)"), "{n:?}");
        assert!(n[0].contains("--drain"), "{n:?}");
        r.outcome = "aborted".into();
        assert!(notes(&r, 30).is_empty(), "an aborted run did not drain; its outcome says so");
    }

    #[test]
    fn nothing_delivered_is_not_called_in_flight_and_names_likely_causes() {
        let mut r = result();
        (r.messages.expected, r.messages.delivered, r.messages.missed) = (9000, 0, 9000);
        r.websocket.unmarked_frames = 2800;
        r.scenario.protocol.send = Some(
            crate::config::template::Text::parse(r#"42["message","{payload}"]"#, &crate::config::template::Var::ALL)
                .unwrap(),
        );
        let n = notes(&r, 9000);
        assert_eq!(n.len(), 1, "{n:?}");
        assert!(n[0].starts_with("no message reached any member: 0 of 9000 owed deliveries"), "{n:?}");
        assert!(!n[0].contains("in flight"), "{n:?}");
        assert!(n[0].contains("longer than the run waited for it (--drain 5s)"), "{n:?}");
        assert!(n[0].contains("does not relay") && n[0].contains(r#"--send '42["message","{payload}"]'"#), "{n:?}");
        assert!(n[0].contains("2800 frames without herd's marker (websocket.unmarked_frames)"), "{n:?}");
        r.websocket.unmarked_frames = 0;
        r.errors.insert("marker_missing".into(), 12);
        assert!(notes(&r, 9000)[0].contains("12 frames without herd's marker (errors.marker_missing)"), "{n:?}");
        // One delivery is enough for the usual drain note.
        (r.messages.delivered, r.messages.missed) = (1, 8999);
        let n = notes(&r, 8999);
        assert!(n.len() == 1 && n[0].contains("still in flight"), "{n:?}");
    }

    #[test]
    fn nothing_sent_says_why() {
        let mut r = result();
        r.messages.sent = 0;
        r.messages.unsent = 12;
        assert!(notes(&r, 0)[0].contains("12 messages were due"), "{:?}", notes(&r, 0));
        r.phases.send_s = 0.2;
        assert!(notes(&r, 0)[0].contains("shorter than one message interval"));
        r.scenario.rate = 0.0;
        assert!(notes(&r, 0).is_empty(), "an idle run sends nothing on purpose");
    }

    #[test]
    fn closed_by_peer_lists_codes_with_meanings() {
        let mut r = result();
        r.connections.closed_by_peer = 3000;
        r.websocket.close_received(1008);
        r.websocket.close_received(4001);
        let n = notes(&r, 0);
        assert!(n[0].contains("3000 of 4000"), "{n:?}");
        assert!(n[0].contains("1008 (policy violation) x1") && n[0].contains("4001 (application-defined) x1"), "{n:?}");
        assert!(!n[0].contains("invalid"), "{n:?}");
        let code = r.websocket.close_frame(Some(crate::ws::frames::CloseSeen::Code(999)), 1002, "Protocol violation");
        r.websocket.close_received(code);
        let n = notes(&r, 0);
        assert!(n[0].contains("999 (not allowed on the wire) x1") && n[0].ends_with("; 1 invalid"), "{n:?}");
        r.connections.closed_by_peer = 2000;
        assert!(notes(&r, 0).is_empty(), "half is not most");
    }
}
