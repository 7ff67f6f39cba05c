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

use crate::config::{certificate_name_problem, TlsFiles};

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

/// This machine's host name (`/proc/sys/kernel/hostname`), when it has a usable one.
fn machine_hostname() -> Option<String> {
    let name = fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim().to_ascii_lowercase();
    (!name.is_empty() && name != "localhost" && certificate_name_problem(&name).is_none())
        .then_some(name)
}

/// Names the self-signed certificate is issued for: the configured names (default: this
/// machine's host name and `localhost`), then the loopback addresses and a specific listen
/// address, each once.
pub fn self_signed_names(configured: &[String], listen_ip: IpAddr) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut add = |n: String| {
        if !names.iter().any(|m| m.eq_ignore_ascii_case(&n)) {
            names.push(n);
        }
    };
    if configured.is_empty() {
        if let Some(host) = machine_hostname() {
            add(host);
        }
        add("localhost".to_string());
    } else {
        configured.iter().cloned().for_each(&mut add);
    }
    add("127.0.0.1".to_string());
    add("::1".to_string());
    if !listen_ip.is_unspecified() {
        add(listen_ip.to_string());
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

/// Creates a self-signed certificate and key at the configured paths (mode 0600): issued for
/// [`self_signed_names`], common name the first host name among them, valid from an hour ago
/// (clock skew) for `files.self_signed_days` days.
pub fn create_self_signed(files: &TlsFiles, listen_ip: IpAddr) -> Result<(), TlsError> {
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
    let names = self_signed_names(&files.names, listen_ip);
    let generate = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let mut params = CertificateParams::new(names.clone()).map_err(generate)?;
    let common_name = names
        .iter()
        .find(|n| n.parse::<IpAddr>().is_err() && n.len() <= 64)
        .cloned()
        .unwrap_or_else(|| "portolan".to_string());
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "Portolan");
    dn.push(DnType::OrganizationalUnitName, "admin API (self-signed)");
    params.distinguished_name = dn;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(i64::from(files.self_signed_days.max(1)));
    let key = KeyPair::generate().map_err(generate)?;
    let cert = params.self_signed(&key).map_err(generate)?;
    write_private(&files.key, key.serialize_pem().as_bytes())?;
    write_private(&files.cert, cert.pem().as_bytes())
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
            ..TlsFiles::default()
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
            ..TlsFiles::default()
        };
        fs::write(&files.cert, "junk").unwrap();
        let err = load_or_create(&files, "127.0.0.1".parse().unwrap()).unwrap_err();
        assert!(err.to_string().contains("key.pem"), "{err}");
        fs::write(&files.key, "junk").unwrap();
        let err = load_or_create(&files, "127.0.0.1".parse().unwrap()).unwrap_err();
        assert!(err.to_string().contains("cert.pem"), "{err}");
    }

    /// The certificate's subject, alternative names and validity, as a client sees them.
    fn inspect(pem: &[u8]) -> (String, Vec<String>, i64) {
        use x509_parser::extensions::GeneralName;
        let der = CertificateDer::from_pem_slice(pem).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok())
            .unwrap_or("")
            .to_string();
        let sans = cert
            .subject_alternative_name()
            .unwrap()
            .map(|s| {
                s.value
                    .general_names
                    .iter()
                    .map(|n| match n {
                        GeneralName::DNSName(d) => d.to_string(),
                        GeneralName::IPAddress(b) if b.len() == 4 => {
                            IpAddr::from(<[u8; 4]>::try_from(*b).unwrap()).to_string()
                        }
                        GeneralName::IPAddress(b) => {
                            IpAddr::from(<[u8; 16]>::try_from(*b).unwrap()).to_string()
                        }
                        other => format!("{other:?}"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let v = cert.validity();
        let days = (v.not_after.timestamp() - v.not_before.timestamp()) / 86_400;
        (cn, sans, days)
    }

    #[test]
    fn the_self_signed_certificate_names_the_configured_hosts_for_a_year() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            cert: dir.path().join("c.pem"),
            key: dir.path().join("k.pem"),
            names: vec!["sensor-1.corp.example".into(), "10.1.2.3".into()],
            self_signed_days: 365,
        };
        create_self_signed(&files, "192.0.2.7".parse().unwrap()).unwrap();
        let (cn, sans, days) = inspect(&fs::read(&files.cert).unwrap());
        assert_eq!(cn, "sensor-1.corp.example");
        assert_eq!(
            sans,
            [
                "sensor-1.corp.example",
                "10.1.2.3",
                "127.0.0.1",
                "::1",
                "192.0.2.7"
            ]
        );
        // An hour of clock skew before now, then 365 days.
        assert_eq!(days, 365, "validity in whole days");
        assert!(server_config(&files).is_ok());
    }

    #[test]
    fn by_default_the_certificate_names_this_machine_and_localhost() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            cert: dir.path().join("c.pem"),
            key: dir.path().join("k.pem"),
            ..TlsFiles::default()
        };
        create_self_signed(&files, "0.0.0.0".parse().unwrap()).unwrap();
        let (cn, sans, days) = inspect(&fs::read(&files.cert).unwrap());
        assert_ne!(cn, "rcgen self signed cert");
        assert!(sans.contains(&"localhost".to_string()), "{sans:?}");
        assert!(!sans.contains(&"0.0.0.0".to_string()), "{sans:?}");
        match machine_hostname() {
            Some(host) => {
                assert_eq!(cn, host);
                assert_eq!(sans[0], host);
            }
            None => assert_eq!(cn, "localhost"),
        }
        assert_eq!(days, i64::from(crate::config::DEFAULT_SELF_SIGNED_DAYS));
    }
}
