//! Server certificate checks and TLS failure categories.
//!
//! herd verifies with webpki (system roots plus `--ca`), wrapped so that a rejected certificate's
//! subject and issuer are kept for the run's notes: the error rustls returns names the problem
//! but not the certificate. `--insecure` skips the certificate check only (the handshake
//! signature is still checked, so the TLS work measured is the same).

use crate::measure::stats::ErrorKind;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{AlertDescription, CertificateError, DigitallySignedStruct, Error, PeerIncompatible, SignatureScheme};
use std::io;
use std::sync::{Arc, Mutex};

/// The TLS category of a rustls error seen while connecting.
pub fn classify(e: &Error) -> ErrorKind {
    use CertificateError as C;
    match e {
        Error::InvalidCertificate(C::UnknownIssuer) => ErrorKind::TlsUnknownCa,
        Error::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => ErrorKind::TlsNameMismatch,
        Error::InvalidCertificate(
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. },
        ) => ErrorKind::TlsExpired,
        // The server refused our client certificate for the same reasons.
        Error::AlertReceived(AlertDescription::UnknownCA) => ErrorKind::TlsUnknownCa,
        Error::AlertReceived(AlertDescription::CertificateExpired) => ErrorKind::TlsExpired,
        Error::AlertReceived(AlertDescription::ProtocolVersion) => ErrorKind::TlsProtocolVersion,
        Error::PeerIncompatible(
            PeerIncompatible::ServerDoesNotSupportTls12Or13
            | PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig
            | PeerIncompatible::SupportedVersionsExtensionRequired
            | PeerIncompatible::Tls12NotOffered
            | PeerIncompatible::Tls12NotOfferedOrEnabled,
        ) => ErrorKind::TlsProtocolVersion,
        _ => ErrorKind::TlsHandshake,
    }
}

/// The category of an I/O error from the TLS layer during the handshake: the rustls error it
/// carries, or for a bare I/O error the connect categories (a peer that hangs up mid-handshake
/// failed the handshake).
pub fn classify_io(e: &io::Error) -> ErrorKind {
    if let Some(r) = e.get_ref().and_then(|i| i.downcast_ref::<Error>()) {
        return classify(r);
    }
    match e.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData => ErrorKind::TlsHandshake,
        _ => crate::measure::stats::connect_error_kind(e),
    }
}

/// Certificates rejected during a run: the first one of each category, and how many.
#[derive(Default)]
pub struct Rejections {
    seen: Mutex<Vec<(ErrorKind, String, u64)>>,
}

impl Rejections {
    pub fn record(&self, kind: ErrorKind, what: String) {
        let mut v = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        match v.iter_mut().find(|(k, _, _)| *k == kind) {
            Some(e) => e.2 += 1,
            None => v.push((kind, what, 1)),
        }
    }

    /// One note per category: `tls_unknown_ca (3 connections): server 127.0.0.1 presented
    /// subject "…", issuer "…"`.
    pub fn notes(&self) -> Vec<String> {
        let v = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        v.iter().map(|(k, what, n)| format!("{} ({n} certificate checks): {what}", k.name())).collect()
    }
}

impl std::fmt::Debug for Rejections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rejections")
    }
}

/// The server certificate check: webpki recording what it rejects, or (`--insecure`) none. Either
/// way the handshake's signatures are verified against the presented key with the provider's
/// algorithms (what webpki's verifier does for them too), so the TLS work measured is the same.
#[derive(Debug)]
pub struct Verifier {
    /// `None`: `--insecure`, any certificate, any name, any date.
    webpki: Option<Arc<WebPkiServerVerifier>>,
    /// `--ca` certificates accepted as the server's own certificate (`pin.rs`).
    pins: super::pin::Pins,
    provider: Arc<CryptoProvider>,
    rejections: Arc<Rejections>,
}

impl Verifier {
    /// Certificates checked by `webpki` (built with `provider`) or pinned; rejections recorded.
    pub fn webpki(
        webpki: Arc<WebPkiServerVerifier>,
        pins: super::pin::Pins,
        provider: Arc<CryptoProvider>,
        rejections: Arc<Rejections>,
    ) -> Self {
        Verifier { webpki: Some(webpki), pins, provider, rejections }
    }

    /// `--insecure`.
    pub fn insecure(provider: Arc<CryptoProvider>) -> Self {
        Verifier { webpki: None, pins: Default::default(), provider, rejections: Arc::default() }
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let Some(webpki) = &self.webpki else { return Ok(ServerCertVerified::assertion()) };
        let checked = webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
        // A pinned certificate that the chain refuses (a self-signed `CA:TRUE` one) is checked as
        // itself; any other refusal stands.
        let checked = match (&checked, self.pins.check(end_entity, server_name, now)) {
            (Err(_), Some(pinned)) => pinned.map(|()| ServerCertVerified::assertion()),
            _ => checked,
        };
        checked.inspect_err(|e| {
            let what =
                format!("server {} presented {} ({e})", server_name.to_str(), super::certs::describe(end_entity));
            self.rejections.record(classify(e), what);
        })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustls_errors_map_to_the_five_categories() {
        let cert = |c| classify(&Error::InvalidCertificate(c));
        assert_eq!(cert(CertificateError::UnknownIssuer), ErrorKind::TlsUnknownCa);
        assert_eq!(cert(CertificateError::NotValidForName), ErrorKind::TlsNameMismatch);
        assert_eq!(cert(CertificateError::Expired), ErrorKind::TlsExpired);
        assert_eq!(cert(CertificateError::NotValidYet), ErrorKind::TlsExpired);
        assert_eq!(cert(CertificateError::BadSignature), ErrorKind::TlsHandshake);
        assert_eq!(classify(&Error::AlertReceived(AlertDescription::ProtocolVersion)), ErrorKind::TlsProtocolVersion);
        assert_eq!(classify(&Error::AlertReceived(AlertDescription::HandshakeFailure)), ErrorKind::TlsHandshake);
        assert_eq!(
            classify(&Error::PeerIncompatible(PeerIncompatible::ServerDoesNotSupportTls12Or13)),
            ErrorKind::TlsProtocolVersion
        );
        let wrapped = io::Error::new(io::ErrorKind::InvalidData, Error::InvalidCertificate(CertificateError::Expired));
        assert_eq!(classify_io(&wrapped), ErrorKind::TlsExpired);
        assert_eq!(classify_io(&io::Error::from(io::ErrorKind::UnexpectedEof)), ErrorKind::TlsHandshake);
        assert_eq!(classify_io(&io::Error::from(io::ErrorKind::ConnectionReset)), ErrorKind::Reset);
    }

    #[test]
    fn rejections_keep_the_first_certificate_per_category_and_count() {
        let r = Rejections::default();
        r.record(ErrorKind::TlsExpired, "first".into());
        r.record(ErrorKind::TlsExpired, "second".into());
        r.record(ErrorKind::TlsUnknownCa, "other".into());
        assert_eq!(
            r.notes(),
            vec!["tls_expired (2 certificate checks): first", "tls_unknown_ca (1 certificate checks): other"]
        );
    }
}
