//! The REST API's request parsing: any method, path and query against a populated read model
//! is answered, never a panic. Invariants: the status is one the API documents, and an error
//! body is JSON with `code` and `message`.

#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Method, Request};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use neighsyncd::northbound::api::ApiState;
use neighsyncd::core::key::{LinkAddr, NeighKey};
use neighsyncd::core::rules::{Mac, NeighValue};
use neighsyncd::southbound::netlink::DumpRequester;
use neighsyncd::northbound::view::{KernelSide, View};
use tower::ServiceExt;

struct World {
    rt: tokio::runtime::Runtime,
    state: ApiState,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let view = Arc::new(View::new(64));
        for (i, (ifname, ip)) in [("Ethernet0", "10.0.0.2"), ("Vlan1000", "fc00::2")]
            .iter()
            .enumerate()
        {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            let key = NeighKey::new(ifname, ip);
            view.kernel_update(
                key,
                KernelSide {
                    vrf: None,
                    lladdr: LinkAddr::new(Some(&[2, 0, 0, 0, 0, i as u8])),
                    state: neighsyncd::core::neigh::nud::REACHABLE,
                    classed: true,
                    skip_reason: None,
                },
            );
            view.appl_update(
                key,
                Some(NeighValue {
                    mac: Mac([2, 0, 0, 0, 0, i as u8]),
                    ipv6: ip.is_ipv6(),
                }),
            );
        }
        let (dumps, requests) = DumpRequester::channel();
        std::mem::forget(requests);
        World {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            state: ApiState {
                view,
                metrics: neighsyncd::telemetry::metrics::MetricsSet::one(Arc::new(
                    neighsyncd::telemetry::metrics::Metrics::new(),
                )),
                resync: Arc::new(dumps),
                config: Arc::new(serde_json::json!({})),
                auth: Arc::new(neighsyncd::northbound::api::auth::Auth::new(None, true).unwrap()),
                ha: None,
            },
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let Ok(target) = std::str::from_utf8(rest) else {
        return;
    };
    let method =
        [Method::GET, Method::POST, Method::PUT, Method::DELETE][usize::from(m % 4)].clone();
    let uri = format!("/api/v1/{target}");
    let Ok(req) = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
    else {
        return;
    };
    let w = world();
    // Subscriptions stream forever: only their head is read.
    if target.starts_with("events") {
        return;
    }
    let app = neighsyncd::northbound::api::rest::routes(w.state.clone());
    w.rt.block_on(async {
        let resp = app.oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        assert!(
            [200, 400, 401, 403, 404, 405, 413, 429].contains(&status),
            "status {status}"
        );
        if status >= 400 && status != 405 {
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON error body");
            assert!(v["code"].is_string() && v["message"].is_string(), "{v}");
        }
    });
});
