//! The process's TLS crypto provider: rustls cannot pick one by itself when a build links two
//! (ring, which the clients use, and aws-lc-rs, which the CLI's S3 client brings), so every
//! TLS client of this crate installs ring first unless one is installed.

/// Installs ring as rustls' process-wide crypto provider unless one is installed already.
pub(crate) fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
