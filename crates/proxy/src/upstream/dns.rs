//! Host names of STRICT_DNS and LOGICAL_DNS clusters, resolved.

use std::net::IpAddr;

/// Addresses of `host`, IPv4 first when it has any (Envoy's V4_PREFERRED).
pub fn resolve(host: &str, port: u16) -> Vec<IpAddr> {
    use std::net::ToSocketAddrs;
    let all: Vec<IpAddr> = (host, port).to_socket_addrs().map(|a| a.map(|s| s.ip()).collect()).unwrap_or_default();
    let v4: Vec<_> = all.iter().copied().filter(|ip| ip.is_ipv4()).collect();
    if v4.is_empty() { all } else { v4 }
}
