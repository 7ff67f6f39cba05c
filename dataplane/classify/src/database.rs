//! The one Hyperscan block-mode database compiled from every signature pattern, and its
//! on-disk cache.
//!
//! Owns: compiling all `[[pattern]]` entries of a [`SignatureSet`] into a single database
//! (`HS_FLAG_DOTALL | HS_FLAG_SINGLEMATCH`), mapping a match id back to its signature and
//! direction, and caching the serialized database in a directory keyed by the SHA-256 of the
//! signature files (plus the Hyperscan version), with a checksum so a damaged cache file is
//! recompiled instead of trusted. An unwritable cache directory only costs the compile.
//! Must not: scan traffic or allocate scratch per packet (scratch belongs to each worker's
//! [`crate::Classifier`]).

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use hyperscan::prelude::{Builder as _, Matching, Pattern, Patterns, Scratch};
use hyperscan::{BlockDatabase, BlockMode, HsError, PatternFlags, SerializedDatabase as _};
use sha2::{Digest, Sha256};

use crate::signature::SignatureSet;
use crate::tls_hello::hex;
use portolan_model::Side;

/// Bumped when the compile flags or the id layout change (part of the cache key).
const DATABASE_FORMAT: &[u8] = b"portolan-classify hsdb v1";
/// First bytes of a cache file.
const CACHE_MAGIC: &[u8; 8] = b"PHSDB01\n";

/// Where the compiled database is cached.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CacheDir {
    /// [`default_cache_dirs`]: [`default_cache_dir`], then `$HOME/.cache/portolan`.
    #[default]
    Default,
    /// This directory (created when missing).
    Dir(PathBuf),
    /// Always compile.
    Disabled,
}

/// `$XDG_CACHE_HOME/portolan` when `XDG_CACHE_HOME` is set, else `/var/cache/portolan`.
pub fn default_cache_dir() -> PathBuf {
    match std::env::var_os("XDG_CACHE_HOME") {
        Some(x) if !x.is_empty() => PathBuf::from(x).join("portolan"),
        _ => PathBuf::from("/var/cache/portolan"),
    }
}

/// Where [`CacheDir::Default`] reads and writes, in order: [`default_cache_dir`], then, when
/// `XDG_CACHE_HOME` is not set, `$HOME/.cache/portolan` (the XDG default), so that a user who
/// cannot write `/var/cache` still compiles the database once, not on every start.
pub fn default_cache_dirs() -> Vec<PathBuf> {
    let first = default_cache_dir();
    let xdg_set = std::env::var_os("XDG_CACHE_HOME").is_some_and(|x| !x.is_empty());
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty() && !xdg_set);
    let mut dirs = vec![first];
    if let Some(h) = home {
        let d = PathBuf::from(h).join(".cache").join("portolan");
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    dirs
}

/// An error building the database.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// Hyperscan rejected a pattern; names the signature file and the pattern field.
    #[error("{file}: field `{field}`: Hyperscan: {message}")]
    Pattern {
        /// Signature file.
        file: PathBuf,
        /// `pattern[i].regex`.
        field: String,
        /// Hyperscan's message.
        message: String,
    },
    /// Hyperscan failed for another reason (memory, platform).
    #[error("Hyperscan: {0}")]
    Hyperscan(String),
}

/// How the database was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseSource {
    /// Read from this cache file.
    Cache(PathBuf),
    /// Compiled now.
    Compiled,
    /// No signature has a pattern: nothing to compile.
    Empty,
}

/// What [`PatternDatabase::build`] did, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseReport {
    /// Where the database came from.
    pub source: DatabaseSource,
    /// The cache file used or written, if caching was on.
    pub cache_file: Option<PathBuf>,
    /// Why the cache could not be read or written (the engine works without it).
    pub cache_problem: Option<String>,
    /// Number of patterns compiled.
    pub patterns: usize,
}

/// What a match id stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatternOwner {
    /// Index of the signature in [`SignatureSet::signatures`].
    pub signature: usize,
    /// Side whose bytes the pattern describes; `None`: either side.
    pub direction: Option<Side>,
}

/// The compiled prefilter.
pub struct PatternDatabase {
    db: Option<BlockDatabase>,
    owners: Vec<PatternOwner>,
}

impl std::fmt::Debug for PatternDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PatternDatabase")
            .field("patterns", &self.owners.len())
            .finish()
    }
}

/// Per-worker Hyperscan scratch space for a [`PatternDatabase`].
pub struct PatternScratch(Option<Scratch>);

impl std::fmt::Debug for PatternScratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PatternScratch")
    }
}

fn cache_key(set: &SignatureSet) -> String {
    let mut h = Sha256::new();
    h.update(DATABASE_FORMAT);
    h.update(hyperscan::version_str().to_bytes());
    h.update(set.digest);
    hex(&h.finalize())
}

fn read_cache(path: &Path) -> Result<BlockDatabase, String> {
    let bytes = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let body = bytes
        .strip_prefix(CACHE_MAGIC.as_slice())
        .ok_or_else(|| format!("{}: not a database cache file", path.display()))?;
    let (sum, payload) = body
        .split_at_checked(32)
        .ok_or_else(|| format!("{}: truncated", path.display()))?;
    if Sha256::digest(payload).as_slice() != sum {
        return Err(format!("{}: checksum mismatch", path.display()));
    }
    payload
        .deserialize::<BlockMode>()
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn write_cache(dir: &Path, path: &Path, db: &BlockDatabase) -> Result<(), String> {
    let payload = db.serialize().map_err(|e| e.to_string())?;
    let payload: &[u8] = payload.as_ref();
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(CACHE_MAGIC)?;
        f.write_all(&Sha256::digest(payload))?;
        f.write_all(payload)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        format!("{}: {e}", path.display())
    })
}

impl PatternDatabase {
    /// Compiles (or reads from the cache) the database of every pattern in `set`.
    pub fn build(
        set: &SignatureSet,
        cache: &CacheDir,
    ) -> Result<(PatternDatabase, DatabaseReport), DatabaseError> {
        let mut owners = Vec::new();
        let mut patterns = Vec::new();
        let mut origin = Vec::new();
        for (si, sig) in set.signatures.iter().enumerate() {
            for (pi, p) in sig.patterns.iter().enumerate() {
                let id = owners.len();
                owners.push(PatternOwner {
                    signature: si,
                    direction: p.direction,
                });
                origin.push((si, pi));
                let mut pat = Pattern::with_flags(
                    p.regex.as_str(),
                    PatternFlags::DOTALL | PatternFlags::SINGLEMATCH,
                )
                .map_err(|e| DatabaseError::Hyperscan(e.to_string()))?;
                pat.id = Some(id);
                patterns.push(pat);
            }
        }
        let mut report = DatabaseReport {
            source: DatabaseSource::Empty,
            cache_file: None,
            cache_problem: None,
            patterns: patterns.len(),
        };
        if patterns.is_empty() {
            return Ok((PatternDatabase { db: None, owners }, report));
        }
        let dirs = match cache {
            CacheDir::Default => default_cache_dirs(),
            CacheDir::Dir(d) => vec![d.clone()],
            CacheDir::Disabled => Vec::new(),
        };
        let file = format!("signatures-{}.hsdb", cache_key(set));
        report.cache_file = dirs.first().map(|d| d.join(&file));
        for path in dirs.iter().map(|d| d.join(&file)) {
            if !path.exists() {
                continue;
            }
            match read_cache(&path) {
                Ok(db) => {
                    report.source = DatabaseSource::Cache(path.clone());
                    report.cache_file = Some(path);
                    return Ok((
                        PatternDatabase {
                            db: Some(db),
                            owners,
                        },
                        report,
                    ));
                }
                Err(problem) => report.cache_problem = Some(problem),
            }
        }
        let db: BlockDatabase = Patterns(patterns).build().map_err(|e| match &e {
            hyperscan::Error::Hyperscan(HsError::CompileError(ce)) => {
                match ce.expression().and_then(|i| origin.get(i)) {
                    Some(&(si, pi)) => DatabaseError::Pattern {
                        file: set
                            .signatures
                            .get(si)
                            .map(|s| s.file.clone())
                            .unwrap_or_default(),
                        field: format!("pattern[{pi}].regex"),
                        message: ce.message().to_string(),
                    },
                    None => DatabaseError::Hyperscan(ce.message().to_string()),
                }
            }
            other => DatabaseError::Hyperscan(other.to_string()),
        })?;
        report.source = DatabaseSource::Compiled;
        // The first directory that takes the file keeps it; a refusal on the way is reported.
        for dir in &dirs {
            let path = dir.join(&file);
            match write_cache(dir, &path, &db) {
                Ok(()) => {
                    report.cache_file = Some(path);
                    break;
                }
                Err(problem) => report.cache_problem = Some(problem),
            }
        }
        Ok((
            PatternDatabase {
                db: Some(db),
                owners,
            },
            report,
        ))
    }

    /// Allocates scratch space for one worker (once, at start-up).
    pub fn alloc_scratch(&self) -> Result<PatternScratch, DatabaseError> {
        match &self.db {
            Some(db) => db
                .alloc_scratch()
                .map(|s| PatternScratch(Some(s)))
                .map_err(|e| DatabaseError::Hyperscan(e.to_string())),
            None => Ok(PatternScratch(None)),
        }
    }

    /// The owner of match id `id`.
    pub fn owner(&self, id: u32) -> Option<PatternOwner> {
        self.owners.get(usize::try_from(id).ok()?).copied()
    }

    /// Number of compiled patterns.
    pub fn len(&self) -> usize {
        self.owners.len()
    }

    /// True when no pattern was compiled.
    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// Scans `data`, calling `on_match` with each matching pattern id. A Hyperscan error (for
    /// example scratch from another database) reports no match.
    pub fn scan(&self, scratch: &PatternScratch, data: &[u8], mut on_match: impl FnMut(u32)) {
        let (Some(db), Some(scratch)) = (&self.db, &scratch.0) else {
            return;
        };
        if data.is_empty() {
            return;
        }
        let _ = db.scan(data, scratch, |id, _from, _to, _flags| {
            on_match(id);
            Matching::Continue
        });
    }
}
