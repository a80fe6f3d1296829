//! A TCP listener's filter chains: a target per set of TLS server names
//! (SNI, read from the ClientHello) and a default for connections that name
//! none of them, or are not TLS. Envoy's order: an exact name, then the
//! longest `*.suffix` wildcard, then the chain without names.

use super::route::Target;

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
}

impl TcpRoutes {
    /// A listener with one target for every connection.
    pub fn single(target: Target) -> Self {
        TcpRoutes { by_name: Vec::new(), default: Some(target), access_log: None, authz: Box::new([]), inbound: None }
    }

    /// Whether a connection's SNI must be read to pick its target.
    pub fn by_sni(&self) -> bool {
        !self.by_name.is_empty()
    }

    /// The target for a connection that named `sni` (lowercase), if any.
    pub fn pick(&self, sni: Option<&str>) -> Option<&Target> {
        let Some(sni) = sni else { return self.default.as_ref() };
        let names = || self.by_name.iter().flat_map(|(names, t)| names.iter().map(move |n| (n.as_str(), t)));
        if let Some((_, t)) = names().find(|(n, _)| *n == sni) {
            return Some(t);
        }
        let wildcard = names()
            .filter_map(|(n, t)| Some((n.strip_prefix('*')?, t)))
            .filter(|(suffix, _)| suffix.starts_with('.') && sni.ends_with(suffix) && sni.len() > suffix.len())
            .max_by_key(|(suffix, _)| suffix.len());
        wildcard.map(|(_, t)| t).or(self.default.as_ref())
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
