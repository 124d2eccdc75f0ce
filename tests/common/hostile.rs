//! A tiny misbehaving chat server for the tests (blocking threads, loopback, port 0). Paths are
//! `/{mode}/{conv}/{member}`; member 0 of each conversation sends, the others receive. It relays
//! what senders send, and misbehaves by mode:
//!
//! - `mix`: by conversation — 0 relays faithfully; 1 relays as binary frames after a junk
//!   binary frame; 2 sends a frame without a marker and a frame of forged markers (other run,
//!   conversation out of range, sender out of range, sequence out of range, truncated) before
//!   each relay; 3 relays two messages, then sends invalid UTF-8; 4 relays two, then starts a
//!   frame far over any sane `--max-frame`; 5 closes each receiver right after its handshake;
//!   6 answers each receiver's upgrade with a wrong `Sec-WebSocket-Accept`.
//! - `storm`: closes each receiver right after its handshake (a close storm with `--reconnect`).
//! - `replay`: like a server with history: closes each receiver (1001) after every 10th message
//!   it relays to it and, when it comes back, first replays the room's history.
//! - `random`: before each relay, sends each receiver a few random frames from a seeded
//!   generator (see [`random_frames`]): junk text and binary, forged markers, pings, pongs,
//!   reserved opcodes, stray continuations, invalid UTF-8, oversized lengths, closes.
//! - `deaf`: completes handshakes and then never reads another byte.
//! - `linger`: sends each receiver a close frame (4321) right after its handshake, then holds
//!   the TCP connection open without reading: no FIN, ever.
//! - `silent`: accepts TCP and never answers the upgrade.
//! - `close-CODE` (e.g. `close-999`): right after its handshake, sends each receiver, in one
//!   write, a ping and a 300-byte text frame without a marker (both carrying bytes that look like
//!   a close frame), then a close frame with CODE, whatever RFC 6455 says of it; `close-half`
//!   sends a close frame whose payload is a single byte instead.

use super::raw::{self, BINARY, CLOSE, TEXT};
use std::collections::HashMap;
use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

type Peer = Arc<Mutex<TcpStream>>;

#[derive(Default)]
struct Room {
    /// Receivers now: (member, stream, messages relayed to it).
    receivers: Vec<(u32, Peer, u64)>,
    relayed: u64,
    history: Vec<Vec<u8>>,
}

#[derive(Default)]
struct State {
    rooms: Mutex<HashMap<(String, u64), Room>>,
    /// Every accepted stream, to unblock their threads on drop.
    all: Mutex<Vec<TcpStream>>,
}

pub struct Hostile {
    pub addr: String,
    stop: Arc<AtomicBool>,
    state: Arc<State>,
    accept: Option<JoinHandle<()>>,
}

impl Hostile {
    pub fn start() -> Hostile {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(State::default());
        let (st, sp) = (state.clone(), stop.clone());
        let accept = std::thread::spawn(move || {
            while !sp.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_nonblocking(false);
                        if let Ok(c) = s.try_clone() {
                            st.all.lock().unwrap().push(c);
                        }
                        let (st, sp) = (st.clone(), sp.clone());
                        std::thread::spawn(move || handle(s, st, sp));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Hostile { addr, stop, state, accept: Some(accept) }
    }

    pub fn url(&self, mode: &str) -> String {
        format!("ws://{}/{mode}/{{conv}}/{{member}}", self.addr)
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for s in self.state.all.lock().unwrap().iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn send(p: &Peer, opcode: u8, payload: &[u8]) {
    let _ = raw::write_frame(&mut *p.lock().unwrap(), opcode, payload, false);
}

fn handle(mut s: TcpStream, st: Arc<State>, stop: Arc<AtomicBool>) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(head) = raw::read_head(&mut s) else { return };
    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let [mode, conv, member] = parts[..] else { return };
    let (mode, conv, member) = (mode.to_string(), conv.parse::<u64>().unwrap_or(0), member.parse::<u32>().unwrap_or(0));
    if mode == "silent" {
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
        return;
    }
    let key = raw::header(&head, "sec-websocket-key").unwrap_or_default();
    let accept = if mode == "mix" && conv == 6 && member > 0 {
        "d3JvbmcgYWNjZXB0IGtleSE=".to_string()
    } else {
        tungstenite::handshake::derive_accept_key(key.as_bytes())
    };
    let ok = write!(
        s,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    if ok.is_err() || (mode == "mix" && conv == 6 && member > 0) {
        return;
    }
    let _ = s.set_read_timeout(None);
    let me: Peer = Arc::new(Mutex::new(s.try_clone().unwrap()));
    if mode == "linger" && member > 0 {
        send(&me, CLOSE, &raw::close_payload(4321, "going, not gone"));
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
        return;
    }
    if member > 0 {
        let mut rooms = st.rooms.lock().unwrap();
        let room = rooms.entry((mode.clone(), conv)).or_default();
        if mode == "replay" {
            for h in &room.history {
                send(&me, TEXT, h);
            }
        }
        room.receivers.push((member, me.clone(), 0));
    }
    let close_with = mode.strip_prefix("close-").filter(|_| member > 0);
    let closed_by_us = member > 0 && (mode == "storm" || (mode == "mix" && conv == 5)) || close_with.is_some();
    if let Some(code) = close_with {
        let mut out = raw::frame(raw::PING, b"\x88\x02\x03\xe7", false);
        out.extend(raw::frame(TEXT, "\u{88}\u{2}\u{3}".repeat(75).as_bytes(), false));
        match code.parse::<u16>() {
            Ok(code) => out.extend(raw::frame(CLOSE, &raw::close_payload(code, "closing"), false)),
            Err(_) => out.extend(raw::frame(CLOSE, b"\x03", false)),
        }
        let _ = me.lock().unwrap().write_all(&out);
    } else if closed_by_us {
        send(&me, CLOSE, &raw::close_payload(1000, "storm"));
    }
    if mode == "deaf" {
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
        return;
    }
    while let Ok(f) = raw::read_frame(&mut s, 1 << 24) {
        match f.opcode {
            TEXT if member == 0 => relay(&st, &mode, conv, &f.payload),
            CLOSE => {
                let answered_already = closed_by_us || (mode == "replay" && member > 0);
                if !answered_already {
                    send(&me, CLOSE, &f.payload);
                }
                break;
            }
            _ => {}
        }
    }
    let mut rooms = st.rooms.lock().unwrap();
    if let Some(room) = rooms.get_mut(&(mode, conv)) {
        room.receivers.retain(|(_, p, _)| !Arc::ptr_eq(p, &me));
    }
    // The server ends the TCP connection after the close handshake.
    let _ = s.shutdown(Shutdown::Both);
}

fn relay(st: &State, mode: &str, conv: u64, msg: &[u8]) {
    let mut run = 0u32;
    herd::measure::marker::find_all(msg, |m| {
        if let Ok(m) = m {
            run = m.run;
        }
    });
    let mut rooms = st.rooms.lock().unwrap();
    let room = rooms.entry((mode.to_string(), conv)).or_default();
    room.relayed += 1;
    let n = room.relayed;
    if mode == "replay" && room.history.len() < 10_000 {
        room.history.push(msg.to_vec());
    }
    let mut gone = vec![];
    for (i, (_, p, count)) in room.receivers.iter_mut().enumerate() {
        match (mode, conv) {
            ("mix", 1) => {
                send(p, BINARY, b"\x00\x01 junk without a marker");
                send(p, BINARY, msg);
            }
            ("mix", 2) => {
                send(p, TEXT, b"no marker in here");
                let forged = format!(
                    "~h1.{:x}.{conv:x}.0.0.1.1~ ~h1.{run:x}.3e7.0.0.1.1~ ~h1.{run:x}.{conv:x}.5.0.1.1~ \
                     ~h1.{run:x}.{conv:x}.0.10000000000.1.1~ ~h1.{run:x}.{conv:x}.0",
                    run ^ 1
                );
                send(p, TEXT, forged.as_bytes());
                send(p, TEXT, msg);
            }
            ("mix", 3) if n == 3 => send(p, TEXT, b"\xff\xfe not UTF-8 \xc3\x28"),
            ("mix", 4) if n == 3 => {
                let mut g = p.lock().unwrap();
                let _ = g.write_all(&raw::header_bytes(true, TEXT, 64 << 20, false));
                let _ = g.write_all(&[b'a'; 1000]);
            }
            ("mix", 3) | ("mix", 4) if n > 3 => {}
            ("random", _) => {
                let seed = random_seed() ^ conv.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ n;
                let mut g = p.lock().unwrap();
                let _ = g.write_all(&random_frames(seed, run, conv));
                let _ = raw::write_frame(&mut *g, TEXT, msg, false);
            }
            _ => send(p, TEXT, msg),
        }
        *count += 1;
        if mode == "replay" && *count % 10 == 0 {
            send(p, CLOSE, &raw::close_payload(1001, "come back later"));
            gone.push(i);
        }
    }
    for i in gone.into_iter().rev() {
        room.receivers.remove(i);
    }
}

/// The generator's seed: `HERD_FUZZ_SEED` or a fixed default, so a failure can be replayed.
pub fn random_seed() -> u64 {
    std::env::var("HERD_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5eed)
}

/// One to four random server frames. Forged markers always name another run or a sequence
/// number no sender reaches, so a correct client counts them as errors, never as deliveries.
pub fn random_frames(seed: u64, run: u32, conv: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = vec![];
    for _ in 0..1 + rnd() % 4 {
        let len = (rnd() % 200) as usize;
        let junk: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
        let forged = format!(
            "x~h1.{:x}.{:x}.{:x}.{:x}.{:x}.{:x}~y",
            if rnd() % 2 == 0 { run ^ (1 + (rnd() as u32 % 7)) } else { run },
            if rnd() % 2 == 0 { conv } else { rnd() },
            rnd() % 3,
            (1u64 << 40) + rnd() % 1000,
            rnd(),
            rnd()
        );
        match rnd() % 100 {
            0..=24 => out.extend(raw::frame(TEXT, forged.as_bytes(), false)),
            25..=44 => out.extend(raw::frame(TEXT, &forged.as_bytes()[..(rnd() as usize % forged.len())], false)),
            45..=59 => out.extend(raw::frame(BINARY, &junk, false)),
            60..=69 => out.extend(raw::frame(raw::PING, &junk[..len.min(125)], false)),
            70..=79 => out.extend(raw::frame(raw::PONG, &junk[..len.min(125)], false)),
            80..=89 => {
                // A message in fragments, with a marker-like prefix split across them.
                let text = format!("{forged}{}", "-".repeat(len));
                let cut = rnd() as usize % text.len();
                out.extend(raw::header_bytes(false, TEXT, cut as u64, false));
                out.extend(&text.as_bytes()[..cut]);
                out.extend(raw::header_bytes(true, 0, (text.len() - cut) as u64, false));
                out.extend(&text.as_bytes()[cut..]);
            }
            // The rest end the connection (a client with --reconnect comes back).
            90..=91 => out.extend(raw::frame(TEXT, b"\xff\xfe\xfd", false)),
            92..=93 => out.extend(raw::frame(3 + (rnd() % 5) as u8, &junk, false)),
            94..=95 => out.extend(raw::frame(0, &junk, false)),
            96..=97 => out.extend(raw::header_bytes(true, TEXT, 1 << 40, false)),
            _ => out.extend(raw::frame(CLOSE, &raw::close_payload(1000 + (rnd() % 4000) as u16, "bye"), false)),
        }
    }
    out
}
