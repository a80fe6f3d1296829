//! Kubernetes' rules for names and labels (RFC 1123 labels and subdomains,
//! label keys and values), checked where a value from outside becomes a
//! name: registrations, SPIFFE IDs, metric labels.
//!
//! Each check returns why a value is refused, in a sentence that names the
//! rule, so an API error can say what to change.

/// An RFC 1123 label: 1–63 lowercase letters, digits and `-`, starting and
/// ending alphanumeric (namespaces, Service names).
pub fn dns_label(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 63 {
        return Err(format!("`{}` must be 1 to 63 characters long", shorten(s)));
    }
    let ok = s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not an RFC 1123 label: lowercase letters, digits and `-`, starting and ending with a letter or digit",
            shorten(s)
        ))
    }
}

/// An RFC 1123 subdomain: up to 253 characters of labels joined by `.`
/// (workload and service account names).
pub fn dns_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 253 {
        return Err(format!("`{}` must be 1 to 253 characters long", shorten(s)));
    }
    s.split('.').try_for_each(dns_label).map_err(|_| {
        format!(
            "`{}` is not an RFC 1123 subdomain: lowercase letters, digits, `-` and `.`, each part starting and ending with a letter or digit",
            shorten(s)
        )
    })
}

/// A label key: an optional subdomain prefix and `/`, then a name of 1–63
/// letters, digits, `-`, `_` and `.`, starting and ending alphanumeric.
pub fn label_key(s: &str) -> Result<(), String> {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(p) = prefix {
        dns_subdomain(p).map_err(|e| format!("label key `{}`: its prefix {e}", shorten(s)))?;
    }
    if name.is_empty() || !label_chars(name) {
        return Err(format!(
            "label key `{}`: the name must be 1 to 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit",
            shorten(s)
        ));
    }
    Ok(())
}

/// A label value: empty, or 1–63 letters, digits, `-`, `_` and `.`,
/// starting and ending alphanumeric.
pub fn label_value(s: &str) -> Result<(), String> {
    if s.is_empty() || label_chars(s) {
        Ok(())
    } else {
        Err(format!(
            "label value `{}` must be at most 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit",
            shorten(s)
        ))
    }
}

fn label_chars(s: &str) -> bool {
    let edge = |b: u8| b.is_ascii_alphanumeric();
    s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.bytes().next().is_some_and(edge)
        && s.bytes().last().is_some_and(edge)
}

/// A value quoted in an error, cut so that a huge one does not make a huge message.
fn shorten(s: &str) -> String {
    const MAX: usize = 80;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_subdomains_follow_rfc_1123() {
        for ok in ["a", "reviews", "v1-2", &"a".repeat(63)] {
            assert!(dns_label(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a.b", "a_b", "a;b", "a,b", "a\"b", &"a".repeat(64)] {
            assert!(dns_label(bad).is_err(), "{bad}");
        }
        assert!(dns_subdomain("bookinfo-reviews.prod").is_ok());
        for bad in ["a..b", ".a", "a/b", "a b"] {
            assert!(dns_subdomain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_keys_and_values_follow_kubernetes() {
        for ok in ["app", "security.istio.io/tlsMode", "topology.kubernetes.io/zone", "A_b.c"] {
            assert!(label_key(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/a", "a/", "-a", "Bad_Prefix/a", "a b", &"k".repeat(64)] {
            assert!(label_key(bad).is_err(), "{bad}");
        }
        for ok in ["", "v1", "istio", "1.2_3-x"] {
            assert!(label_value(ok).is_ok(), "{ok}");
        }
        for bad in ["-v", "a b", "a;b", &"v".repeat(64)] {
            assert!(label_value(bad).is_err(), "{bad}");
        }
        let long = dns_label(&"x".repeat(10_000)).unwrap_err();
        assert!(long.len() < 200, "errors quote a shortened value: {long}");
    }
}
