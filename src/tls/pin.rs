//! Pinned certificates: a server certificate that is byte-for-byte one of the `--ca` certificates
//! is trusted as itself, as curl `--cacert`, Go, Node and Python do for a self-signed certificate.
//!
//! webpki refuses such a certificate when it says `CA:TRUE` (what `openssl req -x509` makes by
//! default): a CA may not be an end entity. Pinning skips the chain only; the name and the dates
//! are still checked here, and the handshake's signature by the verifier as for any certificate.

use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, Error};

/// The `--ca` certificates a server may present as they are.
#[derive(Debug, Default, Clone)]
pub struct Pins(Vec<CertificateDer<'static>>);

impl Pins {
    pub fn new(certs: Vec<CertificateDer<'static>>) -> Pins {
        Pins(certs)
    }

    /// `None` when `cert` is not pinned (the chain decides); else whether the pinned certificate
    /// is valid for `name` at `now`.
    pub fn check(&self, cert: &CertificateDer<'_>, name: &ServerName<'_>, now: UnixTime) -> Option<Result<(), Error>> {
        if !self.0.iter().any(|p| p.as_ref() == cert.as_ref()) {
            return None;
        }
        Some(check_pinned(cert, name, now))
    }
}

/// The checks a pinned certificate still passes: it parses, carries `name`, and `now` is within
/// its validity.
fn check_pinned(cert: &CertificateDer<'_>, name: &ServerName<'_>, now: UnixTime) -> Result<(), Error> {
    let bad = |e| Error::InvalidCertificate(e);
    let parsed = ParsedCertificate::try_from(cert)?;
    rustls::client::verify_server_name(&parsed, name)?;
    let (_, x509) =
        x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|_| bad(CertificateError::BadEncoding))?;
    let now = now.as_secs() as i64;
    let v = x509.validity();
    if now < v.not_before.timestamp() {
        return Err(bad(CertificateError::NotValidYet));
    }
    if now > v.not_after.timestamp() {
        return Err(bad(CertificateError::Expired));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    use std::time::Duration;

    fn ca_cert(names: &[&str], days: (i64, i64)) -> CertificateDer<'static> {
        let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let now = time::OffsetDateTime::now_utc();
        (p.not_before, p.not_after) = (now + time::Duration::days(days.0), now + time::Duration::days(days.1));
        p.self_signed(&KeyPair::generate().unwrap()).unwrap().der().clone()
    }

    fn name(s: &str) -> ServerName<'static> {
        ServerName::try_from(s.to_string()).unwrap()
    }

    #[test]
    fn only_the_pinned_bytes_are_trusted_and_name_and_dates_still_count() {
        let now = UnixTime::now();
        let good = ca_cert(&["localhost"], (-1, 30));
        let pins = Pins::new(vec![good.clone()]);
        assert_eq!(pins.check(&good, &name("localhost"), now), Some(Ok(())));
        let other = ca_cert(&["localhost"], (-1, 30));
        assert_eq!(pins.check(&other, &name("localhost"), now), None, "same name, other key: not pinned");
        assert!(matches!(
            pins.check(&good, &name("other.example"), now),
            Some(Err(Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })))
        ));
        let later = UnixTime::since_unix_epoch(Duration::from_secs(now.as_secs() + 60 * 86_400));
        assert_eq!(
            pins.check(&good, &name("localhost"), later),
            Some(Err(Error::InvalidCertificate(CertificateError::Expired)))
        );
        let future = ca_cert(&["localhost"], (2, 30));
        let pins = Pins::new(vec![future.clone()]);
        assert_eq!(
            pins.check(&future, &name("localhost"), now),
            Some(Err(Error::InvalidCertificate(CertificateError::NotValidYet)))
        );
    }
}
