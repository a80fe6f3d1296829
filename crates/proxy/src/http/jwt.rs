//! Request authentication (Istio's RequestAuthentication, as Envoy's JWT
//! filter): the tokens a request carries where its providers look are
//! verified by `jsonwebtoken` against their issuer's keys, the issuer, the
//! audiences and the token's times; the listener's requirement then
//! decides. Istio's says: a valid token or none. A verified token's
//! principal (`<iss>/<sub>`), audiences, presenter and claims go to
//! authorization; its header is removed unless forwarded, and its payload
//! and claims are copied to headers when the provider asks.

use super::error::{ErrorKind, ProxyError};
use crate::config::jwt::{Auth, Jwt, Location, Provider, Requirement};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{decode, decode_header};
use serde_json::Value;

/// What became of one provider's token.
enum Outcome {
    Missing,
    Valid(Value, Location),
    Failed(&'static str),
}

/// Checks `req` against the listener's JWT filter: `Ok` with what a
/// verified token says (None without one), or the 401 (403) to answer.
pub fn authenticate<B>(jwt: &Jwt, req: &mut http::Request<B>) -> Result<Option<Auth>, ProxyError> {
    let mut outcomes: Vec<Outcome> = jwt.providers.iter().map(|_| Outcome::Missing).collect();
    let mut unknown_issuer = false;
    for (i, p) in jwt.providers.iter().enumerate() {
        for loc in &p.from {
            let Some(token) = find(req, loc) else { continue };
            let issuer = unverified_issuer(token);
            if issuer.as_deref().is_some_and(|iss| !p.issuer.is_empty() && iss != p.issuer) {
                // Another provider's, if one has this issuer and looks here.
                let owner = jwt.providers.iter().any(|o| issuer.as_deref() == Some(&o.issuer) && o.from.contains(loc));
                unknown_issuer |= !owner;
                continue;
            }
            outcomes[i] = match verify(p, token) {
                Ok(claims) => Outcome::Valid(claims, loc.clone()),
                Err(why) => Outcome::Failed(why),
            };
            break;
        }
    }
    match decide(&jwt.requires, &outcomes) {
        Decision::Failed(why) => return Err(refused(why)),
        Decision::Missing => return Err(refused("Jwt is missing")),
        Decision::Ok if unknown_issuer => return Err(refused("Jwt issuer is not configured")),
        Decision::Ok => {}
    }
    let mut auth = None;
    for (p, o) in jwt.providers.iter().zip(outcomes) {
        let Outcome::Valid(claims, loc) = o else { continue };
        apply(p, &claims, &loc, req);
        if auth.is_none() {
            let field = |k: &str| claims.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            auth = Some(Auth { principal: format!("{}/{}", field("iss"), field("sub")), claims });
        }
    }
    Ok(auth)
}

/// Envoy's reason for a token whose audiences are not the rule's; it
/// answers 403 for it (401 for every other failure).
const AUDIENCE: &str = "Audiences in Jwt are not allowed";

fn refused(why: &'static str) -> ProxyError {
    let kind = if why == AUDIENCE { ErrorKind::WrongAudience } else { ErrorKind::Unauthenticated };
    ProxyError::new(kind, why)
}

#[derive(PartialEq)]
enum Decision {
    Ok,
    Missing,
    Failed(&'static str),
}

/// Envoy's evaluation of a requirement: `AllowMissing` lets a request
/// with no token through, never one whose token failed.
fn decide(r: &Requirement, outcomes: &[Outcome]) -> Decision {
    match r {
        Requirement::Provider(i) => match &outcomes[*i] {
            Outcome::Valid(..) => Decision::Ok,
            Outcome::Missing => Decision::Missing,
            Outcome::Failed(why) => Decision::Failed(why),
        },
        Requirement::AllowMissingOrFailed => Decision::Ok,
        Requirement::AllowMissing => {
            match outcomes.iter().find_map(|o| if let Outcome::Failed(w) = o { Some(*w) } else { None }) {
                Some(why) => Decision::Failed(why),
                None => Decision::Ok,
            }
        }
        Requirement::Any(v) => {
            let ds: Vec<Decision> = v.iter().map(|r| decide(r, outcomes)).collect();
            if ds.contains(&Decision::Ok) {
                Decision::Ok
            } else {
                ds.into_iter().find(|d| matches!(d, Decision::Failed(_))).unwrap_or(Decision::Missing)
            }
        }
        Requirement::All(v) => {
            v.iter().map(|r| decide(r, outcomes)).find(|d| *d != Decision::Ok).unwrap_or(Decision::Ok)
        }
    }
}

/// The token at `loc`, if the request has one there.
fn find<'r, B>(req: &'r http::Request<B>, loc: &Location) -> Option<&'r str> {
    let token = match loc {
        Location::Header(name, prefix) => {
            let v = req.headers().get(name)?.to_str().ok()?;
            // Envoy takes the scheme in any case (`bearer x` too).
            let head = v.get(..prefix.len())?;
            if !head.eq_ignore_ascii_case(prefix) {
                return None;
            }
            &v[prefix.len()..]
        }
        Location::Param(name) => req.uri().query()?.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == name).then_some(v)
        })?,
        Location::Cookie(name) => req.headers().get_all(http::header::COOKIE).iter().find_map(|h| {
            h.to_str().ok()?.split(';').find_map(|c| {
                let (k, v) = c.trim().split_once('=')?;
                (k == name).then_some(v)
            })
        })?,
    };
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

/// The `iss` a token claims, read before it is verified (to pick the provider).
fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get("iss")?.as_str().map(str::to_owned)
}

/// The token's claims if one of the provider's keys verifies it and its
/// issuer, audiences and times hold; else why not, as Envoy says it.
fn verify(p: &Provider, token: &str) -> Result<Value, &'static str> {
    const MALFORMED: &str = "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections";
    if token.split('.').count() != 3 {
        return Err(MALFORMED);
    }
    let header = decode_header(token).map_err(|_| "Jwt header is an invalid JSON")?;
    let keys: Vec<_> = p
        .keys
        .iter()
        .filter(|k| k.algorithms.contains(&header.alg))
        .filter(|k| header.kid.is_none() || k.kid.is_none() || k.kid == header.kid)
        .collect();
    if keys.is_empty() {
        return Err("Jwks doesn't have key to match kid or alg from Jwt");
    }
    let mut why = "Jwt verification fails";
    for k in keys {
        use jsonwebtoken::errors::ErrorKind as E;
        match decode::<Value>(token, &k.key, &k.validation) {
            Ok(data) => return Ok(data.claims),
            Err(e) => match e.kind() {
                E::ExpiredSignature => return Err("Jwt is expired"),
                E::ImmatureSignature => return Err("Jwt not yet valid"),
                E::InvalidAudience | E::MissingRequiredClaim(_) => return Err(AUDIENCE),
                E::InvalidIssuer => return Err("Jwt issuer is not configured"),
                E::InvalidToken | E::Base64(_) | E::Json(_) | E::Utf8(_) => why = MALFORMED,
                _ => {}
            },
        }
    }
    Err(why)
}

/// What a verified token adds to the request: its header removed unless
/// forwarded, its payload and claims copied to headers.
fn apply<B>(p: &Provider, claims: &Value, loc: &Location, req: &mut http::Request<B>) {
    if !p.forward
        && let Location::Header(name, _) = loc
    {
        req.headers_mut().remove(name);
    }
    if let Some(h) = &p.payload_header
        && let Ok(v) = http::HeaderValue::from_str(&URL_SAFE_NO_PAD.encode(claims.to_string()))
    {
        req.headers_mut().insert(h.clone(), v);
    }
    for (claim, header) in &p.claim_headers {
        let value = match claims.get(claim) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","),
            _ => continue,
        };
        if let Ok(v) = http::HeaderValue::from_str(&value) {
            req.headers_mut().insert(header.clone(), v);
        }
    }
}
