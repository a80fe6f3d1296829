//! Protocol upgrades (WebSocket and other `Upgrade:` requests): once the
//! upstream answers 101, the two connections are spliced byte for byte.

use crate::telemetry::Held;
use crate::upstream::pool::PooledBody;
use hyper::upgrade::OnUpgrade;

/// Splices the client's upgraded connection to the upstream's, in a task of
/// its own: the upgraded connection outlives the request. `tunnel` counts
/// it open until either side closes (a drain waits for it).
pub fn splice(client: OnUpgrade, resp: &mut http::Response<PooledBody>, tunnel: Held) {
    let upstream = hyper::upgrade::on(resp);
    tokio::spawn(async move {
        let _tunnel = tunnel;
        if let (Ok(a), Ok(b)) = (client.await, upstream.await) {
            let (mut a, mut b) = (hyper_util::rt::TokioIo::new(a), hyper_util::rt::TokioIo::new(b));
            let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
        }
    });
}
