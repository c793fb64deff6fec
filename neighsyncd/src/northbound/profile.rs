//! An on-demand CPU profile: `GET /debug/pprof/profile?seconds=N` samples the daemon's stacks
//! at 99 Hz for N seconds and answers a pprof protobuf (flamegraph-ready: `go tool pprof`,
//! speedscope, ...). Off unless configured; only the API token's holder may fetch it; one
//! profile at a time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::api::auth::{Auth, Grant};

/// Samples per second (not a multiple of common timer frequencies, as pprof tools advise).
const FREQUENCY: i32 = 99;
pub(crate) const MAX_SECONDS: u64 = 120;
const DEFAULT_SECONDS: u64 = 30;

/// What the profile endpoint needs: who may fetch it, and whether one is being taken.
#[derive(Clone)]
pub(crate) struct Profiler {
    auth: Arc<Auth>,
    busy: Arc<AtomicBool>,
}

impl Profiler {
    pub(crate) fn new(auth: Arc<Auth>) -> Profiler {
        Profiler {
            auth,
            busy: Arc::new(AtomicBool::new(false)),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProfileQuery {
    seconds: Option<u64>,
}

fn error(code: StatusCode, kind: &str, message: String) -> Response {
    (code, axum::Json(json!({"code": kind, "message": message}))).into_response()
}

/// Frees the profiler when the request ends, however it ends.
struct Busy(Arc<AtomicBool>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

pub(crate) async fn profile(
    State(p): State<Profiler>,
    headers: HeaderMap,
    q: Result<Query<ProfileQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let grant = p
        .auth
        .grant_of(headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()));
    // Reads may be open; a profile never is: it shows the daemon's insides.
    if grant != Grant::Write {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "the API bearer token is required".into(),
        );
    }
    let seconds = match q {
        Ok(Query(q)) => q.seconds.unwrap_or(DEFAULT_SECONDS),
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_argument", e.body_text()),
    };
    if !(1..=MAX_SECONDS).contains(&seconds) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            format!("seconds {seconds}: must be 1..={MAX_SECONDS}"),
        );
    }
    if p.busy.swap(true, Ordering::SeqCst) {
        return error(
            StatusCode::CONFLICT,
            "busy",
            "a profile is being taken; try again when it is done".into(),
        );
    }
    let busy = Busy(p.busy.clone());
    // The sampler is a process-wide signal handler, held by a blocking thread for the duration.
    let taken = tokio::task::spawn_blocking(move || take(Duration::from_secs(seconds))).await;
    drop(busy);
    match taken {
        Ok(Ok(bytes)) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"neighsyncd.pb\"",
                ),
            ],
            bytes,
        )
            .into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, "profiler", e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "profiler", e.to_string()),
    }
}

/// Samples for `d`, then encodes the report in pprof's protobuf format.
fn take(d: Duration) -> Result<Vec<u8>, String> {
    use pprof::protos::Message;
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(FREQUENCY)
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()
        .map_err(|e| e.to_string())?;
    std::thread::sleep(d);
    let report = guard.report().build().map_err(|e| e.to_string())?;
    let profile = report.pprof().map_err(|e| e.to_string())?;
    Ok(profile.encode_to_vec())
}
