//! The gRPC API against a daemon in a lab namespace: every call, the subscription stream,
//! health and reflection, and refusals.

use std::time::Duration;

use neighsyncd::northbound::api::grpc::pb;
use neighsyncd::northbound::api::grpc::pb::neighsyncd_client::NeighsyncdClient;
use neighsyncd_tests::daemon::Daemon;
use neighsyncd_tests::netns::Lab;
use neighsyncd_tests::redis_server::RedisServer;
use neighsyncd_tests::{require_lab, wait};
use tokio_stream::StreamExt;
use tonic::Request;
use tonic::transport::Channel;

const T: Duration = Duration::from_secs(10);

/// Runs `f` with a connected client on a thread inside the lab namespace.
fn in_ns<R: Send + 'static>(
    lab: &Lab,
    f: impl FnOnce(Channel) -> std::pin::Pin<Box<dyn std::future::Future<Output = R> + Send>>
    + Send
    + 'static,
) -> R {
    lab.dut
        .run_inside(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let ch = tonic::transport::Endpoint::from_static("http://[::1]:50051")
                    .connect_timeout(T)
                    .connect()
                    .await
                    .expect("gRPC connects");
                f(ch).await
            })
        })
        .unwrap()
}

fn with_token<T>(msg: T, token: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_health_reflection_and_the_subscription() {
    require_lab("every_call_health_reflection_and_the_subscription");
    let redis = RedisServer::start();
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "grpc-token").unwrap();
    let d = Daemon::start(
        &lab.dut,
        &redis,
        &["--api-token-file", token.to_str().unwrap()],
    );
    d.wait_ready(&lab.dut).await;
    lab.dut
        .ip("neigh add 10.0.0.5 lladdr 02:00:00:00:00:05 dev Ethernet0 nud permanent");
    wait::until("neighbor in the API", T, async || {
        match lab.dut.http(
            ("::1", 8080),
            "GET",
            "/api/v1/neighbors/Ethernet0/10.0.0.5",
            &[],
            "",
        ) {
            Ok((200, b)) if b.contains("appl_db_mac\":\"02") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // Unary calls.
    let (list, one, missing, bad_ip, bad_page, stats, config) = in_ns(&lab, |ch| {
        Box::pin(async move {
            let mut c = NeighsyncdClient::new(ch);
            let list = c
                .list_neighbors(pb::ListNeighborsRequest {
                    filter: Some(pb::Filter {
                        family: "IPv4".into(),
                        ..Default::default()
                    }),
                    page_size: 10,
                    page_token: String::new(),
                })
                .await
                .unwrap()
                .into_inner();
            let one = c
                .get_neighbor(pb::GetNeighborRequest {
                    ifname: "Ethernet0".into(),
                    ip: "10.0.0.5".into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            let missing = c
                .get_neighbor(pb::GetNeighborRequest {
                    ifname: "Ethernet0".into(),
                    ip: "10.0.0.99".into(),
                    ..Default::default()
                })
                .await
                .unwrap_err()
                .code();
            let bad_ip = c
                .get_neighbor(pb::GetNeighborRequest {
                    ifname: "Ethernet0".into(),
                    ip: "nope".into(),
                    ..Default::default()
                })
                .await
                .unwrap_err()
                .code();
            let bad_page = c
                .list_neighbors(pb::ListNeighborsRequest {
                    filter: None,
                    page_size: 1_000_000,
                    page_token: String::new(),
                })
                .await
                .unwrap_err()
                .code();
            let stats = c
                .get_stats(pb::GetStatsRequest {})
                .await
                .unwrap()
                .into_inner();
            let config = c
                .get_config(pb::GetConfigRequest {})
                .await
                .unwrap()
                .into_inner();
            (list, one, missing, bad_ip, bad_page, stats, config)
        })
    });
    assert!(list.neighbors.iter().any(|n| n.key == "Ethernet0:10.0.0.5"));
    assert!(list.neighbors.iter().all(|n| n.family == "IPv4"));
    assert_eq!(one.appl_db_mac, "02:00:00:00:00:05");
    assert_eq!(missing, tonic::Code::NotFound);
    assert_eq!(bad_ip, tonic::Code::InvalidArgument);
    assert_eq!(bad_page, tonic::Code::InvalidArgument);
    assert_eq!(stats.values.get("neighbors{family=IPv4}"), Some(&1.0));
    let source = format!("\"source\":\"{}\"", neighsyncd_tests::test_source());
    assert!(config.json.contains(&source), "{}", config.json);
    assert!(!config.json.contains("grpc-token"));

    // Resync: refused without or with a wrong token, nothing changes; accepted with it.
    let requested = || d.metric(&lab.dut, "neighsyncd_resyncs_total", "cause=\"requested\"");
    let before = requested();
    let (none, wrong, ok) = in_ns(&lab, |ch| {
        Box::pin(async move {
            let mut c = NeighsyncdClient::new(ch);
            let none = c.resync(pb::ResyncRequest {}).await.unwrap_err().code();
            let wrong = c
                .resync(with_token(pb::ResyncRequest {}, "nope"))
                .await
                .unwrap_err()
                .code();
            let ok = c
                .resync(with_token(pb::ResyncRequest {}, "grpc-token"))
                .await
                .is_ok();
            (none, wrong, ok)
        })
    });
    assert_eq!(
        (none, wrong, ok),
        (
            tonic::Code::Unauthenticated,
            tonic::Code::Unauthenticated,
            true
        )
    );
    wait::until("one resync counted", T, async || {
        if requested() == before + 1.0 {
            Ok(())
        } else {
            Err(format!("{}", requested()))
        }
    })
    .await;

    // Health and reflection, as stock tools use them.
    let (serving, services) = in_ns(&lab, |ch| {
        Box::pin(async move {
            let mut h = tonic_health::pb::health_client::HealthClient::new(ch.clone());
            let st = h
                .check(tonic_health::pb::HealthCheckRequest {
                    service: "neighsyncd.v1.Neighsyncd".into(),
                })
                .await
                .unwrap()
                .into_inner()
                .status;
            use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
            use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
            use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
            let mut r = ServerReflectionClient::new(ch);
            let req = tonic_reflection::pb::v1::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            };
            let mut stream = r
                .server_reflection_info(tokio_stream::iter(vec![req]))
                .await
                .unwrap()
                .into_inner();
            let mut names = Vec::new();
            if let Some(Ok(resp)) = stream.next().await
                && let Some(MessageResponse::ListServicesResponse(l)) = resp.message_response
            {
                names = l.service.into_iter().map(|s| s.name).collect();
            }
            (st, names)
        })
    });
    assert_eq!(
        serving,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    for s in ["neighsyncd.v1.Neighsyncd", "grpc.health.v1.Health"] {
        assert!(
            services.iter().any(|n| n == s),
            "{s} not listed: {services:?}"
        );
    }

    // Subscribe: snapshot, then the kernel's changes in order.
    let ns = lab.dut.name().to_string();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let sub = std::thread::spawn(move || {
        let path = format!("/var/run/netns/{ns}");
        use std::os::fd::AsRawFd;
        let f = std::fs::File::open(&path).unwrap();
        // SAFETY: setns on an fd we own; only this thread changes namespace.
        assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let ch = tonic::transport::Endpoint::from_static("http://[::1]:50051").connect().await.unwrap();
            let mut c = NeighsyncdClient::new(ch);
            let mut s = c
                .subscribe(pb::SubscribeRequest {
                    filter: Some(pb::Filter { interface: "Ethernet4".into(), ..Default::default() }),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            let mut got = Vec::new();
            while let Ok(Some(Ok(ev))) = tokio::time::timeout(T, s.next()).await {
                if got.is_empty() {
                    let _ = ready_tx.send(());
                }
                let done = matches!(&ev.event, Some(pb::subscribe_response::Event::Change(c))
                    if c.kind == pb::change::Kind::Remove as i32 && c.neighbor.as_ref().is_some_and(|n| n.ip == "10.0.4.7"));
                got.push(ev);
                if done {
                    break;
                }
            }
            got
        })
    });
    ready_rx
        .recv_timeout(T)
        .expect("the subscription's snapshot");
    lab.dut
        .ip("neigh add 10.0.4.7 lladdr 02:00:00:00:04:07 dev Ethernet4 nud permanent");
    lab.dut
        .ip("neigh add 10.0.0.8 lladdr 02:00:00:00:00:08 dev Ethernet0 nud permanent");
    lab.dut.ip("neigh del 10.0.4.7 dev Ethernet4");
    let got = sub.join().unwrap();
    assert!(
        matches!(
            got.first().and_then(|e| e.event.as_ref()),
            Some(pb::subscribe_response::Event::Snapshot(_))
        ),
        "{got:?}"
    );
    let changes: Vec<&pb::Change> = got
        .iter()
        .filter_map(|e| match &e.event {
            Some(pb::subscribe_response::Event::Change(c)) => Some(c),
            _ => None,
        })
        .collect();
    assert!(
        changes.windows(2).all(|w| w[0].seq < w[1].seq),
        "out of order"
    );
    assert!(
        changes
            .iter()
            .all(|c| c.neighbor.as_ref().is_some_and(|n| n.ifname == "Ethernet4")),
        "filter leaked"
    );
    assert!(
        changes
            .iter()
            .any(|c| c.kind == pb::change::Kind::Upsert as i32)
    );
}

/// Both APIs on unix sockets (reached from anywhere on the host, guarded by file permissions).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_apis_listen_on_unix_sockets() {
    require_lab("both_apis_listen_on_unix_sockets");
    let redis = RedisServer::start();
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let rest = dir.path().join("rest.sock");
    let grpc = dir.path().join("grpc.sock");
    let d = Daemon::start(
        &lab.dut,
        &redis,
        &[
            "--rest-listen",
            &format!("unix:{}", rest.display()),
            "--grpc-listen",
            &format!("unix:{}", grpc.display()),
        ],
    );
    d.wait_ready(&lab.dut).await;
    // REST over the socket.
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(&rest).unwrap();
    s.write_all(b"GET /api/v1/stats HTTP/1.0\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(
        resp.starts_with("HTTP/1.0 200") || resp.starts_with("HTTP/1.1 200"),
        "{resp:.200}"
    );
    // gRPC over the socket.
    let path = grpc.clone();
    let ch = tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(path).await?,
                ))
            }
        }))
        .await
        .unwrap();
    let cfg = NeighsyncdClient::new(ch)
        .get_config(pb::GetConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(cfg.json.contains("unix:"), "{}", cfg.json);
}

/// Subscribe with `resume_from_seq`: the changes after it, in order, and no snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_resumes_from_a_sequence_number() {
    require_lab("subscribe_resumes_from_a_sequence_number");
    let redis = RedisServer::start();
    let lab = Lab::new();
    let d = Daemon::start(&lab.dut, &redis, &[]);
    d.wait_ready(&lab.dut).await;
    let written = |ip: &'static str| {
        let lab = &lab;
        async move {
            wait::until(ip, T, async || {
                match lab.dut.http(
                    ("::1", 8080),
                    "GET",
                    &format!("/api/v1/neighbors/Ethernet0/{ip}"),
                    &[],
                    "",
                ) {
                    Ok((200, b)) if b.contains("appl_db_mac\":\"02") => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            })
            .await
        }
    };
    lab.dut
        .ip("neigh add 10.0.0.5 lladdr 02:00:00:00:00:05 dev Ethernet0 nud permanent");
    written("10.0.0.5").await;
    let (seq0, epoch) = in_ns(&lab, |ch| {
        Box::pin(async move {
            let r = NeighsyncdClient::new(ch)
                .list_neighbors(pb::ListNeighborsRequest::default())
                .await
                .unwrap()
                .into_inner();
            (r.seq, r.epoch)
        })
    });
    lab.dut
        .ip("neigh add 10.0.0.6 lladdr 02:00:00:00:00:06 dev Ethernet0 nud permanent");
    lab.dut
        .ip("neigh add 10.0.0.7 lladdr 02:00:00:00:00:07 dev Ethernet0 nud permanent");
    written("10.0.0.6").await;
    written("10.0.0.7").await;
    let events = in_ns(&lab, move |ch| {
        Box::pin(async move {
            let mut s = NeighsyncdClient::new(ch)
                .subscribe(pb::SubscribeRequest {
                    filter: None,
                    resume_from_seq: Some(seq0),
                    resume_epoch: epoch,
                })
                .await
                .unwrap()
                .into_inner();
            let mut got = Vec::new();
            while let Ok(Some(Ok(ev))) =
                tokio::time::timeout(Duration::from_secs(2), s.next()).await
            {
                got.push(ev);
            }
            got
        })
    });
    let mut last = seq0;
    let mut ips = Vec::new();
    for ev in &events {
        match &ev.event {
            Some(pb::subscribe_response::Event::Change(c)) => {
                assert!(
                    c.seq > last,
                    "out of order or not after {seq0}: {} after {last}",
                    c.seq
                );
                last = c.seq;
                ips.push(
                    c.neighbor
                        .as_ref()
                        .map(|n| n.ip.clone())
                        .unwrap_or_default(),
                );
            }
            other => panic!("resume must send changes only, got {other:?}"),
        }
    }
    assert!(
        ips.contains(&"10.0.0.6".to_string()) && ips.contains(&"10.0.0.7".to_string()),
        "{ips:?}"
    );
    assert!(
        !ips.contains(&"10.0.0.5".to_string()),
        "a change from before the resume point: {ips:?}"
    );
    // The same sequence number from another instance (a restarted daemon counts from 0
    // again) gets a snapshot, never an incoherent delta.
    let first = in_ns(&lab, move |ch| {
        Box::pin(async move {
            let mut s = NeighsyncdClient::new(ch)
                .subscribe(pb::SubscribeRequest {
                    filter: None,
                    resume_from_seq: Some(seq0),
                    resume_epoch: "0123456789abcdef".into(),
                })
                .await
                .unwrap()
                .into_inner();
            tokio::time::timeout(T, s.next()).await
        })
    });
    assert!(
        matches!(
            first,
            Ok(Some(Ok(pb::SubscribeResponse {
                event: Some(pb::subscribe_response::Event::Snapshot(_))
            })))
        ),
        "another instance's resume point must get a snapshot: {first:?}"
    );
}
