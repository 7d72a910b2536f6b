//! Client TLS with rustls: the acceptor built from `tls {}` and the NATS upgrade dance
//! (INFO in plain text then the handshake, or the handshake first for `tls_first` clients).

use std::sync::Arc;

use petrel_config::{HandshakeFirst, TlsOptions};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::client::CloseReason;

/// First byte of a TLS record carrying a handshake message (the ClientHello).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Why TLS could not be set up from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or held nothing usable.
    #[error("cannot load {what} from {path}: {reason}")]
    Load {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the certificate/key pair or the CA.
    #[error("invalid TLS configuration: {0}")]
    Config(String),
}

fn load_err(what: &'static str, path: &std::path::Path, reason: impl ToString) -> TlsError {
    TlsError::Load {
        what,
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Build the acceptor: certificate chain, key, and (with `verify`) the client CA.
pub(crate) fn acceptor(t: &TlsOptions) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&t.cert_file)
        .map_err(|e| load_err("certificate", &t.cert_file, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| load_err("certificate", &t.cert_file, e))?;
    if certs.is_empty() {
        return Err(load_err(
            "certificate",
            &t.cert_file,
            "no certificate in file",
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&t.key_file)
        .map_err(|e| load_err("private key", &t.key_file, e))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = if t.verify {
        let Some(ca) = &t.ca_file else {
            return Err(TlsError::Config("verify requires ca_file".into()));
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).map_err(|e| load_err("CA", ca, e))? {
            roots
                .add(cert.map_err(|e| load_err("CA", ca, e))?)
                .map_err(|e| load_err("CA", ca, e))?;
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A connector for routes this server dials: peers are verified against `ca_file`, and
/// the configured certificate is presented as the client certificate.
pub(crate) fn connector(t: &TlsOptions) -> Result<tokio_rustls::TlsConnector, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let Some(ca) = &t.ca_file else {
        return Err(TlsError::Config(
            "TLS to other servers needs ca_file to verify them".into(),
        ));
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| load_err("CA", ca, e))? {
        roots
            .add(cert.map_err(|e| load_err("CA", ca, e))?)
            .map_err(|e| load_err("CA", ca, e))?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots);
    // A leafnode remote may verify the hub without a certificate of its own.
    if t.cert_file.as_os_str().is_empty() {
        let config = builder.with_no_client_auth();
        return Ok(tokio_rustls::TlsConnector::from(Arc::new(config)));
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&t.cert_file)
        .map_err(|e| load_err("certificate", &t.cert_file, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| load_err("certificate", &t.cert_file, e))?;
    let key = PrivateKeyDer::from_pem_file(&t.key_file)
        .map_err(|e| load_err("private key", &t.key_file, e))?;
    let config = builder
        .with_client_auth_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Upgrade an accepted connection. Sends `greeting` (INFO) in plain text first unless the
/// client starts with a TLS handshake (`handshake_first`). Returns the TLS stream and
/// whether INFO still has to be sent (over TLS).
pub(crate) async fn upgrade(
    acceptor: &TlsAcceptor,
    t: &TlsOptions,
    mut stream: TcpStream,
    greeting: &[u8],
) -> Result<(TlsStream<TcpStream>, bool), CloseReason> {
    let tls_first = match t.handshake_first {
        HandshakeFirst::On => true,
        HandshakeFirst::Off => false,
        HandshakeFirst::Auto(wait) => {
            let mut b = [0u8; 1];
            matches!(
                tokio::time::timeout(wait, stream.peek(&mut b)).await,
                Ok(Ok(1))
            )
        }
    };
    if !tls_first {
        stream
            .write_all(greeting)
            .await
            .map_err(|_| CloseReason::WriteError)?;
        let mut b = [0u8; 1];
        match tokio::time::timeout(t.timeout, stream.peek(&mut b)).await {
            Ok(Ok(1)) if b[0] == TLS_HANDSHAKE_RECORD => {}
            Ok(Ok(1)) => {
                let mut err = bytes::BytesMut::new();
                petrel_wire::encode::err(&mut err, "Secure Connection - TLS Required");
                let _ = stream.write_all(&err).await;
                let _ = stream.shutdown().await;
                return Err(CloseReason::TlsRequired);
            }
            Ok(_) => return Err(CloseReason::ClientClosed),
            Err(_) => return Err(CloseReason::TlsHandshakeError),
        }
    }
    match tokio::time::timeout(t.timeout, acceptor.accept(stream)).await {
        Ok(Ok(s)) => Ok((s, tls_first)),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake error");
            Err(CloseReason::TlsHandshakeError)
        }
        Err(_) => Err(CloseReason::TlsHandshakeError),
    }
}
