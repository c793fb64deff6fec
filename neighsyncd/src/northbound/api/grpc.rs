//! gRPC (tonic): `neighsyncd.v1.Neighsyncd` on the same read model as REST, plus the standard
//! health service and server reflection (so stock tools such as grpcurl work).

use std::pin::Pin;

use futures::Stream;
use tokio::sync::{mpsc, watch};
use tonic::{Request, Response, Status};

use super::ApiState;
use super::auth::Grant;
use super::service::{Filter, Item, ServiceError};
use crate::northbound::listeners::{Bound, ListenAddr};
use crate::northbound::view::{Change, ChangeKind, NeighborRecord};

#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("neighsyncd.v1");
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("neighsyncd_descriptor");
}

use pb::neighsyncd_server::{Neighsyncd, NeighsyncdServer};

/// Messages (a change, or a snapshot chunk of up to 256 neighbors) queued per subscriber
/// beyond what the transport holds. Small on purpose: the subscription reads the view's shared
/// history lazily, so queueing more only costs memory; a subscriber that does not read
/// falls behind and is told so.
const SUBSCRIBER_BUFFER: usize = 4;

fn to_pb(r: &NeighborRecord) -> pb::Neighbor {
    pb::Neighbor {
        key: r.key.clone(),
        namespace: r.namespace.clone().unwrap_or_default(),
        ifname: r.ifname.clone(),
        vrf: r.vrf.clone().unwrap_or_default(),
        ip: r.ip.to_string(),
        family: r.family.to_string(),
        kernel_mac: r.kernel_mac.clone().unwrap_or_default(),
        kernel_state: r.kernel_state.as_deref().unwrap_or_default().to_string(),
        appl_db_mac: r.appl_db_mac.clone().unwrap_or_default(),
        skip_reason: r.skip_reason.as_deref().unwrap_or_default().to_string(),
        last_changed: r.last_changed.clone(),
    }
}

fn status(e: ServiceError) -> Status {
    match e {
        ServiceError::InvalidArgument(m) => Status::invalid_argument(m),
        ServiceError::NotFound(m) => Status::not_found(m),
        ServiceError::Standby(m) => Status::failed_precondition(m),
    }
}

/// The response, with hot standby's role in its metadata (`x-neighsyncd-role`) when on.
fn with_role<T>(state: &ApiState, mut r: Response<T>) -> Response<T> {
    if let Some(role) = state.role() {
        r.metadata_mut().insert(
            ROLE_HEADER,
            tonic::metadata::MetadataValue::from_static(role),
        );
    }
    r
}

use super::role::ROLE_HEADER;

/// An empty string is "any" in proto3.
fn filter_of(f: Option<pb::Filter>) -> Filter {
    let f = f.unwrap_or_default();
    let some = |s: String| (!s.is_empty()).then_some(s);
    Filter {
        interface: some(f.interface),
        family: some(f.family),
        vrf: some(f.vrf),
        state: some(f.state),
        namespace: some(f.namespace),
    }
}

fn change_pb(c: &Change) -> pb::subscribe_response::Event {
    pb::subscribe_response::Event::Change(pb::Change {
        seq: c.seq,
        kind: match c.kind {
            ChangeKind::Upsert => pb::change::Kind::Upsert as i32,
            ChangeKind::Remove => pb::change::Kind::Remove as i32,
        },
        neighbor: Some(to_pb(&c.record)),
    })
}

fn item_pb(item: Item) -> pb::SubscribeResponse {
    let event = match item {
        Item::Snapshot {
            epoch,
            seq,
            neighbors,
        } => pb::subscribe_response::Event::Snapshot(pb::Snapshot {
            seq,
            neighbors: neighbors.iter().map(to_pb).collect(),
            epoch,
        }),
        Item::SnapshotEnd { epoch, seq, count } => {
            pb::subscribe_response::Event::SnapshotEnd(pb::SnapshotEnd { seq, epoch, count })
        }
        Item::Change(c) => change_pb(&c),
        Item::FellBehind { missed, .. } => {
            pb::subscribe_response::Event::FellBehind(pb::FellBehind { missed })
        }
    };
    pb::SubscribeResponse { event: Some(event) }
}

pub struct Service {
    state: ApiState,
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::SubscribeResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Neighsyncd for Service {
    async fn list_neighbors(
        &self,
        req: Request<pb::ListNeighborsRequest>,
    ) -> Result<Response<pb::ListNeighborsResponse>, Status> {
        let r = req.into_inner();
        let token = (!r.page_token.is_empty()).then_some(r.page_token.as_str());
        let page = self
            .state
            .list(&filter_of(r.filter), token, Some(r.page_size as usize))
            .map_err(status)?;
        Ok(with_role(
            &self.state,
            Response::new(pb::ListNeighborsResponse {
                neighbors: page.neighbors.iter().map(to_pb).collect(),
                next_page_token: page.next_page_token.unwrap_or_default(),
                seq: page.seq,
                epoch: self.state.view.epoch().to_string(),
            }),
        ))
    }

    async fn get_neighbor(
        &self,
        req: Request<pb::GetNeighborRequest>,
    ) -> Result<Response<pb::Neighbor>, Status> {
        let r = req.into_inner();
        let ns = (!r.namespace.is_empty()).then_some(r.namespace.as_str());
        let n = self.state.get(&r.ifname, &r.ip, ns).map_err(status)?;
        Ok(with_role(&self.state, Response::new(to_pb(&n))))
    }

    async fn get_stats(
        &self,
        _req: Request<pb::GetStatsRequest>,
    ) -> Result<Response<pb::Stats>, Status> {
        let mut values = std::collections::HashMap::new();
        if let serde_json::Value::Object(m) = self.state.stats() {
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
        Ok(with_role(&self.state, Response::new(pb::Stats { values })))
    }

    async fn get_config(
        &self,
        _req: Request<pb::GetConfigRequest>,
    ) -> Result<Response<pb::Config>, Status> {
        Ok(with_role(
            &self.state,
            Response::new(pb::Config {
                json: self.state.config().to_string(),
            }),
        ))
    }

    async fn resync(
        &self,
        req: Request<pb::ResyncRequest>,
    ) -> Result<Response<pb::ResyncResponse>, Status> {
        if !Grant::may_write(&req) {
            return Err(Status::unauthenticated("a valid bearer token is required"));
        }
        self.state.resync().map_err(status)?;
        Ok(with_role(&self.state, Response::new(pb::ResyncResponse {})))
    }

    type SubscribeStream = EventStream;

    async fn subscribe(
        &self,
        req: Request<pb::SubscribeRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let r = req.into_inner();
        let mut sub = self
            .state
            .subscribe(
                filter_of(r.filter),
                r.resume_from_seq.map(|seq| (r.resume_epoch.as_str(), seq)),
            )
            .map_err(status)?;
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        tokio::spawn(async move {
            // A full buffer means the subscriber is not reading: it falls behind (the view's
            // history moves on without it) rather than holding memory.
            while let Some(item) = sub.next().await {
                if tx.send(Ok(item_pb(item))).await.is_err() {
                    return;
                }
            }
        });
        Ok(with_role(
            &self.state,
            Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))),
        ))
    }
}

/// Binds now, serves the API, health and reflection until `shutdown`.
pub async fn serve(
    addr: ListenAddr,
    state: ApiState,
    tls: Option<&super::tls::TlsFiles>,
    shutdown: watch::Receiver<bool>,
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
    // grpcurl 1.8 and other tools still in wide use speak only v1alpha.
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(std::io::Error::other)?;
    let auth = state.auth.clone();
    let service = tonic::service::interceptor::InterceptedService::new(
        NeighsyncdServer::new(Service { state }).max_decoding_message_size(64 * 1024),
        auth.interceptor(),
    );
    let router = builder
        .concurrency_limit_per_connection(super::rest::MAX_CONCURRENT)
        .add_service(health)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(service);
    let stop = crate::northbound::listeners::stopped(shutdown);
    let task = match crate::northbound::listeners::bind(&addr).await? {
        Bound::Tcp(l) => {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(l);
            tokio::spawn(async move {
                if let Err(e) = router.serve_with_incoming_shutdown(incoming, stop).await {
                    tracing::warn!(error = %e, "gRPC listener failed");
                }
            })
        }
        Bound::Unix(l) => {
            let incoming = tokio_stream::wrappers::UnixListenerStream::new(l);
            tokio::spawn(async move {
                if let Err(e) = router.serve_with_incoming_shutdown(incoming, stop).await {
                    tracing::warn!(error = %e, "gRPC listener failed");
                }
            })
        }
    };
    Ok(task)
}
