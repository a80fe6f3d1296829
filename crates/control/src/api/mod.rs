//! The control plane's HTTP API (port 15014 by default):
//!
//! | method and path | what |
//! | --- | --- |
//! | `GET /ready` | 200 once a config is loaded |
//! | `POST /v1/instances` | register `{name, namespace, address, port or ports, labels, serviceAccount, locality, weight, ttlSeconds}` → `{id, ttlSeconds}` |
//! | `PUT /v1/instances/{id}/heartbeat` | keep it alive; 404 if it expired (register again) |
//! | `DELETE /v1/instances/{id}` | leave now |
//! | `GET /v1/instances` | registered instances |
//! | `POST /v1/certificates` | sign a workload's CSR `{csr}` (PEM, its SPIFFE ID as URI SAN) → `{identity, certificate, root, expiresInSeconds}` (`ca`) |
//! | `GET /v1/root` | the mesh root certificate `{root}` |
//! | `GET /debug/config` | version, resources, rejected edit's diagnostics |
//! | `GET /debug/version` | the config version alone (cheap to poll) |
//! | `GET /debug/proxies` | connected proxies and the versions they ACKed |
//! | `GET /debug/health` | upstream health as every proxy sees it, per host (`health_view`) |
//! | `GET /metrics` | the control plane's own metrics (Prometheus text), limit refusals among them |
//!
//! Every request first passes `guard` (Host, Content-Type, body size).

mod guard;
mod registration;

use crate::ca::Ca;
use crate::hub::Hub;
use crate::registry::Refused;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use std::sync::Arc;

type Resp = Response<Full<Bytes>>;

fn json(status: StatusCode, v: &serde_json::Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(serde_json::to_vec_pretty(v).unwrap_or_default())));
    *r.status_mut() = status;
    r.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    r
}

fn error(status: StatusCode, msg: &str) -> Resp {
    json(status, &serde_json::json!({ "error": msg }))
}

pub async fn handle(hub: Arc<Hub>, ca: Arc<Ca>, req: Request<Incoming>) -> Result<Resp, std::convert::Infallible> {
    if let Some(refused) = guard::refuse(&req, &hub) {
        return Ok(refused);
    }
    let path = req.uri().path().to_owned();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let resp = match (req.method().clone(), segs.as_slice()) {
        (Method::GET, ["ready"]) => {
            if hub.snapshot().version > 0 {
                json(StatusCode::OK, &serde_json::json!({"ready": true}))
            } else {
                error(StatusCode::SERVICE_UNAVAILABLE, "no config loaded yet")
            }
        }
        (Method::POST, ["v1", "instances"]) => {
            let body = match guard::body(req, &hub).await {
                Ok(b) => b,
                Err(resp) => return Ok(resp),
            };
            match registration::parse(&body, &hub.limits) {
                Ok((instance, ttl)) => match hub.register(instance, ttl) {
                    Ok(id) => {
                        tracing::info!(instance = %id, ttl = ?ttl, "registered");
                        json(StatusCode::OK, &serde_json::json!({"id": id, "ttlSeconds": ttl.as_secs()}))
                    }
                    Err(refused) => {
                        let status = match refused {
                            Refused::Taken { .. } => StatusCode::CONFLICT,
                            Refused::Full { .. } => {
                                hub.metrics.refused("instances");
                                StatusCode::SERVICE_UNAVAILABLE
                            }
                        };
                        tracing::warn!(%refused, "registration refused");
                        error(status, &refused.to_string())
                    }
                },
                Err(invalid) => {
                    if let Some(limit) = invalid.limit {
                        hub.metrics.refused(limit);
                    }
                    error(StatusCode::BAD_REQUEST, &format!("invalid registration: {}", invalid.message))
                }
            }
        }
        (Method::PUT, ["v1", "instances", id, "heartbeat"]) => {
            if hub.heartbeat(id) {
                json(StatusCode::OK, &serde_json::json!({"id": id}))
            } else {
                error(StatusCode::NOT_FOUND, "unknown or expired instance; register again")
            }
        }
        (Method::DELETE, ["v1", "instances", id]) => {
            if hub.deregister(id) {
                json(StatusCode::OK, &serde_json::json!({"id": id}))
            } else {
                error(StatusCode::NOT_FOUND, "unknown instance")
            }
        }
        (Method::POST, ["v1", "certificates"]) => {
            let body = match guard::body(req, &hub).await {
                Ok(b) => b,
                Err(resp) => return Ok(resp),
            };
            #[derive(serde::Deserialize)]
            struct CsrRequest {
                csr: String,
            }
            match serde_json::from_slice::<CsrRequest>(&body) {
                Ok(r) => match ca.sign(&r.csr) {
                    Ok(signed) => {
                        tracing::info!(identity = %signed.identity, "signed a workload certificate");
                        json(StatusCode::OK, &serde_json::to_value(&signed).unwrap_or_default())
                    }
                    Err(e) => error(StatusCode::BAD_REQUEST, &e),
                },
                Err(e) => error(StatusCode::BAD_REQUEST, &format!("expected {{\"csr\": \"<PEM>\"}}: {e}")),
            }
        }
        (Method::GET, ["v1", "root"]) => json(StatusCode::OK, &serde_json::json!({"root": ca.root_pem()})),
        (Method::GET, ["v1", "instances"]) => {
            let list: Vec<_> =
                hub.registrations().into_iter().map(|(id, i)| serde_json::json!({"id": id, "instance": i})).collect();
            json(StatusCode::OK, &serde_json::Value::Array(list))
        }
        (Method::GET, ["debug", "config"]) => {
            let snap = hub.snapshot();
            let resources: Vec<String> = snap.resources.iter().map(|r| r.key()).collect();
            json(
                StatusCode::OK,
                &serde_json::json!({
                    "version": snap.version,
                    "resources": resources,
                    "instances": snap.instances.iter().map(|i| &**i).collect::<Vec<_>>(),
                    "rejected": hub.rejected(),
                }),
            )
        }
        (Method::GET, ["debug", "version"]) => {
            json(StatusCode::OK, &serde_json::json!({"version": hub.snapshot().version}))
        }
        (Method::GET, ["debug", "health"]) => json(StatusCode::OK, &crate::health_view::gather(&hub).await),
        (Method::GET, ["metrics"]) => {
            let mut r = Response::new(Full::new(Bytes::from(hub.metrics.text())));
            r.headers_mut().insert(
                "content-type",
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        (Method::GET, ["debug", "proxies"]) => {
            json(StatusCode::OK, &serde_json::to_value(hub.proxies()).unwrap_or_default())
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "no such endpoint; see /debug/config, /debug/proxies, /debug/health, /v1/instances, /v1/root, /metrics",
        ),
    };
    Ok(resp)
}
