//! The OpenAPI 3 document for the REST API, served at `/api/v1/openapi.json`. Kept next to the
//! routes: a test checks that every route is documented and every documented path is routed.

use serde_json::{Value, json};

/// (method, path) of every REST route (the tests check it against the router and the
/// document).
#[cfg(test)]
const ROUTES: [(&str, &str); 7] = [
    ("get", "/api/v1/neighbors"),
    ("get", "/api/v1/neighbors/{ifname}/{ip}"),
    ("get", "/api/v1/stats"),
    ("get", "/api/v1/config"),
    ("post", "/api/v1/resync"),
    ("get", "/api/v1/events"),
    ("get", "/api/v1/openapi.json"),
];

fn filter_params() -> Value {
    json!([
        {"name": "interface", "in": "query", "schema": {"type": "string"}, "description": "Interface name, e.g. Ethernet0"},
        {"name": "family", "in": "query", "schema": {"type": "string", "enum": ["IPv4", "IPv6"]}},
        {"name": "vrf", "in": "query", "schema": {"type": "string"}, "description": "The interface's master device"},
        {"name": "namespace", "in": "query", "schema": {"type": "string"}, "description": "Multi-ASIC: the SONiC namespace (a daemon serves one)"},
        {"name": "state", "in": "query", "schema": {"type": "string", "enum": ["NONE", "INCOMPLETE", "REACHABLE", "STALE", "DELAY", "PROBE", "FAILED", "NOARP", "PERMANENT", "MIXED"]}, "description": "Kernel NUD state"}
    ])
}

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

pub fn document() -> Value {
    let mut list_params = filter_params();
    if let Some(a) = list_params.as_array_mut() {
        a.push(json!({"name": "page_size", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": super::service::MAX_PAGE_SIZE, "default": super::service::DEFAULT_PAGE_SIZE}}));
        a.push(json!({"name": "page_token", "in": "query", "schema": {"type": "string"}, "description": "next_page_token of the previous page"}));
    }
    let mut event_params = filter_params();
    if let Some(a) = event_params.as_array_mut() {
        a.push(json!({"name": "resume_from", "in": "query", "schema": {"type": "string"}, "description": "<epoch>:<seq>, the id of a snapshot_end or change event: resume after it (a snapshot is sent instead when it is too old or from another instance)"}));
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "neighsyncd API", "version": "v1", "description": "The kernel neighbor table as neighsyncd mirrors it into SONiC's APPL_DB."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["code", "message"], "properties": {
                    "code": {"type": "string", "description": "invalid_argument, not_found, unauthenticated"},
                    "message": {"type": "string"}}},
                "Neighbor": {"type": "object", "properties": {
                    "key": {"type": "string", "description": "APPL_DB key <ifname>:<ip>"},
                    "namespace": {"type": "string", "nullable": true, "description": "Multi-ASIC: the SONiC namespace; null on a single-ASIC device"},
                    "ifname": {"type": "string"},
                    "vrf": {"type": "string", "nullable": true},
                    "ip": {"type": "string"},
                    "family": {"type": "string", "enum": ["IPv4", "IPv6"]},
                    "kernel_mac": {"type": "string", "nullable": true},
                    "kernel_state": {"type": "string", "nullable": true},
                    "appl_db_mac": {"type": "string", "nullable": true, "description": "What SONiC holds (neigh field)"},
                    "skip_reason": {"type": "string", "nullable": true, "description": "Why the SONiC rules skipped the kernel's last message"},
                    "last_changed": {"type": "string", "format": "date-time"}}},
                "NeighborPage": {"type": "object", "properties": {
                    "seq": {"type": "integer"},
                    "neighbors": {"type": "array", "items": {"$ref": "#/components/schemas/Neighbor"}},
                    "next_page_token": {"type": "string", "nullable": true}}}
            }
        },
        "paths": {
            "/api/v1/neighbors": {"get": {"summary": "List neighbors", "parameters": list_params,
                "responses": {"200": {"description": "A page", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NeighborPage"}}}},
                              "400": error_response("Bad filter or page size"), "401": error_response("Reads are closed and no valid token was given")}}},
            "/api/v1/neighbors/{ifname}/{ip}": {"get": {"summary": "One neighbor", "parameters": [
                    {"name": "ifname", "in": "path", "required": true, "schema": {"type": "string"}},
                    {"name": "ip", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "The neighbor", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Neighbor"}}}},
                              "400": error_response("Not an IP address"), "404": error_response("Unknown neighbor")}}},
            "/api/v1/stats": {"get": {"summary": "Counters and gauges", "responses": {"200": {"description": "{metric: value | {labels: value}}"}}}},
            "/api/v1/config": {"get": {"summary": "The effective configuration", "responses": {"200": {"description": "Configuration keys and values"}}}},
            "/api/v1/resync": {"post": {"summary": "Force a dump-and-diff resynchronisation", "security": [{"bearer": []}],
                "responses": {"202": {"description": "Requested"}, "401": error_response("No or wrong bearer token")}}},
            "/api/v1/events": {"get": {"summary": "Server-Sent Events: a snapshot in chunks, then changes (event types snapshot, snapshot_end, change, fell_behind)", "parameters": event_params,
                "responses": {"200": {"description": "text/event-stream"}}}},
            "/api/v1/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3"}}}}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let doc = document();
        let paths = doc["paths"].as_object().unwrap();
        for (method, path) in ROUTES {
            assert!(
                paths.get(path).and_then(|p| p.get(method)).is_some(),
                "{method} {path} undocumented"
            );
        }
        let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(documented, ROUTES.len());
    }
}
