//! What a serving connection does with what its stream gave, for the grid's connections
//! (`conn.rs`) and a population's (`rooms/conn.rs`) alike: data frames go to the caller's
//! accounting, frames to answer and failures come back as a [`Got`] for the caller to act on
//! once it may wait. Nothing here waits, so nothing of a frame is held across a connection's
//! waits (which would size every connection's task).

use super::direct::{self, Read};
use super::session;
use super::target::{Target, Ws};
use crate::config::protocol::steps::Automatic;
use crate::config::protocol::Unmarked;
use crate::measure::marker::{self, DecodeError, Marker};
use crate::measure::stats::{CoreStats, ErrorKind};
use crate::ws::wire;
use std::cell::RefCell;
use tungstenite::Message;

/// What the caller does next.
pub enum Got {
    Next,
    /// Answer this frame (`--reply`, `--pong-frame` matching).
    Answer(Automatic),
    /// Fail the connection with this close code (herd's close goes out), ending it so.
    Fail(ErrorKind, u16),
    /// The peer's close frame arrived: the connection is over, the socket still open for the
    /// echo tungstenite queued and the peer's end of TCP.
    PeerClosed,
    /// The stream ended or broke (with the error's category).
    Gone(Option<ErrorKind>),
}

/// A connection's wire state while it serves.
#[derive(Default)]
pub struct Wire {
    pub awaiting_pong: bool,
    /// Reading data frames past tungstenite (`direct.rs`): from tungstenite's first wait with
    /// nothing of the stream left in it.
    pub direct: bool,
}

/// The largest message a connection takes (`--max-frame`).
pub fn max_frame(t: &Target) -> usize {
    let c = &t.ws_config;
    c.max_frame_size.unwrap_or(usize::MAX).min(c.max_message_size.unwrap_or(usize::MAX))
}

/// Handles what the stream gave: `deliver(payload, received_ns)` for each chat message.
pub fn on_read(
    t: &Target,
    stats: &RefCell<CoreStats>,
    read_buf: &RefCell<Vec<u8>>,
    ws: &mut Ws,
    read: Read,
    w: &mut Wire,
    mut deliver: impl FnMut(&[u8], u64),
) -> Got {
    let frame = match read {
        Read::Direct(n) => {
            // When the read's last bytes reached this host (the kernel's stamp).
            let now = rx_time(ws);
            let buf = read_buf.borrow();
            let taken = direct::take_data_frames(&buf[..n], max_frame(t), |binary, payload| {
                if binary {
                    if !t.protocol.binary {
                        stats.borrow_mut().counters.error(ErrorKind::BinaryFrame);
                    }
                } else if session::answers(t, payload) {
                    // A frame to answer (`--reply`, `--pong-frame`): left to tungstenite's path.
                    return false;
                }
                deliver(payload, now);
                true
            });
            if taken < n {
                ws.get_mut().hand_over(&buf[taken..n]);
                w.direct = false;
            }
            return Got::Next;
        }
        Read::Frame(f) => f,
    };
    match frame {
        Some(Ok(msg)) => {
            // Automatic replies and pong matching: such frames are answered and are not chat
            // messages.
            if let Some(auto) = session::automatic(t, &msg, &mut w.awaiting_pong, stats) {
                return Got::Answer(auto);
            }
            // When the frame's last bytes reached this host (the kernel's stamp), not when this
            // task got to it.
            let now = rx_time(ws);
            match &msg {
                Message::Text(s) => deliver(s.as_bytes(), now),
                Message::Binary(b) => {
                    if !t.protocol.binary {
                        stats.borrow_mut().counters.error(ErrorKind::BinaryFrame);
                    }
                    deliver(b, now);
                }
                // tungstenite answers pings and queues the echo of a close frame.
                Message::Ping(_) => stats.borrow_mut().counters.wire.pings_received += 1,
                Message::Pong(_) => {
                    w.awaiting_pong = false;
                    stats.borrow_mut().counters.wire.pongs_received += 1;
                }
                Message::Close(f) => {
                    let wire = &mut stats.borrow_mut().counters.wire;
                    let code = session::peer_close(wire, ws, f.as_ref());
                    wire.close_received(code);
                    return Got::PeerClosed;
                }
                Message::Frame(_) => {}
            }
            Got::Next
        }
        None => {
            stats.borrow_mut().counters.wire.close_received(wire::ABNORMAL);
            Got::Gone(None)
        }
        Some(Err(e)) => {
            let (kind, code) = session::failure(&e);
            let mut s = stats.borrow_mut();
            s.counters.wire.close_failed(ws.get_ref().close());
            match code {
                Some(code) => Got::Fail(kind, code),
                None => {
                    s.counters.wire.close_received(wire::ABNORMAL);
                    Got::Gone(Some(kind))
                }
            }
        }
    }
}

/// When the last frame's bytes reached this host (the kernel's stamp), or now.
pub fn rx_time(ws: &Ws) -> u64 {
    match ws.get_ref().get_ref().get_ref().rx_ns() {
        0 => crate::measure::clock::now_ns(),
        t => t,
    }
}

/// Calls `owed(stats, marker)` for each of this run's markers in a chat message; a malformed
/// marker, another run's, and a message with none (per `--unmarked`) are counted here. What
/// the marker names is the caller's to check (its conversation or rooms, its senders).
pub fn each_marker(
    t: &Target,
    stats: &RefCell<CoreStats>,
    run_id: u32,
    frame: &[u8],
    mut owed: impl FnMut(&mut CoreStats, Marker),
) {
    let mut stats = stats.borrow_mut();
    let found = marker::find_all(frame, |r| match r {
        Err(DecodeError::Truncated) | Err(DecodeError::Malformed) => stats.counters.error(ErrorKind::MarkerMalformed),
        Ok(m) if m.run != run_id => stats.counters.error(ErrorKind::MarkerForeign),
        Ok(m) => owed(&mut stats, m),
    });
    if found == 0 {
        match t.protocol.unmarked {
            Unmarked::Error => stats.counters.error(ErrorKind::MarkerMissing),
            Unmarked::Ignore => stats.counters.wire.unmarked_frames += 1,
        }
    }
}
