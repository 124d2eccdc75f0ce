//! Certificates and keys: PEM files read for `--ca`, `--client-cert/--client-key` and
//! `herd serve --tls-cert/--tls-key`, self-signed certificates generated for the embedded server,
//! and the subject and issuer of a certificate for error notes.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;

/// Every certificate in a PEM file; `flag` names the option in errors.
pub fn load_certs(path: &Path, flag: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let iter = CertificateDer::pem_file_iter(path).map_err(|e| format!("{flag} {}: {e}", path.display()))?;
    let certs: Vec<_> = iter
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{flag} {}: not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{flag} {}: no certificate (-----BEGIN CERTIFICATE-----) in the file", path.display()));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub fn load_key(path: &Path, flag: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| format!("{flag} {}: no usable private key: {e}", path.display()))
}

/// A self-signed certificate and its key.
pub struct SelfSigned {
    pub cert: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
    pub cert_pem: String,
}

/// A self-signed certificate (ECDSA P-256) valid for `localhost`, `127.0.0.1` and `::1`: what a
/// loopback server needs, generated fresh so that no key ships with herd.
pub fn self_signed() -> Result<SelfSigned, String> {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    let ck = rcgen::generate_simple_self_signed(names).map_err(|e| format!("generating a certificate: {e}"))?;
    let key = PrivateKeyDer::try_from(ck.signing_key.serialize_der()).map_err(|e| format!("generated key: {e}"))?;
    Ok(SelfSigned { cert: ck.cert.der().clone(), cert_pem: ck.cert.pem(), key })
}

/// `subject "…", issuer "…"` of a DER certificate, for notes; a certificate that does not parse
/// says so rather than failing.
pub fn describe(der: &[u8]) -> String {
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, c)) => format!(
            "subject \"{}\", issuer \"{}\", valid {} to {}",
            c.subject(),
            c.issuer(),
            c.validity().not_before,
            c.validity().not_after
        ),
        Err(_) => format!("an unparsable certificate of {} bytes", der.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificates_describe_themselves() {
        let s = self_signed().unwrap();
        let d = describe(&s.cert);
        assert!(d.contains("subject \"CN=rcgen self signed cert\""), "{d}");
        assert!(d.contains("issuer \"CN=rcgen self signed cert\""), "{d}");
        assert!(describe(b"junk").contains("unparsable"));
    }

    #[test]
    fn pem_files_are_read_and_bad_ones_named() {
        let dir = tempfile::tempdir().unwrap();
        let s = self_signed().unwrap();
        let cert = dir.path().join("c.pem");
        std::fs::write(&cert, &s.cert_pem).unwrap();
        assert_eq!(load_certs(&cert, "--ca").unwrap(), vec![s.cert.clone()]);
        let empty = dir.path().join("e.pem");
        std::fs::write(&empty, "nothing here\n").unwrap();
        assert!(load_certs(&empty, "--ca").unwrap_err().contains("--ca"));
        assert!(load_certs(&dir.path().join("missing"), "--ca").unwrap_err().starts_with("--ca"));
        assert!(load_key(&cert, "--tls-key").unwrap_err().contains("--tls-key"));
    }
}
