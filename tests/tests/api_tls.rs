//! TLS and mutual TLS on the REST and gRPC listeners, with certificates made in the test.

use std::sync::Arc;
use std::time::Duration;

use neighsyncd::northbound::api::grpc::pb;
use neighsyncd::northbound::api::grpc::pb::neighsyncd_client::NeighsyncdClient;
use neighsyncd_tests::daemon::Daemon;
use neighsyncd_tests::netns::Lab;
use neighsyncd_tests::redis_server::RedisServer;
use neighsyncd_tests::{require_lab, wait};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;

struct Ca {
    cert: rcgen::Certificate,
    params: CertificateParams,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let mut p = CertificateParams::new(vec![]).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    Ca {
        cert: p.self_signed(&key).unwrap(),
        params: p,
        key,
    }
}

/// (cert PEM, key PEM) signed by `ca`.
fn leaf(ca: &Ca, name: &str, server: bool) -> (String, String) {
    let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    if server {
        p.subject_alt_names
            .push(SanType::IpAddress("::1".parse().unwrap()));
    }
    p.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let issuer = rcgen::Issuer::from_params(&ca.params, &ca.key);
    let cert = p.signed_by(&key, &issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn client_config(ca_pem: &str, identity: Option<&(String, String)>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match identity {
        None => b.with_no_client_auth(),
        Some((cert, key)) => {
            let chain: Vec<_> = CertificateDer::pem_slice_iter(cert.as_bytes())
                .map(|c| c.unwrap())
                .collect();
            b.with_client_auth_cert(
                chain,
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap()
        }
    })
}

/// An HTTPS request from inside the namespace: Ok((status, body)) or the TLS/IO error text.
fn https(
    lab: &Lab,
    config: Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> Result<(u16, String), String> {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 0\r\n{}\r\n",
        token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default()
    );
    lab.dut
        .run_inside(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let tcp = tokio::net::TcpStream::connect(("::1", 8080))
                    .await
                    .map_err(|e| e.to_string())?;
                let connector = tokio_rustls::TlsConnector::from(config);
                let mut tls = connector
                    .connect(ServerName::try_from("localhost").unwrap(), tcp)
                    .await
                    .map_err(|e| e.to_string())?;
                tls.write_all(req.as_bytes())
                    .await
                    .map_err(|e| e.to_string())?;
                let mut out = Vec::new();
                tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out))
                    .await
                    .map_err(|_| "timeout".to_string())?
                    .map_err(|e| e.to_string())?;
                let text = String::from_utf8_lossy(&out).to_string();
                let status = text
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .ok_or(format!("bad response {text:.100}"))?;
                Ok((
                    status,
                    text.split_once("\r\n\r\n")
                        .map(|x| x.1.to_string())
                        .unwrap_or_default(),
                ))
            })
        })
        .unwrap()
}

fn grpc_list(
    lab: &Lab,
    ca_pem: String,
    identity: Option<(String, String)>,
) -> Result<usize, String> {
    lab.dut
        .run_inside(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut tls = tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(ca_pem))
                    .domain_name("localhost");
                if let Some((c, k)) = identity {
                    tls = tls.identity(tonic::transport::Identity::from_pem(c, k));
                }
                let ch = tonic::transport::Endpoint::from_static("https://[::1]:50051")
                    .tls_config(tls)
                    .map_err(|e| e.to_string())?
                    .connect()
                    .await
                    .map_err(|e| e.to_string())?;
                let r = NeighsyncdClient::new(ch)
                    .list_neighbors(pb::ListNeighborsRequest::default())
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(r.into_inner().neighbors.len())
            })
        })
        .unwrap()
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_mutual_tls_refuse_what_they_must() {
    require_lab("tls_and_mutual_tls_refuse_what_they_must");
    let dir = tempfile::tempdir().unwrap();
    let ca1 = ca("neighsyncd test CA");
    let rogue = ca("someone else");
    let server = leaf(&ca1, "neighsyncd", true);
    let client = leaf(&ca1, "operator", false);
    let stranger = leaf(&rogue, "stranger", false);
    let ca_pem = ca1.cert.pem();
    let (cert, key, ca_file) = (
        write(dir.path(), "s.crt", &server.0),
        write(dir.path(), "s.key", &server.1),
        write(dir.path(), "ca.crt", &ca_pem),
    );
    let token = write(dir.path(), "token", "tls-token");

    // TLS only: any client that trusts the CA gets in; plain HTTP does not.
    {
        let redis = RedisServer::start();
        let lab = Lab::new();
        let d = Daemon::start(
            &lab.dut,
            &redis,
            &["--api-tls-cert", &cert, "--api-tls-key", &key],
        );
        d.wait_ready(&lab.dut).await;
        let (code, _) = https(
            &lab,
            client_config(&ca_pem, None),
            "GET",
            "/api/v1/neighbors",
            None,
        )
        .unwrap();
        assert_eq!(code, 200);
        assert!(
            lab.dut
                .http(("::1", 8080), "GET", "/api/v1/neighbors", &[], "")
                .map(|(c, _)| c != 200)
                .unwrap_or(true)
        );
        assert!(grpc_list(&lab, ca_pem.clone(), None).is_ok());
    }

    // Mutual TLS: only clients with a certificate from our CA.
    let redis = RedisServer::start();
    let lab = Lab::new();
    let d = Daemon::start(
        &lab.dut,
        &redis,
        &[
            "--api-tls-cert",
            &cert,
            "--api-tls-key",
            &key,
            "--api-tls-client-ca",
            &ca_file,
            "--api-token-file",
            &token,
        ],
    );
    d.wait_ready(&lab.dut).await;
    let requested = || d.metric(&lab.dut, "neighsyncd_resyncs_total", "cause=\"requested\"");
    let before = requested();
    let good = client_config(&ca_pem, Some(&client));
    let (code, _) = https(&lab, good.clone(), "GET", "/api/v1/neighbors", None).unwrap();
    assert_eq!(code, 200);
    for (who, cfg) in [
        ("no certificate", client_config(&ca_pem, None)),
        (
            "a stranger's certificate",
            client_config(&ca_pem, Some(&stranger)),
        ),
    ] {
        let res = https(&lab, cfg, "POST", "/api/v1/resync", Some("tls-token"));
        assert!(
            !matches!(res, Ok((200..=299, _))),
            "{who} was let in: {res:?}"
        );
    }
    // Right certificate, wrong or no token: 401, nothing changes.
    for t in [None, Some("wrong")] {
        let (code, body) = https(&lab, good.clone(), "POST", "/api/v1/resync", t).unwrap();
        assert_eq!(code, 401, "{body}");
    }
    assert_eq!(requested(), before, "a refused call changed something");
    let (code, _) = https(&lab, good, "POST", "/api/v1/resync", Some("tls-token")).unwrap();
    assert_eq!(code, 202);
    wait::until("resync counted", Duration::from_secs(10), async || {
        if requested() == before + 1.0 {
            Ok(())
        } else {
            Err(format!("{}", requested()))
        }
    })
    .await;
    // gRPC: the same rules.
    assert!(grpc_list(&lab, ca_pem.clone(), Some(client.clone())).is_ok());
    assert!(
        grpc_list(&lab, ca_pem.clone(), None).is_err(),
        "gRPC without a client certificate"
    );
    assert!(
        grpc_list(&lab, ca_pem, Some(stranger)).is_err(),
        "gRPC with a stranger's certificate"
    );
}

/// neighsyncctl over mutual TLS: in with the CA and its certificate; refused, with a reason,
/// without a certificate or trusting another CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neighsyncctl_speaks_mutual_tls() {
    require_lab("neighsyncctl_speaks_mutual_tls");
    let dir = tempfile::tempdir().unwrap();
    let ca1 = ca("neighsyncd test CA");
    let rogue = ca("someone else");
    let server = leaf(&ca1, "neighsyncd", true);
    let client = leaf(&ca1, "operator", false);
    let (cert, key, ca_file, rogue_file) = (
        write(dir.path(), "s.crt", &server.0),
        write(dir.path(), "s.key", &server.1),
        write(dir.path(), "ca.crt", &ca1.cert.pem()),
        write(dir.path(), "rogue.crt", &rogue.cert.pem()),
    );
    let (c_cert, c_key) = (
        write(dir.path(), "c.crt", &client.0),
        write(dir.path(), "c.key", &client.1),
    );
    let redis = RedisServer::start();
    let lab = Lab::new();
    let d = Daemon::start(
        &lab.dut,
        &redis,
        &[
            "--api-tls-cert",
            &cert,
            "--api-tls-key",
            &key,
            "--api-tls-client-ca",
            &ca_file,
        ],
    );
    d.wait_ready(&lab.dut).await;
    lab.dut
        .ip("neigh add 10.0.0.7 lladdr 02:00:00:00:00:07 dev Ethernet0 nud permanent");
    let ctl = |args: &[&str]| {
        let mut all = vec!["--api", "https://[::1]:8080"];
        all.extend_from_slice(args);
        all.push("arp");
        neighsyncd_tests::daemon::neighsyncctl(&lab.dut, &all)
    };
    wait::until(
        "neighsyncctl over mTLS",
        Duration::from_secs(10),
        async || match ctl(&["--cacert", &ca_file, "--cert", &c_cert, "--key", &c_key]) {
            (true, out) if out.contains("10.0.0.7") => Ok(()),
            (_, out) => Err(out),
        },
    )
    .await;
    let (ok, out) = ctl(&["--cacert", &ca_file]);
    assert!(!ok, "no client certificate, yet in: {out}");
    let (ok, out) = ctl(&["--cacert", &rogue_file, "--cert", &c_cert, "--key", &c_key]);
    assert!(
        !ok && out.contains("certificate"),
        "trusting another CA, yet in (or no reason given): {out}"
    );
    let (ok, out) = ctl(&["--cacert", &ca_file, "--cert", &c_cert]);
    assert!(!ok && out.contains("--cert and --key go together"), "{out}");
}
