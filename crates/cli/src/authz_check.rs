//! `weft authz check`: the decision the mesh's authorization policies make
//! on one request to one workload, and the policy and rule that made it.
//! It runs what the mesh runs: the control plane's translation of the
//! folder's policies into RBAC filters, evaluated by the proxy's own engine.
//! A workload whose services' ports are all TCP is judged as its sidecar
//! judges it: once per connection, by the network RBAC filters (a rule
//! with HTTP-only fields as Istio documents for TCP).

use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use weft_proxy::config::matcher::RequestView;
use weft_proxy::config::rbac::{Action, Filter, Subject};

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The config folder (what `weft up` or `weft control --config` runs).
    dir: PathBuf,
    /// The destination workload's namespace.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// The destination workload's labels, `key=value,...`.
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// The workload's port (the app's), for `ports` and `destination.port`.
    #[arg(long, default_value_t = 80)]
    port: u16,
    /// The workload's address, for `destination.ip`.
    #[arg(long, default_value = "127.0.0.1")]
    ip: IpAddr,
    /// The caller's principal (`cluster.local/ns/NS/sa/SA`); none for plaintext.
    #[arg(long)]
    from: Option<String>,
    /// The caller's address.
    #[arg(long, default_value = "127.0.0.1")]
    source_ip: IpAddr,
    /// The request's method (default GET).
    #[arg(long)]
    method: Option<String>,
    /// The request's path (default /).
    #[arg(long)]
    path: Option<String>,
    /// The request's host (`:authority`).
    #[arg(long)]
    host: Option<String>,
    /// A request header, `name=value` (repeatable).
    #[arg(long = "header")]
    headers: Vec<String>,
    /// The claims of the request's verified JWT, as JSON
    /// (`{"iss":"https://issuer.example","sub":"alice","groups":["admin"]}`):
    /// its request principal is `<iss>/<sub>`. None: no token.
    #[arg(long)]
    claims: Option<String>,
}

/// Prints the decision; exit code 0 when allowed, 1 when denied.
pub fn run(a: CheckArgs) -> anyhow::Result<bool> {
    let (resources, _) = weft_control::source::load(&a.dir, &Default::default()).map_err(|diags| {
        let text: Vec<String> = diags.iter().filter(|d| d.is_error()).map(|d| d.to_string()).collect();
        anyhow::anyhow!("{} has errors:\n{}", a.dir.display(), text.join("\n"))
    })?;
    let labels = a
        .labels
        .iter()
        .filter(|l| !l.is_empty())
        .map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect::<Option<_>>()
        .ok_or_else(|| anyhow::anyhow!("--labels takes key=value pairs"))?;
    let node = weft_control::translate::ProxyNode {
        id: "authz-check".into(),
        role: weft_control::translate::Role::Sidecar,
        namespace: a.namespace.clone(),
        workload: "authz-check".into(),
        labels,
        listen_ip: a.ip.to_string(),
        outbound_ip: a.ip.to_string(),
        outbound_port: 0,
        inbound_port: 0,
        app_port: Some(a.port),
        port_offset: 0,
        locality: None,
        holds_mesh_cert: true,
        weft: true,
        sds: false,
        admin: None,
    };
    let index = weft_api::index::Index::new(&resources);
    let target = weft_control::translate::AuthzTarget { node: &node, port: a.port };
    let principal = a.from.as_ref().map(|p| format!("spiffe://{}", p.trim_start_matches("spiffe://")));
    if weft_control::translate::serves_tcp(&index, &node) {
        return check_connection(&a, &index, &target, principal.as_deref());
    }
    let filters = weft_control::translate::authz_filters(&index, &target);
    let filters = compile(
        filters.iter().map(|f| match &f.config_type {
            Some(ConfigType::TypedConfig(any)) => Some(any),
            _ => None,
        }),
        Filter::compile,
    )?;
    let mut headers = http::HeaderMap::new();
    for h in &a.headers {
        let (k, v) = h.split_once('=').ok_or_else(|| anyhow::anyhow!("--header takes name=value, not {h:?}"))?;
        headers.append(http::HeaderName::from_bytes(k.as_bytes())?, http::HeaderValue::from_str(v)?);
    }
    let method = http::Method::from_bytes(a.method.as_deref().unwrap_or("GET").as_bytes())?;
    let authority = a.host.clone().unwrap_or_else(|| "web".into());
    let request = RequestView {
        method: &method,
        authority: &authority,
        scheme: "http",
        path: a.path.as_deref().unwrap_or("/"),
        query: None,
        headers: &headers,
    };
    let remote = weft_proxy::config::rbac::forwarded_client(&headers).unwrap_or(a.source_ip);
    let auth = match &a.claims {
        Some(text) => {
            let claims: serde_json::Value =
                serde_json::from_str(text).map_err(|e| anyhow::anyhow!("--claims is not JSON: {e}"))?;
            let field = |k: &str| claims.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
            Some(weft_proxy::config::jwt::Auth { principal: format!("{}/{}", field("iss"), field("sub")), claims })
        }
        None => None,
    };
    let subject = Subject {
        request: Some(&request),
        direct_ip: a.source_ip,
        remote_ip: remote,
        principal: principal.as_deref(),
        auth: auth.as_ref(),
        server_name: None,
        local: SocketAddr::new(a.ip, a.port),
    };
    Ok(explain(&filters, &subject))
}

/// A TCP workload: the decision on a connection from `principal`, which
/// carries no request (request flags are refused rather than ignored).
fn check_connection(
    a: &CheckArgs,
    index: &weft_api::index::Index,
    target: &weft_control::translate::AuthzTarget,
    principal: Option<&str>,
) -> anyhow::Result<bool> {
    let request_flags = [
        ("--method", a.method.is_some()),
        ("--path", a.path.is_some()),
        ("--host", a.host.is_some()),
        ("--header", !a.headers.is_empty()),
        ("--claims", a.claims.is_some()),
    ];
    let given: Vec<&str> = request_flags.iter().filter(|(_, set)| *set).map(|(f, _)| *f).collect();
    if !given.is_empty() {
        anyhow::bail!(
            "{} describe a request, and this workload serves TCP (its services' ports are all TCP): \
             its policies judge connections. Leave out {}.",
            given.join(", "),
            if given.len() == 1 { "it" } else { "them" }
        );
    }
    use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType as NetworkConfig;
    let filters = weft_control::translate::authz_network_filters(index, target);
    let filters = compile(
        filters.iter().map(|f| match &f.config_type {
            Some(NetworkConfig::TypedConfig(any)) => Some(any),
            _ => None,
        }),
        Filter::compile_network,
    )?;
    println!("a TCP workload: policies judge each connection");
    let subject = Subject {
        request: None,
        direct_ip: a.source_ip,
        remote_ip: a.source_ip,
        principal,
        auth: None,
        server_name: None,
        local: SocketAddr::new(a.ip, a.port),
    };
    Ok(explain(&filters, &subject))
}

/// The RBAC filters as the proxy compiles them from their typed configs.
fn compile<'a, P: prost::Message + Default>(
    configs: impl Iterator<Item = Option<&'a envoy_types::pb::google::protobuf::Any>>,
    compile: fn(&P) -> Result<Filter, weft_proxy::config::CompileError>,
) -> anyhow::Result<Vec<Filter>> {
    configs
        .map(|any| {
            let any = any.ok_or_else(|| anyhow::anyhow!("an RBAC filter without its config"))?;
            let proto = P::decode(any.value.as_slice())?;
            compile(&proto).map_err(|e| anyhow::anyhow!("an RBAC filter weft cannot run: {e:?}"))
        })
        .collect()
}

/// Prints each filter's verdict in chain order, then the decision; true if allowed.
fn explain(filters: &[Filter], s: &Subject) -> bool {
    if filters.is_empty() {
        println!("no AuthorizationPolicy applies to this workload\ndecision: ALLOW");
        return true;
    }
    let name = |p: &str| policy_name(p);
    for f in filters {
        if let Some(shadow) = &f.shadow {
            let (denied, by) = shadow.decide(s);
            let by = by.map_or_else(|| "no dry-run policy matched".to_owned(), |p| name(&p.name));
            println!("dry run: would {} ({by})", if denied { "DENY" } else { "ALLOW" });
        }
        let Some(rules) = &f.rules else { continue };
        match (rules.action, rules.matched(s).map(|p| &*p.name)) {
            (Action::Log, Some(p)) => println!("AUDIT: logged by {}", name(p)),
            (Action::Log, None) => {}
            (Action::Deny, Some(p)) => {
                println!("DENY by {}\ndecision: DENY", name(p));
                return false;
            }
            (Action::Deny, None) => println!("no DENY policy matches"),
            (Action::Allow, Some(p)) => println!("ALLOW by {}", name(p)),
            (Action::Allow, None) => {
                let all: Vec<String> = rules.policies.iter().map(|p| name(&p.name)).collect();
                println!(
                    "DENY: no ALLOW rule matches ({})",
                    if all.is_empty() { "an ALLOW policy without rules allows nothing".into() } else { all.join(", ") }
                );
                return false;
            }
        }
    }
    println!("decision: ALLOW");
    true
}

/// `ns[NS]-policy[NAME]-rule[I]` as `AuthorizationPolicy NS/NAME, rule I`.
fn policy_name(p: &str) -> String {
    let part = |key: &str| p.split(&format!("{key}[")).nth(1).and_then(|r| r.split(']').next());
    match (part("ns"), part("policy"), part("rule")) {
        (Some(ns), Some(name), Some(rule)) => format!("AuthorizationPolicy {ns}/{name}, rule {rule}"),
        _ => p.to_owned(),
    }
}
