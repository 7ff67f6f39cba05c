//! HTTP/2 with prior knowledge (cleartext `h2c`): confirms the client connection preface.
//!
//! Owns: recognising the fixed 24-byte preface `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n` (RFC 9113
//! §3.4). Must not: parse frames, or claim HTTP/2 negotiated inside TLS (that flow is `tls`).

use crate::probe::{Meta, Probe, ProbeContext};

/// The client connection preface.
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Confirms the HTTP/2 preface (`http2.preface`); `NeedMore` for a cut-short prefix of it.
pub fn probe(_ctx: &ProbeContext, data: &[u8]) -> Probe {
    if data.starts_with(PREFACE) {
        Probe::Match {
            indicator: "http2.preface",
            meta: Meta::None,
        }
    } else if PREFACE.starts_with(data) {
        Probe::NeedMore
    } else {
        Probe::NoMatch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_packet::Transport;
    use crate::test_support::{assert_match};

    const CTX: ProbeContext = ProbeContext::new(Transport::Tcp, 50000, 80);

    #[test]
    fn preface_with_settings_frame() {
        let mut data = PREFACE.to_vec();
        data.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        assert_match(probe(&CTX, &data), "http2.preface");
        assert_eq!(probe(&CTX, &PREFACE[..10]), Probe::NeedMore);
        assert_eq!(probe(&CTX, b"PRI * HTTP/1.1\r\n"), Probe::NoMatch);
        assert_eq!(probe(&CTX, b"GET / HTTP/1.1\r\n\r\n"), Probe::NoMatch);
    }
}
