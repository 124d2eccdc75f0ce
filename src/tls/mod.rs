//! TLS for `wss://` (client) and `herd serve --tls-cert` (server), with rustls over any
//! `AsyncRead + AsyncWrite + Unpin` socket (futures-rustls), so the default build needs no
//! OpenSSL.
//!
//! - `args.rs`: the flags and their resolved form;
//! - `client.rs`: the client configuration and handshake;
//! - `lean.rs`: the client stream, holding no TLS buffers while idle;
//! - `server.rs`: the server configuration and accept;
//! - `certs.rs`: PEM files, self-signed certificates, certificate descriptions;
//! - `verify.rs`: certificate checks, `--insecure`, failure categories;
//! - `pin.rs`: `--ca` certificates accepted as the server's own (self-signed `CA:TRUE`);
//! - `stream.rs`: a plain-or-TLS stream for the WebSocket layer.

pub mod args;
pub mod certs;
pub mod client;
pub mod lean;
pub mod pin;
pub mod server;
pub mod stream;
pub mod verify;

pub use args::{ClientOptions, ServeTlsArgs, TlsArgs, Version};
pub use client::Client;
pub use stream::Stream;
