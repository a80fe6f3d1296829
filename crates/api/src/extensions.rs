//! weft's extensions to the Istio API. They ride in annotations on the
//! DestinationRule, so the same YAML still applies to a cluster running
//! Istio (which ignores them), and `weft validate` checks them like fields.
//!
//! ```yaml
//! metadata:
//!   annotations:
//!     health-check.weft.dev/path: /health        # HTTP GET; or `protocol: tcp`
//!     health-check.weft.dev/interval: 5s         # default 10s
//!     health-check.weft.dev/timeout: 1s          # default 1s
//!     health-check.weft.dev/healthy-threshold: "2"    # default 2
//!     health-check.weft.dev/unhealthy-threshold: "3"  # default 3
//!     health-check.weft.dev/expected-statuses: "200-399"  # default, as Kubernetes probes
//!     health-check.weft.dev/jitter: 1s           # default 0
//!     outlier.weft.dev/success-rate: "true"      # Envoy's success-rate detector
//!     outlier.weft.dev/failure-percentage: "85"  # eject at 85% failures
//! ```

use crate::types::{Duration, Labels};
use std::time::Duration as StdDuration;

pub const HEALTH_CHECK: &str = "health-check.weft.dev/";
pub const OUTLIER: &str = "outlier.weft.dev/";

const HEALTH_KEYS: &[&str] = &[
    "protocol",
    "path",
    "interval",
    "timeout",
    "healthy-threshold",
    "unhealthy-threshold",
    "expected-statuses",
    "jitter",
];
const OUTLIER_KEYS: &[&str] = &["success-rate", "failure-percentage"];

#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    Http { path: String },
    Tcp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub probe: Probe,
    pub interval: StdDuration,
    pub timeout: StdDuration,
    pub jitter: StdDuration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    /// Half-open status ranges `[start, end)`.
    pub expected: Vec<(u16, u16)>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutlierExt {
    pub success_rate: bool,
    pub failure_percentage: Option<u32>,
}

/// A bad annotation: its key, what is wrong, how to fix it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtError {
    pub key: String,
    pub message: String,
    pub hint: String,
}

fn err(key: &str, message: impl Into<String>, hint: impl Into<String>) -> ExtError {
    ExtError { key: key.to_owned(), message: message.into(), hint: hint.into() }
}

/// Keys under `prefix` that are not in `known`.
fn unknown(ann: &Labels, prefix: &str, known: &[&str], errors: &mut Vec<ExtError>) {
    for k in ann.keys() {
        if let Some(name) = k.strip_prefix(prefix)
            && !known.contains(&name)
        {
            let close = known.iter().find(|c| strsim_close(c, name));
            let hint = match close {
                Some(c) => format!("did you mean `{prefix}{c}`? known: {}", known.join(", ")),
                None => format!("known: {}", known.join(", ")),
            };
            errors.push(err(k, format!("unknown annotation `{k}`"), hint));
        }
    }
}

/// Close enough to be a typo: same letters give or take two edits.
pub fn strsim_close(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push((prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()] <= 2
}

fn statuses(s: &str) -> Option<Vec<(u16, u16)>> {
    s.split(',')
        .map(|part| {
            let part = part.trim();
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let (a, b): (u16, u16) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
            ((100..=599).contains(&a) && (a..=599).contains(&b)).then_some((a, b + 1))
        })
        .collect()
}

/// The active health check the annotations ask for, if any, and every
/// problem with them (a check with problems is not returned).
pub fn health_check(ann: &Labels) -> (Option<HealthCheck>, Vec<ExtError>) {
    let mut errors = Vec::new();
    unknown(ann, HEALTH_CHECK, HEALTH_KEYS, &mut errors);
    let get = |k: &str| ann.get(&format!("{HEALTH_CHECK}{k}")).map(|v| (format!("{HEALTH_CHECK}{k}"), v.trim()));
    if !ann.keys().any(|k| k.starts_with(HEALTH_CHECK)) {
        return (None, errors);
    }
    let dur = |k: &str, default: u64, errors: &mut Vec<ExtError>| match get(k) {
        None => StdDuration::from_millis(default),
        Some((key, v)) => match Duration::parse(v) {
            Ok(d) if !d.0.is_zero() || k == "jitter" => d.0,
            Ok(_) => {
                errors.push(err(&key, format!("`{key}` must be more than 0"), "for example `5s` or `500ms`"));
                StdDuration::from_millis(default)
            }
            Err(e) => {
                errors.push(err(&key, format!("`{key}`: {e}"), "write a duration such as `5s` or `500ms`"));
                StdDuration::from_millis(default)
            }
        },
    };
    let count = |k: &str, default: u32, errors: &mut Vec<ExtError>| match get(k) {
        None => default,
        Some((key, v)) => match v.parse::<u32>() {
            Ok(n) if n > 0 => n,
            _ => {
                errors.push(err(
                    &key,
                    format!("`{key}` must be a whole number above 0, not {v:?}"),
                    "for example \"3\"",
                ));
                default
            }
        },
    };
    let interval = dur("interval", 10_000, &mut errors);
    let timeout = dur("timeout", 1_000, &mut errors);
    let jitter = dur("jitter", 0, &mut errors);
    let healthy_threshold = count("healthy-threshold", 2, &mut errors);
    let unhealthy_threshold = count("unhealthy-threshold", 3, &mut errors);
    let expected = match get("expected-statuses") {
        None => vec![(200, 400)],
        Some((key, v)) => statuses(v).unwrap_or_else(|| {
            errors.push(err(&key, format!("`{key}`: cannot read {v:?}"), "list codes or ranges: \"200-299,304\""));
            vec![(200, 400)]
        }),
    };
    let path = get("path");
    let probe = match get("protocol").map(|(k, v)| (k, v.to_ascii_lowercase())) {
        Some((_, p)) if p == "tcp" => {
            if let Some((key, _)) = path {
                errors.push(err(
                    &key,
                    "a TCP health check has no path",
                    format!("remove `{key}` or use protocol http"),
                ));
            }
            Probe::Tcp
        }
        Some((key, p)) if p != "http" => {
            errors.push(err(&key, format!("unknown health check protocol {p:?}"), "use `http` or `tcp`"));
            Probe::Tcp
        }
        _ => match path {
            Some((_, p)) if p.starts_with('/') => Probe::Http { path: p.to_owned() },
            Some((key, p)) => {
                errors.push(err(&key, format!("health check path {p:?} must start with `/`"), "for example `/health`"));
                Probe::Tcp
            }
            None => {
                errors.push(err(
                    &format!("{HEALTH_CHECK}path"),
                    "an HTTP health check needs a path",
                    format!("add `{HEALTH_CHECK}path: /health`, or `{HEALTH_CHECK}protocol: tcp`"),
                ));
                Probe::Tcp
            }
        },
    };
    if timeout > interval {
        errors.push(err(
            &format!("{HEALTH_CHECK}timeout"),
            format!("the timeout ({timeout:?}) is longer than the interval ({interval:?})"),
            "a check must end before the next one starts: lower the timeout or raise the interval",
        ));
    }
    if !errors.is_empty() {
        return (None, errors);
    }
    (Some(HealthCheck { probe, interval, timeout, jitter, healthy_threshold, unhealthy_threshold, expected }), errors)
}

/// The extra outlier detectors the annotations turn on.
pub fn outlier(ann: &Labels) -> (OutlierExt, Vec<ExtError>) {
    let mut errors = Vec::new();
    unknown(ann, OUTLIER, OUTLIER_KEYS, &mut errors);
    let mut ext = OutlierExt::default();
    let key = format!("{OUTLIER}success-rate");
    match ann.get(&key).map(|v| v.trim()) {
        None | Some("false") => {}
        Some("true") => ext.success_rate = true,
        Some(v) => {
            errors.push(err(&key, format!("`{key}` must be \"true\" or \"false\", not {v:?}"), "quote it: \"true\""))
        }
    }
    let key = format!("{OUTLIER}failure-percentage");
    if let Some(v) = ann.get(&key) {
        match v.trim().trim_end_matches('%').parse::<u32>() {
            Ok(p) if (1..=100).contains(&p) => ext.failure_percentage = Some(p),
            _ => errors.push(err(&key, format!("`{key}` must be a percentage 1-100, not {v:?}"), "for example \"85\"")),
        }
    }
    (ext, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_and_a_full_http_check() {
        assert_eq!(health_check(&ann(&[])), (None, vec![]));
        let (hc, e) = health_check(&ann(&[("health-check.weft.dev/path", "/health")]));
        assert!(e.is_empty(), "{e:?}");
        let hc = hc.unwrap();
        assert_eq!(hc.probe, Probe::Http { path: "/health".into() });
        assert_eq!(
            (hc.interval, hc.timeout, hc.healthy_threshold, hc.unhealthy_threshold),
            (StdDuration::from_secs(10), StdDuration::from_secs(1), 2, 3)
        );
        assert_eq!(hc.expected, vec![(200, 400)]);
        let (hc, _) = health_check(&ann(&[
            ("health-check.weft.dev/protocol", "tcp"),
            ("health-check.weft.dev/interval", "500ms"),
            ("health-check.weft.dev/timeout", "100ms"),
        ]));
        assert_eq!(hc.unwrap().probe, Probe::Tcp);
        assert_eq!(statuses("200-299, 304"), Some(vec![(200, 300), (304, 305)]));
    }

    #[test]
    fn mistakes_are_named_with_a_fix() {
        let (hc, e) = health_check(&ann(&[
            ("health-check.weft.dev/pth", "/health"),
            ("health-check.weft.dev/interval", "5 seconds"),
            ("health-check.weft.dev/unhealthy-threshold", "0"),
        ]));
        assert!(hc.is_none());
        let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
        assert!(keys.contains(&"health-check.weft.dev/pth"), "{e:?}");
        assert!(e.iter().any(|e| e.hint.contains("did you mean `health-check.weft.dev/path`")), "{e:?}");
        assert!(keys.contains(&"health-check.weft.dev/interval"));
        assert!(keys.contains(&"health-check.weft.dev/unhealthy-threshold"));
        let (_, e) = outlier(&ann(&[("outlier.weft.dev/failure-percentage", "185")]));
        assert_eq!(e.len(), 1);
        let (o, e) =
            outlier(&ann(&[("outlier.weft.dev/success-rate", "true"), ("outlier.weft.dev/failure-percentage", "85%")]));
        assert!(e.is_empty());
        assert_eq!(o, OutlierExt { success_rate: true, failure_percentage: Some(85) });
    }
}
