//! RequestAuthentication: each JWT rule names its issuer, a key set weft
//! can read (inline, or a URL the control plane fetches), and header names
//! a request can carry.

use crate::diag::{Diagnostic, Severity::*, codes};
use crate::resource::Resource;
use crate::types::RequestAuthenticationSpec;

/// Key types a JSON Web Key Set may hold that weft's proxies verify with.
const KEY_TYPES: &[&str] = &["RSA", "EC", "OKP"];

pub(super) fn check(r: &Resource, p: &RequestAuthenticationSpec, out: &mut Vec<Diagnostic>) {
    let mut err = |path: &str, msg: String, hint: Option<&str>| {
        out.push(r.diag(Error, codes::INVALID_VALUE, path, msg, hint.map(str::to_owned)));
    };
    if p.selector.is_some() && (p.target_ref.is_some() || !p.target_refs.is_empty()) {
        err("spec.selector", "a policy takes `selector` or `targetRefs`, not both".into(), Some("keep `selector`"));
    }
    for (i, rule) in p.jwt_rules.iter().enumerate() {
        let at = format!("spec.jwtRules[{i}]");
        if rule.issuer.is_empty() {
            err(&format!("{at}.issuer"), "a JWT rule needs the `issuer` its tokens name (`iss`)".into(), None);
        }
        if let Some(jwks) = &rule.jwks
            && let Err(e) = key_set(jwks)
        {
            err(&format!("{at}.jwks"), e, Some("a JSON Web Key Set: `{\"keys\": [{\"kty\": \"RSA\", ...}]}`"));
        }
        if let Some(uri) = &rule.jwks_uri
            && !(uri.starts_with("http://") || uri.starts_with("https://"))
        {
            err(&format!("{at}.jwksUri"), format!("`{uri}` is not an http:// or https:// URL"), None);
        }
        for (j, h) in rule.from_headers.iter().enumerate() {
            if !header_name(&h.name) {
                err(&format!("{at}.fromHeaders[{j}].name"), format!("`{}` is not a header name", h.name), None);
            }
        }
        let payload = rule.output_payload_to_header.iter().map(|h| (format!("{at}.outputPayloadToHeader"), h));
        let claims = rule.output_claim_to_headers.iter().enumerate();
        let headers =
            payload.chain(claims.clone().map(|(j, c)| (format!("{at}.outputClaimToHeaders[{j}].header"), &c.header)));
        for (path, name) in headers {
            if !header_name(name) {
                err(&path, format!("`{name}` is not a header name"), None);
            }
        }
        for (j, c) in claims {
            if c.claim.is_empty() {
                err(&format!("{at}.outputClaimToHeaders[{j}].claim"), "name the claim to copy".into(), None);
            }
        }
    }
}

/// Whether `jwks` reads as a key set of key types weft verifies with.
fn key_set(jwks: &str) -> Result<(), String> {
    let v: serde_json::Value = serde_json::from_str(jwks).map_err(|e| format!("not JSON: {e}"))?;
    let keys = v.get("keys").and_then(|k| k.as_array()).ok_or("no `keys` list")?;
    if keys.is_empty() {
        return Err("the key set has no key".into());
    }
    for (i, k) in keys.iter().enumerate() {
        match k.get("kty").and_then(|t| t.as_str()) {
            Some(t) if KEY_TYPES.contains(&t) => {}
            Some(t) => return Err(format!("key {i}: key type `{t}` is not one of {}", KEY_TYPES.join(", "))),
            None => return Err(format!("key {i} has no `kty`")),
        }
    }
    Ok(())
}

/// An HTTP field name (RFC 9110 token characters), as a proxy can set it.
fn header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
