//! Signature files: the per-protocol TOML data in `dataplane/signatures/` (format in its
//! `README.md`), loaded and validated.
//!
//! Owns: reading every `*.toml` of a directory, checking each field (an error names the file
//! and the field), cross-file checks (unique names, `overrides` targets), and the SHA-256 of
//! the files' contents that keys the compiled-database cache.
//! Must not: compile patterns (see [`crate::database`]) or decide anything about traffic.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use portolan_model::Side;
use portolan_packet::Transport;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::app_proto::AppProto;
use crate::protocols::{self, ProbeFn};

/// Most signature files the engine handles (candidate sets are 128-bit masks).
pub const MAX_SIGNATURES: usize = 128;
/// Default `probe_cost` of a `probe_without_pattern` signature.
pub const DEFAULT_PROBE_COST: u32 = 100;

/// An error in the signature files. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// The directory or a file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// File or directory.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// TOML syntax, a wrong type, an unknown key or a missing required key.
    #[error("{file}: {message}")]
    Parse {
        /// File.
        file: PathBuf,
        /// Parser message (names the key and line).
        message: String,
    },
    /// A field has a value the engine cannot use.
    #[error("{file}: field `{field}`: {message}")]
    Invalid {
        /// File.
        file: PathBuf,
        /// Field, e.g. `pattern[2].regex` or `ports.tcp`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The directory holds no signature file.
    #[error("{dir}: no *.toml signature files")]
    Empty {
        /// Directory.
        dir: PathBuf,
    },
}

/// A side as signature files spell it (`client`, `server`, `either`); only the file format
/// uses it: the parsed signature holds an `Option<Side>` (`None`: either side).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawSide {
    Client,
    Server,
    Either,
}

impl RawSide {
    fn side(self) -> Option<Side> {
        match self {
            RawSide::Client => Some(Side::Client),
            RawSide::Server => Some(Side::Server),
            RawSide::Either => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum TransportName {
    Tcp,
    Udp,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPorts {
    tcp: Option<Vec<i64>>,
    udp: Option<Vec<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPattern {
    direction: RawSide,
    regex: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSignature {
    name: String,
    transport: Vec<TransportName>,
    first_speaker: RawSide,
    parser: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    probe_without_pattern: bool,
    #[serde(default)]
    probe_cost: Option<i64>,
    #[serde(default)]
    metadata_in_first_message: bool,
    #[serde(default)]
    starttls: bool,
    #[serde(default)]
    overrides: Vec<String>,
    #[serde(default)]
    upgrades_to: Vec<String>,
    #[serde(default)]
    ports: Option<RawPorts>,
    #[serde(default)]
    pattern: Vec<RawPattern>,
}

/// One prefilter pattern of a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternSpec {
    /// Side that sends the matching bytes; `None`: either side (symmetric protocols).
    pub direction: Option<Side>,
    /// Hyperscan expression, starting with `^`.
    pub regex: String,
}

/// One validated signature file.
#[derive(Debug, Clone)]
pub struct Signature {
    /// File it came from.
    pub file: PathBuf,
    /// EVE `app_proto`.
    pub app_proto: AppProto,
    /// Transports it runs over.
    pub transports: Vec<Transport>,
    /// Side that normally speaks first; `None`: either.
    pub first_speaker: Option<Side>,
    /// Registered parser name.
    pub parser_name: String,
    /// The parser's probe function.
    pub parser: ProbeFn,
    /// Free text.
    pub description: Option<String>,
    /// Try the parser without a pattern hit.
    pub probe_without_pattern: bool,
    /// Order among pattern-less parsers (lower first).
    pub probe_cost: u32,
    /// Every field the parser reports comes from the first message of each direction, and a
    /// later one never adds to it (TLS: the ClientHello and the ServerHello). After the
    /// decision the engine stops feeding a direction to the decided parser once the parser has
    /// reported metadata from it, instead of reading up to `max_packets` of its later
    /// (encrypted) packets. A direction whose first message is lost or reordered is still read
    /// up to `max_packets`.
    pub metadata_in_first_message: bool,
    /// Watch for an in-band TLS upgrade after the decision.
    pub starttls: bool,
    /// Protocols this one wins over when both confirm.
    pub overrides: Vec<AppProto>,
    /// Protocols the same 5-tuple may switch to after this one (e.g. `stun` → `dtls` in
    /// WebRTC): after the decision their parsers watch the next packets, and a confirmation
    /// relabels the flow.
    pub upgrades_to: Vec<AppProto>,
    /// Registered TCP ports.
    pub tcp_ports: Vec<u16>,
    /// Registered UDP ports.
    pub udp_ports: Vec<u16>,
    /// Prefilter patterns.
    pub patterns: Vec<PatternSpec>,
}

impl Signature {
    /// True when the signature applies to `transport`.
    pub fn runs_over(&self, transport: Transport) -> bool {
        self.transports.contains(&transport)
    }
}

/// All signature files of a directory, validated, in file-name order.
#[derive(Debug, Clone)]
pub struct SignatureSet {
    /// The signatures.
    pub signatures: Vec<Signature>,
    /// SHA-256 over every file's name and contents (the compiled-database cache key).
    pub digest: [u8; 32],
}

fn invalid(file: &Path, field: impl Into<String>, message: impl Into<String>) -> SignatureError {
    SignatureError::Invalid {
        file: file.to_path_buf(),
        field: field.into(),
        message: message.into(),
    }
}

fn port_list(
    file: &Path,
    field: &str,
    raw: Option<Vec<i64>>,
    allowed: bool,
) -> Result<Vec<u16>, SignatureError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    if !allowed && !raw.is_empty() {
        return Err(invalid(
            file,
            field,
            "ports listed for a transport the signature does not run over",
        ));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, p) in raw.into_iter().enumerate() {
        let port = u16::try_from(p).ok().filter(|&p| p != 0).ok_or_else(|| {
            invalid(
                file,
                format!("{field}[{i}]"),
                format!("{p} is not a port (1..=65535)"),
            )
        })?;
        if !seen.insert(port) {
            return Err(invalid(
                file,
                format!("{field}[{i}]"),
                format!("duplicate port {port}"),
            ));
        }
        out.push(port);
    }
    Ok(out)
}

/// Parses and validates one signature file's text. `file` is used for messages and must be
/// named `<name>.toml`. Cross-file checks (`overrides`) are done by [`load_dir`].
pub fn parse_signature(file: &Path, text: &str) -> Result<Signature, SignatureError> {
    let raw: RawSignature = toml::from_str(text).map_err(|e| SignatureError::Parse {
        file: file.to_path_buf(),
        message: e.to_string(),
    })?;
    let app_proto = AppProto::from_name(&raw.name)
        .filter(|p| *p != AppProto::Unknown)
        .ok_or_else(|| {
            invalid(
                file,
                "name",
                format!("`{}` is not a known app_proto", raw.name),
            )
        })?;
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    if stem != raw.name {
        return Err(invalid(
            file,
            "name",
            format!("`{}` must equal the file stem `{stem}`", raw.name),
        ));
    }
    if raw.transport.is_empty() {
        return Err(invalid(
            file,
            "transport",
            "must list \"tcp\" and/or \"udp\"",
        ));
    }
    let mut transports = Vec::new();
    for t in &raw.transport {
        let t = match t {
            TransportName::Tcp => Transport::Tcp,
            TransportName::Udp => Transport::Udp,
        };
        if transports.contains(&t) {
            return Err(invalid(file, "transport", "duplicate transport"));
        }
        transports.push(t);
    }
    let parser = protocols::parser(&raw.parser).ok_or_else(|| {
        invalid(
            file,
            "parser",
            format!(
                "no parser `{}` is registered in protocols/mod.rs",
                raw.parser
            ),
        )
    })?;
    let probe_cost = match raw.probe_cost {
        None => DEFAULT_PROBE_COST,
        Some(_) if !raw.probe_without_pattern => {
            return Err(invalid(
                file,
                "probe_cost",
                "only allowed with probe_without_pattern = true",
            ))
        }
        Some(c) => u32::try_from(c)
            .ok()
            .filter(|c| (1..=1000).contains(c))
            .ok_or_else(|| invalid(file, "probe_cost", format!("{c} is not in 1..=1000")))?,
    };
    if raw.pattern.is_empty() && !raw.probe_without_pattern {
        return Err(invalid(
            file,
            "pattern",
            "at least one [[pattern]] is required unless probe_without_pattern = true",
        ));
    }
    let mut patterns = Vec::with_capacity(raw.pattern.len());
    for (i, p) in raw.pattern.into_iter().enumerate() {
        if !p.regex.starts_with('^') {
            return Err(invalid(
                file,
                format!("pattern[{i}].regex"),
                "must start with `^` (anchored at the payload start)",
            ));
        }
        if p.regex.contains('\0') {
            return Err(invalid(
                file,
                format!("pattern[{i}].regex"),
                "contains a NUL character",
            ));
        }
        patterns.push(PatternSpec {
            direction: p.direction.side(),
            regex: p.regex,
        });
    }
    let mut overrides = Vec::new();
    for (i, o) in raw.overrides.iter().enumerate() {
        let p = AppProto::from_name(o)
            .filter(|p| *p != AppProto::Unknown && *p != app_proto)
            .ok_or_else(|| {
                invalid(
                    file,
                    format!("overrides[{i}]"),
                    format!("`{o}` is not another known app_proto"),
                )
            })?;
        overrides.push(p);
    }
    let mut upgrades_to = Vec::new();
    for (i, u) in raw.upgrades_to.iter().enumerate() {
        let p = AppProto::from_name(u)
            .filter(|p| *p != AppProto::Unknown && *p != app_proto)
            .ok_or_else(|| {
                invalid(
                    file,
                    format!("upgrades_to[{i}]"),
                    format!("`{u}` is not another known app_proto"),
                )
            })?;
        if upgrades_to.contains(&p) {
            return Err(invalid(
                file,
                format!("upgrades_to[{i}]"),
                format!("duplicate `{u}`"),
            ));
        }
        upgrades_to.push(p);
    }
    let (tcp_ports, udp_ports) = match raw.ports {
        None => (Vec::new(), Vec::new()),
        Some(ports) => (
            port_list(
                file,
                "ports.tcp",
                ports.tcp,
                transports.contains(&Transport::Tcp),
            )?,
            port_list(
                file,
                "ports.udp",
                ports.udp,
                transports.contains(&Transport::Udp),
            )?,
        ),
    };
    Ok(Signature {
        file: file.to_path_buf(),
        app_proto,
        transports,
        first_speaker: raw.first_speaker.side(),
        parser_name: raw.parser,
        parser,
        description: raw.description,
        probe_without_pattern: raw.probe_without_pattern,
        probe_cost,
        metadata_in_first_message: raw.metadata_in_first_message,
        starttls: raw.starttls,
        overrides,
        upgrades_to,
        tcp_ports,
        udp_ports,
        patterns,
    })
}

/// Loads and validates every `*.toml` file of `dir`.
pub fn load_dir(dir: &Path) -> Result<SignatureSet, SignatureError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SignatureError::Io { path, source }
    };
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(io(dir))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io(dir))?;
    files.retain(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file());
    files.sort();
    if files.is_empty() {
        return Err(SignatureError::Empty {
            dir: dir.to_path_buf(),
        });
    }
    let mut texts = Vec::with_capacity(files.len());
    for f in &files {
        texts.push(fs::read_to_string(f).map_err(io(f))?);
    }
    from_texts(files.into_iter().zip(texts))
}

/// Validates signature files given as `(path, contents)` (as [`load_dir`] does after reading).
pub fn from_texts(
    files: impl IntoIterator<Item = (PathBuf, String)>,
) -> Result<SignatureSet, SignatureError> {
    let mut hasher = Sha256::new();
    let mut signatures: Vec<Signature> = Vec::new();
    for (path, text) in files {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        hasher.update(name.as_bytes());
        hasher.update([0u8]);
        hasher.update((text.len() as u64).to_be_bytes());
        hasher.update(text.as_bytes());
        let sig = parse_signature(&path, &text)?;
        if let Some(prev) = signatures.iter().find(|s| s.app_proto == sig.app_proto) {
            return Err(invalid(
                &path,
                "name",
                format!(
                    "`{}` is also defined in {}",
                    sig.app_proto,
                    prev.file.display()
                ),
            ));
        }
        signatures.push(sig);
        if signatures.len() > MAX_SIGNATURES {
            return Err(invalid(
                &path,
                "name",
                format!("more than {MAX_SIGNATURES} signature files"),
            ));
        }
    }
    for sig in &signatures {
        for (i, o) in sig.overrides.iter().enumerate() {
            if !signatures.iter().any(|s| s.app_proto == *o) {
                return Err(invalid(
                    &sig.file,
                    format!("overrides[{i}]"),
                    format!("no signature file defines `{o}`"),
                ));
            }
        }
    }
    for sig in &signatures {
        for (i, u) in sig.upgrades_to.iter().enumerate() {
            let field = format!("upgrades_to[{i}]");
            let Some(target) = signatures.iter().find(|s| s.app_proto == *u) else {
                return Err(invalid(
                    &sig.file,
                    field,
                    format!("no signature file defines `{u}`"),
                ));
            };
            if !target.upgrades_to.is_empty() {
                return Err(invalid(
                    &sig.file,
                    field,
                    format!("`{u}` has `upgrades_to` itself (chains are not allowed)"),
                ));
            }
            if !sig.transports.iter().any(|t| target.runs_over(*t)) {
                return Err(invalid(
                    &sig.file,
                    field,
                    format!("`{u}` shares no transport with `{}`", sig.app_proto),
                ));
            }
        }
    }
    let mut digest = [0u8; 32];
    digest.copy_from_slice(&hasher.finalize());
    Ok(SignatureSet { signatures, digest })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TLS: &str = r#"
name = "tls"
transport = ["tcp"]
first_speaker = "client"
parser = "tls"
[ports]
tcp = [443]
[[pattern]]
direction = "client"
regex = '^\x16\x03[\x00-\x04]..\x01'
"#;

    fn err(text: &str) -> String {
        parse_signature(Path::new("sig/tls.toml"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn parses_a_valid_file() {
        let s = parse_signature(Path::new("sig/tls.toml"), TLS).unwrap();
        assert_eq!(s.app_proto, AppProto::Tls);
        assert_eq!(s.tcp_ports, vec![443]);
        assert_eq!(s.patterns.len(), 1);
        assert_eq!(s.probe_cost, DEFAULT_PROBE_COST);
    }

    #[test]
    fn errors_name_file_and_field() {
        let e = err(&TLS.replace("tcp = [443]", "tcp = [70000]"));
        assert!(
            e.contains("sig/tls.toml") && e.contains("ports.tcp[0]"),
            "{e}"
        );
        let e = err(&TLS.replace("regex = '^", "regex = '"));
        assert!(e.contains("pattern[0].regex"), "{e}");
        let e = err(&TLS.replace("parser = \"tls\"", "parser = \"nope\""));
        assert!(e.contains("`parser`"), "{e}");
        let e = err(&TLS.replace("first_speaker", "first_speakr"));
        assert!(
            e.contains("sig/tls.toml") && e.contains("first_speakr"),
            "{e}"
        );
        let e = err(&TLS.replace("tcp = [443]", "udp = [443]"));
        assert!(e.contains("ports.udp"), "{e}");
        let e = err(&TLS.replace("name = \"tls\"", "name = \"http\""));
        assert!(e.contains("`name`"), "{e}");
        let e = err(&TLS.replace("[ports]", "probe_cost = 5\n[ports]"));
        assert!(e.contains("probe_cost"), "{e}");
        let e = err(&TLS.replace("[ports]", "metadata_in_first_message = 1\n[ports]"));
        assert!(e.contains("metadata_in_first_message"), "{e}");
    }

    #[test]
    fn duplicate_and_dangling_overrides() {
        let a = (PathBuf::from("d/tls.toml"), TLS.to_string());
        let b = (
            PathBuf::from("d/tls.toml"),
            TLS.replace("[ports]", "overrides = [\"http\"]\n[ports]"),
        );
        let e = from_texts([a.clone(), a.clone()]).unwrap_err().to_string();
        assert!(e.contains("also defined"), "{e}");
        let e = from_texts([b]).unwrap_err().to_string();
        assert!(e.contains("overrides[0]"), "{e}");
        let one = from_texts([a.clone()]).unwrap();
        let changed = from_texts([(a.0.clone(), a.1.replace("443", "8443"))]).unwrap();
        assert_ne!(one.digest, changed.digest);
    }

    const STUN: &str = r#"
name = "stun"
transport = ["udp"]
first_speaker = "client"
parser = "stun"
upgrades_to = ["dtls"]
[[pattern]]
direction = "either"
regex = '^[\x00-\x3f]...\x21\x12\xa4\x42'
"#;

    const DTLS: &str = r#"
name = "dtls"
transport = ["udp"]
first_speaker = "client"
parser = "dtls"
[[pattern]]
direction = "client"
regex = '^\x16\xfe'
"#;

    #[test]
    fn upgrades_to_is_validated() {
        let stun = |t: &str| (PathBuf::from("d/stun.toml"), t.to_string());
        let dtls = |t: &str| (PathBuf::from("d/dtls.toml"), t.to_string());
        let set = from_texts([dtls(DTLS), stun(STUN)]).unwrap();
        let s = set
            .signatures
            .iter()
            .find(|s| s.app_proto == AppProto::Stun)
            .unwrap();
        assert_eq!(s.upgrades_to, vec![AppProto::Dtls]);

        // The target must exist.
        let e = from_texts([stun(STUN)]).unwrap_err().to_string();
        assert!(
            e.contains("upgrades_to[0]") && e.contains("no signature"),
            "{e}"
        );
        // Not itself, not unknown names, no duplicates.
        for bad in ["[\"stun\"]", "[\"nope\"]", "[\"dtls\", \"dtls\"]"] {
            let text = STUN.replace("[\"dtls\"]", bad);
            let e = from_texts([dtls(DTLS), stun(&text)])
                .unwrap_err()
                .to_string();
            assert!(e.contains("upgrades_to["), "{bad}: {e}");
        }
        // No chains.
        let chained = DTLS.replace(
            "parser = \"dtls\"",
            "parser = \"dtls\"\nupgrades_to = [\"stun\"]",
        );
        let e = from_texts([dtls(&chained), stun(STUN)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("chains"), "{e}");
        // A shared transport.
        let tcp_only = STUN.replace("transport = [\"udp\"]", "transport = [\"tcp\"]");
        let e = from_texts([dtls(DTLS), stun(&tcp_only)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("shares no transport"), "{e}");
    }
}
