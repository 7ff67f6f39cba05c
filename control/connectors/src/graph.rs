//! The Microsoft Graph (Intune) connector: a token from the tenant's v2.0 token endpoint (client
//! credentials, scope `https://graph.microsoft.com/.default`), then
//! `GET deviceManagement/managedDevices` filtered to iOS and iPadOS, each device's `detectedApps`
//! (`managedDevices/{id}?$expand=detectedApps`), and `deviceAppManagement/mobileApps` for bundle
//! IDs, every list followed through `@odata.nextLink`. The pages are joined into one
//! `managedDevices` document (apps in each record) and one `mobileApps` document for
//! [`portolan_control::inventory::intune`].
//!
//! Owns: [`pull`]. Must not: parse a device (the importer does), import anything, or send the token
//! to a host other than the configured Graph base (a `nextLink` elsewhere is refused).

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::config::GraphConfig;
use crate::http::Http;
use crate::oauth::{Session, TokenSource};
use crate::{ConnectorError, Pulled};

/// The device list, relative to the Graph base: iOS and iPadOS only (the importer skips any other
/// record a server returns anyway).
pub const DEVICES_PATH: &str =
    "/deviceManagement/managedDevices?$filter=operatingSystem%20eq%20%27iOS%27%20or%20operatingSystem%20eq%20%27iPadOS%27";
/// The app catalogue, relative to the Graph base.
pub const MOBILE_APPS_PATH: &str = "/deviceAppManagement/mobileApps";

/// Pulls the tenant's iOS/iPadOS managed devices with their detected apps and the app catalogue
/// (`prefix` names the section in errors, e.g. `inputs.graph`).
pub async fn pull(cfg: &GraphConfig, prefix: &str) -> Result<Pulled, ConnectorError> {
    cfg.validate(prefix)?;
    let (secret, http) = Http::for_section(
        prefix,
        &cfg.client_secret_file,
        &cfg.limits,
        cfg.ca_file.as_deref(),
    )?;
    let tokens = TokenSource::new(
        cfg.token_endpoint(),
        &cfg.client_id,
        secret,
        Some(&cfg.scope),
    );
    let mut session = Session { http, tokens };
    let base = cfg.base();
    let origin = origin_of(base)?;
    let mut pages = 0u32;

    let mut devices = list(
        &mut session,
        &format!("{base}{DEVICES_PATH}"),
        &origin,
        prefix,
        &mut pages,
    )
    .await?;
    for device in &mut devices {
        let ios = device
            .get("operatingSystem")
            .and_then(Value::as_str)
            .is_some_and(|os| os.eq_ignore_ascii_case("ios") || os.eq_ignore_ascii_case("ipados"));
        let Some(id) = device.get("id").and_then(Value::as_str).map(str::to_string) else {
            continue;
        };
        if !ios || !is_graph_id(&id) {
            continue;
        }
        let url = format!("{base}/deviceManagement/managedDevices/{id}?$expand=detectedApps");
        let one = session.get_json(&url).await?;
        pages += 1;
        let apps = one
            .get("detectedApps")
            .cloned()
            .ok_or_else(|| ConnectorError::Protocol {
                what: format!("GET {url}"),
                message: "no `detectedApps` in the answer to $expand=detectedApps".into(),
            })?;
        if let Some(obj) = device.as_object_mut() {
            obj.insert("detectedApps".into(), apps);
        }
    }
    let apps = list(
        &mut session,
        &format!("{base}{MOBILE_APPS_PATH}"),
        &origin,
        prefix,
        &mut pages,
    )
    .await?;

    let device_count = devices.len();
    let mut documents = vec![(
        PathBuf::from(format!("graph:{base}/deviceManagement/managedDevices")),
        json!({"value": devices}),
    )];
    if apps.iter().any(|a| a.get("bundleId").is_some()) {
        documents.push((
            PathBuf::from(format!("graph:{base}{MOBILE_APPS_PATH}")),
            json!({"value": apps}),
        ));
    }
    Ok(Pulled {
        documents,
        pages,
        devices: device_count,
        tokens: session.tokens.fetched(),
    })
}

/// Every item of a Graph collection, following `@odata.nextLink` (same origin only), at most
/// `max_pages` pages in all.
async fn list(
    session: &mut Session,
    first: &str,
    origin: &str,
    prefix: &str,
    pages: &mut u32,
) -> Result<Vec<Value>, ConnectorError> {
    let mut items = Vec::new();
    let mut next = Some(first.to_string());
    while let Some(url) = next.take() {
        let max = session.http.limits().max_pages;
        if *pages >= max {
            return Err(ConnectorError::Protocol {
                what: format!("GET {url}"),
                message: format!("more than {prefix}.limits.max_pages ({max}) requests; raise it"),
            });
        }
        let doc = session.get_json(&url).await?;
        *pages += 1;
        let bad = |m: String| ConnectorError::Protocol {
            what: format!("GET {url}"),
            message: m,
        };
        let Some(Value::Array(page)) = doc.get("value") else {
            return Err(bad(
                "no `value` array (not a Graph collection response)".into()
            ));
        };
        items.extend(page.iter().cloned());
        match doc.get("@odata.nextLink") {
            None | Some(Value::Null) => {}
            Some(Value::String(link)) => {
                if origin_of(link).ok().as_deref() != Some(origin) {
                    return Err(bad(format!(
                        "`@odata.nextLink` {link:?} leaves {origin}; the token is not sent there"
                    )));
                }
                next = Some(link.clone());
            }
            Some(_) => return Err(bad("`@odata.nextLink` is not a string".into())),
        }
    }
    Ok(items)
}

/// `scheme://host:port` of a URL.
fn origin_of(url: &str) -> Result<String, ConnectorError> {
    let u = reqwest::Url::parse(url)
        .map_err(|e| ConnectorError::Config(format!("{url:?} is not a URL: {e}")))?;
    Ok(u.origin().ascii_serialization())
}

/// A managed device ID as Graph gives them (a GUID): nothing that could change the path.
fn is_graph_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_origins() {
        assert!(is_graph_id("705c034c-034c-705c-4c03-5c704c035c70"));
        assert!(!is_graph_id("../../users"));
        assert!(!is_graph_id(""));
        assert_eq!(
            origin_of("https://graph.microsoft.com/v1.0/x?$skiptoken=1").unwrap(),
            "https://graph.microsoft.com"
        );
        assert_ne!(
            origin_of("https://graph.microsoft.com.evil.example/v1.0").unwrap(),
            "https://graph.microsoft.com"
        );
    }
}
