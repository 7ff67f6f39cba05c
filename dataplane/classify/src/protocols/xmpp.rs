//! XMPP identification (RFC 6120): the opening `<stream:stream ...>` element, optionally after
//! an XML declaration, with a `jabber:client`, `jabber:server` or `jabber:component:*` default
//! namespace or the `http://etherx.jabber.org/streams` stream namespace.
//!
//! Also recognised, for flows whose start was not seen: a first element that only XMPP sends —
//! `</stream:stream>`, `<stream:features>`, `<stream:error>`, an `<iq>` with an `id` and a
//! `type` of get/set/result/error, or a `<message>`/`<presence>` addressed to or from a JID
//! (`local@domain`).
//!
//! Owns: recognising the stream header and reporting the `to` (client side) or `from` (server
//! side) domain. Must not: parse XML beyond the first element or accept a stream element without
//! an XMPP namespace.

use super::text_line::contains_ci;
use crate::probe::{Meta, Probe, ProbeContext};

/// Bound on the XML declaration plus stream header.
const MAX_HEADER: usize = 4096;

/// Probes the first bytes of one direction for an XMPP stream header.
pub fn probe(ctx: &ProbeContext, data: &[u8]) -> Probe {
    let mut rest = skip_space(data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data));
    if rest.starts_with(b"<?xml") {
        match find(rest, b"?>") {
            Some(end) => rest = skip_space(rest.get(end + 2..).unwrap_or_default()),
            None => return more_or_not(data),
        }
    } else if !rest.is_empty() && b"<?xml".starts_with(rest) {
        return Probe::NeedMore;
    }
    if rest.is_empty() {
        return more_or_not(data);
    }
    if let Some(p) = stanza(rest) {
        return p;
    }
    if rest.len() < 14 {
        return if b"<stream:stream".starts_with(rest) {
            Probe::NeedMore
        } else {
            Probe::NoMatch
        };
    }
    if !rest.starts_with(b"<stream:stream")
        || !rest.get(14).is_some_and(|b| b.is_ascii_whitespace())
    {
        return Probe::NoMatch;
    }
    let Some(close) = rest.iter().position(|&b| b == b'>') else {
        return more_or_not(data);
    };
    let tag = rest.get(..close).unwrap_or_default();
    if tag.iter().any(|&b| b < 0x20 && !b.is_ascii_whitespace()) {
        return Probe::NoMatch;
    }
    let xmpp_ns = contains_ci(tag, b"jabber:client")
        || contains_ci(tag, b"jabber:server")
        || contains_ci(tag, b"jabber:component:")
        || contains_ci(tag, b"http://etherx.jabber.org/streams");
    if !xmpp_ns {
        return Probe::NoMatch;
    }
    let (first, second): (&[u8], &[u8]) = if ctx.sender.is_client() {
        (b"to", b"from")
    } else {
        (b"from", b"to")
    };
    let name = attribute(tag, first).or_else(|| attribute(tag, second));
    Probe::Match {
        indicator: "xmpp.stream",
        meta: name
            .map(|n| Meta::Name(String::from_utf8_lossy(n).into_owned()))
            .unwrap_or_default(),
    }
}

/// A first element of a stream whose header was not seen; `None` when `rest` does not start with
/// one of the recognised element names.
fn stanza(rest: &[u8]) -> Option<Probe> {
    const STREAM_ONLY: [&[u8]; 3] = [b"</stream:stream>", b"<stream:features>", b"<stream:error>"];
    if STREAM_ONLY.iter().any(|e| rest.starts_with(e)) {
        return Some(Probe::Match {
            indicator: "xmpp.stanza",
            meta: Meta::None,
        });
    }
    let name_len = [&b"<iq"[..], b"<message", b"<presence"]
        .iter()
        .find(|n| {
            rest.starts_with(n) && rest.get(n.len()).is_some_and(|b| b.is_ascii_whitespace())
        })?
        .len();
    let Some(close) = rest.iter().take(MAX_HEADER).position(|&b| b == b'>') else {
        return Some(more_or_not(rest));
    };
    let tag = rest.get(name_len..close).unwrap_or_default();
    if tag.iter().any(|&b| b < 0x20 && !b.is_ascii_whitespace()) {
        return Some(Probe::NoMatch);
    }
    let jid = |v: &[u8]| {
        let at = v.iter().position(|&b| b == b'@');
        at.is_some_and(|i| i > 0 && v.get(i + 1..).is_some_and(|domain| !domain.is_empty()))
            && !v
                .iter()
                .any(|b| b.is_ascii_whitespace() || b"<>\"".contains(b))
    };
    let ok = if name_len == 3 {
        attribute(tag, b"id").is_some()
            && matches!(
                attribute(tag, b"type"),
                Some(b"get" | b"set" | b"result" | b"error")
            )
    } else {
        attribute(tag, b"to").is_some_and(jid) || attribute(tag, b"from").is_some_and(jid)
    };
    Some(if ok {
        Probe::Match {
            indicator: "xmpp.stanza",
            meta: Meta::None,
        }
    } else {
        Probe::NoMatch
    })
}

/// NeedMore while the header may still complete within the bound.
fn more_or_not(data: &[u8]) -> Probe {
    if data.len() < MAX_HEADER && data.iter().all(|&b| b >= 0x20 || b.is_ascii_whitespace()) {
        Probe::NeedMore
    } else {
        Probe::NoMatch
    }
}

fn skip_space(d: &[u8]) -> &[u8] {
    let n = d.iter().take_while(|b| b.is_ascii_whitespace()).count();
    d.get(n..).unwrap_or_default()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len())
        .take(MAX_HEADER)
        .position(|w| w == needle)
}

/// Value of attribute `name` (quoted with `'` or `"`) inside a start tag.
fn attribute<'a>(tag: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let mut i = 0;
    while i + name.len() + 2 < tag.len() {
        let before_ok = tag
            .get(i.wrapping_sub(1))
            .is_none_or(|b| b.is_ascii_whitespace());
        if before_ok
            && tag.get(i..i + name.len()) == Some(name)
            && tag.get(i + name.len()) == Some(&b'=')
        {
            let quote = *tag.get(i + name.len() + 1)?;
            if quote != b'\'' && quote != b'"' {
                return None;
            }
            let start = i + name.len() + 2;
            let len = tag.get(start..)?.iter().position(|&b| b == quote)?;
            let value = tag.get(start..start + len)?;
            return (!value.is_empty() && value.len() <= 255).then_some(value);
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_packet::Transport;
    use crate::probe::Side;

    const CLIENT: ProbeContext = ProbeContext::new(Transport::Tcp, 40000, 5222);
    const SERVER: ProbeContext = CLIENT.sent_by(Side::Server);

    #[test]
    fn client_stream_header() {
        let d = b"<?xml version='1.0'?><stream:stream to='im.example.com' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";
        assert_eq!(
            probe(&CLIENT, d),
            Probe::Match {
                indicator: "xmpp.stream",
                meta: Meta::Name("im.example.com".into())
            }
        );
    }

    #[test]
    fn server_reply_and_no_declaration() {
        let d = b"<stream:stream xmlns:stream=\"http://etherx.jabber.org/streams\" xmlns=\"jabber:client\" from=\"im.example.com\" id=\"abc\" version=\"1.0\"><stream:features>";
        assert_eq!(
            probe(&SERVER, d),
            Probe::Match {
                indicator: "xmpp.stream",
                meta: Meta::Name("im.example.com".into())
            }
        );
    }

    #[test]
    fn stanzas_of_a_stream_already_open() {
        for d in [
            &b"<presence to='chat@conference.example.lan/tom' xml:lang='en'><x xmlns='http://jabber.org/protocol/muc'/></presence>"[..],
            b"<iq type='get' id='purple1a2b' to='conference.example.lan'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
            b"<message to='tom@example.lan/laptop' from='anna@example.lan/phone' type='chat'><body>hi</body></message>",
            b"</stream:stream>",
        ] {
            assert!(matches!(probe(&CLIENT, d), Probe::Match { indicator: "xmpp.stanza", .. }), "{d:?}");
        }
        for d in [
            &b"<iq type='query' id='1'>"[..],
            b"<iq id='1'>",
            b"<message to='everyone'>",
            b"<presence>",
            b"<iqx type='get' id='1'>",
        ] {
            assert_eq!(probe(&CLIENT, d), Probe::NoMatch, "{d:?}");
        }
    }

    #[test]
    fn partial_and_rejections() {
        assert_eq!(
            probe(&CLIENT, b"<?xml version='1.0'?><stream:str"),
            Probe::NeedMore
        );
        assert_eq!(
            probe(&CLIENT, b"<?xml version='1.0'?><stream:stream to='a'"),
            Probe::NeedMore
        );
        for d in [
            &b"<?xml version='1.0'?><html><body>"[..],
            b"<stream:stream to='x' xmlns='urn:example'>",
            b"<stream:streamer xmlns='jabber:client'>",
            b"GET / HTTP/1.1\r\n\r\n",
            b"\x16\x03\x01\x02\x00",
        ] {
            assert_eq!(probe(&CLIENT, d), Probe::NoMatch, "{d:?}");
        }
    }
}
