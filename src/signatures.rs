//! Where the protocol signatures come from, for `portolan replay`, `portolan run` and
//! `portolan check-config`.
//!
//! The search, first match wins:
//! 1. the directory given explicitly: `--signatures DIR` (replay) or `dataplane.signatures`
//!    (appliance configuration) — an error naming it when it is not a directory;
//! 2. `$PORTOLAN_SIGNATURES` — an error naming it when it is not a directory;
//! 3. `signatures`, then `../share/portolan/signatures`, beside the executable (an installed
//!    `/usr/bin/portolan` finds `/usr/share/portolan/signatures`; an unpacked tree finds its own);
//! 4. [`INSTALLED_DIR`], `/usr/share/portolan/signatures`;
//! 5. the signature files built into the binary (a copy of `dataplane/signatures` taken by
//!    `build.rs`), so a binary copied anywhere still classifies.
//!
//! Owns: the search and loading the set it finds into [`CompiledSignatures`]. Must not: depend
//! on the source tree's location at run time (no path is compiled in), or write anything but the
//! Hyperscan cache the caller asks for.

use std::fmt;
use std::path::{Path, PathBuf};

use portolan_classify::database::DatabaseReport;
use portolan_classify::{CacheDir, ClassifyConfig, CompiledSignatures, DatabaseSource, LoadError};
use portolan_dataplane::runtime::ClassifierSetupError;
use portolan_dataplane::Classifiers;

/// Environment variable naming the signature directory (after the explicit option).
pub const SIGNATURES_ENV: &str = "PORTOLAN_SIGNATURES";

/// Where the Debian package installs the signatures.
pub const INSTALLED_DIR: &str = "/usr/share/portolan/signatures";

/// The signature files built into this binary: `(file name, contents)`, in file-name order.
const EMBEDDED: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/embedded_signatures.rs"));

/// The search order in words, for errors and `--help`.
pub const SEARCH: &str = "$PORTOLAN_SIGNATURES, `signatures` or `../share/portolan/signatures` \
                          beside the executable, /usr/share/portolan/signatures, then the set \
                          built into the binary";

/// A signature set found by [`locate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureSource {
    /// A directory of `*.toml` signature files, and what named it.
    Dir {
        /// The directory.
        path: PathBuf,
        /// `--signatures`, `dataplane.signatures`, `$PORTOLAN_SIGNATURES`, or `default search`.
        from: &'static str,
    },
    /// The files built into this binary.
    Embedded,
}

impl fmt::Display for SignatureSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureSource::Dir { path, .. } => write!(f, "{}", path.display()),
            SignatureSource::Embedded => write!(
                f,
                "the {} signature files built into this binary (git {})",
                EMBEDDED.len(),
                env!("PORTOLAN_GIT_REVISION")
            ),
        }
    }
}

/// Finds the signature set: `explicit` is the directory given by `what` (`--signatures` or
/// `dataplane.signatures`), if any. An error is one line naming the directory and where it came
/// from.
pub fn locate(explicit: Option<&Path>, what: &'static str) -> Result<SignatureSource, String> {
    let named = |p: &Path, from: &'static str| {
        if p.is_dir() {
            Ok(SignatureSource::Dir {
                path: p.to_path_buf(),
                from,
            })
        } else {
            Err(format!(
                "signature directory {} (from {from}) not found or not a directory; without \
                 {from} the search is {SEARCH}",
                p.display()
            ))
        }
    };
    if let Some(p) = explicit {
        return named(p, what);
    }
    if let Some(p) = std::env::var_os(SIGNATURES_ENV).filter(|v| !v.is_empty()) {
        return named(Path::new(&p), "$PORTOLAN_SIGNATURES");
    }
    let mut candidates = Vec::new();
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        candidates.push(exe_dir.join("signatures"));
        candidates.push(exe_dir.join("../share/portolan/signatures"));
    }
    candidates.push(PathBuf::from(INSTALLED_DIR));
    Ok(candidates
        .into_iter()
        .find(|p| p.is_dir())
        .map_or(SignatureSource::Embedded, |p| SignatureSource::Dir {
            path: fold(&p),
            from: "default search",
        }))
}

/// `p` with `.` and `..` folded lexically, for log lines.
fn fold(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Loads and compiles the set (Hyperscan database from `cache` when it holds one). An error
/// names the source and the file and field at fault.
pub fn load(
    source: &SignatureSource,
    cache: &CacheDir,
) -> Result<(CompiledSignatures, DatabaseReport), String> {
    let result: Result<_, LoadError> = match source {
        SignatureSource::Dir { path, .. } => CompiledSignatures::load(path, cache),
        SignatureSource::Embedded => {
            portolan_classify::signature::from_texts(EMBEDDED.iter().map(|(name, text)| {
                (
                    PathBuf::from(format!("<built-in>/{name}")),
                    (*text).to_string(),
                )
            }))
            .map_err(Into::into)
            .and_then(|set| CompiledSignatures::from_set(set, cache).map_err(Into::into))
        }
    };
    result.map_err(|e| format!("signatures {source}: {e}"))
}

/// The run's classifiers: the set of `source`, its port registry with the override file `ports`
/// applied (`ports_what` names that option in errors), classifying with `config`. Every error is
/// the user's input at fault.
pub fn classifiers(
    source: &SignatureSource,
    ports: Option<&Path>,
    ports_what: &str,
    config: ClassifyConfig,
) -> Result<Classifiers, String> {
    let (signatures, database) = load(source, &CacheDir::Default)?;
    Classifiers::from_compiled(signatures, database, ports, config).map_err(|e| match e {
        ClassifierSetupError::PortOverride(m) => format!("{ports_what}: {m}"),
        other => other.to_string(),
    })
}

/// One line saying what was loaded from where, for logs and the replay summary.
pub fn describe(source: &SignatureSource, classifiers: &Classifiers) -> String {
    format!(
        "{} protocols, {} patterns from {} ({})",
        classifiers.protocols(),
        classifiers.database().patterns,
        source,
        match &classifiers.database().source {
            DatabaseSource::Cache(p) => format!("cached database {}", p.display()),
            DatabaseSource::Compiled => "compiled".to_string(),
            DatabaseSource::Empty => "no patterns".to_string(),
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_set_is_the_source_trees() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("dataplane/signatures");
        let mut on_disk: Vec<(String, String)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read_to_string(&p).unwrap(),
                )
            })
            .collect();
        on_disk.sort();
        let built_in: Vec<(String, String)> = EMBEDDED
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        assert_eq!(built_in, on_disk);
        let (from_dir, _) = load(
            &SignatureSource::Dir {
                path: dir,
                from: "test",
            },
            &CacheDir::Disabled,
        )
        .unwrap();
        let (built, _) = load(&SignatureSource::Embedded, &CacheDir::Disabled).unwrap();
        let names = |s: &CompiledSignatures| {
            s.signatures()
                .iter()
                .map(|s| s.app_proto.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&built), names(&from_dir));
        assert!(names(&built).len() >= 25);
    }

    #[test]
    fn an_explicit_directory_that_is_missing_is_named() {
        let e = locate(Some(Path::new("/nonexistent/sigs")), "dataplane.signatures").unwrap_err();
        assert!(e.contains("/nonexistent/sigs"), "{e}");
        assert!(e.contains("dataplane.signatures"), "{e}");
        assert!(e.contains(INSTALLED_DIR), "the search is documented: {e}");
    }
}
