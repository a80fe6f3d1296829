//! xDS over TLS (`--xds https://host:port`: the control plane's TLS port,
//! Istio's 15012): the proxy's workload certificate proves who asks, and
//! the control plane's certificate is checked against the mesh root. A
//! stream waits for the proxy's first certificate; each new connection
//! shows the current one.

use crate::state::ProxyState;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::sync::Arc;
use tonic::transport::{Channel, Endpoint};

/// A channel to `addr` (`host:port`) over TLS with the proxy's certificate.
pub async fn connect(addr: &str, state: &Arc<ProxyState>) -> anyhow::Result<Channel> {
    // The first certificate comes from the CA within moments; a CA that
    // cannot be reached says so in the CA client's own warnings.
    let mut waited = 0u32;
    while state.tls().load().is_none() {
        if state.is_draining() {
            anyhow::bail!("draining before a workload certificate arrived");
        }
        if waited == 100 {
            tracing::warn!(%addr, "xDS over TLS is waiting for the workload certificate (is the CA, --ca, reachable?)");
        }
        waited += 1;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (hostport, state) = (addr.to_owned(), state.clone());
    let connector = tower::service_fn(move |_: http::Uri| {
        let (hostport, state) = (hostport.clone(), state.clone());
        async move {
            let config = state
                .tls()
                .load_full()
                .map(|t| t.control.clone())
                .ok_or_else(|| std::io::Error::other("no workload certificate to show the control plane"))?;
            let host = hostport.rsplit_once(':').map_or(hostport.as_str(), |(h, _)| h).trim_matches(['[', ']']);
            let name = ServerName::try_from(host.to_owned()).map_err(std::io::Error::other)?;
            let tcp = tokio::net::TcpStream::connect(&hostport).await?;
            let _ = tcp.set_nodelay(true);
            let tls = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await?;
            Ok::<_, std::io::Error>(TokioIo::new(tls))
        }
    });
    Ok(Endpoint::from_shared(format!("http://{addr}"))?.connect_with_connector(connector).await?)
}
