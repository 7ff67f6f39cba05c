//! The dataplane's port registry as the control plane's device default baseline: a protocol on a
//! port its signature (or the operator's override) registers is standard.
//!
//! Owns: only the adapter between `portolan_classify::PortRegistry` and
//! `portolan_control::PortRegistry` (the same rule `portolan replay` applies). Must not: judge
//! flows or keep state.

use std::sync::Arc;

use portolan_classify::AppProto;
use portolan_packet::Transport;

/// The adapter; cheap to clone.
#[derive(Debug, Clone)]
pub struct DataplaneBaseline(pub Arc<portolan_classify::PortRegistry>);

impl DataplaneBaseline {
    fn transport(name: &str) -> Option<Transport> {
        if name.eq_ignore_ascii_case("tcp") {
            Some(Transport::Tcp)
        } else if name.eq_ignore_ascii_case("udp") {
            Some(Transport::Udp)
        } else {
            None
        }
    }

    fn proto(name: &str) -> Option<AppProto> {
        AppProto::from_name(&name.to_ascii_lowercase()).filter(|p| *p != AppProto::Unknown)
    }
}

impl portolan_control::PortRegistry for DataplaneBaseline {
    fn is_standard(&self, app_proto: &str, transport: &str, port: u16) -> bool {
        match (Self::proto(app_proto), Self::transport(transport)) {
            (Some(p), Some(t)) => !self.0.port_mismatch(p, t, port),
            // No opinion about a protocol or transport the dataplane does not know.
            _ => true,
        }
    }

    fn standard_ports(&self, app_proto: &str, transport: &str) -> Vec<u16> {
        match (Self::proto(app_proto), Self::transport(transport)) {
            (Some(p), Some(t)) => self.0.ports(p, t).to_vec(),
            _ => Vec::new(),
        }
    }

    fn knows(&self, app_proto: &str) -> bool {
        Self::proto(app_proto).is_some_and(|p| {
            !self.0.ports(p, Transport::Tcp).is_empty()
                || !self.0.ports(p, Transport::Udp).is_empty()
        })
    }
}
