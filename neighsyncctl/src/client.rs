//! The HTTP(S) client for the daemon's REST API: unix socket or TCP, TLS and mutual TLS
//! (rustls), the bearer token, and a timeout on every request.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::Method;
use reqwest::blocking::{Client, RequestBuilder, Response};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::de::DeserializeOwned;

/// Where the system keeps its trusted CAs (Debian's `ca-certificates`).
const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// How to reach the API.
pub struct Target {
    /// `http(s)://HOST:PORT` or `unix:/PATH`.
    pub api: String,
    pub token_file: Option<PathBuf>,
    /// Trusted CAs (PEM) for `https://`; the system's when absent.
    pub cacert: Option<PathBuf>,
    /// The client's certificate and key (PEM), for mutual TLS.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Per request; `None`: none (a `watch` waits for changes as long as it takes).
    pub timeout: Option<Duration>,
}

pub struct Api {
    http: Client,
    base: String,
    token: Option<String>,
}

fn pem_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: not PEM certificates", path.display()))?;
    if certs.is_empty() {
        bail!("{}: no certificate in it", path.display());
    }
    Ok(certs)
}

fn tls_config(t: &Target) -> anyhow::Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let ca = t.cacert.clone().unwrap_or_else(|| SYSTEM_CAS.into());
    for c in pem_certs(&ca)? {
        roots
            .add(c)
            .with_context(|| format!("{}: an unusable CA certificate", ca.display()))?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    Ok(match (&t.cert, &t.key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let key = PrivateKeyDer::from_pem_file(key)
                .with_context(|| format!("{}: no PEM private key in it", key.display()))?;
            builder
                .with_client_auth_cert(pem_certs(cert)?, key)
                .context("the client certificate and key do not match")?
        }
        _ => bail!("--cert and --key go together"),
    })
}

impl Api {
    pub fn new(t: &Target) -> anyhow::Result<Api> {
        let token = match &t.token_file {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read the token file {}", p.display()))?
                    .trim()
                    .to_string(),
            ),
            None => None,
        };
        let mut builder = Client::builder()
            .connect_timeout(t.timeout.unwrap_or(Duration::from_secs(10)))
            .timeout(t.timeout);
        let base = if let Some(path) = t.api.strip_prefix("unix:") {
            builder = builder.unix_socket(path);
            "http://localhost".to_string()
        } else if t.api.starts_with("https://") {
            builder = builder.tls_backend_preconfigured(tls_config(t)?);
            t.api.trim_end_matches('/').to_string()
        } else if t.api.starts_with("http://") {
            if t.cacert.is_some() || t.cert.is_some() {
                bail!("--cacert/--cert need an https:// API");
            }
            t.api.trim_end_matches('/').to_string()
        } else {
            bail!("--api {}: must be http://, https:// or unix:/PATH", t.api);
        };
        Ok(Api {
            http: builder.build()?,
            base,
            token,
        })
    }

    /// A request to `path`, with the token if there is one; `query` is percent-encoded.
    pub fn request(&self, method: Method, path: &str, query: &[(&str, &str)]) -> RequestBuilder {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .query(query);
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        r
    }

    /// Sends, and fails with the API's own message on an error status.
    pub fn send(&self, r: RequestBuilder) -> anyhow::Result<Response> {
        let resp = r
            .send()
            .map_err(|e| anyhow::anyhow!("cannot reach {}: {}", self.base, error_chain(&e)))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().unwrap_or_default();
        match serde_json::from_str::<neighsyncd_api::ApiErrorBody>(&text) {
            Ok(e) => bail!("{status}: {} ({})", e.message, e.code),
            Err(_) => bail!("{status}: {}", text.trim()),
        }
    }

    pub fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> anyhow::Result<T> {
        let resp = self.send(self.request(Method::GET, path, query))?;
        parse(resp)
    }

    pub fn post<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let resp = self.send(self.request(Method::POST, path, &[]))?;
        parse(resp)
    }
}

fn parse<T: DeserializeOwned>(resp: Response) -> anyhow::Result<T> {
    let text = resp.text()?;
    serde_json::from_str(&text)
        .with_context(|| format!("an answer this client cannot read: {text}"))
}

/// "timed out", "connection refused", a TLS alert...: the innermost causes, which say why.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        parts.push(c.to_string());
        cur = c.source();
    }
    parts.dedup();
    parts.join(": ")
}
