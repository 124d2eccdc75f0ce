//! The WebSocket opening handshake (RFC 6455 section 4) for both ends, as pure functions over
//! bytes, plus a small async reader for the HTTP head.
//!
//! herd does its own upgrade rather than tungstenite's client handshake so that the handshake
//! buffer is freed as soon as the connection is open (tungstenite keeps its 4 KiB handshake
//! buffer as the connection's read buffer), and so that the server can route plain HTTP requests
//! (`/metrics`) on the same port.

use crate::ws::deflate::params::{self, Mode, Params};
use futures_lite::{AsyncRead, AsyncReadExt};
use tungstenite::handshake::derive_accept_key;

/// The most an HTTP head may take, request or response.
pub const MAX_HEAD: usize = 8192;
const MAX_HEADERS: usize = 64;

/// Builds a client upgrade request.
pub fn client_request(host_header: &str, target: &str, key: &str, extra: &[(String, String)]) -> Vec<u8> {
    let mut r = format!(
        "GET {target} HTTP/1.1\r\nHost: {host_header}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    );
    for (k, v) in extra {
        r.push_str(k);
        r.push_str(": ");
        r.push_str(v);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// A fresh Sec-WebSocket-Key from a seed (16 bytes, base64). Keys need to be unpredictable to
/// caches, not secret.
pub fn client_key(seed: u64) -> String {
    use base64::Engine;
    let a = crate::measure::pacing::splitmix64(seed);
    let b = crate::measure::pacing::splitmix64(a);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_le_bytes());
    bytes[8..].copy_from_slice(&b.to_le_bytes());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[derive(Debug, PartialEq, Eq)]
pub enum ResponseError {
    /// The server answered with another status (e.g. 404, 503).
    Status(u16),
    /// Not a valid upgrade answer: bad HTTP, missing or wrong headers, wrong accept key.
    Invalid(String),
}

/// Checks a complete response head against the key sent, when no subprotocol was offered.
pub fn check_response(head: &[u8], key: &str) -> Result<(), ResponseError> {
    check_response_offer(head, key, &[]).map(|_| ())
}

/// Checks a complete response head against the key and the subprotocols offered, with no
/// extension offered; returns the selected subprotocol.
pub fn check_response_offer(head: &[u8], key: &str, offered: &[String]) -> Result<Option<String>, ResponseError> {
    check_response_ext(head, key, offered, Mode::Off).map(|(p, _)| p)
}

/// Checks a complete response head against the key, the subprotocols offered and the
/// permessage-deflate offer `deflate` made; returns the selected subprotocol and the
/// compression parameters in force (`None`: none). An extension that was not offered fails
/// (RFC 6455 section 4.1), as does an answer RFC 7692 makes a client refuse, a subprotocol that
/// was not offered, more than one, or none at all when some were offered (the server would speak
/// something else than asked).
pub fn check_response_ext(
    head: &[u8],
    key: &str,
    offered: &[String],
    deflate: Mode,
) -> Result<(Option<String>, Option<Params>), ResponseError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(ResponseError::Invalid("incomplete HTTP head".into())),
        Err(e) => return Err(ResponseError::Invalid(format!("bad HTTP response: {e}"))),
    }
    let code = resp.code.unwrap_or(0);
    if code != 101 {
        return Err(ResponseError::Status(code));
    }
    let get = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
    };
    if !get("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")) {
        return Err(ResponseError::Invalid("missing 'Upgrade: websocket'".into()));
    }
    if !get("connection").is_some_and(|v| has_token(&v, "upgrade")) {
        return Err(ResponseError::Invalid("missing 'Connection: Upgrade'".into()));
    }
    match get("sec-websocket-accept") {
        Some(a) if a == derive_accept_key(key.as_bytes()) => {}
        Some(_) => return Err(ResponseError::Invalid("wrong Sec-WebSocket-Accept".into())),
        None => return Err(ResponseError::Invalid("missing Sec-WebSocket-Accept".into())),
    }
    let all = |name: &str| -> Vec<String> {
        resp.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .flat_map(|h| String::from_utf8_lossy(h.value).split(',').map(|v| v.trim().to_string()).collect::<Vec<_>>())
            .filter(|v| !v.is_empty())
            .collect()
    };
    let params = params::answered(deflate, &all("sec-websocket-extensions")).map_err(ResponseError::Invalid)?;
    let chosen = all("sec-websocket-protocol");
    let protocol = match (chosen.as_slice(), offered.is_empty()) {
        ([], true) => Ok(None),
        ([], false) => {
            Err(ResponseError::Invalid(format!("no subprotocol selected (offered: {})", offered.join(", "))))
        }
        ([one], false) if offered.contains(one) => Ok(Some(one.clone())),
        _ => Err(ResponseError::Invalid(format!(
            "subprotocol '{}' was not offered (offered: {})",
            chosen.join(", "),
            if offered.is_empty() { "none".to_string() } else { offered.join(", ") }
        ))),
    };
    protocol.map(|p| (p, params))
}

fn has_token(v: &str, token: &str) -> bool {
    v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// A parsed client request, as the server routes it.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// `Some(key)` when this is a valid WebSocket upgrade request.
    pub ws_key: Option<String>,
    /// Why an upgrade request is not valid (wrong version, missing key...).
    pub ws_problem: Option<String>,
    /// The extensions offered (`Sec-WebSocket-Extensions`, every header, comma-split, in order).
    pub extensions: Vec<String>,
}

/// Parses a complete request head.
pub fn parse_request(head: &[u8]) -> Result<Request, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err("incomplete HTTP head".into()),
        Err(e) => return Err(format!("bad HTTP request: {e}")),
    }
    let get = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
    };
    let wants_ws = get("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let (mut ws_key, mut ws_problem) = (None, None);
    if wants_ws {
        if !get("connection").is_some_and(|v| has_token(&v, "upgrade")) {
            ws_problem = Some("missing 'Connection: Upgrade'".into());
        } else if get("sec-websocket-version").as_deref() != Some("13") {
            ws_problem = Some("Sec-WebSocket-Version must be 13".into());
        } else {
            match get("sec-websocket-key") {
                Some(k) if !k.is_empty() => ws_key = Some(k),
                _ => ws_problem = Some("missing Sec-WebSocket-Key".into()),
            }
        }
    }
    let extensions = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-extensions"))
        .flat_map(|h| String::from_utf8_lossy(h.value).split(',').map(|v| v.trim().to_string()).collect::<Vec<_>>())
        .filter(|v| !v.is_empty())
        .collect();
    Ok(Request {
        method: req.method.unwrap_or("").to_string(),
        path: req.path.unwrap_or("").to_string(),
        ws_key,
        ws_problem,
        extensions,
    })
}

/// The server's 101 answer for a key.
pub fn accept_response(key: &str) -> Vec<u8> {
    accept_response_ext(key, None)
}

/// The server's 101 answer for a key, accepting permessage-deflate with `deflate`.
pub fn accept_response_ext(key: &str, deflate: Option<&Params>) -> Vec<u8> {
    let ext = deflate.map(|p| format!("Sec-WebSocket-Extensions: {}\r\n", p.header())).unwrap_or_default();
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n{ext}\r\n",
        derive_accept_key(key.as_bytes())
    )
    .into_bytes()
}

/// A plain HTTP answer that closes the connection.
pub fn http_response(status: u16, reason: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

#[derive(Debug)]
pub enum ReadHeadError {
    Io(std::io::Error),
    /// The peer closed before the head was complete.
    Eof,
    /// The head is longer than [`MAX_HEAD`].
    TooLarge,
    /// A byte no HTTP head holds (a control character, as in a TLS ClientHello): the peer does
    /// not speak HTTP, and waiting for the end of its head would wait for ever.
    NotHttp,
}

/// Whether `b` may appear in an HTTP/1.1 head: visible ASCII, space, tab, CR, LF, and the
/// octets above 0x7f that header values may carry (obs-text).
fn http_head_byte(b: u8) -> bool {
    matches!(b, b'\t' | b'\r' | b'\n' | 0x20..=0x7e | 0x80..=0xff)
}

/// Reads until the end of an HTTP head. Returns the buffer and where the head ends; bytes after
/// that already belong to the WebSocket stream.
pub async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> Result<(Vec<u8>, usize), ReadHeadError> {
    // Sized for the usual 101 answer (130-250 bytes), doubled as needed: every connection in
    // flight holds this buffer until its answer arrives.
    let mut buf = vec![0u8; 256];
    let mut len = 0;
    loop {
        if len == buf.len() {
            if buf.len() >= MAX_HEAD {
                return Err(ReadHeadError::TooLarge);
            }
            buf.resize((buf.len() * 2).min(MAX_HEAD), 0);
        }
        let n = s.read(&mut buf[len..]).await.map_err(ReadHeadError::Io)?;
        if n == 0 {
            return Err(ReadHeadError::Eof);
        }
        // Look for the blank line, starting a little before the new bytes.
        let from = len.saturating_sub(3);
        let new = len;
        len += n;
        let end = buf[from..len].windows(4).position(|w| w == b"\r\n\r\n").map(|i| from + i + 4);
        // Only the head's own bytes: what follows it is the WebSocket stream.
        if !buf[new..end.unwrap_or(len).max(new)].iter().copied().all(http_head_byte) {
            return Err(ReadHeadError::NotHttp);
        }
        if let Some(end) = end {
            buf.truncate(len);
            return Ok((buf, end));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_with_bytes_no_http_head_holds_is_refused_at_once() {
        let read = |b: &'static [u8]| futures_lite::future::block_on(read_head(&mut &b[..]));
        assert!(matches!(read(b"\x16\x03\x01\x00\x04\x01\x00"), Err(ReadHeadError::NotHttp)));
        assert!(matches!(read(b"GET / HTTP/1.1\r\nX: \x00\r\n\r\n"), Err(ReadHeadError::NotHttp)));
        let (buf, end) = read(b"GET / HTTP/1.1\r\nX: caf\xc3\xa9\t1\r\n\r\nrest").unwrap();
        assert_eq!(&buf[end..], b"rest");
    }

    #[test]
    fn client_and_server_agree() {
        let key = client_key(7);
        assert_eq!(key.len(), 24);
        assert_ne!(key, client_key(8));
        let req = client_request("127.0.0.1:80", "/conv/1?user=2", &key, &[("X-Token".into(), "t".into())]);
        let r = parse_request(&req).unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/conv/1?user=2");
        assert_eq!(r.ws_key.as_deref(), Some(key.as_str()));
        assert_eq!(check_response(&accept_response(&key), &key), Ok(()));
        assert!(r.extensions.is_empty());
        // Offers as a browser sends them, over two headers, come back in order.
        let offer = [
            ("Sec-WebSocket-Extensions".to_string(), "permessage-deflate; client_max_window_bits, x-other".to_string()),
            ("sec-websocket-extensions".to_string(), "permessage-deflate".to_string()),
        ];
        let r = parse_request(&client_request("h", "/", &key, &offer)).unwrap();
        assert_eq!(r.extensions, ["permessage-deflate; client_max_window_bits", "x-other", "permessage-deflate"]);
    }

    #[test]
    fn rfc_example_key() {
        // RFC 6455 section 1.3.
        let resp = accept_response("dGhlIHNhbXBsZSBub25jZQ==");
        assert!(String::from_utf8(resp).unwrap().contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    }

    #[test]
    fn bad_responses_are_refused() {
        let key = client_key(1);
        let other = accept_response(&client_key(2));
        assert_eq!(check_response(&other, &key), Err(ResponseError::Invalid("wrong Sec-WebSocket-Accept".into())));
        let nf = http_response(404, "Not Found", "text/plain", b"no");
        assert_eq!(check_response(&nf, &key), Err(ResponseError::Status(404)));
        assert!(matches!(check_response(b"garbage\r\n\r\n", &key), Err(ResponseError::Invalid(_))));
        let no_upgrade = b"HTTP/1.1 101 OK\r\nConnection: Upgrade\r\n\r\n";
        assert!(matches!(check_response(no_upgrade, &key), Err(ResponseError::Invalid(_))));
    }

    #[test]
    fn subprotocols_and_extensions_are_checked() {
        let key = client_key(3);
        let with = |extra: &str| {
            let mut r = String::from_utf8(accept_response(&key)).unwrap();
            r.truncate(r.len() - 2);
            r.push_str(extra);
            r.push_str("\r\n");
            r.into_bytes()
        };
        let offered = vec!["chat.v2".to_string(), "chat.herd".to_string()];
        let ok = with("Sec-WebSocket-Protocol: chat.herd\r\n");
        assert_eq!(check_response_offer(&ok, &key, &offered), Ok(Some("chat.herd".into())));
        let invalid = |head: &[u8], offered: &[String]| match check_response_offer(head, &key, offered) {
            Err(ResponseError::Invalid(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(invalid(&with("Sec-WebSocket-Protocol: other\r\n"), &offered).contains("'other' was not offered"));
        assert!(invalid(&ok, &[]).contains("offered: none"));
        assert!(invalid(&with("Sec-WebSocket-Protocol: chat.v2, chat.herd\r\n"), &offered).contains("not offered"));
        assert!(invalid(&accept_response(&key), &offered).contains("no subprotocol selected"));
        let deflate = with("Sec-WebSocket-Extensions: permessage-deflate\r\n");
        assert!(invalid(&deflate, &[]).contains("permessage-deflate"));
        // Offered, it is read back; an answer RFC 7692 makes a client refuse is invalid.
        let ok = check_response_ext(&deflate, &key, &[], Mode::Browser);
        assert_eq!(ok, Ok((None, Some(Params::default()))));
        let bad = with("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=7\r\n");
        assert!(
            matches!(check_response_ext(&bad, &key, &[], Mode::Lean), Err(ResponseError::Invalid(m)) if m.contains("8-15"))
        );
        // herd's server answer reads back as what it accepted.
        let p = Params { server_no_context_takeover: true, ..Params::default() };
        let answer = accept_response_ext(&key, Some(&p));
        assert_eq!(check_response_ext(&answer, &key, &[], Mode::Lean), Ok((None, Some(p))));
        // Header names are case-insensitive.
        let lower = with("sec-websocket-protocol:chat.v2\r\n");
        assert_eq!(check_response_offer(&lower, &key, &offered), Ok(Some("chat.v2".into())));
    }

    #[test]
    fn plain_and_broken_requests() {
        let r = parse_request(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!((r.path.as_str(), r.ws_key, r.ws_problem), ("/metrics", None, None));
        let r = parse_request(
            b"GET /conv/1 HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Version: 8\r\n\r\n",
        )
        .unwrap();
        assert!(r.ws_problem.unwrap().contains("13"));
        assert!(parse_request(b"\x00\x01\x02\r\n\r\n").is_err());
    }

    #[test]
    fn reads_head_and_keeps_the_rest() {
        let mut data: &[u8] = b"HTTP/1.1 101 X\r\nA: b\r\n\r\n\x81\x02hi";
        let (buf, end) = futures_lite::future::block_on(read_head(&mut data)).unwrap();
        assert_eq!(&buf[end..], b"\x81\x02hi");
        let mut big = vec![b'a'; MAX_HEAD + 10];
        big.extend_from_slice(b"\r\n\r\n");
        let mut s: &[u8] = &big;
        assert!(matches!(futures_lite::future::block_on(read_head(&mut s)), Err(ReadHeadError::TooLarge)));
        let mut short: &[u8] = b"HTTP/1.1 101";
        assert!(matches!(futures_lite::future::block_on(read_head(&mut short)), Err(ReadHeadError::Eof)));
    }
}
