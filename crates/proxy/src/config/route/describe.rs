//! A route table as an operator reads it (`/config_dump`, `weft
//! proxy-config routes`): per virtual host its domains, and per route what
//! it matches and what it does, in the order they are tried.

use super::{Action, PathMatch, Route, RouteTable, Target};
use serde_json::{Value, json};

impl RouteTable {
    /// Each virtual host: name, domains (sorted) and routes.
    pub fn describe(&self) -> Vec<Value> {
        let mut domains = self.domains.by_host(self.hosts.len());
        self.hosts
            .iter()
            .zip(domains.iter_mut())
            .map(|(h, d)| {
                d.sort();
                let routes: Vec<Value> = h.routes.iter().map(Route::describe).collect();
                json!({"name": &*h.name, "domains": d, "requireTls": h.require_tls, "routes": routes})
            })
            .collect()
    }
}

impl Route {
    fn describe(&self) -> Value {
        json!({"name": &*self.name, "match": self.match_text(), "action": self.action_text()})
    }

    /// `prefix /reviews`, with the count of header and query conditions.
    fn match_text(&self) -> String {
        let mut s = match &self.path {
            PathMatch::Prefix(p) => format!("prefix {p}"),
            PathMatch::SeparatedPrefix(p) => format!("path-prefix {p}"),
            PathMatch::Exact(p) => format!("exact {p}"),
            PathMatch::Regex(r) => format!("regex {}", r.as_str()),
        };
        if !self.case_sensitive {
            s.push_str(" (any case)");
        }
        if let Some(c) = &self.conditions {
            for (n, what) in [(c.headers.len(), "header"), (c.query.len(), "query")] {
                if n > 0 {
                    s.push_str(&format!(" +{n} {what}"));
                }
            }
        }
        s
    }

    /// `→ cluster`, `→ a 90%, b 10%`, `redirect 301 …` or `direct 404`.
    fn action_text(&self) -> String {
        match &self.action {
            Action::Forward(f) => match &f.target {
                Target::Cluster(c) => format!("→ {}", c.name),
                Target::Weighted { choices, total } => {
                    let mut below = 0;
                    let parts: Vec<String> = choices
                        .iter()
                        .map(|c| {
                            let share = (c.upto - below) as f64 * 100.0 / (*total).max(1) as f64;
                            below = c.upto;
                            format!("{} {share:.0}%", c.cluster.name)
                        })
                        .collect();
                    format!("→ {}", parts.join(", "))
                }
            },
            Action::Redirect(r) => {
                let host = r.host.as_deref().unwrap_or("(same host)");
                let path = r.path.as_deref().or(r.prefix_rewrite.as_deref()).unwrap_or("(same path)");
                format!("redirect {} → {host}{path}", r.code)
            }
            Action::Direct(d) => format!("direct {}", d.status),
        }
    }
}
