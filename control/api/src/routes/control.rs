//! Control-plane routes: inventory and devices, device state, roles and baselines, exceptions, learning
//! proposals, alerts and the audit log.
//!
//! Handlers decode and check the request, call the [`crate::control::ControlHandle`] on the
//! blocking pool with the caller's identity, and convert the result to a view. They must not write to the
//! store directly.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use portolan_control::device_state::DeviceStateEvent;
use portolan_control::engine::TriageAct;
use portolan_control::findings::Severity;
use portolan_control::learning::ApprovedPairing;
use portolan_control::roles::{ExceptionQuery, RolesError};
use portolan_control::roles::{ExceptionRule, DEVICE_DEFAULT};
use portolan_control::store::TriageKind;
use portolan_control::timestamp::{now_us, parse_timestamp};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::control::{AlertRecord, ControlError, ControlHandle};
use crate::extract::{JsonBody, PathParam, QueryParams, RawBody};
use crate::problem::{is_blank, parse_json, trim_blank, Problem};
use crate::state::ApiState;
use crate::tokens::Identity;
use crate::views::*;

/// Default page size.
const DEFAULT_LIMIT: usize = 100;
/// Largest page size.
const MAX_LIMIT: usize = 1000;
/// Largest `offset` of `GET /devices` (beyond any inventory; keeps the parameter bounded).
const MAX_OFFSET: u64 = 1_000_000_000;
/// Default learning window: 7 days.
const DEFAULT_LEARNING_WINDOW_US: i64 = 7 * 24 * 3600 * 1_000_000;

fn problem_of(e: ControlError) -> Problem {
    let with = |p: Problem, field: Option<String>| match field {
        Some(f) => p.with_field(f),
        None => p,
    };
    match e {
        ControlError::NotFound(m) => Problem::not_found(m),
        ControlError::Conflict(m) => Problem::conflict(m),
        ControlError::Invalid { field, message } => with(Problem::invalid_body(message), field),
        ControlError::Unprocessable { field, message } => {
            with(Problem::unprocessable(message), field)
        }
        ControlError::Internal(m) => Problem::internal("control-plane operation", &m),
    }
}

/// Runs a blocking control-plane operation off the async workers.
async fn blocking<T: Send + 'static>(
    state: &ApiState,
    f: impl FnOnce(&ControlHandle) -> Result<T, ControlError> + Send + 'static,
) -> Result<T, Problem> {
    let control = state.control.clone();
    tokio::task::spawn_blocking(move || f(&control))
        .await
        .map_err(|e| Problem::internal("control-plane task", &e))?
        .map_err(problem_of)
}

fn page_limit(limit: Option<usize>) -> Result<usize, Problem> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => {
            Err(Problem::bad_request(format!("limit must be 1 to {MAX_LIMIT}")).with_field("limit"))
        }
    }
}

fn parse_time(value: Option<&str>, field: &str) -> Result<Option<i64>, Problem> {
    value
        .map(|v| {
            parse_timestamp(v).map_err(|e| {
                Problem::bad_request(format!("{field} is not an RFC 3339 time: {e}"))
                    .with_field(field)
            })
        })
        .transpose()
}

fn required_text(value: Option<&str>, field: &str, max: usize) -> Result<String, Problem> {
    let v = value.map(trim_blank).unwrap_or_default();
    if is_blank(v) {
        return Err(
            Problem::bad_request(format!("{field} is required and must not be blank"))
                .with_field(field),
        );
    }
    if v.chars().count() > max {
        return Err(
            Problem::bad_request(format!("{field} is longer than {max} bytes")).with_field(field),
        );
    }
    Ok(v.to_string())
}

/// Longest accepted reason or note.
const MAX_NOTE: usize = 4096;

// ---------------------------------------------------------------------- inventory and devices

/// Imports an MDM inventory: Jamf Pro `mobile-devices/detail`, Graph `managedDevices` (with
/// `detectedApps`), or Apple MDM command responses, as JSON or plist. The shape is detected.
#[utoipa::path(
    post, path = "/api/v1/inventory", tag = "inventory",
    request_body(
        description = "An inventory document, as exported by the MDM",
        content(
            (Object = "application/json"),
            (String = "application/x-plist"),
            (String = "application/xml")
        )
    ),
    responses(
        (status = 200, description = "Imported", body = ImportResult),
        (status = 422, description = "Well-formed but not a supported inventory, or a field is wrong",
         body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn import_inventory(
    State(state): State<ApiState>,
    Extension(who): Extension<Identity>,
    RawBody(body): RawBody,
) -> Result<Json<ImportResult>, Problem> {
    let summary = blocking(&state, move |c| {
        c.import_inventory(&body, &who.actor(), who.token_id)
    })
    .await?;
    Ok(Json(ImportResult::from(summary)))
}

/// Query of `GET /devices`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeviceQuery {
    /// Only supervised (true) or unsupervised (false) devices.
    pub supervised: Option<bool>,
    /// Only managed (true) or unmanaged (false) devices.
    pub managed: Option<bool>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// Devices to skip, 0 to 1 000 000 000.
    #[param(minimum = 0, maximum = 1_000_000_000)]
    pub offset: Option<u64>,
}

/// Lists devices from the inventory.
#[utoipa::path(
    get, path = "/api/v1/devices", tag = "inventory", params(DeviceQuery),
    responses(
        (status = 200, description = "Devices", body = DeviceList),
        (status = 400, description = "A query parameter is not acceptable", body = Problem,
         content_type = "application/problem+json")
    )
)]
pub async fn list_devices(
    State(state): State<ApiState>,
    QueryParams(q): QueryParams<DeviceQuery>,
) -> Result<Json<DeviceList>, Problem> {
    let limit = page_limit(q.limit)?;
    let offset = match q.offset {
        None => 0,
        Some(n) if n <= MAX_OFFSET => usize::try_from(n).unwrap_or(usize::MAX),
        Some(_) => {
            return Err(
                Problem::bad_request(format!("offset must be 0 to {MAX_OFFSET}"))
                    .with_field("offset"),
            )
        }
    };
    let devices = blocking(&state, |c| Ok(c.operator().devices()?)).await?;
    let matching: Vec<_> = devices
        .iter()
        .filter(|d| q.supervised.is_none_or(|s| d.supervised == s))
        .filter(|d| q.managed.is_none_or(|m| d.managed == m))
        .collect();
    let total = matching.len();
    let page = matching
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(DeviceView::from)
        .collect();
    Ok(Json(DeviceList {
        devices: page,
        total,
    }))
}

/// One device by UDID (or serial number), with the records re-imports replaced and its state reports.
#[utoipa::path(
    get, path = "/api/v1/devices/{udid}", tag = "inventory",
    params(("udid" = String, Path, description = "UDID or serial number")),
    responses((status = 200, description = "The device", body = DeviceDetail))
)]
pub async fn get_device(
    State(state): State<ApiState>,
    PathParam(udid): PathParam<String>,
) -> Result<Json<DeviceDetail>, Problem> {
    let (device, history, states) = blocking(&state, move |c| {
        let (device, history) = c.operator().device(&udid)?.ok_or_else(|| {
            ControlError::NotFound(format!("no device with UDID or serial number {udid:?}"))
        })?;
        let states = c.operator().device_states(&device)?;
        Ok((device, history, states))
    })
    .await?;
    Ok(Json(DeviceDetail {
        device: DeviceView::from(&device),
        history: history.iter().map(DeviceHistoryView::from).collect(),
        states: states.iter().map(DeviceStateView::from).collect(),
    }))
}

// ---------------------------------------------------------------------- device state

/// The field a control-plane message names as `` field `x`: ... ``.
fn named_field(message: &str) -> Option<&str> {
    let rest = message.split_once("field `")?.1;
    Some(rest.split_once('`')?.0)
}

/// What the API accepts beyond the (lenient) file format: the documented enumerations exactly, and
/// times without blanks, as the OpenAPI document says. `None` when the event passes.
fn strict_state_fields(value: &serde_json::Value) -> Option<String> {
    let obj = value.as_object()?;
    for (key, allowed) in [
        ("lock_state", &["locked", "unlocked"]),
        ("app_state", &["foreground", "background"]),
    ] {
        if let Some(serde_json::Value::String(s)) = obj.get(key) {
            if !allowed.contains(&s.as_str()) {
                return Some(format!(
                    "field `{key}`: expected {:?} or {:?}, found {s:?}",
                    allowed[0], allowed[1]
                ));
            }
        }
    }
    for key in ["timestamp", "last_user_interaction"] {
        if let Some(serde_json::Value::String(s)) = obj.get(key) {
            if s.is_empty() || s.trim() != s {
                return Some(format!(
                    "field `{key}`: expected an RFC 3339 time, found {s:?}"
                ));
            }
        }
    }
    None
}

fn state_event(
    value: &serde_json::Value,
    index: usize,
    line: Option<usize>,
) -> Result<DeviceStateEvent, Problem> {
    let strict = match strict_state_fields(value) {
        Some(message) => Err(message),
        None => DeviceStateEvent::from_json(value),
    };
    strict.map_err(|message| {
        let at = match line {
            Some(l) => format!("event {index} (line {l})"),
            None => format!("event {index}"),
        };
        let field = match named_field(&message) {
            Some(f) => format!("[{index}].{f}"),
            None => format!("[{index}]"),
        };
        Problem::invalid_body(format!("{at}: {message}")).with_field(field)
    })
}

/// Parses a device state body: one JSON object, an array of them, or one object per line.
pub fn parse_device_states(body: &[u8]) -> Result<Vec<DeviceStateEvent>, Problem> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if first == Some(b'[') {
        let items: Vec<serde_json::Value> = parse_json(body)?;
        if items.is_empty() {
            return Err(Problem::invalid_body("the array holds no event"));
        }
        return items
            .iter()
            .enumerate()
            .map(|(i, v)| state_event(v, i, None))
            .collect();
    }
    let mut events = Vec::new();
    let mut stream = serde_json::Deserializer::from_slice(body).into_iter::<serde_json::Value>();
    loop {
        let offset = stream.byte_offset();
        let line = 1 + body
            .get(..offset)
            .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count());
        // The next value starts after any whitespace, possibly on a later line.
        let skipped = body.get(offset..).map_or(0, |rest| {
            rest.iter()
                .take_while(|b| b.is_ascii_whitespace())
                .filter(|&&c| c == b'\n')
                .count()
        });
        match stream.next() {
            None => break,
            Some(Ok(value)) => {
                events.push(state_event(&value, events.len(), Some(line + skipped))?)
            }
            Some(Err(e)) => {
                let what = if crate::problem::is_too_deep(&e) {
                    "nests arrays and objects deeper than the limit of 128 levels"
                } else {
                    "is not JSON"
                };
                return Err(Problem::invalid_body(format!(
                    "event {} {what} (line {}, column {}): {e}",
                    events.len(),
                    e.line(),
                    e.column()
                ))
                .with_field(format!("[{}]", events.len())));
            }
        }
    }
    if events.is_empty() {
        return Err(Problem::invalid_body("the body holds no event"));
    }
    Ok(events)
}

/// Stores device state events: one object, an array, or JSON lines (one object per line).
#[utoipa::path(
    post, path = "/api/v1/device-states", tag = "device-state",
    request_body(
        description = "One event, an array of events, or one event per line",
        content(
            (DeviceStateInput = "application/json"),
            (Vec<DeviceStateInput> = "application/json"),
            (String = "application/x-ndjson")
        )
    ),
    responses((status = 200, description = "Stored", body = DeviceStatesAccepted))
)]
pub async fn post_device_states(
    State(state): State<ApiState>,
    RawBody(body): RawBody,
) -> Result<Json<DeviceStatesAccepted>, Problem> {
    let events = parse_device_states(&body)?;
    let accepted = blocking(&state, move |c| {
        Ok(c.operator().ingest_device_states(events)?)
    })
    .await?;
    Ok(Json(DeviceStatesAccepted { accepted }))
}

// ---------------------------------------------------------------------- roles and baselines

/// Lists every role with its effective baseline.
#[utoipa::path(
    get, path = "/api/v1/roles", tag = "baselines",
    responses((status = 200, description = "Roles", body = RoleList))
)]
pub async fn list_roles(State(state): State<ApiState>) -> Result<Json<RoleList>, Problem> {
    let roles = blocking(&state, |c| Ok(c.operator().roles()?)).await?;
    Ok(Json(RoleList {
        roles: roles.roles().iter().map(RoleView::from).collect(),
    }))
}

/// One role with its effective baseline (roles file plus approved pairings).
#[utoipa::path(
    get, path = "/api/v1/roles/{name}", tag = "baselines",
    params(("name" = String, Path, description = "Role name")),
    responses((status = 200, description = "The role", body = RoleView))
)]
pub async fn get_role(
    State(state): State<ApiState>,
    PathParam(name): PathParam<String>,
) -> Result<Json<RoleView>, Problem> {
    let roles = blocking(&state, |c| Ok(c.operator().roles()?)).await?;
    roles
        .role(&name)
        .map(|r| Json(RoleView::from(r)))
        .ok_or_else(|| Problem::not_found(format!("no role named {name:?}")))
}

/// Role names `PUT`/`DELETE` accept: a letter or digit, then up to 63 letters, digits, `.`, `_`, `-`.
const ROLE_NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$";

fn role_name(name: &str) -> Result<(), Problem> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if first_ok && rest_ok && name.len() <= 64 {
        Ok(())
    } else {
        Err(
            Problem::bad_request(format!("role name must match {ROLE_NAME_PATTERN}"))
                .with_field("name"),
        )
    }
}

/// Defines a role, or redefines the role of that name (roles file or API) where it stands; audited with the
/// reason; applies to the next verdict and is kept across reloads (applied on top of the roles file).
/// Pairings approved for the role through `POST .../baseline` or learning stay in force.
#[utoipa::path(
    put, path = "/api/v1/roles/{name}", tag = "baselines",
    params(("name" = String, Path, description = "Role name", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")),
    request_body = RoleDefinition,
    responses(
        (status = 200, description = "The role as now in force", body = RoleView),
        (status = 409, description = "`device-default` is not a role", body = Problem,
         content_type = "application/problem+json")
    )
)]
pub async fn put_role(
    State(state): State<ApiState>,
    Extension(who): Extension<Identity>,
    PathParam(name): PathParam<String>,
    JsonBody(def): JsonBody<RoleDefinition>,
) -> Result<Json<RoleView>, Problem> {
    role_name(&name)?;
    let reason = required_text(Some(&def.reason), "reason", MAX_NOTE)?;
    let l = ROLE_LIMITS;
    let too_many = |field: &str, n: usize, max: usize| {
        (n > max).then(|| {
            Problem::invalid_body(format!("{field} has {n} entries; at most {max}"))
                .with_field(field)
        })
    };
    let counts = [
        too_many("bundle_ids", def.bundle_ids.len(), l.bundle_ids),
        too_many("domains", def.domains.len(), l.domains),
        too_many("allow", def.allow.len(), l.allow),
    ];
    if let Some(p) = counts.into_iter().flatten().next() {
        return Err(p);
    }
    if let Some((i, p)) = def
        .allow
        .iter()
        .enumerate()
        .find(|(_, p)| p.ports.is_empty() || p.ports.len() > l.ports)
    {
        return Err(Problem::invalid_body(format!(
            "allow[{i}].ports has {} entries; 1 to {} are accepted",
            p.ports.len(),
            l.ports
        ))
        .with_field(format!("allow[{i}].ports")));
    }
    if let Some((i, _)) = def
        .allow
        .iter()
        .enumerate()
        .find(|(_, p)| p.ports.iter().any(|p| p.0 == 0))
    {
        return Err(
            Problem::invalid_body("port 0 is not a port").with_field(format!("allow[{i}].ports"))
        );
    }
    if let Some((i, _)) = def
        .bundle_ids
        .iter()
        .enumerate()
        .find(|(_, b)| is_blank(&b.0) || b.0.chars().count() > 256)
    {
        return Err(
            Problem::invalid_body("a bundle ID must be 1 to 256 characters, not blank")
                .with_field(format!("bundle_ids[{i}]")),
        );
    }
    if def
        .description
        .as_deref()
        .is_some_and(|d| d.chars().count() > l.description)
    {
        return Err(Problem::invalid_body(format!(
            "description is longer than {} characters",
            l.description
        ))
        .with_field("description"));
    }
    if let Some((i, _)) = def
        .allow
        .iter()
        .enumerate()
        .find(|(_, p)| is_blank(&p.app_proto) || p.app_proto.chars().count() > 64)
    {
        return Err(
            Problem::invalid_body("app_proto must be 1 to 64 characters, not blank")
                .with_field(format!("allow[{i}].app_proto")),
        );
    }
    if let Some((i, d)) = def.domains.iter().enumerate().find(|(_, d)| !d.is_valid()) {
        return Err(Problem::invalid_body(format!(
            "not a domain suffix (letters, digits, `.`, `-`, `_`, at least one letter, optionally after `*.`): {:?}",
            d.0
        ))
        .with_field(format!("domains[{i}]")));
    }
    let role = def.to_role(&name);
    let role = blocking(&state, move |c| c.define_role(role, &who.actor(), &reason)).await?;
    Ok(Json(RoleView::from(&role)))
}

/// Deletes a role (from the roles file or the API); audited with the reason. Its apps are then judged against
/// the device default baseline; the deletion holds across reloads until the role is defined again.
#[utoipa::path(
    delete, path = "/api/v1/roles/{name}", tag = "baselines",
    params(("name" = String, Path, description = "Role name", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"), ReasonQuery),
    responses((status = 204, description = "Deleted"))
)]
pub async fn delete_role(
    State(state): State<ApiState>,
    Extension(who): Extension<Identity>,
    PathParam(name): PathParam<String>,
    QueryParams(q): QueryParams<ReasonQuery>,
) -> Result<StatusCode, Problem> {
    role_name(&name)?;
    let reason = required_text(Some(&q.reason), "reason", MAX_NOTE)?;
    blocking(&state, move |c| c.delete_role(&name, &who.actor(), &reason)).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn approved(p: &[PairingInput]) -> Vec<ApprovedPairing> {
    p.iter()
        .map(|p| ApprovedPairing {
            app_proto: p.app_proto.clone(),
            transport: p.transport.map(|t| t.as_str().to_string()),
            port: p.port,
            starttls: p.starttls,
        })
        .collect()
}

/// Result of a baseline approval.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ApprovalResult {
    /// The role (or `device-default`).
    pub role: String,
    /// Pairings approved by this request.
    pub approved: Vec<PortRuleView>,
}

fn approval_result(role: &str, pairings: &[ApprovedPairing]) -> ApprovalResult {
    ApprovalResult {
        role: role.to_string(),
        approved: pairings
            .iter()
            .map(|p| PortRuleView {
                app_proto: p.app_proto.trim().to_ascii_lowercase(),
                transport: p.transport.as_ref().map(|t| t.to_ascii_uppercase()),
                ports: vec![p.port],
                starttls: p.starttls,
            })
            .collect(),
    }
}

/// Approves pairings into a role's baseline (or `device-default`); audited with the reason; applies to the
/// next verdict.
#[utoipa::path(
    post, path = "/api/v1/roles/{name}/baseline", tag = "baselines",
    params(("name" = String, Path, description = "Role name, or device-default")),
    request_body = BaselineChange,
    responses((status = 200, description = "Approved", body = ApprovalResult))
)]
pub async fn post_role_baseline(
    State(state): State<ApiState>,
    Extension(who): Extension<Identity>,
    PathParam(name): PathParam<String>,
    JsonBody(change): JsonBody<BaselineChange>,
) -> Result<Json<ApprovalResult>, Problem> {
    let reason = required_text(Some(&change.reason), "reason", MAX_NOTE)?;
    let pairings = approved(&change.pairings);
    let result = approval_result(&name, &pairings);
    blocking(&state, move |c| {
        c.approve_pairings(&name, &pairings, &who.actor(), &reason)
    })
    .await?;
    Ok(Json(result))
}

// ---------------------------------------------------------------------- exceptions

/// Lists exceptions in force (roles file and API).
#[utoipa::path(
    get, path = "/api/v1/exceptions", tag = "baselines",
    responses((status = 200, description = "Exceptions", body = ExceptionList))
)]
pub async fn list_exceptions(
    State(state): State<ApiState>,
) -> Result<Json<ExceptionList>, Problem> {
    let exceptions = blocking(&state, |c| {
        let roles = c.operator().roles()?;
        let mut out = Vec::with_capacity(roles.exceptions().len());
        for e in roles.exceptions() {
            let origin = if c.is_file_exception(&e.id)? {
                "file"
            } else {
                "api"
            };
            out.push(ExceptionView::new(e, origin));
        }
        Ok(out)
    })
    .await?;
    Ok(Json(ExceptionList { exceptions }))
}

fn exception_rule(input: &ExceptionInput) -> Result<ExceptionRule, Problem> {
    let expires_us = parse_timestamp(&input.expires).map_err(|e| {
        Problem::invalid_body(format!("expires is not an RFC 3339 time: {e}")).with_field("expires")
    })?;
    if is_blank(&input.id) || input.id.chars().count() > 128 {
        return Err(Problem::invalid_body("id must be 1 to 128 characters").with_field("id"));
    }
    let value = serde_json::json!({
        "id": trim_blank(&input.id),
        "kind": input.kind,
        "devices": input.devices,
        "destinations": input.destinations,
        "ports": input.ports,
        "app_protos": input.app_protos,
        "reason": input.reason,
        "owner": input.owner,
        "expires_us": expires_us,
    });
    serde_path_to_error::deserialize::<_, ExceptionRule>(value).map_err(|e| {
        let field = e.path().to_string();
        Problem::invalid_body(format!("{}: {}", field, e.inner())).with_field(field)
    })
}

/// Adds an exception; audited with its reason and the caller.
#[utoipa::path(
    post, path = "/api/v1/exceptions", tag = "baselines",
    request_body = ExceptionInput,
    responses(
        (status = 201, description = "Added", body = ExceptionView),
        (status = 409, description = "An exception with that id exists", body = Problem,
         content_type = "application/problem+json")
    )
)]
pub async fn post_exception(
    State(state): State<ApiState>,
    Extension(who): Extension<Identity>,
    JsonBody(input): JsonBody<ExceptionInput>,
) -> Result<Response, Problem> {
    required_text(Some(&input.reason), "reason", MAX_NOTE)?;
    required_text(Some(&input.owner), "owner", 256)?;
    let rule = exception_rule(&input)?;
    let view = ExceptionView::new(&rule, "api");
    blocking(&state, move |c| c.add_exception(rule, &who.actor())).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// Window of `POST /exceptions/retro-impact`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RetroQuery {
    /// Window end (RFC 3339); default now.
    #[param(format = DateTime)]
    pub until: Option<String>,
    /// Window length in days, 1 to 90 (default 7).
    #[param(minimum = 1, maximum = 90)]
    pub days: Option<u32>,
}

/// Longest retro-impact window, days.
const MAX_RETRO_DAYS: u32 = 90;

/// How many alerts raised in the window an exception would have suppressed, before it is saved
/// (nothing is stored; the id need not be new).
#[utoipa::path(
    post, path = "/api/v1/exceptions/retro-impact", tag = "baselines", params(RetroQuery),
    request_body = ExceptionInput,
    responses(
        (status = 200, description = "The count", body = RetroImpact),
        (status = 400, description = "The exception or the window is not acceptable", body = Problem,
         content_type = "application/problem+json")
    )
)]
pub async fn exception_retro_impact(
    State(state): State<ApiState>,
    QueryParams(q): QueryParams<RetroQuery>,
    JsonBody(input): JsonBody<ExceptionInput>,
) -> Result<Json<RetroImpact>, Problem> {
    let days = match q.days {
        None => 7,
        Some(d) if (1..=MAX_RETRO_DAYS).contains(&d) => d,
        Some(_) => {
            return Err(
                Problem::bad_request(format!("days must be 1 to {MAX_RETRO_DAYS}"))
                    .with_field("days"),
            )
        }
    };
    let to = parse_time(q.until.as_deref(), "until")?.unwrap_or_else(now_us);
    let from = to.saturating_sub(i64::from(days) * 24 * 3600 * 1_000_000);
    // The draft is checked as `POST /exceptions` checks it, so a count is never given for an
    // exception that could not be saved.
    required_text(Some(&input.reason), "reason", MAX_NOTE)?;
    required_text(Some(&input.owner), "owner", 256)?;
    let rule = exception_rule(&input)?;
    rule.validate(std::path::Path::new("(api)"))
        .map_err(|e| match e {
            RolesError::Invalid { field, message, .. } => {
                let field = field
                    .split_once("].")
                    .map(|(_, f)| f.to_string())
                    .unwrap_or_else(|| field.trim_start_matches("exception.").to_string());
                Problem::invalid_body(message).with_field(field)
            }
            other => Problem::invalid_body(other.to_string()),
        })?;
    let records = blocking(&state, |c| c.alerts()).await?;
    let mut in_window = 0;
    let mut covered: Vec<i64> = Vec::new();
    for r in records.iter().rev() {
        let a = &r.stored.alert;
        if a.ts_us < from || a.ts_us >= to {
            continue;
        }
        in_window += 1;
        let name = server_name(a).map(str::to_ascii_lowercase);
        let query = ExceptionQuery {
            udid: a.device.udid.as_deref(),
            serial_number: a.device.serial_number.as_deref(),
            dest_ip: a.flow.dest_ip,
            server_name: name.as_deref(),
            port: a.flow.dest_port,
            app_proto: &a.flow.app_proto,
            at_us: a.ts_us,
        };
        if rule.matches(&query) {
            covered.push(a.id);
        }
    }
    let would_suppress = covered.len();
    covered.truncate(100);
    Ok(Json(RetroImpact {
        would_suppress,
        alerts_in_window: in_window,
        window_from: portolan_control::timestamp::format_rfc3339(from),
        window_to: portolan_control::timestamp::format_rfc3339(to),
        alert_ids: covered,
    }))
}

/// Query of deletions.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReasonQuery {
    /// Why (audit log).
    #[serde(default)]
    #[param(
        required = true,
        min_length = 1,
        max_length = 4096,
        pattern = "[^\\s\\u0085]"
    )]
    pub reason: String,
}

/// Revokes an exception added through the API; audited with the reason.
#[utoipa::path(
    delete, path = "/api/v1/exceptions/{id}", tag = "baselines",
    params(("id" = String, Path, description = "Exception id"), ReasonQuery),
    responses(
        (status = 204, description = "Revoked"),
        (status = 409, description = "Defined in the roles file: change it there", body = Problem,
         content_type = "application/problem+json")
    )
)]
pub async fn delete_exception(
    State(state): State<ApiState>,
    Extension(who): Extension<Identity>,
    PathParam(id): PathParam<String>,
    QueryParams(q): QueryParams<ReasonQuery>,
) -> Result<StatusCode, Problem> {
    let reason = required_text(Some(&q.reason), "reason", MAX_NOTE)?;
    blocking(&state, move |c| {
        c.revoke_exception(&id, &who.actor(), &reason)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------- learning

/// Query of `GET /learning/proposals`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WindowQuery {
    /// Window start (RFC 3339); default 7 days before `until`.
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// Window end (RFC 3339); default now.
    #[param(format = DateTime)]
    pub until: Option<String>,
}

fn window(since: Option<&str>, until: Option<&str>) -> Result<(i64, i64), Problem> {
    let to = parse_time(until, "until")?.unwrap_or_else(now_us);
    let from = parse_time(since, "since")?.unwrap_or(to.saturating_sub(DEFAULT_LEARNING_WINDOW_US));
    // A window with since at or after until is empty: it has no proposals.
    Ok((from, to))
}

/// Baselines proposed per role from what was seen over the window (nothing is approved by this).
#[utoipa::path(
    get, path = "/api/v1/learning/proposals", tag = "learning", params(WindowQuery),
    responses(
        (status = 200, description = "Proposals", body = ProposalList),
        (status = 400, description = "A query parameter is not acceptable", body = Problem,
         content_type = "application/problem+json")
    )
)]
pub async fn list_proposals(
    State(state): State<ApiState>,
    QueryParams(q): QueryParams<WindowQuery>,
) -> Result<Json<ProposalList>, Problem> {
    let (from, to) = window(q.since.as_deref(), q.until.as_deref())?;
    let proposals = blocking(&state, move |c| {
        Ok(c.operator().propose_baselines(from, to)?)
    })
    .await?;
    Ok(Json(ProposalList {
        window_from: portolan_control::timestamp::format_rfc3339(from),
        window_to: portolan_control::timestamp::format_rfc3339(to),
        proposals: proposals.iter().map(ProposalView::from).collect(),
    }))
}

/// Approves a proposal (all its proposed pairings, or the ones listed); audited with the reason.
#[utoipa::path(
    post, path = "/api/v1/learning/proposals/{id}/approve", tag = "learning",
    params(("id" = String, Path, description = "Proposal id (the role name)")),
    request_body = ProposalApproval,
    responses(
        (status = 200, description = "Approved", body = ApprovalResult),
        (status = 409, description = "Nothing left to approve", body = Problem,
         content_type = "application/problem+json")
    )
)]
pub async fn approve_proposal(
    State(state): State<ApiState>,
    Extension(who): Extension<Identity>,
    PathParam(id): PathParam<String>,
    JsonBody(req): JsonBody<ProposalApproval>,
) -> Result<Json<ApprovalResult>, Problem> {
    let reason = required_text(Some(&req.reason), "reason", MAX_NOTE)?;
    let (from, to) = window(req.since.as_deref(), req.until.as_deref())?;
    let explicit = req.pairings.as_deref().map(approved);
    let role = id.clone();
    let pairings = blocking(&state, move |c| {
        let pairings = proposal_pairings(c, &role, from, to, explicit, "approve")?;
        c.approve_pairings(&role, &pairings, &who.actor(), &reason)?;
        Ok(pairings)
    })
    .await?;
    Ok(Json(approval_result(&id, &pairings)))
}

/// The pairings of `role`'s proposal over `[from, to)` an approval or rejection acts on: the ones
/// listed (each must be in the proposal), or else every pairing the proposal marks `proposed`.
fn proposal_pairings(
    c: &ControlHandle,
    role: &str,
    from: i64,
    to: i64,
    explicit: Option<Vec<ApprovedPairing>>,
    verb: &str,
) -> Result<Vec<ApprovedPairing>, ControlError> {
    let proposals = c.operator().propose_baselines(from, to)?;
    let proposal = proposals
        .into_iter()
        .find(|p| p.role == role)
        .ok_or_else(|| ControlError::NotFound(format!("no proposal for {role:?} in the window")))?;
    let pairings: Vec<ApprovedPairing> = match explicit {
        Some(list) => {
            for (i, p) in list.iter().enumerate() {
                let seen = proposal
                    .pairings
                    .iter()
                    .any(|q| q.app_proto == p.app_proto && q.port == p.port);
                if !seen {
                    return Err(ControlError::Invalid {
                        field: Some(format!("pairings[{i}]")),
                        message: format!("{}/{} is not in the proposal", p.app_proto, p.port),
                    });
                }
            }
            list
        }
        None => proposal
            .pairings
            .iter()
            .filter(|p| p.proposed)
            .map(|p| ApprovedPairing {
                app_proto: p.app_proto.clone(),
                transport: Some(p.transport.clone()),
                port: p.port,
                starttls: false,
            })
            .collect(),
    };
    if pairings.is_empty() {
        return Err(ControlError::Conflict(format!(
            "the proposal for {role:?} has nothing to {verb}"
        )));
    }
    if role != DEVICE_DEFAULT && c.operator().roles()?.role(role).is_none() {
        return Err(ControlError::Conflict(format!(
            "role {role:?} is no longer defined"
        )));
    }
    Ok(pairings)
}

/// Result of rejecting a learning proposal.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RejectionResult {
    /// The role (or `device-default`).
    pub role: String,
    /// Pairings rejected by this request (no longer proposed; no verdict changes).
    pub rejected: Vec<PortRuleView>,
}

/// Rejects a proposal (all its proposed pairings, or the ones listed): stored and audited with the
/// reason (`proposal_rejected`); the pairings are not proposed again and stay outside the baseline.
#[utoipa::path(
    post, path = "/api/v1/learning/proposals/{id}/reject", tag = "learning",
    params(("id" = String, Path, description = "Proposal id (the role name)")),
    request_body = ProposalApproval,
    responses(
        (status = 200, description = "Rejected", body = RejectionResult),
        (status = 409, description = "Nothing left to reject", body = Problem,
         content_type = "application/problem+json")
    )
)]
pub async fn reject_proposal(
    State(state): State<ApiState>,
    Extension(who): Extension<Identity>,
    PathParam(id): PathParam<String>,
    JsonBody(req): JsonBody<ProposalApproval>,
) -> Result<Json<RejectionResult>, Problem> {
    let reason = required_text(Some(&req.reason), "reason", MAX_NOTE)?;
    let (from, to) = window(req.since.as_deref(), req.until.as_deref())?;
    let explicit = req.pairings.as_deref().map(approved);
    let role = id.clone();
    let pairings = blocking(&state, move |c| {
        let pairings = proposal_pairings(c, &role, from, to, explicit, "reject")?;
        c.reject_pairings(&role, &pairings, &who.actor(), &reason)?;
        Ok(pairings)
    })
    .await?;
    Ok(Json(RejectionResult {
        role: id.clone(),
        rejected: approval_result(&id, &pairings).approved,
    }))
}

// ---------------------------------------------------------------------- alerts

/// Filters and paging of `GET /alerts`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// Device UDID or serial number.
    pub device: Option<String>,
    /// Role whose baseline was broken (or `device-default`).
    pub role: Option<String>,
    /// Application protocol.
    pub app_proto: Option<String>,
    /// Destination port.
    #[param(minimum = 0, maximum = 65535)]
    pub port: Option<u16>,
    /// Minimum severity.
    pub severity: Option<SeverityParam>,
    /// Lifecycle state.
    pub status: Option<AlertStatus>,
    /// Raised at or after (RFC 3339).
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// Raised before (RFC 3339).
    #[param(format = DateTime)]
    pub until: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]+$")]
    pub cursor: Option<String>,
}

fn status_of(r: &AlertRecord) -> AlertStatus {
    if r.closure.is_some() {
        AlertStatus::Closed
    } else if r.stored.ack.is_some() {
        AlertStatus::Acknowledged
    } else {
        AlertStatus::Open
    }
}

fn view(r: &AlertRecord) -> AlertView {
    let mut v = AlertView::new(&r.stored.alert, r.stored.ack.as_ref(), r.closure.as_ref());
    for n in &r.triage {
        let at = portolan_control::timestamp::format_rfc3339(n.ts_us);
        match n.kind {
            TriageKind::Escalation => {
                v.escalated = Some(AlertNoteView {
                    at,
                    by: n.actor.clone(),
                    note: n.note.clone(),
                })
            }
            TriageKind::Comment => v.comments.push(CommentView {
                id: n.id,
                at,
                by: n.actor.clone(),
                text: n.note.clone(),
            }),
        }
    }
    v
}

fn cursor_id(cursor: Option<&str>) -> Result<i64, Problem> {
    match cursor {
        None => Ok(i64::MIN),
        // A cursor past every id (too many digits for an id) is simply the end.
        Some(c) if !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(c.parse::<i64>().unwrap_or(i64::MAX))
        }
        Some(_) => {
            Err(Problem::bad_request("cursor is not one this API returned").with_field("cursor"))
        }
    }
}

/// Lists alerts with their evidence, oldest first, filtered and paged.
#[utoipa::path(
    get, path = "/api/v1/alerts", tag = "alerts", params(AlertQuery),
    responses(
        (status = 200, description = "Alerts", body = AlertList),
        (status = 400, description = "A query parameter is not acceptable", body = Problem,
         content_type = "application/problem+json")
    )
)]
pub async fn list_alerts(
    State(state): State<ApiState>,
    QueryParams(q): QueryParams<AlertQuery>,
) -> Result<Json<AlertList>, Problem> {
    let limit = page_limit(q.limit)?;
    let min_severity = q.severity.map(|s| match s {
        SeverityParam::Informational => Severity::Informational,
        SeverityParam::Low => Severity::Low,
        SeverityParam::Medium => Severity::Medium,
        SeverityParam::High => Severity::High,
        SeverityParam::Critical => Severity::Critical,
    });
    let status = q.status;
    let since = parse_time(q.since.as_deref(), "since")?;
    let until = parse_time(q.until.as_deref(), "until")?;
    let after = cursor_id(q.cursor.as_deref())?;
    let records = blocking(&state, |c| c.alerts()).await?;
    let mut matching = records.iter().filter(|r| {
        let a = &r.stored.alert;
        a.id > after
            && q.device.as_deref().is_none_or(|d| {
                a.device.udid.as_deref() == Some(d) || a.device.serial_number.as_deref() == Some(d)
            })
            && q.role
                .as_deref()
                .is_none_or(|role| a.baseline.role == role || a.app.role.as_deref() == Some(role))
            && q.app_proto
                .as_deref()
                .is_none_or(|p| a.flow.app_proto.eq_ignore_ascii_case(p))
            && q.port.is_none_or(|p| a.flow.dest_port == p)
            && min_severity.is_none_or(|s| a.severity >= s)
            && status.is_none_or(|s| status_of(r) == s)
            && since.is_none_or(|t| a.ts_us >= t)
            && until.is_none_or(|t| a.ts_us < t)
    });
    let alerts: Vec<AlertView> = matching.by_ref().take(limit).map(view).collect();
    let next_cursor = match (alerts.last(), matching.next()) {
        (Some(last), Some(_)) => Some(last.id.to_string()),
        _ => None,
    };
    Ok(Json(AlertList {
        alerts,
        next_cursor,
    }))
}

/// One alert with its evidence.
#[utoipa::path(
    get, path = "/api/v1/alerts/{id}", tag = "alerts",
    params(("id" = i64, Path, description = "Alert id")),
    responses((status = 200, description = "The alert", body = AlertView))
)]
pub async fn get_alert(
    State(state): State<ApiState>,
    PathParam(id): PathParam<i64>,
) -> Result<Json<AlertView>, Problem> {
    let r = blocking(&state, move |c| c.alert(id)).await?;
    Ok(Json(view(&r)))
}

/// One finding as stored now (sessions, persistence, score): an open session's duration grows
/// with the dataplane's interim updates.
#[utoipa::path(
    get, path = "/api/v1/findings/{id}", tag = "alerts",
    params(("id" = i64, Path, description = "Finding id (an alert's `finding_id`)")),
    responses((status = 200, description = "The finding", body = FindingView))
)]
pub async fn get_finding(
    State(state): State<ApiState>,
    PathParam(id): PathParam<i64>,
) -> Result<Json<FindingView>, Problem> {
    let f = blocking(&state, move |c| c.finding(id)).await?;
    Ok(Json(FindingView::new(&f)))
}

/// Acknowledges an alert with a note; audited.
#[utoipa::path(
    post, path = "/api/v1/alerts/{id}/ack", tag = "alerts",
    params(("id" = i64, Path, description = "Alert id")),
    request_body = AlertNote,
    responses(
        (status = 200, description = "Acknowledged", body = AlertView),
        (status = 409, description = "Already acknowledged", body = Problem,
         content_type = "application/problem+json")
    )
)]
pub async fn ack_alert(
    State(state): State<ApiState>,
    Extension(who): Extension<Identity>,
    PathParam(id): PathParam<i64>,
    JsonBody(note): JsonBody<AlertNote>,
) -> Result<Json<AlertView>, Problem> {
    let note = required_text(Some(&note.note), "note", MAX_NOTE)?;
    let r = blocking(&state, move |c| c.acknowledge(id, &who.actor(), &note)).await?;
    Ok(Json(view(&r)))
}

/// Closes an alert with a note (acknowledging it when it was open); audited.
#[utoipa::path(
    post, path = "/api/v1/alerts/{id}/close", tag = "alerts",
    params(("id" = i64, Path, description = "Alert id")),
    request_body = AlertNote,
    responses(
        (status = 200, description = "Closed", body = AlertView),
        (status = 409, description = "Already closed", body = Problem,
         content_type = "application/problem+json")
    )
)]
pub async fn close_alert(
    State(state): State<ApiState>,
    Extension(who): Extension<Identity>,
    PathParam(id): PathParam<i64>,
    JsonBody(note): JsonBody<AlertNote>,
) -> Result<Json<AlertView>, Problem> {
    let note = required_text(Some(&note.note), "note", MAX_NOTE)?;
    let r = blocking(&state, move |c| c.close(id, &who.actor(), &note)).await?;
    Ok(Json(view(&r)))
}

/// Escalates an alert with a note; audited. Undo with `POST .../undo` (`action: escalate`).
#[utoipa::path(
    post, path = "/api/v1/alerts/{id}/escalate", tag = "alerts",
    params(("id" = i64, Path, description = "Alert id")),
    request_body = AlertNote,
    responses(
        (status = 200, description = "Escalated", body = AlertView),
        (status = 409, description = "Already escalated", body = Problem,
         content_type = "application/problem+json")
    )
)]
pub async fn escalate_alert(
    State(state): State<ApiState>,
    Extension(who): Extension<Identity>,
    PathParam(id): PathParam<i64>,
    JsonBody(note): JsonBody<AlertNote>,
) -> Result<Json<AlertView>, Problem> {
    let note = required_text(Some(&note.note), "note", MAX_NOTE)?;
    let r = blocking(&state, move |c| {
        c.triage(id, TriageAct::Escalate, &who.actor(), &note)
    })
    .await?;
    Ok(Json(view(&r)))
}

/// Adds a comment to an alert; audited (the text is the audit entry's reason). Retract it with
/// `POST .../undo` (`action: comment`, `comment_id`).
#[utoipa::path(
    post, path = "/api/v1/alerts/{id}/comments", tag = "alerts",
    params(("id" = i64, Path, description = "Alert id")),
    request_body = CommentInput,
    responses((status = 201, description = "Commented; the alert with its comments", body = AlertView))
)]
pub async fn comment_alert(
    State(state): State<ApiState>,
    Extension(who): Extension<Identity>,
    PathParam(id): PathParam<i64>,
    JsonBody(input): JsonBody<CommentInput>,
) -> Result<Response, Problem> {
    let text = required_text(Some(&input.text), "text", MAX_NOTE)?;
    let r = blocking(&state, move |c| {
        c.triage(id, TriageAct::Comment, &who.actor(), &text)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(view(&r))).into_response())
}

/// Undoes one triage act on an alert (acknowledgement, closure, escalation, or a comment); audited
/// with the note.
#[utoipa::path(
    post, path = "/api/v1/alerts/{id}/undo", tag = "alerts",
    params(("id" = i64, Path, description = "Alert id")),
    request_body = UndoInput,
    responses(
        (status = 200, description = "Undone; the alert as it now stands", body = AlertView),
        (status = 409, description = "Nothing to undo", body = Problem,
         content_type = "application/problem+json")
    )
)]
pub async fn undo_alert(
    State(state): State<ApiState>,
    Extension(who): Extension<Identity>,
    PathParam(id): PathParam<i64>,
    JsonBody(input): JsonBody<UndoInput>,
) -> Result<Json<AlertView>, Problem> {
    let note = required_text(Some(&input.note), "note", MAX_NOTE)?;
    let act = match (input.action, input.comment_id) {
        (UndoAction::Comment, Some(c)) => TriageAct::RetractComment(c),
        (UndoAction::Comment, None) => {
            return Err(
                Problem::invalid_body("comment_id is required to retract a comment")
                    .with_field("comment_id"),
            )
        }
        (_, Some(_)) => {
            return Err(
                Problem::invalid_body("comment_id goes with action `comment` only")
                    .with_field("comment_id"),
            )
        }
        (UndoAction::Acknowledge, None) => TriageAct::UndoAcknowledge,
        (UndoAction::Close, None) => TriageAct::UndoClose,
        (UndoAction::Escalate, None) => TriageAct::UndoEscalate,
    };
    let r = blocking(&state, move |c| c.triage(id, act, &who.actor(), &note)).await?;
    Ok(Json(view(&r)))
}

/// Filters of `GET /alert-groups`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertGroupQuery {
    /// Lifecycle state of the alerts counted (default: all).
    pub status: Option<AlertStatus>,
    /// Minimum severity.
    pub severity: Option<SeverityParam>,
    /// Only escalated (true) or not escalated (false) alerts.
    pub escalated: Option<bool>,
    /// Case-insensitive text searched in device, app, role, protocol, addresses, server name and port.
    #[param(max_length = 256)]
    pub q: Option<String>,
    /// Groups to return, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

fn severity_of(p: SeverityParam) -> Severity {
    match p {
        SeverityParam::Informational => Severity::Informational,
        SeverityParam::Low => Severity::Low,
        SeverityParam::Medium => Severity::Medium,
        SeverityParam::High => Severity::High,
        SeverityParam::Critical => Severity::Critical,
    }
}

/// The server name an alert saw (attributed name, SNI, QUIC SNI, HTTP Host), if any.
fn server_name(a: &portolan_control::alert::Alert) -> Option<&str> {
    a.app
        .server_name
        .as_deref()
        .or(a.flow.sni.as_deref())
        .or(a.flow.quic_sni.as_deref())
        .or(a.flow.http_host.as_deref())
}

/// Alerts grouped by device × app × protocol × port (the console's inbox), highest score first.
#[utoipa::path(
    get, path = "/api/v1/alert-groups", tag = "alerts", params(AlertGroupQuery),
    responses(
        (status = 200, description = "Groups", body = AlertGroupList),
        (status = 400, description = "A query parameter is not acceptable", body = Problem,
         content_type = "application/problem+json")
    )
)]
pub async fn list_alert_groups(
    State(state): State<ApiState>,
    QueryParams(q): QueryParams<AlertGroupQuery>,
) -> Result<Json<AlertGroupList>, Problem> {
    let limit = page_limit(q.limit)?;
    if q.q.as_deref().is_some_and(|t| t.chars().count() > 256) {
        return Err(Problem::bad_request("q is longer than 256 characters").with_field("q"));
    }
    let needle = q.q.as_deref().map(|t| t.trim().to_lowercase());
    let min_severity = q.severity.map(severity_of);
    let records = blocking(&state, |c| c.alerts()).await?;
    let mut groups: std::collections::BTreeMap<String, (AlertGroupView, Severity)> =
        std::collections::BTreeMap::new();
    let mut total = 0;
    // Newest first, so each group's first alert is its newest.
    for r in records.iter().rev() {
        let a = &r.stored.alert;
        let escalated = r.triage.iter().any(|n| n.kind == TriageKind::Escalation);
        if !(min_severity.is_none_or(|s| a.severity >= s)
            && q.status.is_none_or(|s| status_of(r) == s)
            && q.escalated.is_none_or(|e| e == escalated))
        {
            continue;
        }
        if let Some(n) = needle.as_deref().filter(|n| !n.is_empty()) {
            let port = a.flow.dest_port.to_string();
            let fields = [
                a.device.udid.as_deref(),
                a.device.serial_number.as_deref(),
                a.device.name.as_deref(),
                a.app.bundle_id.as_deref(),
                Some(a.baseline.role.as_str()),
                Some(a.flow.app_proto.as_str()),
                Some(port.as_str()),
                server_name(a),
            ];
            let src = a.flow.src_ip.to_string();
            let dest = a.flow.dest_ip.to_string();
            let hit = fields
                .iter()
                .flatten()
                .chain([&src.as_str(), &dest.as_str()])
                .any(|f| f.to_lowercase().contains(n));
            if !hit {
                continue;
            }
        }
        total += 1;
        let device = a
            .device
            .udid
            .clone()
            .unwrap_or_else(|| format!("ip:{}", a.flow.src_ip));
        let key = format!(
            "{device}|{}|{}|{}|{}",
            a.app.bundle_id.as_deref().unwrap_or("-"),
            a.flow.app_proto,
            a.flow.transport,
            a.flow.dest_port
        );
        let time = portolan_control::timestamp::format_rfc3339(a.ts_us);
        let open = usize::from(status_of(r) == AlertStatus::Open);
        let entry = groups.entry(key.clone()).or_insert_with(|| {
            (
                AlertGroupView {
                    key,
                    device_udid: a.device.udid.clone(),
                    device_name: a.device.name.clone(),
                    src_ip: a.flow.src_ip.to_string(),
                    bundle_id: a.app.bundle_id.clone(),
                    role: a.baseline.role.clone(),
                    app_proto: a.flow.app_proto.clone(),
                    transport: a.flow.transport.clone(),
                    dest_port: a.flow.dest_port,
                    count: 0,
                    open: 0,
                    escalated: 0,
                    first_seen: time.clone(),
                    last_seen: time.clone(),
                    score: a.score,
                    severity: String::new(),
                    server_name: server_name(a).map(str::to_string),
                    alert_ids: Vec::new(),
                    latest_alert_id: a.id,
                },
                a.severity,
            )
        });
        let (g, severity) = entry;
        g.count += 1;
        g.open += open;
        g.escalated += usize::from(escalated);
        g.first_seen = time;
        g.score = g.score.max(a.score);
        *severity = (*severity).max(a.severity);
        g.alert_ids.push(a.id);
    }
    let mut list: Vec<AlertGroupView> = groups
        .into_values()
        .map(|(mut g, s)| {
            g.severity = s.caption().to_ascii_lowercase();
            g
        })
        .collect();
    list.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.latest_alert_id.cmp(&a.latest_alert_id))
    });
    list.truncate(limit);
    Ok(Json(AlertGroupList {
        groups: list,
        alerts: total,
    }))
}

// ---------------------------------------------------------------------- audit and reload

/// Filters and paging of `GET /audit`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this action (e.g. `baseline_approved`).
    pub action: Option<String>,
    /// Only entries whose target starts with this (e.g. `role:mail`, `alert:`).
    pub target: Option<String>,
    /// Only this actor.
    pub actor: Option<String>,
    /// At or after (RFC 3339).
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]+$")]
    pub cursor: Option<String>,
}

/// The audit log: every baseline, exception, inventory and alert change with who, when, what and why.
#[utoipa::path(
    get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses(
        (status = 200, description = "Audit entries", body = AuditList),
        (status = 400, description = "A query parameter is not acceptable", body = Problem,
         content_type = "application/problem+json")
    )
)]
pub async fn list_audit(
    State(state): State<ApiState>,
    Extension(who): Extension<Identity>,
    QueryParams(q): QueryParams<AuditQuery>,
) -> Result<Json<AuditList>, Problem> {
    let limit = page_limit(q.limit)?;
    let since = parse_time(q.since.as_deref(), "since")?;
    let after = cursor_id(q.cursor.as_deref())?;
    let log = blocking(&state, |c| Ok(c.operator().audit_log()?)).await?;
    // Server paths (inventory files of `[inputs]`, the roles file) are for admins only, in the
    // answer and in what `target` can match.
    let admin = who.role == crate::tokens::Role::Admin;
    let mut matching = log.iter().filter(|e| {
        e.id > after
            && q.action.as_deref().is_none_or(|a| e.action.as_str() == a)
            && q.target.as_deref().is_none_or(|t| {
                if admin {
                    e.target.starts_with(t)
                } else {
                    crate::views::strip_paths(&e.target).starts_with(t)
                }
            })
            && q.actor.as_deref().is_none_or(|a| e.actor == a)
            && since.is_none_or(|t| e.ts_us >= t)
    });
    let entries: Vec<AuditView> = matching
        .by_ref()
        .take(limit)
        .map(AuditView::from)
        .map(|v| if admin { v } else { v.without_server_paths() })
        .collect();
    let next_cursor = match (entries.last(), matching.next()) {
        (Some(last), Some(_)) => Some(last.id.to_string()),
        _ => None,
    };
    Ok(Json(AuditList {
        entries,
        next_cursor,
    }))
}

/// Reloads roles, baselines and exceptions (roles file, then what was approved through the API) without
/// stopping the dataplane; audited as `roles_replaced` under the caller's token.
#[utoipa::path(
    post, path = "/api/v1/reload", tag = "baselines",
    responses(
        (status = 200, description = "Reloaded", body = ReloadSummary),
        (status = 422, description = "The roles file is not usable; the previous roles stay in force",
         body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn reload(
    State(state): State<ApiState>,
    Extension(who): Extension<Identity>,
) -> Result<Json<ReloadSummary>, Problem> {
    let r = blocking(&state, move |c| {
        c.reload(&who.actor(), "reload requested through the admin API")
    })
    .await?;
    Ok(Json(ReloadSummary {
        roles: r.roles,
        exceptions: r.exceptions,
        warnings: r.warnings,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_state_bodies_follow_the_documented_schema_exactly() {
        let ok = br#"{"timestamp":"2024-05-01T10:00:00Z","udid":"A","lock_state":"locked","app_state":"background"}"#;
        assert_eq!(parse_device_states(ok).unwrap().len(), 1);
        for (body, field) in [
            (
                r#"{"timestamp":"2024-05-01T10:00:00Z","udid":"A","lock_state":"locked","app_state":""}"#,
                "[0].app_state",
            ),
            (
                r#"{"timestamp":"2024-05-01T10:00:00Z","udid":"A","lock_state":" locked"}"#,
                "[0].lock_state",
            ),
            (
                r#"{"timestamp":"2024-05-01T10:00:00Z","udid":"A","lock_state":"locked","last_user_interaction":""}"#,
                "[0].last_user_interaction",
            ),
            (
                r#"[{"timestamp":"","udid":"A","lock_state":"locked"}]"#,
                "[0].timestamp",
            ),
        ] {
            let p = parse_device_states(body.as_bytes()).unwrap_err();
            assert_eq!(p.field.as_deref(), Some(field), "{body}");
        }
    }
}
