//! A raw WebSocket peer for the tests: hand-made handshakes and frames, including the ones no
//! well-behaved library would send (invalid UTF-8, oversized lengths, forged markers).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// Reads an HTTP head (up to the blank line), byte by byte so nothing after it is consumed.
pub fn read_head(s: &mut impl Read) -> io::Result<String> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.push(b[0]);
        if head.len() > 64 * 1024 {
            return Err(io::ErrorKind::InvalidData.into());
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// The status code of an HTTP response head.
pub fn status(head: &str) -> u16 {
    head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// Connects and sends an upgrade request for `path`; returns the stream and the response head.
pub fn client(addr: &str, path: &str) -> io::Result<(TcpStream, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )?;
    let head = read_head(&mut s)?;
    Ok((s, head))
}

/// Answers a client's upgrade request with 101; returns the request's path.
pub fn server_accept(s: &mut TcpStream) -> io::Result<String> {
    let head = read_head(s)?;
    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
    let key = header(&head, "sec-websocket-key").unwrap_or_default();
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    write!(
        s,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    )?;
    Ok(path)
}

pub fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// A frame header claiming `len` payload bytes; client frames (`masked`) get a zero mask.
pub fn header_bytes(fin: bool, opcode: u8, len: u64, masked: bool) -> Vec<u8> {
    let mut h = vec![(if fin { 0x80 } else { 0 }) | (opcode & 0x0f)];
    let m = if masked { 0x80 } else { 0 };
    if len < 126 {
        h.push(m | len as u8);
    } else if len <= 0xffff {
        h.push(m | 126);
        h.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        h.push(m | 127);
        h.extend_from_slice(&len.to_be_bytes());
    }
    if masked {
        h.extend_from_slice(&[0, 0, 0, 0]); // a zero mask leaves the payload as is
    }
    h
}

/// A whole frame.
pub fn frame(opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut f = header_bytes(true, opcode, payload.len() as u64, masked);
    f.extend_from_slice(payload);
    f
}

pub fn write_frame(s: &mut impl Write, opcode: u8, payload: &[u8], masked: bool) -> io::Result<()> {
    s.write_all(&frame(opcode, payload, masked))
}

/// A close frame's payload: the code and a reason.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    p
}

#[derive(Debug)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The code of a close frame.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == CLOSE && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// Reads one frame (masked or not), refusing payloads over `max` bytes.
pub fn read_frame(s: &mut impl Read, max: u64) -> io::Result<Frame> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h)?;
    let masked = h[1] & 0x80 != 0;
    let mut len = (h[1] & 0x7f) as u64;
    if len == 126 {
        let mut b = [0u8; 2];
        s.read_exact(&mut b)?;
        len = u16::from_be_bytes(b) as u64;
    } else if len == 127 {
        let mut b = [0u8; 8];
        s.read_exact(&mut b)?;
        len = u64::from_be_bytes(b);
    }
    if len > max {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes")));
    }
    let mut mask = [0u8; 4];
    if masked {
        s.read_exact(&mut mask)?;
    }
    let mut payload = vec![0u8; len as usize];
    s.read_exact(&mut payload)?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    Ok(Frame { fin: h[0] & 0x80 != 0, opcode: h[0] & 0x0f, payload })
}

/// Reads frames until a close frame, EOF or an error; returns the close code if one came.
pub fn wait_close(s: &mut impl Read) -> Option<u16> {
    loop {
        match read_frame(s, 1 << 24) {
            Ok(f) if f.opcode == CLOSE => return Some(f.close_code().unwrap_or(1005)),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// Reads until EOF or an error (a reset); true if that happened before the read timeout.
pub fn reaches_eof(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => return false,
            Err(_) => return true,
        }
    }
}
