//! The control plane's HTTP API (port 15014 by default):
//!
//! | method and path | what |
//! | --- | --- |
//! | `GET /dashboard` | the live dashboard (`dashboard`): service graph, golden signals, proxies, health, config |
//! | `GET /ready` | 200 once a config is loaded, with the pid |
//! | `POST /v1/instances` | register `{name, namespace, address, port or ports, labels, serviceAccount, locality, weight, ttlSeconds}` → `{id, ttlSeconds}` (proof of its identity) |
//! | `PUT /v1/instances/{id}/heartbeat` | keep it alive; 404 if it expired (register again) (proof of its identity) |
//! | `DELETE /v1/instances/{id}` | leave now (proof of its identity) |
//! | `GET /v1/instances` | registered instances (admin) |
//! | `POST /v1/certificates` | sign a workload's CSR `{csr}` (PEM, its SPIFFE ID as URI SAN) → `{identity, certificate, root, signer, expiresInSeconds}` (`ca`; proof of that identity) |
//! | `POST /v1/tokens` | a bootstrap token `{namespace, serviceAccount, ttlSeconds}` → `{token, identity, expiresInSeconds}` (admin) |
//! | `GET /v1/root` | the roots workloads trust (one, or the old and new during a rotation) and the signing certificate's SHA-256 `{root, signer}` |
//! | `GET /debug/...` | (every read below: admin) |
//! | `GET /debug/config` | version, resources, the rejected edit's diagnostics, the warnings of the config in force |
//! | `GET /debug/version` | the config version alone (cheap to poll) |
//! | `GET /debug/proxies` | connected proxies and the versions they ACKed |
//! | `GET /debug/health[?service=HOST]` | upstream health as every proxy sees it, per host (`health_view`) |
//! | `GET /debug/proxies/{id}/config_dump` | what that proxy runs, asked from its admin |
//! | `GET /debug/stats?by=service\|workload\|edge&window=60` | golden signals over the window: requests/s, success rate, p50/p95/p99 (`stats`) |
//! | `GET /debug/stats/series?by=…&window=300` | the same per read interval: the dashboard's charts |
//! | `GET /debug/traces?limit=50` | the latest traces the trace store keeps (`traces`), newest first |
//! | `GET /debug/traces/{id}` | one trace's spans |
//! | `GET /debug/proxies/{id}/tap?seconds=1&limit=&path=&method=&authority=` | the requests that proxy finishes meanwhile (metadata, never bodies) |
//! | `GET /debug/describe?service=NAME[&from=WORKLOAD]`, `?workload=NAME` | what applies to it and where a request to it goes (`describe`) |
//! | `GET /debug/certs` | the CA's root and signer expiry; every proxy's certificate, asked from each |
//! | `GET /metrics` | the control plane's own metrics (Prometheus text), limit refusals among them |
//!
//! Every request first passes `guard` (Host, Content-Type, body size).
//! What acts for an identity needs its proof (`auth`): a bootstrap token
//! for it (`Authorization: Bearer`), its workload certificate on the TLS
//! port, or the admin token. Reads of `/debug/...` and the instances need
//! the admin token. A refusal is 401 and counted.

mod guard;
mod registration;
pub mod tls;

use crate::auth::{Auth, Identity, Proof};
use crate::ca::{self, Ca};
use crate::hub::Hub;
use crate::registry::Instance;
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

/// What serves the API: the hub, the CA and the credentials it checks.
pub struct Api {
    pub hub: Arc<Hub>,
    /// Swapped whole when its directory changes (`crate::ca_reload`).
    pub ca: Arc<arc_swap::ArcSwap<Ca>>,
    /// The TLS port's configuration, made anew with the CA.
    pub tls: arc_swap::ArcSwap<rustls::ServerConfig>,
    pub auth: Arc<Auth>,
    pub stats: Arc<crate::stats::Stats>,
    pub traces: Arc<crate::traces::Traces>,
    /// xDS, for proxies on the TLS port.
    pub xds: crate::ads::AdsServer,
}

/// The refusal of a request that did not prove `identity` (or admin).
fn unauthorized(api: &Api, request: &'static str, what: &str) -> Resp {
    api.hub.metrics.unauthorized(request);
    tracing::warn!(request, what, "refused: no proof of identity");
    error(
        StatusCode::UNAUTHORIZED,
        &format!(
            "{what} needs proof of that identity: a bootstrap token for it (`Authorization: Bearer`, \
             `weft token create`), its workload certificate on the control plane's TLS port, or the admin token"
        ),
    )
}

/// Serves one request; `caller` is the identity its TLS client certificate
/// proved (the API's TLS port), if any.
pub async fn handle(
    api: Arc<Api>,
    caller: Option<Identity>,
    req: Request<Incoming>,
) -> Result<Resp, std::convert::Infallible> {
    let (hub, ca) = (&api.hub, api.ca.load_full());
    if let Some(refused) = guard::refuse(&req, hub) {
        return Ok(refused);
    }
    let bearer = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let proof = api.auth.prove(bearer.as_deref(), caller.as_ref());
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    // What reveals the whole mesh (its config, proxies, traffic, traces)
    // is the admin's to read.
    let reveals = matches!(segs.as_slice(), ["debug", ..]) || (segs.as_slice() == ["v1", "instances"]);
    if reveals && req.method() == Method::GET && proof != Proof::Admin {
        api.hub.metrics.unauthorized("read");
        tracing::warn!(path = %path, "refused: a read without the admin token");
        return Ok(error(
            StatusCode::UNAUTHORIZED,
            &format!(
                "reading {path} needs the admin token (`Authorization: Bearer <token>`, the file `weft control` \
                 prints; the weft commands find the one of the mesh `weft up` runs, or take --admin-token-file)"
            ),
        ));
    }
    let resp = match (req.method().clone(), segs.as_slice()) {
        (Method::GET, ["ready"]) => {
            if hub.snapshot().version > 0 {
                // The pid lets a launcher tell its own control plane from another
                // process that answers on the same port.
                json(StatusCode::OK, &serde_json::json!({"ready": true, "pid": std::process::id()}))
            } else {
                error(StatusCode::SERVICE_UNAVAILABLE, "no config loaded yet")
            }
        }
        (Method::POST, ["v1", "instances"]) => {
            let body = match guard::body(req, hub).await {
                Ok(b) => b,
                Err(resp) => return Ok(resp),
            };
            match registration::parse(&body, &hub.limits) {
                Ok((instance, _)) if !proof.allows(&instance_identity(&instance)) => {
                    let id = instance_identity(&instance);
                    unauthorized(
                        &api,
                        "registration",
                        &format!("registering an instance of {}", id.spiffe(ca::TRUST_DOMAIN)),
                    )
                }
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
        (Method::PUT | Method::DELETE, ["v1", "instances", id, ..])
            if hub.registered(id).is_some_and(|i| !proof.allows(&instance_identity(&i))) =>
        {
            unauthorized(&api, "registration", &format!("changing instance {id}"))
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
            let body = match guard::body(req, hub).await {
                Ok(b) => b,
                Err(resp) => return Ok(resp),
            };
            #[derive(serde::Deserialize)]
            struct CsrRequest {
                csr: String,
            }
            match serde_json::from_slice::<CsrRequest>(&body) {
                Ok(r) => match ca.csr_identity(&r.csr) {
                    Ok(id) if !proof.allows(&id) => {
                        unauthorized(&api, "certificate", &format!("a certificate for {}", id.spiffe(ca::TRUST_DOMAIN)))
                    }
                    Err(e) => error(StatusCode::BAD_REQUEST, &e),
                    Ok(_) => match ca.sign(&r.csr) {
                        Ok(signed) => {
                            tracing::info!(identity = %signed.identity, "signed a workload certificate");
                            json(StatusCode::OK, &serde_json::to_value(&signed).unwrap_or_default())
                        }
                        Err(e) => error(StatusCode::BAD_REQUEST, &e),
                    },
                },
                Err(e) => error(StatusCode::BAD_REQUEST, &format!("expected {{\"csr\": \"<PEM>\"}}: {e}")),
            }
        }
        (Method::POST, ["v1", "tokens"]) if proof != Proof::Admin => unauthorized(&api, "token", "creating a token"),
        (Method::POST, ["v1", "tokens"]) => {
            let body = match guard::body(req, hub).await {
                Ok(b) => b,
                Err(resp) => return Ok(resp),
            };
            token(&api, &body)
        }
        (Method::GET, ["v1", "root"]) => {
            json(StatusCode::OK, &serde_json::json!({"root": ca.root_pem(), "signer": ca.signer_id()}))
        }
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
                    "warnings": hub.warnings(),
                }),
            )
        }
        (Method::GET, ["debug", "version"]) => {
            json(StatusCode::OK, &serde_json::json!({"version": hub.snapshot().version}))
        }
        (Method::GET, ["debug", "health"]) => {
            let service =
                query.strip_prefix("service=").map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy());
            json(StatusCode::OK, &crate::health_view::gather(hub, service.as_deref()).await)
        }
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
        (Method::GET, ["debug", "proxies", id, "tap"]) => {
            let id = percent_encoding::percent_decode_str(id).decode_utf8_lossy();
            match crate::reach::tap(hub, &id, &query).await {
                Some(Ok(events)) => json(StatusCode::OK, &events),
                Some(Err(e)) => error(StatusCode::BAD_GATEWAY, &format!("cannot tap proxy {id}: {e}")),
                None => error(StatusCode::NOT_FOUND, &format!("no proxy {id} is connected; see /debug/proxies")),
            }
        }
        (Method::GET, ["debug", "proxies", id, "config_dump"]) => {
            let id = percent_encoding::percent_decode_str(id).decode_utf8_lossy();
            match crate::reach::config_dump(hub, &id).await {
                Some(Ok(dump)) => json(StatusCode::OK, &dump),
                Some(Err(e)) => error(StatusCode::BAD_GATEWAY, &format!("cannot ask proxy {id}: {e}")),
                None => error(StatusCode::NOT_FOUND, &format!("no proxy {id} is connected; see /debug/proxies")),
            }
        }
        (Method::GET, ["dashboard", rest @ ..]) if rest.len() <= 1 => {
            match crate::dashboard::asset(rest.first().copied().unwrap_or("")) {
                Some(r) => r,
                None => error(StatusCode::NOT_FOUND, "no such dashboard asset"),
            }
        }
        (Method::GET, ["debug", "traces"]) => {
            let limit = query.strip_prefix("limit=").and_then(|l| l.parse().ok()).unwrap_or(50usize);
            json(StatusCode::OK, &api.traces.recent(limit.min(crate::traces::MAX_TRACES)))
        }
        (Method::GET, ["debug", "traces", id]) => match api.traces.trace(id) {
            Some(t) => json(StatusCode::OK, &t),
            None => error(
                StatusCode::NOT_FOUND,
                &format!("trace {id} is not kept (the store holds the latest {} traces)", crate::traces::MAX_TRACES),
            ),
        },
        (Method::GET, ["debug", "stats"]) => stats(&api, &query, false),
        (Method::GET, ["debug", "stats", "series"]) => stats(&api, &query, true),
        (Method::GET, ["debug", "describe"]) => match crate::describe::describe(hub, &api.stats, &query).await {
            Ok(v) => json(StatusCode::OK, &v),
            Err((true, e)) => error(StatusCode::NOT_FOUND, &e),
            Err((false, e)) => error(StatusCode::BAD_REQUEST, &e),
        },
        (Method::GET, ["debug", "certs"]) => {
            json(StatusCode::OK, &serde_json::json!({"ca": ca.validity(), "proxies": crate::reach::certs(hub).await}))
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "no such endpoint; see /debug/config, /debug/proxies, /debug/certs, /debug/health, /v1/instances, /v1/root, /metrics",
        ),
    };
    Ok(resp)
}

/// `GET /debug/stats?by=service|workload|edge&window=SECONDS` (defaults:
/// service, 60); `/debug/stats/series` the same per interval.
fn stats(api: &Api, query: &str, series: bool) -> Resp {
    let (mut by, mut window) = (crate::stats::By::Service, 60.0);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let parsed = match k {
            "by" => v.parse().map(|b| by = b),
            "window" => match v.parse::<f64>() {
                Ok(w) if w > 0.0 && w <= crate::stats::KEEP.as_secs_f64() => {
                    window = w;
                    Ok(())
                }
                _ => Err(format!("window `{v}`: seconds, more than 0 and at most {}", crate::stats::KEEP.as_secs())),
            },
            other => Err(format!("unknown parameter `{other}`; use by and window")),
        };
        if let Err(e) = parsed {
            return error(StatusCode::BAD_REQUEST, &e);
        }
    }
    let window_d = std::time::Duration::from_secs_f64(window);
    let mut v = if series { api.stats.series(by, window_d) } else { api.stats.query(by, window_d) };
    v["windowSeconds"] = window.into();
    v["intervalSeconds"] = api.hub.limits.stats_every.as_secs_f64().into();
    json(StatusCode::OK, &v)
}

/// The identity an instance runs as: its namespace and service account
/// (`default` when it names none, as Kubernetes).
fn instance_identity(i: &Instance) -> Identity {
    let sa = i.service_account.clone().unwrap_or_else(|| "default".into());
    Identity { namespace: i.namespace.clone(), service_account: sa }
}

/// `POST /v1/tokens`: a bootstrap token for one identity, for at most a day.
fn token(api: &Api, body: &[u8]) -> Resp {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct TokenRequest {
        namespace: String,
        service_account: String,
        ttl_seconds: Option<u64>,
    }
    let r = match serde_json::from_slice::<TokenRequest>(body) {
        Ok(r) => r,
        Err(e) => {
            return error(StatusCode::BAD_REQUEST, &format!("expected {{namespace, serviceAccount, ttlSeconds}}: {e}"));
        }
    };
    let ttl = std::time::Duration::from_secs(r.ttl_seconds.unwrap_or(3600));
    if ttl.is_zero() || ttl > std::time::Duration::from_secs(24 * 3600) {
        return error(StatusCode::BAD_REQUEST, "ttlSeconds must be 1 to 86400 (a day)");
    }
    let id = Identity { namespace: r.namespace, service_account: r.service_account };
    let spiffe = id.spiffe(ca::TRUST_DOMAIN);
    if api.ca.load().identity_of(&spiffe).is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("`{spiffe}` is not a valid identity: namespace and service account are DNS names"),
        );
    }
    match api.auth.create_token(id, ttl) {
        Ok(token) => {
            tracing::info!(identity = %spiffe, ttl = ?ttl, "bootstrap token created");
            json(
                StatusCode::OK,
                &serde_json::json!({"token": token, "identity": spiffe, "expiresInSeconds": ttl.as_secs()}),
            )
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}
