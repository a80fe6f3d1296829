//! `POST /v1/instances`: a registration read and checked field by field.
//! What it stores becomes a proxy's endpoint, a metric label and part of
//! an id in a URL path, so every field is held to the rule of what it
//! names, and an unknown field is an error rather than ignored.

use crate::limits::Limits;
use crate::registry::Instance;
use std::net::IpAddr;
use std::time::Duration;
use weft_api::names;

const FIELDS: &[&str] =
    &["name", "namespace", "address", "port", "ports", "labels", "serviceAccount", "locality", "weight", "ttlSeconds"];

/// Why a registration was refused.
#[derive(Debug)]
pub struct Invalid {
    pub message: String,
    /// The limit it crossed, for `weft_control_limit_refusals_total`.
    pub limit: Option<&'static str>,
}

impl From<String> for Invalid {
    fn from(message: String) -> Self {
        Invalid { message, limit: None }
    }
}

impl From<&str> for Invalid {
    fn from(message: &str) -> Self {
        message.to_owned().into()
    }
}

/// The instance and TTL a registration asks for, or what is wrong with it.
pub fn parse(body: &[u8], limits: &Limits) -> Result<(Instance, Duration), Invalid> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let obj = value.as_object().ok_or("a registration is a JSON object")?;
    if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!("unknown field `{k}`; the fields are {}", FIELDS.join(", ")).into());
    }
    let ttl = match obj.get("ttlSeconds") {
        None | Some(serde_json::Value::Null) => Duration::from_secs(30),
        Some(v) => {
            let secs =
                v.as_f64().filter(|s| s.is_finite() && *s >= 0.0).ok_or("`ttlSeconds` must be a number of seconds")?;
            if secs > limits.max_ttl.as_secs_f64() {
                let message = format!(
                    "`ttlSeconds` {secs} is over the limit of {} s: an instance that died would stay for that long \
                     (heartbeat more often, or start the control plane with a higher --max-ttl)",
                    limits.max_ttl.as_secs()
                );
                return Err(Invalid { message, limit: Some("ttl") });
            }
            Duration::from_secs_f64(secs).max(limits.min_ttl)
        }
    };
    let mut fields = obj.clone();
    fields.remove("ttlSeconds");
    let mut inst: Instance = serde_json::from_value(serde_json::Value::Object(fields)).map_err(|e| e.to_string())?;
    check(&inst, limits)?;
    // An instance that names no account runs as `default` (Kubernetes'),
    // the identity it must prove and callers check its sidecar against.
    inst.service_account.get_or_insert_with(|| "default".into());
    Ok((inst, ttl))
}

fn check(i: &Instance, limits: &Limits) -> Result<(), String> {
    names::dns_subdomain(&i.name).map_err(|e| format!("`name`: {e}"))?;
    names::dns_label(&i.namespace).map_err(|e| format!("`namespace`: {e}"))?;
    i.address.parse::<IpAddr>().map_err(|_| {
        format!(
            "`address` `{}` is not an IP address (an instance registers the address it is reached at)",
            short(&i.address)
        )
    })?;
    if i.port == Some(0) || i.ports.values().any(|p| *p == 0) {
        return Err("ports must be 1 to 65535".to_owned());
    }
    if i.port.is_none() && i.ports.is_empty() {
        return Err("`port` or `ports` is required".to_owned());
    }
    for name in i.ports.keys() {
        names::dns_label(name).map_err(|e| format!("`ports`: {e}"))?;
    }
    if i.labels.len() > limits.max_labels {
        return Err(format!("{} labels; at most {} are allowed", i.labels.len(), limits.max_labels));
    }
    for (k, v) in &i.labels {
        names::label_key(k).map_err(|e| format!("`labels`: {e}"))?;
        names::label_value(v).map_err(|e| format!("`labels`: {e}"))?;
    }
    if let Some(sa) = &i.service_account {
        names::dns_subdomain(sa).map_err(|e| format!("`serviceAccount`: {e}"))?;
    }
    if let Some(l) = &i.locality {
        let parts: Vec<&str> = l.split('/').collect();
        let part_ok = |p: &&str| p.len() <= 128 && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if parts.len() > 3 || !parts.iter().all(part_ok) {
            return Err(format!("`locality` `{}` is not region/zone/subzone", short(l)));
        }
    }
    if i.weight.is_some_and(|w| !(1..=u16::MAX as u32).contains(&w)) {
        return Err("`weight` must be 1 to 65535".to_owned());
    }
    Ok(())
}

fn short(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(extra: serde_json::Value) -> Result<(Instance, Duration), String> {
        let mut v = serde_json::json!({"name": "reviews-v1", "address": "127.0.0.1", "port": 9080, "labels": {"app": "reviews"}});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        parse(v.to_string().as_bytes(), &Limits::default()).map_err(|e| e.message)
    }

    #[test]
    fn a_sidecars_registration_passes() {
        let (i, ttl) = reg(serde_json::json!({"ttlSeconds": 10, "serviceAccount": "bookinfo-reviews", "locality": "eu/west-1a", "weight": 3})).unwrap();
        assert_eq!((i.name.as_str(), i.namespace.as_str(), ttl), ("reviews-v1", "default", Duration::from_secs(10)));
        assert_eq!(
            reg(serde_json::json!({"ttlSeconds": 0})).unwrap().1,
            Duration::from_secs(1),
            "clamped up to the minimum"
        );
    }

    #[test]
    fn ttl_out_of_bounds_is_refused_not_a_panic() {
        for ttl in [serde_json::json!(18446744073709551615u64), serde_json::json!(1e12), serde_json::json!(301)] {
            let e = reg(serde_json::json!({"ttlSeconds": ttl})).unwrap_err();
            assert!(e.contains("over the limit of 300 s") && e.contains("--max-ttl"), "{e}");
            let v = serde_json::json!({"name": "a", "address": "127.0.0.1", "port": 1, "ttlSeconds": ttl});
            assert_eq!(parse(v.to_string().as_bytes(), &Limits::default()).unwrap_err().limit, Some("ttl"));
        }
        for bad in [serde_json::json!(-1), serde_json::json!("10")] {
            assert!(reg(serde_json::json!({"ttlSeconds": bad})).unwrap_err().contains("number of seconds"));
        }
    }

    #[test]
    fn fields_that_name_things_are_held_to_their_rules() {
        let cases = [
            (serde_json::json!({"address": "not an ip; rm -rf /"}), "not an IP address"),
            (serde_json::json!({"name": "a/b"}), "`name`"),
            (serde_json::json!({"namespace": "Bad NS"}), "`namespace`"),
            (serde_json::json!({"labels": {"app": "x;y"}}), "`labels`"),
            (serde_json::json!({"labels": {"a b": "x"}}), "`labels`"),
            (serde_json::json!({"serviceAccount": "sa,\"x\""}), "`serviceAccount`"),
            (serde_json::json!({"locality": "a/b/c/d"}), "`locality`"),
            (serde_json::json!({"weight": 0}), "`weight`"),
            (serde_json::json!({"port": 0}), "1 to 65535"),
            (serde_json::json!({"ttlSecond": 5}), "unknown field `ttlSecond`"),
            (serde_json::json!({"onlyHosts": ["x"]}), "unknown field `onlyHosts`"),
        ];
        for (extra, want) in cases {
            let e = reg(extra.clone()).unwrap_err();
            assert!(e.contains(want), "{extra}: {e}");
        }
        let many: serde_json::Map<String, serde_json::Value> = (0..65).map(|i| (format!("k{i}"), "v".into())).collect();
        assert!(reg(serde_json::json!({"labels": many})).unwrap_err().contains("at most 64"));
    }

    #[test]
    fn deep_json_is_an_error() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse(deep.as_bytes(), &Limits::default()).unwrap_err().message.contains("recursion limit"));
    }
}
