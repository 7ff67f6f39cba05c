//! The port registry: which ports each protocol is registered on, per transport.
//!
//! Owns: the lists from the signature files' `[ports]` tables, the operator's override file
//! (a protocol's `tcp` / `udp` list there replaces the one from the signatures), and the
//! `port_mismatch` verdict. Must not: decide a protocol from a port (the classifier never
//! looks here), or flag a flow whose protocol is unknown.
//!
//! Override file format (TOML), e.g. `/etc/portolan/ports.toml`:
//!
//! ```toml
//! [tls]
//! tcp = [443, 8443]    # replaces tls's TCP list; tls's UDP list is untouched
//!
//! [http]
//! tcp = [80, 8080]
//!
//! [ssh]
//! tcp = []             # no registered port: every SSH flow is a mismatch
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use portolan_packet::Transport;

use crate::app_proto::AppProto;
use crate::signature::SignatureSet;

/// An error in the operator's port override file.
#[derive(Debug, thiserror::Error)]
pub enum PortOverrideError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A syntax error, an unknown protocol or key, or a value that is not a port.
    #[error("{file}: {field}: {message}")]
    Invalid {
        /// File.
        file: PathBuf,
        /// Table or key, e.g. `tls.tcp[1]`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// Registered ports of every protocol, per transport.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortRegistry {
    tcp: HashMap<AppProto, Vec<u16>>,
    udp: HashMap<AppProto, Vec<u16>>,
}

fn sorted(mut v: Vec<u16>) -> Vec<u16> {
    v.sort_unstable();
    v.dedup();
    v
}

impl PortRegistry {
    /// The registry from the signature files' `[ports]` tables.
    pub fn from_signatures(set: &SignatureSet) -> PortRegistry {
        let mut reg = PortRegistry::default();
        for sig in &set.signatures {
            reg.tcp.insert(sig.app_proto, sorted(sig.tcp_ports.clone()));
            reg.udp.insert(sig.app_proto, sorted(sig.udp_ports.clone()));
        }
        reg
    }

    /// Applies the operator override file at `path`.
    pub fn apply_override_file(&mut self, path: &Path) -> Result<(), PortOverrideError> {
        let text = std::fs::read_to_string(path).map_err(|source| PortOverrideError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        self.apply_override_str(path, &text)
    }

    /// Applies override text; `file` names it in errors. Nothing is changed on error.
    pub fn apply_override_str(&mut self, file: &Path, text: &str) -> Result<(), PortOverrideError> {
        let invalid = |field: String, message: String| PortOverrideError::Invalid {
            file: file.to_path_buf(),
            field,
            message,
        };
        let table: toml::Table =
            toml::from_str(text).map_err(|e| invalid("(syntax)".into(), e.to_string()))?;
        let mut next = self.clone();
        for (name, value) in &table {
            let proto = AppProto::from_name(name)
                .filter(|p| *p != AppProto::Unknown)
                .ok_or_else(|| invalid(name.clone(), "not a known app_proto".into()))?;
            let entries = value.as_table().ok_or_else(|| {
                invalid(name.clone(), "must be a table with tcp/udp lists".into())
            })?;
            for (key, list) in entries {
                let target = match key.as_str() {
                    "tcp" => &mut next.tcp,
                    "udp" => &mut next.udp,
                    _ => {
                        return Err(invalid(
                            format!("{name}.{key}"),
                            "only `tcp` and `udp` are allowed".into(),
                        ))
                    }
                };
                let items = list.as_array().ok_or_else(|| {
                    invalid(format!("{name}.{key}"), "must be an array of ports".into())
                })?;
                let mut ports = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let port = item
                        .as_integer()
                        .and_then(|p| u16::try_from(p).ok())
                        .filter(|p| *p != 0)
                        .ok_or_else(|| {
                            invalid(
                                format!("{name}.{key}[{i}]"),
                                format!("{item} is not a port (1..=65535)"),
                            )
                        })?;
                    ports.push(port);
                }
                target.insert(proto, sorted(ports));
            }
        }
        *self = next;
        Ok(())
    }

    /// The registered ports of `app_proto` over `transport` (sorted).
    pub fn ports(&self, app_proto: AppProto, transport: Transport) -> &[u16] {
        let map = match transport {
            Transport::Tcp => &self.tcp,
            Transport::Udp => &self.udp,
        };
        map.get(&app_proto).map_or(&[], Vec::as_slice)
    }

    /// True when `app_proto` is known, has at least one registered port over `transport`,
    /// and `dest_port` (the server port) is not one of them. Unknown → false; a protocol with no
    /// registered port for the transport (e.g. BitTorrent) → false: it has no standard port to
    /// deviate from.
    pub fn port_mismatch(&self, app_proto: AppProto, transport: Transport, dest_port: u16) -> bool {
        if app_proto == AppProto::Unknown {
            return false;
        }
        let ports = self.ports(app_proto, transport);
        !ports.is_empty() && ports.binary_search(&dest_port).is_err()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::from_texts;

    fn registry() -> PortRegistry {
        let tls = r#"
name = "tls"
transport = ["tcp"]
first_speaker = "client"
parser = "tls"
[ports]
tcp = [443, 993]
[[pattern]]
direction = "client"
regex = '^\x16\x03'
"#;
        let quic = r#"
name = "quic"
transport = ["udp"]
first_speaker = "client"
parser = "quic"
[ports]
udp = [443]
[[pattern]]
direction = "client"
regex = '^[\xc0-\xff]'
"#;
        let set = from_texts([
            (PathBuf::from("s/tls.toml"), tls.to_string()),
            (PathBuf::from("s/quic.toml"), quic.to_string()),
        ])
        .unwrap();
        PortRegistry::from_signatures(&set)
    }

    #[test]
    fn mismatch_verdicts() {
        let r = registry();
        assert!(!r.port_mismatch(AppProto::Tls, Transport::Tcp, 443));
        assert!(!r.port_mismatch(AppProto::Tls, Transport::Tcp, 993));
        assert!(r.port_mismatch(AppProto::Tls, Transport::Tcp, 8443));
        assert!(!r.port_mismatch(AppProto::Unknown, Transport::Tcp, 1));
        assert!(!r.port_mismatch(AppProto::Tls, Transport::Udp, 1));
        assert!(r.port_mismatch(AppProto::Quic, Transport::Udp, 8443));
    }

    #[test]
    fn override_replaces_one_transport_list() {
        let mut r = registry();
        r.apply_override_str(
            Path::new("ports.toml"),
            "[tls]\ntcp = [8443]\n[ssh]\ntcp = [22]\n",
        )
        .unwrap();
        assert!(r.port_mismatch(AppProto::Tls, Transport::Tcp, 443));
        assert!(!r.port_mismatch(AppProto::Tls, Transport::Tcp, 8443));
        assert!(!r.port_mismatch(AppProto::Quic, Transport::Udp, 443));
        assert!(r.port_mismatch(AppProto::Ssh, Transport::Tcp, 2222));
    }

    #[test]
    fn override_errors_name_the_field_and_change_nothing() {
        let mut r = registry();
        let before = r.clone();
        let e = r
            .apply_override_str(Path::new("ports.toml"), "[tls]\ntcp = [443, 99999]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ports.toml") && e.contains("tls.tcp[1]"), "{e}");
        let e = r
            .apply_override_str(Path::new("ports.toml"), "[gopher]\ntcp = [70]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("gopher"), "{e}");
        let e = r
            .apply_override_str(Path::new("ports.toml"), "[tls]\nsctp = [1]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("tls.sctp"), "{e}");
        assert_eq!(r, before);
    }
}
