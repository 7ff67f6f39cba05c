//! The configuration file of `portolan central`: where it keeps its store, the cluster and its
//! durable consumer (`[central]`), the admin API (`[api]`, as the appliance's) and logging.
//!
//! ```toml
//! data_dir = "central-data"
//! [central]
//! servers = ["nats://127.0.0.1:4222"]
//! [api]
//! listen = "127.0.0.1:9444"
//! ```
//!
//! Owns: parsing with unknown keys refused, resolving relative paths (`data_dir` against the
//! file's folder, the store and the TLS files against `data_dir`) and checks naming the field.
//! Must not: open the store, bind sockets or connect.

use std::path::{Path, PathBuf};

use portolan_api::ApiConfig;
use portolan_control::Durability;
use portolan_fleet::config::CentralSection;
use serde::Deserialize;

use crate::config::{parse_message, rebase, ConfigError, LoggingSection, Overrides};

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentralConfig {
    /// Folder for the central's store and TLS pair, relative to the file's folder.
    pub data_dir: PathBuf,
    /// The central's store.
    #[serde(default)]
    pub store: CentralStore,
    /// The cluster and the durable consumer.
    pub central: CentralSection,
    /// The admin API.
    #[serde(default)]
    pub api: ApiConfig,
    /// Logging.
    #[serde(default)]
    pub logging: LoggingSection,
    /// The file this was read from (absolute).
    #[serde(skip)]
    pub origin: PathBuf,
}

/// `[store]` of the central.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CentralStore {
    /// SQLite file, relative to `data_dir` (default `central.db`).
    pub path: PathBuf,
    /// `full` (default) or `normal`.
    pub durability: Durability,
}

impl Default for CentralStore {
    fn default() -> Self {
        CentralStore {
            path: PathBuf::from("central.db"),
            durability: Durability::Full,
        }
    }
}

/// True when the TOML text is a central's configuration (it has a `[central]` table).
pub fn is_central(text: &str) -> bool {
    toml::from_str::<toml::Table>(text).is_ok_and(|t| t.contains_key("central"))
}

impl CentralConfig {
    /// Reads, resolves and checks the file at `path`, with `overrides` applied.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<CentralConfig, ConfigError> {
        let origin = std::path::absolute(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let text = std::fs::read_to_string(&origin).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut cfg: CentralConfig =
            serde_path_to_error::deserialize(toml::Deserializer::new(&text)).map_err(|e| {
                ConfigError::Parse {
                    path: origin.clone(),
                    message: parse_message(&text, &e),
                }
            })?;
        cfg.origin = origin;
        let base = cfg
            .origin
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        cfg.data_dir = match &overrides.data_dir {
            Some(d) => std::path::absolute(d).map_err(|e| cfg.invalid("data_dir", e))?,
            None => rebase(&base, &cfg.data_dir),
        };
        if let Some(l) = overrides.listen {
            cfg.api.listen = l;
        }
        cfg.store.path = rebase(&cfg.data_dir, &cfg.store.path);
        let data = cfg.data_dir.clone();
        cfg.api.resolve_paths(&data);
        cfg.central
            .check()
            .map_err(|(field, reason)| cfg.invalid(format!("central.{field}"), reason))?;
        cfg.api
            .validate()
            .map_err(|e| cfg.invalid(format!("api.{}", e.field), e.reason))?;
        if cfg.logging.level.trim().is_empty() {
            return Err(cfg.invalid("logging.level", "must not be empty"));
        }
        Ok(cfg)
    }

    fn invalid(&self, field: impl Into<String>, reason: impl ToString) -> ConfigError {
        ConfigError::Invalid {
            path: self.origin.clone(),
            field: field.into(),
            reason: reason.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_checked_by_name_and_paths_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("central.toml");
        let ok = "data_dir = \"c\"\n[central]\nservers = [\"nats://127.0.0.1:4222\"]\n";
        assert!(is_central(ok));
        std::fs::write(&path, ok).unwrap();
        let c = CentralConfig::load(&path, &Overrides::default()).unwrap();
        assert_eq!(c.store.path, dir.path().join("c/central.db"));
        assert_eq!(c.central.consumer, "portolan-central");
        for (text, field) in [
            (
                "data_dir = \"c\"\n[central]\nservers = []\n",
                "central.servers",
            ),
            (
                "data_dir = \"c\"\n[central]\nservers = [\"nats://h:1\"]\nconsumer = \"a.b\"\n",
                "central.consumer",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let e = CentralConfig::load(&path, &Overrides::default()).unwrap_err();
            assert_eq!(e.field(), Some(field), "{e}");
        }
        std::fs::write(&path, format!("{ok}surprise = 1\n")).unwrap();
        let e = CentralConfig::load(&path, &Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("surprise"), "{e}");
    }
}
