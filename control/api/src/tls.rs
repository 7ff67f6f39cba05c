//! TLS for the admin API: loads the PEM certificate chain and key named in the configuration, or creates a
//! self-signed pair (files mode 0600) on first start when both files are absent.
//!
//! This module must never log key material; errors name the file, not its content.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

use crate::config::TlsFiles;

/// A TLS setup failure, naming the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Exactly one of the two files exists: refusing to overwrite or guess.
    #[error("{present} exists but {missing} does not: provide both TLS files, or neither to create a self-signed pair")]
    HalfPresent {
        /// The file that exists.
        present: PathBuf,
        /// The file that does not.
        missing: PathBuf,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file is not usable PEM of the expected kind.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Creating the self-signed certificate failed.
    #[error("creating a self-signed certificate: {0}")]
    Generate(String),
    /// rustls refused the certificate/key pair.
    #[error("TLS configuration from {cert} and {key}: {reason}")]
    Config {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls' reason.
        reason: String,
    },
}

/// Whether [`load_or_create`] found the files or created them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsOrigin {
    /// Both files existed and were loaded.
    Loaded,
    /// Neither existed; a self-signed pair was written.
    Created,
}

/// Names the self-signed certificate is issued for: `localhost`, the loopback addresses and the listen IP.
fn self_signed_names(listen_ip: IpAddr) -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if !listen_ip.is_unspecified() {
        let ip = listen_ip.to_string();
        if !names.contains(&ip) {
            names.push(ip);
        }
    }
    names
}

fn write_private(path: &Path, contents: &[u8]) -> Result<(), TlsError> {
    let io = |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io)?;
    }
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(contents).map_err(io)?;
    f.sync_all().map_err(io)
}

/// Creates a self-signed certificate and key for `listen_ip` at the configured paths (mode 0600).
pub fn create_self_signed(files: &TlsFiles, listen_ip: IpAddr) -> Result<(), TlsError> {
    let certified = rcgen::generate_simple_self_signed(self_signed_names(listen_ip))
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    write_private(&files.key, certified.signing_key.serialize_pem().as_bytes())?;
    write_private(&files.cert, certified.cert.pem().as_bytes())
}

/// Loads the configured files, creating a self-signed pair first when both are absent, and builds the
/// rustls server configuration (ALPN h2 and http/1.1, ring provider).
pub fn load_or_create(
    files: &TlsFiles,
    listen_ip: IpAddr,
) -> Result<(Arc<ServerConfig>, TlsOrigin), TlsError> {
    let origin = match (files.cert.exists(), files.key.exists()) {
        (true, true) => TlsOrigin::Loaded,
        (false, false) => {
            create_self_signed(files, listen_ip)?;
            TlsOrigin::Created
        }
        (true, false) => {
            return Err(TlsError::HalfPresent {
                present: files.cert.clone(),
                missing: files.key.clone(),
            })
        }
        (false, true) => {
            return Err(TlsError::HalfPresent {
                present: files.key.clone(),
                missing: files.cert.clone(),
            })
        }
    };
    Ok((server_config(files)?, origin))
}

/// Builds the rustls server configuration from existing PEM files.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let read = |path: &Path| {
        fs::read(path).map_err(|source| TlsError::Io {
            path: path.to_path_buf(),
            source,
        })
    };
    let cert_pem = read(&files.cert)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            path: files.cert.clone(),
            reason: format!("not a PEM certificate chain: {e}"),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            path: files.cert.clone(),
            reason: "no CERTIFICATE block found".to_string(),
        });
    }
    let key_pem = read(&files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
        path: files.key.clone(),
        reason: format!("no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}"),
    })?;
    let config_err = |reason: String| TlsError::Config {
        cert: files.cert.clone(),
        key: files.key.clone(),
        reason,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| config_err(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| config_err(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_files_are_created_private_then_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            cert: dir.path().join("tls/cert.pem"),
            key: dir.path().join("tls/key.pem"),
        };
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let (_, origin) = load_or_create(&files, ip).unwrap();
        assert_eq!(origin, TlsOrigin::Created);
        #[cfg(unix)]
        for p in [&files.cert, &files.key] {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
        let before = fs::read(&files.cert).unwrap();
        let (_, origin) = load_or_create(&files, ip).unwrap();
        assert_eq!(origin, TlsOrigin::Loaded);
        assert_eq!(
            before,
            fs::read(&files.cert).unwrap(),
            "an existing pair is never replaced"
        );
    }

    #[test]
    fn one_missing_file_or_garbage_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
        };
        fs::write(&files.cert, "junk").unwrap();
        let err = load_or_create(&files, "127.0.0.1".parse().unwrap()).unwrap_err();
        assert!(err.to_string().contains("key.pem"), "{err}");
        fs::write(&files.key, "junk").unwrap();
        let err = load_or_create(&files, "127.0.0.1".parse().unwrap()).unwrap_err();
        assert!(err.to_string().contains("cert.pem"), "{err}");
    }
}
