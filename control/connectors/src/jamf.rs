//! The Jamf Pro API connector: a token from `POST /api/oauth/token` (client credentials), then
//! `GET /api/v2/mobile-devices/detail` with the sections the importer reads, every page
//! (`page`, `page-size`, until `totalCount` devices or a short page), joined into one
//! `{totalCount, results}` document for [`portolan_control::inventory::jamf`].
//!
//! Owns: [`pull`]. Must not: parse a device (the importer does), or import anything.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::config::JamfConfig;
use crate::http::Http;
use crate::oauth::{Session, TokenSource};
use crate::{ConnectorError, Pulled};

/// The sections requested: everything [`portolan_control::inventory::jamf`] reads.
pub const SECTIONS: [&str; 5] = [
    "GENERAL",
    "HARDWARE",
    "USER_AND_LOCATION",
    "APPLICATIONS",
    "EXTENSION_ATTRIBUTES",
];

/// The list endpoint, relative to the server.
pub const DETAIL_PATH: &str = "/api/v2/mobile-devices/detail";

/// Pulls every mobile device from the Jamf Pro server of `cfg` (`prefix` names the section in
/// errors, e.g. `inputs.jamf`).
pub async fn pull(cfg: &JamfConfig, prefix: &str) -> Result<Pulled, ConnectorError> {
    cfg.validate(prefix)?;
    let (secret, http) = Http::for_section(
        prefix,
        &cfg.client_secret_file,
        &cfg.limits,
        cfg.ca_file.as_deref(),
    )?;
    let tokens = TokenSource::new(
        format!("{}/api/oauth/token", cfg.base()),
        &cfg.client_id,
        secret,
        None,
    );
    let mut session = Session { http, tokens };
    let url = format!("{}{DETAIL_PATH}", cfg.base());
    let sections: String = SECTIONS.iter().map(|s| format!("section={s}&")).collect();
    let page_size = cfg.page_size;
    let mut results: Vec<Value> = Vec::new();
    let mut total: Option<u64> = None;
    let mut pages = 0u32;
    loop {
        if pages == cfg.limits.max_pages {
            return Err(ConnectorError::Protocol {
                what: format!("GET {url}"),
                message: format!(
                    "more than {prefix}.limits.max_pages ({}) pages of {page_size}; raise it or \
                     page_size",
                    cfg.limits.max_pages
                ),
            });
        }
        let page_url = format!("{url}?{sections}page={pages}&page-size={page_size}");
        let doc = session.get_json(&page_url).await?;
        pages += 1;
        let bad = |m: String| ConnectorError::Protocol {
            what: format!("GET {page_url}"),
            message: m,
        };
        let count = doc
            .get("totalCount")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("no numeric `totalCount` (not a Jamf Pro list response)".into()))?;
        let Some(Value::Array(items)) = doc.get("results") else {
            return Err(bad(
                "no `results` array (not a Jamf Pro list response)".into()
            ));
        };
        if let Some(t) = total {
            if t != count {
                tracing::warn!(
                    prefix,
                    from = t,
                    to = count,
                    "Jamf totalCount changed while paging"
                );
            }
        }
        total = Some(count);
        let got = items.len();
        results.extend(items.iter().cloned());
        if got == 0 || (results.len() as u64) >= count || got < page_size as usize {
            break;
        }
    }
    let total = total.unwrap_or(0);
    let devices = results.len();
    Ok(Pulled {
        documents: vec![(
            PathBuf::from(format!("jamf:{url}")),
            json!({"totalCount": total, "results": results}),
        )],
        pages,
        devices,
        tokens: session.tokens.fetched(),
    })
}
