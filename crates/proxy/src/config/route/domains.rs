//! Which virtual host a request's authority selects, with Envoy's
//! precedence: an exact domain, then the longest `*suffix`, then the
//! longest `prefix*`, then `*`.
//!
//! Exact domains are most of a sidecar's table (eight per service port:
//! the name, `name.ns`, `name.ns.svc`, the FQDN, each with and without the
//! port), so they are kept compact: their text in one buffer and a hash
//! table of (offset, length, host) into it, ~40 bytes a domain instead of
//! a `String` key per entry. A domain found in the text its host already
//! wrote points there (given longest first, `name.ns.svc` is found in
//! `name.ns.svc.cluster.local:80`), which halves the text.

use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;

#[derive(Debug, Clone, Copy)]
struct Exact {
    start: u32,
    len: u32,
    host: u32,
}

#[derive(Debug, Default, Clone)]
pub struct DomainIndex {
    text: String,
    exact: HashTable<Exact>,
    hasher: DefaultHashBuilder,
    /// (suffix without `*`, host), longest first.
    suffixes: Vec<(Box<str>, u32)>,
    /// (prefix without `*`, host), longest first.
    prefixes: Vec<(Box<str>, u32)>,
    any: Option<u32>,
    /// The host being added and where its text starts.
    adding: (u32, u32),
}

impl DomainIndex {
    fn text_of(&self, e: &Exact) -> &str {
        &self.text[e.start as usize..(e.start + e.len) as usize]
    }

    /// Adds `domain` (lowercase) for `host`; false if it was already there.
    pub fn insert(&mut self, domain: &str, host: u32) -> bool {
        if domain == "*" {
            return self.any.replace(host).is_none();
        }
        if let Some(s) = domain.strip_prefix('*') {
            self.suffixes.push((s.into(), host));
            return true;
        }
        if let Some(p) = domain.strip_suffix('*') {
            self.prefixes.push((p.into(), host));
            return true;
        }
        let hash = self.hasher.hash_one(domain);
        if self.exact.find(hash, |e| self.text_of(e) == domain).is_some() {
            return false;
        }
        if self.adding.0 != host {
            self.adding = (host, self.text.len() as u32);
        }
        let own = self.adding.1 as usize;
        let start = match self.text[own..].find(domain) {
            Some(at) => own + at,
            None => {
                self.text.push_str(domain);
                self.text.len() - domain.len()
            }
        };
        let e = Exact { start: start as u32, len: domain.len() as u32, host };
        let (text, hasher) = (&self.text, &self.hasher);
        self.exact.insert_unique(hash, e, |e| hasher.hash_one(&text[e.start as usize..(e.start + e.len) as usize]));
        true
    }

    /// Orders wildcards by length and gives back spare capacity.
    pub fn finish(&mut self) {
        self.suffixes.sort_by_key(|s| std::cmp::Reverse(s.0.len()));
        self.prefixes.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        self.text.shrink_to_fit();
        let (text, hasher) = (&self.text, &self.hasher);
        self.exact.shrink_to_fit(|e| hasher.hash_one(&text[e.start as usize..(e.start + e.len) as usize]));
    }

    /// The domains of each of `hosts` hosts, in no particular order.
    pub fn by_host(&self, hosts: usize) -> Vec<Vec<String>> {
        let mut out = vec![Vec::new(); hosts];
        let exact = self.exact.iter().map(|e| (self.text_of(e).to_owned(), e.host));
        let suffixes = self.suffixes.iter().map(|(s, h)| (format!("*{s}"), *h));
        let prefixes = self.prefixes.iter().map(|(p, h)| (format!("{p}*"), *h));
        for (d, h) in exact.chain(suffixes).chain(prefixes).chain(self.any.map(|h| ("*".to_owned(), h))) {
            if let Some(v) = out.get_mut(h as usize) {
                v.push(d);
            }
        }
        out
    }

    /// The host for `authority` (lowercase expected).
    pub fn lookup(&self, authority: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(authority);
        self.exact
            .find(hash, |e| self.text_of(e) == authority)
            .map(|e| e.host)
            .or_else(|| self.suffixes.iter().find(|(s, _)| authority.ends_with(&**s)).map(|(_, i)| *i))
            .or_else(|| self.prefixes.iter().find(|(p, _)| authority.starts_with(&**p)).map(|(_, i)| *i))
            .or(self.any)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoy_precedence_exact_then_longest_suffix_then_longest_prefix_then_any() {
        let mut d = DomainIndex::default();
        for (dom, host) in [
            ("*", 0),
            ("*.example.com", 1),
            ("*.api.example.com", 2),
            ("api.*", 3),
            ("api.example.com", 4),
            ("a:80", 5),
        ] {
            assert!(d.insert(dom, host));
        }
        d.finish();
        assert_eq!(d.lookup("api.example.com"), Some(4));
        assert_eq!(d.lookup("v1.api.example.com"), Some(2));
        assert_eq!(d.lookup("www.example.com"), Some(1));
        assert_eq!(d.lookup("api.other"), Some(3));
        assert_eq!(d.lookup("a:80"), Some(5));
        assert_eq!(d.lookup("a"), Some(0));
        assert_eq!(d.lookup("elsewhere"), Some(0));
    }

    #[test]
    fn duplicates_are_refused_and_many_domains_all_resolve() {
        let mut d = DomainIndex::default();
        for i in 0..5000u32 {
            assert!(d.insert(&format!("svc-{i}.default.svc.cluster.local:80"), i));
            assert!(d.insert(&format!("svc-{i}"), i));
        }
        // Each short name is found in its host's FQDN: no text of its own.
        let fqdns: usize = (0..5000).map(|i| format!("svc-{i}.default.svc.cluster.local:80").len()).sum();
        assert_eq!(d.text.len(), fqdns);
        assert!(!d.insert("svc-7", 1));
        assert!(d.insert("*", 1));
        assert!(!d.insert("*", 2));
        d.finish();
        for i in (0..5000u32).step_by(7) {
            assert_eq!(d.lookup(&format!("svc-{i}.default.svc.cluster.local:80")), Some(i));
            assert_eq!(d.lookup(&format!("svc-{i}")), Some(i));
        }
        assert_eq!(d.lookup("svc-5000"), Some(2));
    }
}
