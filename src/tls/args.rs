//! The TLS flags of `herd run` / `herd ceiling` and `herd serve`, and their resolved form.

use crate::error::{Error, Result};
use clap::Args;
use serde::Serialize;
use std::path::PathBuf;

/// A TLS protocol version to pin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
pub enum Version {
    #[value(name = "1.2")]
    #[serde(rename = "1.2")]
    Tls12,
    #[value(name = "1.3")]
    #[serde(rename = "1.3")]
    Tls13,
}

#[derive(Args, Debug, Default, Clone)]
pub struct TlsArgs {
    /// wss://: PEM bundle of extra trusted root certificates (the system's roots stay trusted); a
    /// server certificate equal to one of them is accepted as itself (a self-signed certificate)
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// wss://: accept any server certificate (NO verification; stated in the summary and results)
    #[arg(long)]
    pub insecure: bool,
    /// wss://: client certificate chain (PEM) for mutual TLS; needs --client-key
    #[arg(long, value_name = "FILE", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// wss://: private key (PEM) of --client-cert
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// wss://: no TLS session resumption: every handshake (reconnects included) is a full one
    #[arg(long)]
    pub no_tls_resume: bool,
    /// wss://: speak only this TLS version [default: 1.2 or 1.3, as the server prefers]
    #[arg(long, value_name = "VERSION")]
    pub tls_version: Option<Version>,
    /// Without --url: the embedded server speaks TLS with a freshly generated self-signed
    /// certificate, and the run uses wss:// (trusting that certificate)
    #[arg(long, conflicts_with = "url")]
    pub embedded_tls: bool,
}

/// The resolved client TLS settings of a run (used only for wss:// targets).
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ClientOptions {
    pub ca: Option<PathBuf>,
    /// No certificate verification at all.
    pub insecure: bool,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// TLS session resumption on reconnects.
    pub resume: bool,
    pub version: Option<Version>,
    /// The embedded server speaks TLS.
    pub embedded_tls: bool,
}

/// The flags (a scenario file's keys are flags by now), checked (pure).
pub fn resolve(a: &TlsArgs) -> Result<ClientOptions> {
    let o = ClientOptions {
        ca: a.ca.clone(),
        insecure: a.insecure,
        client_cert: a.client_cert.clone(),
        client_key: a.client_key.clone(),
        resume: !a.no_tls_resume,
        version: a.tls_version,
        embedded_tls: a.embedded_tls,
    };
    if o.client_cert.is_some() != o.client_key.is_some() {
        return Err(Error::Usage("--client-cert and --client-key go together".into()));
    }
    Ok(o)
}

#[derive(Args, Debug, Default, Clone)]
pub struct ServeTlsArgs {
    /// Serve wss:// with this certificate chain (PEM); needs --tls-key
    #[arg(long, value_name = "FILE", requires = "tls_key", conflicts_with = "tls_self_signed")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve wss:// with a freshly generated self-signed certificate for localhost, 127.0.0.1
    /// and ::1, written to FILE (PEM) for clients to trust with --ca
    #[arg(long, value_name = "FILE")]
    pub tls_self_signed: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumption_is_on_by_default() {
        let o = resolve(&TlsArgs { ca: Some("b.pem".into()), insecure: true, ..Default::default() }).unwrap();
        assert_eq!((o.insecure, o.resume, o.version), (true, true, None));
        assert_eq!(o.ca, Some(PathBuf::from("b.pem")));
        let o = resolve(&TlsArgs { no_tls_resume: true, ..Default::default() }).unwrap();
        assert!(!o.resume);
    }

    #[test]
    fn a_client_certificate_needs_its_key() {
        let a = TlsArgs { client_cert: Some("c.pem".into()), ..Default::default() };
        assert!(resolve(&a).unwrap_err().to_string().contains("--client-key"));
    }
}
