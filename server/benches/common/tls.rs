//! TLS for the side-by-side benchmarks: one self-signed certificate that both servers present,
//! and a blocking rustls client that offers a single cipher suite, so both servers run the same
//! certificate, key exchange and cipher.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;

use super::connect;
use super::download::fetch;

/// The only suite the client offers (TLS 1.3, AES-128-GCM: what both servers do fastest).
pub const SUITE: &str = "TLS13_AES_128_GCM_SHA256";

/// A certificate for 127.0.0.1 and its key, written as PEM into `dir`.
pub struct Certificate {
    pub cert: PathBuf,
    pub key: PathBuf,
    client: Arc<rustls::ClientConfig>,
}

impl Certificate {
    pub fn create(dir: &Path) -> anyhow::Result<Self> {
        let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])?;
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, generated.cert.pem())?;
        std::fs::write(&key, generated.key_pair.serialize_pem())?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(generated.cert.der().clone())?;
        let ring = rustls::crypto::ring::default_provider();
        let provider = rustls::crypto::CryptoProvider {
            cipher_suites: vec![rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256],
            ..ring
        };
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self { cert, key, client: Arc::new(client) })
    }

    /// GETs `path` over TLS (expecting exactly `size` bytes) into `buf`, discarding; returns
    /// the time taken and the suite negotiated.
    pub fn download(
        &self,
        addr: SocketAddr,
        path: &str,
        size: u64,
        buf: &mut [u8],
    ) -> anyhow::Result<(Duration, String)> {
        let start = Instant::now();
        let name = ServerName::try_from(addr.ip().to_string())?;
        let connection = rustls::ClientConnection::new(Arc::clone(&self.client), name)?;
        let mut stream = rustls::StreamOwned::new(connection, connect(addr)?);
        fetch(&mut stream, addr, path, size, buf, None)?;
        let elapsed = start.elapsed();
        let suite =
            stream.conn.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())).unwrap_or_default();
        Ok((elapsed, suite))
    }

    /// Waits until a TLS GET of `path` (of `size` bytes) succeeds at `addr`.
    pub fn wait_ready(&self, addr: SocketAddr, path: &str, size: u64) -> anyhow::Result<()> {
        let mut buf = vec![0u8; 1 << 20];
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.download(addr, path, size, &mut buf) {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(e.context(format!("TLS on {addr}"))),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}
