//! A TCP listener's filter chains: a target per set of TLS server names
//! (SNI, read from the ClientHello) and a default for connections that name
//! none of them, or are not TLS. Envoy's order: an exact name, then the
//! longest `*.suffix` wildcard, then the chain without names.

use super::route::Target;
use super::terminate::Terminate;
use std::sync::Arc;

#[derive(Debug)]
pub struct TcpRoutes {
    /// Chains with server names, in the order given.
    pub by_name: Vec<(Vec<String>, Target)>,
    /// The chain without names, if any: a connection no chain takes is closed.
    pub default: Option<Target>,
    /// The access logs of its chains (weft's control plane gives every
    /// chain the same; the first chain's are kept).
    pub access_log: Option<Box<super::access_log::AccessLogs>>,
    /// Network RBAC filters (AuthorizationPolicies), judged once per
    /// connection before it is spliced; most listeners have none.
    pub authz: Box<[super::rbac::Filter]>,
    /// On a sidecar's inbound listener, the transports it takes (mutual
    /// TLS is terminated here); None elsewhere (bytes pass as they come).
    pub inbound: Option<super::Transport>,
    /// What each chain does beyond its target, by chain: `by_name`'s in
    /// its order, then `default`'s; empty when none does anything more.
    pub chains: Box<[ChainOpts]>,
}

/// A filter chain's own settings beyond its target.
#[derive(Debug, Default)]
pub struct ChainOpts {
    /// The TLS a gateway ends before routing the bytes; most have none.
    pub terminate: Option<Arc<Terminate>>,
    /// Its connections' idle timeout (its tcp_proxy's; zero: none); else
    /// the proxy's own.
    pub idle: Option<std::time::Duration>,
}

impl TcpRoutes {
    /// A listener with one target for every connection.
    pub fn single(target: Target) -> Self {
        TcpRoutes {
            by_name: Vec::new(),
            default: Some(target),
            access_log: None,
            authz: Box::new([]),
            inbound: None,
            chains: Box::new([]),
        }
    }

    /// Whether a connection's SNI must be read to pick its target.
    pub fn by_sni(&self) -> bool {
        !self.by_name.is_empty()
    }

    /// The target for a connection that named `sni` (lowercase), if any.
    pub fn pick(&self, sni: Option<&str>) -> Option<&Target> {
        match self.chain(sni)? {
            i if i < self.by_name.len() => Some(&self.by_name[i].1),
            _ => self.default.as_ref(),
        }
    }

    /// Whether some chain ends TLS first (its SNI is then read).
    pub fn ends_tls(&self) -> bool {
        self.chains.iter().any(|c| c.terminate.is_some())
    }

    /// What the chain for `sni` does beyond its target.
    pub fn opts(&self, sni: Option<&str>) -> Option<&ChainOpts> {
        self.chains.get(self.chain(sni)?)
    }

    /// The chain for `sni`: an exact name, then the longest wildcard, then
    /// the default (`by_name.len()`).
    fn chain(&self, sni: Option<&str>) -> Option<usize> {
        let default = self.default.as_ref().map(|_| self.by_name.len());
        let Some(sni) = sni else { return default };
        let names =
            || self.by_name.iter().enumerate().flat_map(|(i, (names, _))| names.iter().map(move |n| (n.as_str(), i)));
        if let Some((_, i)) = names().find(|(n, _)| *n == sni) {
            return Some(i);
        }
        let wildcard = names()
            .filter_map(|(n, i)| Some((n.strip_prefix('*')?, i)))
            .filter(|(suffix, _)| suffix.starts_with('.') && sni.ends_with(suffix) && sni.len() > suffix.len())
            .max_by_key(|(suffix, _)| suffix.len());
        wildcard.map(|(_, i)| i).or(default)
    }

    /// Every target, for the admin page and relinking.
    pub fn targets(&self) -> impl Iterator<Item = &Target> {
        self.by_name.iter().map(|(_, t)| t).chain(self.default.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClusterIndex;

    #[test]
    fn exact_names_win_over_wildcards_and_the_longest_wildcard_over_shorter() {
        let clusters = ClusterIndex::default();
        let t = |n: &str| Target::single(n, &clusters);
        let routes = TcpRoutes {
            access_log: None,
            authz: Box::new([]),
            inbound: None,
            chains: Box::new([]),
            by_name: vec![
                (vec!["*.example.com".into()], t("wide")),
                (vec!["*.api.example.com".into()], t("narrow")),
                (vec!["pay.api.example.com".into()], t("exact")),
            ],
            default: Some(t("default")),
        };
        let picked = |sni| routes.pick(sni).map(|t| t.names().join(","));
        assert_eq!(picked(Some("pay.api.example.com")).as_deref(), Some("exact"));
        assert_eq!(picked(Some("x.api.example.com")).as_deref(), Some("narrow"));
        assert_eq!(picked(Some("www.example.com")).as_deref(), Some("wide"));
        assert_eq!(picked(Some("example.com")).as_deref(), Some("default"));
        assert_eq!(picked(None).as_deref(), Some("default"));
    }
}
