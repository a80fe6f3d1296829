//! Request mirroring (Istio's `mirror`): a copy to each mirror cluster, its
//! share of the time; the response is discarded and the request never
//! waits for it. A body of unknown length (gRPC's, chunked) is copied once
//! it has ended, from the tee that keeps it; one too long is not copied.

use super::attempt::{Attempt, send};
use crate::config::chance;
use crate::config::cluster::Protocol;
use crate::config::route::Forward;
use crate::snapshot::Clusters;
use crate::upstream::pool::{Body, Tee, Teed};
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http_body_util::BodyExt;

/// The body a copy carries: in memory, or the tee's once it has ended.
pub(super) enum Copied<'a> {
    Now(&'a Bytes),
    Later(&'a Tee),
}

/// Sends a copy to each mirror cluster its percentage of the time; the
/// response is discarded and the main request never waits for it.
pub(super) fn mirror(clusters: &Clusters, f: &Forward, attempt: &Attempt, body: Copied, h2: bool) {
    for m in &f.mirrors {
        let Some(cluster) = clusters.linked(&m.cluster) else { continue };
        if !chance(m.ppm) {
            continue;
        }
        let set = cluster.endpoints();
        let Some(i) = set.pick(None, &[], false) else { continue };
        let ep = &set.endpoints[i];
        let (now, mut later) = match &body {
            Copied::Now(b) => ((*b).clone(), None),
            Copied::Later(tee) => (Bytes::new(), Some(tee.subscribe())),
        };
        let mut req = attempt.build(Body::full(now), h2 && cluster.settings.protocol == Protocol::Http2, ep);
        if let Some(h) = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(|h| format!("{h}-shadow"))
            && let Ok(v) = HeaderValue::from_str(&h)
        {
            req.headers_mut().insert(header::HOST, v);
        }
        let (cluster, ep) = (cluster.clone(), ep.clone());
        tokio::spawn(async move {
            if let Some(rx) = &mut later {
                loop {
                    match &*rx.borrow_and_update() {
                        Teed::Whole(b) => {
                            *req.body_mut() = Body::full(b.clone());
                            break;
                        }
                        Teed::Spoiled => return,
                        Teed::Open => {}
                    }
                    if rx.changed().await.is_err() {
                        return;
                    }
                }
            }
            let h2 = cluster.settings.protocol == Protocol::Http2;
            if let Ok(resp) = send(&cluster, &ep, req, h2).await {
                let _ = resp.into_body().collect().await;
            }
        });
    }
}
