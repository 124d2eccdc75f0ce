//! The client side: one rustls `ClientConfig` per run (roots, `--insecure`, client certificate,
//! ALPN `http/1.1`, session resumption), and the handshake on a connected socket.

use super::certs;
use super::lean::LeanClient;
use super::pin::Pins;
use super::verify::{self, Rejections, Verifier};
use super::ClientOptions;
use crate::measure::stats::ErrorKind;
use futures_lite::{AsyncRead, AsyncWrite};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::HandshakeKind;
use rustls::{ClientConfig, RootCertStore};
use std::sync::Arc;

/// Sessions kept for resumption: rustls keeps up to 8 TLS 1.3 tickets (and one TLS 1.2 session)
/// per server name, for this many names.
const SESSION_CACHE_NAMES: usize = 64;

/// A run's TLS client: the configuration every connection shares and the name it verifies.
pub struct Client {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    /// Certificates the verifier rejected, for the run's notes.
    pub rejections: Arc<Rejections>,
}

impl Client {
    /// `host` is the URL's host: the SNI name (not sent for an IP address) and the name the
    /// certificate must carry. `trusted` adds roots (the embedded server's certificate).
    pub fn new(o: &ClientOptions, host: &str, trusted: &[CertificateDer<'static>]) -> Result<Client, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&rustls::SupportedProtocolVersion] = match o.version {
            Some(super::Version::Tls12) => &[&rustls::version::TLS12],
            Some(super::Version::Tls13) => &[&rustls::version::TLS13],
            None => rustls::DEFAULT_VERSIONS,
        };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| format!("--tls-version: {e}"))?;
        let rejections = Arc::new(Rejections::default());
        let verifier = if o.insecure {
            Verifier::insecure(provider)
        } else {
            let (roots, pins) = roots(o, trusted)?;
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| format!("--ca: {e}"))?;
            Verifier::webpki(webpki, pins, provider, rejections.clone())
        };
        let builder = builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier));
        let mut config = match (&o.client_cert, &o.client_key) {
            (Some(c), Some(k)) => builder
                .with_client_auth_cert(certs::load_certs(c, "--client-cert")?, certs::load_key(k, "--client-key")?)
                .map_err(|e| format!("--client-key: does not match --client-cert: {e}"))?,
            (None, None) => builder.with_no_client_auth(),
            _ => return Err("--client-cert and --client-key go together".into()),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.resumption =
            if o.resume { Resumption::in_memory_sessions(SESSION_CACHE_NAMES) } else { Resumption::disabled() };
        let name = ServerName::try_from(host.to_string()).map_err(|e| format!("--url: host '{host}': {e}"))?;
        Ok(Client { config: Arc::new(config), name, rejections })
    }

    /// The TLS handshake on a connected socket; returns the stream and whether the session was
    /// resumed.
    pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        socket: S,
    ) -> Result<(LeanClient<S>, bool), ErrorKind> {
        let conn = rustls::client::UnbufferedClientConnection::new(self.config.clone(), self.name.clone())
            .map_err(|e| verify::classify(&e))?;
        let s = LeanClient::connect(conn, socket).await.map_err(|e| verify::classify_io(&e))?;
        let resumed = s.connection().handshake_kind() == Some(HandshakeKind::Resumed);
        Ok((s, resumed))
    }
}

/// The system's roots plus `--ca` and `trusted`; the `--ca` certificates are also pinned.
fn roots(o: &ClientOptions, trusted: &[CertificateDer<'static>]) -> Result<(RootCertStore, Pins), String> {
    let mut roots = RootCertStore::empty();
    // A system without a CA bundle is fine when --ca or the embedded certificate is given.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    let mut pins = Vec::new();
    if let Some(ca) = &o.ca {
        pins = certs::load_certs(ca, "--ca")?;
        let (added, ignored) = roots.add_parsable_certificates(pins.iter().cloned());
        if added == 0 {
            return Err(format!("--ca {}: none of its {ignored} certificates is usable as a root", ca.display()));
        }
    }
    roots.add_parsable_certificates(trusted.iter().cloned());
    if roots.is_empty() {
        return Err(
            "wss://: no trusted root certificates (none in the system store); give --ca FILE or --insecure".into()
        );
    }
    Ok((roots, Pins::new(pins)))
}
