//! The server side: a rustls `ServerConfig` from `--tls-cert/--tls-key` or a generated
//! self-signed certificate, ALPN `http/1.1`, stateless session tickets (so resumption does not
//! depend on a server-side cache size), and the accept hook.

use super::certs;
use super::ServeTlsArgs;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

pub type Config = Arc<rustls::ServerConfig>;

/// A server configuration for a certificate chain and its key.
pub fn config(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<Config, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut c = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("--tls-key: does not match --tls-cert: {e}"))?;
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    c.ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| e.to_string())?;
    Ok(Arc::new(c))
}

/// `herd serve`'s TLS flags: `None` for plain ws://.
pub fn from_args(a: &ServeTlsArgs) -> Result<Option<Config>, String> {
    if let (Some(c), Some(k)) = (&a.tls_cert, &a.tls_key) {
        return config(certs::load_certs(c, "--tls-cert")?, certs::load_key(k, "--tls-key")?).map(Some);
    }
    if let Some(out) = &a.tls_self_signed {
        let s = certs::self_signed()?;
        std::fs::write(out, &s.cert_pem).map_err(|e| format!("--tls-self-signed {}: {e}", out.display()))?;
        return config(vec![s.cert], s.key).map(Some);
    }
    Ok(None)
}

/// The TLS handshake of an accepted connection.
pub async fn accept<S>(c: &Config, socket: S) -> std::io::Result<super::Stream<S>>
where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin,
{
    let s = futures_rustls::TlsAcceptor::from(c.clone()).accept(socket).await?;
    Ok(super::Stream::Server(Box::new(s)))
}
