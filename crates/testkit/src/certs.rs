//! Test certificates generated at run time (never committed): a CA, a server certificate
//! for `localhost` / `127.0.0.1`, and a client certificate, written as PEM files.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};

/// PEM files of a freshly generated test PKI.
#[derive(Debug, Clone)]
pub struct TestCerts {
    /// CA certificate (trust root for both sides).
    pub ca: PathBuf,
    /// Server certificate chain.
    pub server_cert: PathBuf,
    /// Server private key.
    pub server_key: PathBuf,
    /// Client certificate (signed by the CA).
    pub client_cert: PathBuf,
    /// Client private key.
    pub client_key: PathBuf,
    /// A node certificate for `localhost`/`127.0.0.1` good for both ends of a connection
    /// (server and client authentication): what route and leafnode TLS present.
    pub node_cert: PathBuf,
    /// Its private key.
    pub node_key: PathBuf,
}

/// Why certificates could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen failed.
    #[error("generating test certificates: {0}")]
    Generate(#[from] rcgen::Error),
    /// Writing a PEM file failed.
    #[error("writing test certificates: {0}")]
    Io(#[from] std::io::Error),
}

impl TestCerts {
    /// Generate a CA, a server and a client certificate into `dir`.
    pub fn generate(dir: &Path) -> Result<TestCerts, CertError> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Petrel Test CA");
        let ca_key = KeyPair::generate()?;
        let ca = ca_params.self_signed(&ca_key)?;

        let mut server_params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let server_key = KeyPair::generate()?;
        let server = server_params.signed_by(&server_key, &ca, &ca_key)?;

        let mut client_params = CertificateParams::new(vec!["client".to_string()])?;
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        client_params
            .distinguished_name
            .push(DnType::CommonName, "petrel-test-client");
        let client_key = KeyPair::generate()?;
        let client = client_params.signed_by(&client_key, &ca, &ca_key)?;

        let mut node_params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
        node_params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        node_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let node_key = KeyPair::generate()?;
        let node = node_params.signed_by(&node_key, &ca, &ca_key)?;

        let write = |name: &str, pem: String| -> Result<PathBuf, std::io::Error> {
            let p = dir.join(name);
            std::fs::write(&p, pem)?;
            Ok(p)
        };
        Ok(TestCerts {
            ca: write("ca.pem", ca.pem())?,
            server_cert: write("server-cert.pem", server.pem())?,
            server_key: write("server-key.pem", server_key.serialize_pem())?,
            client_cert: write("client-cert.pem", client.pem())?,
            client_key: write("client-key.pem", client_key.serialize_pem())?,
            node_cert: write("node-cert.pem", node.pem())?,
            node_key: write("node-key.pem", node_key.serialize_pem())?,
        })
    }
}
