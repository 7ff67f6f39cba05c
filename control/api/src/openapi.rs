//! The OpenAPI 3 document of the admin API, generated from the handlers' `#[utoipa::path]` annotations and
//! completed from the route table: the bearer security scheme, and the error responses every route can give
//! (401/403/429 from its access, 400/413 from its body, 404 from its path parameters), all as
//! `application/problem+json`.
//!
//! This module must not list a route the router does not serve; `tests/openapi.rs` checks both directions.

use serde_json::{json, Value};
use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as OpenApiDoc, Ref, ResponseBuilder};
use utoipa::OpenApi;

use crate::problem::{Problem, PROBLEM_JSON};
use crate::routes::{control, fleet, route_specs, service, BodyKind, RouteSpec};
use crate::tokens::Access;
use crate::views::{AlertStatus, SeverityParam, TransportInput};

/// Name of the bearer security scheme in the document.
pub const BEARER_SCHEME: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Portolan admin API",
        description = "Inventory, device state, baselines, exceptions, learning, alerts, audit and dataplane \
                       statistics of a Portolan appliance. Every route except /healthz and /readyz needs a \
                       bearer token (roles: admin, analyst, viewer). Errors are RFC 7807 problem documents."
    ),
    paths(
        service::healthz,
        service::readyz,
        service::metrics,
        service::stats,
        service::openapi_json,
        control::import_inventory,
        control::list_devices,
        control::get_device,
        control::post_device_states,
        control::list_roles,
        control::get_role,
        control::put_role,
        control::delete_role,
        control::post_role_baseline,
        control::list_exceptions,
        control::post_exception,
        control::delete_exception,
        control::list_proposals,
        control::approve_proposal,
        control::reject_proposal,
        control::list_alerts,
        control::get_alert,
        control::get_finding,
        control::ack_alert,
        control::close_alert,
        control::escalate_alert,
        control::comment_alert,
        control::undo_alert,
        control::list_alert_groups,
        control::exception_retro_impact,
        control::list_audit,
        control::reload,
        fleet::list_appliances,
        fleet::list_shared,
        fleet::put_shared,
        fleet::delete_shared,
    ),
    components(schemas(Problem, SeverityParam, AlertStatus, TransportInput)),
    tags(
        (name = "service", description = "Health, metrics, statistics and this document"),
        (name = "inventory", description = "MDM inventory and devices"),
        (name = "device-state", description = "Device lock and app state events"),
        (name = "baselines", description = "Roles, baselines and exceptions"),
        (name = "learning", description = "Learning-mode baseline proposals"),
        (name = "alerts", description = "Findings and alerts"),
        (name = "audit", description = "Audit log of baseline, exception and alert changes"),
        (name = "fleet", description = "The fleet's appliances and shared configuration (portolan central)"),
    )
)]
struct AnnotatedDoc;

fn method_of(spec: &RouteSpec) -> Option<HttpMethod> {
    Some(match spec.method.as_str() {
        "GET" => HttpMethod::Get,
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "DELETE" => HttpMethod::Delete,
        "PATCH" => HttpMethod::Patch,
        "HEAD" => HttpMethod::Head,
        _ => return None,
    })
}

/// The operation of `doc` at `path` and `method`, if documented.
pub fn operation_mut<'a>(
    doc: &'a mut OpenApiDoc,
    path: &str,
    method: &HttpMethod,
) -> Option<&'a mut Operation> {
    let item = doc.paths.paths.get_mut(path)?;
    match method {
        HttpMethod::Get => item.get.as_mut(),
        HttpMethod::Post => item.post.as_mut(),
        HttpMethod::Put => item.put.as_mut(),
        HttpMethod::Delete => item.delete.as_mut(),
        HttpMethod::Patch => item.patch.as_mut(),
        HttpMethod::Head => item.head.as_mut(),
        HttpMethod::Options => item.options.as_mut(),
        HttpMethod::Trace => item.trace.as_mut(),
    }
}

fn problem_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}

fn add_response(op: &mut Operation, status: &str, description: &str) {
    op.responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| problem_response(description).into());
}

/// Adds the error responses implied by `spec` to its operation.
fn complete_operation(op: &mut Operation, spec: &RouteSpec) {
    if spec.access != Access::Public {
        add_response(op, "401", "No bearer token, or an unknown or revoked one");
        add_response(op, "403", "The token's role does not allow this route");
    }
    if spec.access.is_write() {
        add_response(
            op,
            "429",
            "The token's write rate limit is reached (see Retry-After)",
        );
    }
    if spec.body != BodyKind::None {
        add_response(
            op,
            "400",
            "The body is not acceptable; `field` names the failing field",
        );
        add_response(op, "413", "The body is larger than this route accepts");
    }
    if spec.path.contains('{') {
        add_response(op, "404", "No such resource");
    }
    if spec.method != axum::http::Method::GET || spec.path.contains('{') {
        add_response(op, "400", "A path or query parameter is not acceptable");
    }
}

/// The complete OpenAPI document.
pub fn document() -> OpenApiDoc {
    let mut doc = AnnotatedDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER_SCHEME,
        SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
    );
    doc.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
        BEARER_SCHEME,
        Vec::<String>::new(),
    )]);
    for spec in route_specs() {
        let Some(method) = method_of(&spec) else {
            continue;
        };
        if let Some(op) = operation_mut(&mut doc, spec.path, &method) {
            complete_operation(op, &spec);
        }
    }
    doc
}

/// Exception destinations the schema promises to accept: a domain suffix (optionally `*.`-prefixed) or an
/// IPv4 address or CIDR range. (IPv6 ranges are accepted too, but not described.)
const DESTINATION_PATTERN: &str = "^((\\*\\.)?[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*|\
((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\
(/([0-9]|[12][0-9]|3[0-2]))?)$";

/// Constraints utoipa's derive cannot express, added to the JSON document: "one of these fields is
/// required" on exceptions and device state events, and the single-or-array body of `/device-states`.
fn refine(doc: &mut Value) {
    let non_blank = json!({"type": "string", "pattern": "\\S"});
    if let Some(schemas) = doc.pointer_mut("/components/schemas") {
        if let Some(exc) = schemas.get_mut("ExceptionInput") {
            if let Some(items) = exc.pointer_mut("/properties/ports/items") {
                items["minimum"] = json!(1);
                items["maximum"] = json!(65535);
            }
            if let Some(items) = exc.pointer_mut("/properties/destinations/items") {
                items["pattern"] = json!(DESTINATION_PATTERN);
            }
            let original = exc.take();
            *exc = json!({"allOf": [original, {"anyOf": [
                {"required": ["destinations"], "properties": {"destinations": {"minItems": 1}}},
                {"required": ["ports"], "properties": {"ports": {"minItems": 1}}}
            ]}]});
        }
        if let Some(ev) = schemas.get_mut("DeviceStateInput") {
            let original = ev.take();
            *ev = json!({"allOf": [original,
                {"anyOf": [
                    {"required": ["udid"], "properties": {"udid": non_blank}},
                    {"required": ["serial_number"], "properties": {"serial_number": non_blank}}
                ]},
                {"anyOf": [
                    {"required": ["lock_state"], "properties": {"lock_state": {"$ref": "#/components/schemas/LockStateInput"}}},
                    {"required": ["app_state"], "properties": {"app_state": {"$ref": "#/components/schemas/AppStateInput"}}},
                    {"required": ["last_user_interaction"],
                     "properties": {"last_user_interaction": {"type": "string", "format": "date-time"}}}
                ]}
            ]});
        }
    }
    if let Some(body) = doc
        .pointer_mut("/paths/~1api~1v1~1device-states/post/requestBody/content/application~1json")
    {
        body["schema"] = json!({"oneOf": [
            {"$ref": "#/components/schemas/DeviceStateInput"},
            {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/DeviceStateInput"}}
        ]});
    }
}

/// The document as JSON, with the constraints of `refine`.
pub fn document_value() -> Result<Value, serde_json::Error> {
    let mut doc = serde_json::to_value(document())?;
    refine(&mut doc);
    Ok(doc)
}

/// The document as pretty-printed JSON.
pub fn document_json() -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(&document_value()?)
}
