//! Frame boundaries of one direction of a stream, for the permessage-deflate codec: headers read
//! as they come (cut anywhere by reads) and written, payloads passed through or collected whole,
//! masking. Pure, no I/O.

/// A frame header as read: first byte, mask key (if masked), payload length.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Header {
    pub(super) b0: u8,
    pub(super) key: Option<[u8; 4]>,
    pub(super) len: u64,
    /// The header's length on the wire (2-14 bytes).
    pub(super) size: u8,
}

impl Header {
    pub(super) fn fin(&self) -> bool {
        self.b0 & 0x80 != 0
    }
    pub(super) fn rsv1(&self) -> bool {
        self.b0 & 0x40 != 0
    }
    pub(super) fn rsv23(&self) -> bool {
        self.b0 & 0x30 != 0
    }
    pub(super) fn opcode(&self) -> u8 {
        self.b0 & 0x0f
    }

    /// Writes a header for a payload of `len` bytes.
    pub(super) fn write(b0: u8, key: Option<[u8; 4]>, len: usize, out: &mut Vec<u8>) {
        out.push(b0);
        let m = if key.is_some() { 0x80 } else { 0 };
        match len {
            n if n < 126 => out.push(m | n as u8),
            n if n <= 0xffff => {
                out.push(m | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(m | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if let Some(k) = key {
            out.extend_from_slice(&k);
        }
    }
}

/// Masks (or unmasks) `p` in place with `key`, from the payload's first byte.
pub(super) fn mask(p: &mut [u8], key: [u8; 4]) {
    for (i, b) in p.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// A payload as sent: unmasked into `plain` when it came masked.
pub(super) fn unmasked<'a>(payload: &'a [u8], key: Option<[u8; 4]>, plain: &'a mut Vec<u8>) -> &'a [u8] {
    match key {
        Some(k) => {
            plain.extend_from_slice(payload);
            mask(plain, k);
            plain
        }
        None => payload,
    }
}

/// Writes a whole frame: its header, and its payload masked with `key` if given.
pub(super) fn write_frame(b0: u8, key: Option<[u8; 4]>, payload: &[u8], out: &mut Vec<u8>) {
    Header::write(b0, key, payload.len(), out);
    let at = out.len();
    out.extend_from_slice(payload);
    if let Some(k) = key {
        mask(&mut out[at..], k);
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) enum State {
    /// Reading a header (this many bytes of it so far).
    #[default]
    Head,
    /// Copying a payload through: this many bytes to go.
    Pass(u64),
    /// Collecting a payload to rewrite: this many bytes to go.
    Collect(u64),
}

/// Frame boundaries of one direction of the stream.
#[derive(Default)]
pub(super) struct Walk {
    pub(super) state: State,
    pub(super) head: [u8; 14],
    pub(super) have: u8,
    /// The frame being collected.
    pub(super) frame: Header,
    /// Its payload so far, when it did not come whole in one piece.
    pub(super) held: Vec<u8>,
}

/// What a walk over a direction's bytes found next.
pub(super) enum Piece<'a> {
    /// A whole header: the caller sets the walk to pass its payload or to collect it.
    Header(Header),
    /// Payload bytes passed through.
    Pass(&'a [u8]),
    /// A collected payload, whole: from the input itself when it came in one piece.
    Payload(std::borrow::Cow<'a, [u8]>),
}

impl Walk {
    /// The next piece at the start of `input` (which it advances past it); `None` once `input`
    /// is used up.
    pub(super) fn next<'a>(&mut self, input: &mut &'a [u8]) -> Option<Piece<'a>> {
        while !input.is_empty() {
            match self.state {
                State::Head => {
                    let (used, h) = self.header(input);
                    *input = &input[used..];
                    if let Some(h) = h {
                        return Some(Piece::Header(h));
                    }
                }
                State::Pass(left) => {
                    let (now, rest) = input.split_at(left.min(input.len() as u64) as usize);
                    *input = rest;
                    let left = left - now.len() as u64;
                    self.state = if left == 0 { State::Head } else { State::Pass(left) };
                    return Some(Piece::Pass(now));
                }
                State::Collect(left) => {
                    let (now, rest) = input.split_at(left.min(input.len() as u64) as usize);
                    *input = rest;
                    let left = left - now.len() as u64;
                    if left > 0 {
                        self.held.extend_from_slice(now);
                        self.state = State::Collect(left);
                        continue;
                    }
                    self.state = State::Head;
                    if self.held.is_empty() {
                        return Some(Piece::Payload(now.into()));
                    }
                    self.held.extend_from_slice(now);
                    return Some(Piece::Payload(std::mem::take(&mut self.held).into()));
                }
            }
        }
        None
    }

    /// Nothing of a frame held: at a header's first byte.
    pub(super) fn idle(&self) -> bool {
        self.state == State::Head && self.have == 0 && self.held.is_empty()
    }

    /// Takes header bytes from `input`; returns how many, and the header once whole.
    pub(super) fn header(&mut self, input: &[u8]) -> (usize, Option<Header>) {
        let mut used = 0;
        loop {
            let have = usize::from(self.have);
            let need = if have < 2 {
                2
            } else {
                let ext = match self.head[1] & 0x7f {
                    126 => 2,
                    127 => 8,
                    _ => 0,
                };
                2 + ext + if self.head[1] & 0x80 != 0 { 4 } else { 0 }
            };
            if have == need {
                self.have = 0;
                let h = &self.head;
                let (len, at) = match h[1] & 0x7f {
                    126 => (u64::from(u16::from_be_bytes([h[2], h[3]])), 4),
                    127 => (u64::from_be_bytes(h[2..10].try_into().expect("8 bytes")), 10),
                    n => (u64::from(n), 2),
                };
                let key = (h[1] & 0x80 != 0).then(|| [h[at], h[at + 1], h[at + 2], h[at + 3]]);
                return (used, Some(Header { b0: h[0], key, len, size: need as u8 }));
            }
            if used == input.len() {
                return (used, None);
            }
            let take = (need - have).min(input.len() - used);
            self.head[have..have + take].copy_from_slice(&input[used..used + take]);
            self.have += take as u8;
            used += take;
        }
    }

    /// The last header's bytes as they came, for a frame passed through.
    pub(super) fn raw_head(&self, h: &Header, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.head[..usize::from(h.size)]);
    }
}
