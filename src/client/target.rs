//! Where and how a run's connections connect ([`Target`], shared by every connection of a
//! core), and the stream type of an open connection ([`Ws`]).

use crate::config::protocol::{self as proto, tokens::Tokens};
use crate::config::template::UrlTemplate;
use crate::runtime::net::Socket;
use crate::tls;
use crate::ws::frames::CloseWatch;
use async_tungstenite::WebSocketStream;
use std::io;
use std::net::SocketAddr;
use tungstenite::protocol::WebSocketConfig;

/// The server's close codes are read off the plaintext stream (`CloseWatch`), since tungstenite
/// reports a code not allowed on the wire as 1002.
pub type Ws = WebSocketStream<CloseWatch<tls::Stream<Socket>>>;

/// Where and how to connect; shared by every connection of a core.
pub struct Target {
    pub template: UrlTemplate,
    /// The server's address (resolved once).
    pub addr: SocketAddr,
    pub ws_config: WebSocketConfig,
    /// Templates, subprotocols, keep-alive settings (parsed once per run).
    pub protocol: proto::Protocol,
    /// `--tokens`, read once per run.
    pub tokens: Tokens,
    /// SO_SNDBUF / SO_RCVBUF for every connection (`--sndbuf`, `--rcvbuf`); `None`: the kernel's
    /// autotuning.
    pub sndbuf: Option<usize>,
    pub rcvbuf: Option<usize>,
    /// wss://: the TLS client every connection of the run shares.
    pub tls: Option<std::sync::Arc<tls::Client>>,
    /// `--deflate`: the permessage-deflate offer.
    pub deflate: crate::ws::deflate::Mode,
}

impl Target {
    pub fn new(template: UrlTemplate, max_frame: usize, read_buffer: usize) -> io::Result<Target> {
        use std::net::ToSocketAddrs;
        let addr = (template.host.as_str(), template.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "host has no address"))?;
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(read_buffer)
            .write_buffer_size(0)
            .max_message_size(Some(max_frame))
            .max_frame_size(Some(max_frame));
        Ok(Target {
            template,
            addr,
            ws_config,
            protocol: proto::Protocol::default(),
            tokens: Tokens::default(),
            sndbuf: None,
            rcvbuf: None,
            tls: None,
            deflate: crate::ws::deflate::Mode::Off,
        })
    }
}
