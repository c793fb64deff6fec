//! gRPC (tonic): `neighsyncd.v1.Neighsyncd` on the same read model as REST, plus the standard
//! health service and server reflection (so stock tools such as grpcurl work).

use std::pin::Pin;

use futures::Stream;
use tokio::sync::{broadcast, mpsc, watch};
use tonic::{Request, Response, Status};

use super::ApiState;
use super::rest::{DEFAULT_PAGE_SIZE, Filter, MAX_PAGE_SIZE};
use crate::core::neigh::ResyncCause;
use crate::northbound::listeners::ListenAddr;
use crate::northbound::view::{Change, ChangeKind, NeighborRecord};

#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("neighsyncd.v1");
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("neighsyncd_descriptor");
}

use pb::neighsyncd_server::{Neighsyncd, NeighsyncdServer};

/// Changes buffered per subscriber before it is told it fell behind.
const SUBSCRIBER_BUFFER: usize = 1024;

fn to_pb(r: &NeighborRecord) -> pb::Neighbor {
    pb::Neighbor {
        key: r.key.clone(),
        ifname: r.ifname.clone(),
        vrf: r.vrf.clone().unwrap_or_default(),
        ip: r.ip.to_string(),
        family: r.family.to_string(),
        kernel_mac: r.kernel_mac.clone().unwrap_or_default(),
        kernel_state: r.kernel_state.unwrap_or_default().to_string(),
        appl_db_mac: r.appl_db_mac.clone().unwrap_or_default(),
        skip_reason: r.skip_reason.unwrap_or_default().to_string(),
        last_changed: r.last_changed.clone(),
    }
}

fn filter_of(f: Option<pb::Filter>) -> Result<Filter, Status> {
    let f = f.unwrap_or_default();
    let some = |s: String| (!s.is_empty()).then_some(s);
    let filter = Filter {
        interface: some(f.interface),
        family: some(f.family),
        vrf: some(f.vrf),
        state: some(f.state),
        ..Default::default()
    };
    filter.validate().map_err(|_| {
        Status::invalid_argument("bad filter: family is IPv4|IPv6, state a NUD state name")
    })?;
    Ok(filter)
}

pub struct Service {
    state: ApiState,
}

impl Service {
    fn read<T>(&self, req: &Request<T>) -> Result<(), Status> {
        if self.state.auth.may_read_token(bearer(req)) {
            Ok(())
        } else {
            Err(Status::unauthenticated("a valid bearer token is required"))
        }
    }
}

fn bearer<T>(req: &Request<T>) -> Option<&str> {
    req.metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

fn change_pb(c: &Change) -> pb::SubscribeResponse {
    pb::SubscribeResponse {
        event: Some(pb::subscribe_response::Event::Change(pb::Change {
            seq: c.seq,
            kind: match c.kind {
                ChangeKind::Upsert => pb::change::Kind::Upsert as i32,
                ChangeKind::Remove => pb::change::Kind::Remove as i32,
            },
            neighbor: Some(to_pb(&c.record)),
        })),
    }
}

fn snapshot_pb(seq: u64, records: &[NeighborRecord], f: &Filter) -> pb::SubscribeResponse {
    pb::SubscribeResponse {
        event: Some(pb::subscribe_response::Event::Snapshot(pb::Snapshot {
            seq,
            neighbors: records.iter().filter(|r| f.matches(r)).map(to_pb).collect(),
        })),
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::SubscribeResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Neighsyncd for Service {
    async fn list_neighbors(
        &self,
        req: Request<pb::ListNeighborsRequest>,
    ) -> Result<Response<pb::ListNeighborsResponse>, Status> {
        self.read(&req)?;
        let r = req.into_inner();
        let f = filter_of(r.filter)?;
        let size = match r.page_size as usize {
            0 => DEFAULT_PAGE_SIZE,
            n if n <= MAX_PAGE_SIZE => n,
            n => {
                return Err(Status::invalid_argument(format!(
                    "page_size {n}: at most {MAX_PAGE_SIZE}"
                )));
            }
        };
        let (seq, all) = self.state.view.snapshot();
        let page: Vec<&NeighborRecord> = all
            .iter()
            .filter(|x| r.page_token.is_empty() || x.key > r.page_token)
            .filter(|x| f.matches(x))
            .take(size + 1)
            .collect();
        let more = page.len() > size;
        let page = &page[..page.len().min(size)];
        Ok(Response::new(pb::ListNeighborsResponse {
            neighbors: page.iter().map(|x| to_pb(x)).collect(),
            next_page_token: if more {
                page.last().map(|x| x.key.clone()).unwrap_or_default()
            } else {
                String::new()
            },
            seq,
        }))
    }

    async fn get_neighbor(
        &self,
        req: Request<pb::GetNeighborRequest>,
    ) -> Result<Response<pb::Neighbor>, Status> {
        self.read(&req)?;
        let r = req.into_inner();
        let ip: std::net::IpAddr = r
            .ip
            .parse()
            .map_err(|_| Status::invalid_argument(format!("{:?} is not an IP address", r.ip)))?;
        let key = crate::core::rules::neigh_key(&r.ifname, &ip);
        self.state
            .view
            .get(&key)
            .map(|x| Response::new(to_pb(&x)))
            .ok_or_else(|| Status::not_found(format!("no neighbor {key}")))
    }

    async fn get_stats(
        &self,
        req: Request<pb::GetStatsRequest>,
    ) -> Result<Response<pb::Stats>, Status> {
        self.read(&req)?;
        let mut values = std::collections::HashMap::new();
        if let serde_json::Value::Object(m) = super::rest::stats_json(&self.state.metrics) {
            for (name, v) in m {
                match v {
                    serde_json::Value::Number(n) => {
                        values.insert(name, n.as_f64().unwrap_or(0.0));
                    }
                    serde_json::Value::Object(labels) => {
                        for (l, v) in labels {
                            if let Some(x) = v.as_f64() {
                                values.insert(format!("{name}{{{l}}}"), x);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(Response::new(pb::Stats { values }))
    }

    async fn get_config(
        &self,
        req: Request<pb::GetConfigRequest>,
    ) -> Result<Response<pb::Config>, Status> {
        self.read(&req)?;
        Ok(Response::new(pb::Config {
            json: self.state.config.to_string(),
        }))
    }

    async fn resync(
        &self,
        req: Request<pb::ResyncRequest>,
    ) -> Result<Response<pb::ResyncResponse>, Status> {
        if !self.state.auth.may_write_token(bearer(&req)) {
            return Err(Status::unauthenticated("a valid bearer token is required"));
        }
        self.state.metrics.resync(ResyncCause::Requested);
        self.state.resync.request_resync(ResyncCause::Requested);
        Ok(Response::new(pb::ResyncResponse {}))
    }

    type SubscribeStream = EventStream;

    async fn subscribe(
        &self,
        req: Request<pb::SubscribeRequest>,
    ) -> Result<Response<EventStream>, Status> {
        self.read(&req)?;
        let r = req.into_inner();
        let f = filter_of(r.filter)?;
        let view = self.state.view.clone();
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        let mut first = Vec::new();
        let mut changes = match r.resume_from_seq.and_then(|seq| view.resume(seq)) {
            Some((missed, rx)) => {
                first.extend(
                    missed
                        .iter()
                        .filter(|c| f.matches(&c.record))
                        .map(|c| change_pb(c)),
                );
                rx
            }
            None => {
                let (seq, records, rx) = view.subscribe();
                first.push(snapshot_pb(seq, &records, &f));
                rx
            }
        };
        tokio::spawn(async move {
            for ev in first {
                if tx.send(Ok(ev)).await.is_err() {
                    return;
                }
            }
            loop {
                match changes.recv().await {
                    Ok(c) if f.matches(&c.record) => {
                        // A full buffer means the subscriber is not reading: it falls behind
                        // (the broadcast's lag tells it) rather than holding memory.
                        if tx.send(Ok(change_pb(&c))).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        let (seq, records, rx) = view.subscribe();
                        changes = rx;
                        let behind = pb::SubscribeResponse {
                            event: Some(pb::subscribe_response::Event::FellBehind(
                                pb::FellBehind { missed },
                            )),
                        };
                        if tx.send(Ok(behind)).await.is_err()
                            || tx.send(Ok(snapshot_pb(seq, &records, &f))).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

/// Binds now, serves the API, health and reflection until `shutdown`.
pub async fn serve(
    addr: ListenAddr,
    state: ApiState,
    tls: Option<&super::tls::TlsFiles>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, std::io::Error> {
    let mut builder = tonic::transport::Server::builder();
    if let Some(files) = tls {
        let pem = files.pem().map_err(std::io::Error::other)?;
        let mut config = tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(pem.cert, pem.key));
        if let Some(ca) = pem.client_ca {
            config = config.client_ca_root(tonic::transport::Certificate::from_pem(ca));
        }
        builder = builder.tls_config(config).map_err(std::io::Error::other)?;
    }
    tracing::info!(%addr, tls = tls.is_some(), "gRPC API listening");
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<NeighsyncdServer<Service>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(std::io::Error::other)?;
    let service = NeighsyncdServer::new(Service { state }).max_decoding_message_size(64 * 1024);
    let router = builder
        .concurrency_limit_per_connection(super::rest::MAX_CONCURRENT)
        .add_service(health)
        .add_service(reflection)
        .add_service(service);
    let stop = async move {
        let _ = shutdown.changed().await;
    };
    let task = match addr {
        ListenAddr::Tcp(a) => {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(
                tokio::net::TcpListener::bind(a).await?,
            );
            tokio::spawn(async move {
                if let Err(e) = router.serve_with_incoming_shutdown(incoming, stop).await {
                    tracing::warn!(error = %e, "gRPC listener failed");
                }
            })
        }
        ListenAddr::Unix(p) => {
            crate::northbound::listeners::socket_dir(&p)?;
            let _ = std::fs::remove_file(&p);
            let incoming = tokio_stream::wrappers::UnixListenerStream::new(
                tokio::net::UnixListener::bind(&p)?,
            );
            tokio::spawn(async move {
                if let Err(e) = router.serve_with_incoming_shutdown(incoming, stop).await {
                    tracing::warn!(error = %e, "gRPC listener failed");
                }
            })
        }
    };
    Ok(task)
}
