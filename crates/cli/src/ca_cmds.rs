//! The mesh CA's flags and the commands that speak to it: `weft cert`
//! (a certificate for a process that is not a weft proxy) and `weft token
//! create` (a bootstrap token for a proxy outside `weft up`).

use crate::proxy_args::control_api;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

fn duration(s: &str) -> Result<Duration, String> {
    weft_api::types::Duration::parse(s).map(|d| d.0)
}

/// The control plane's CA: where its TLS API listens, where it keeps its
/// root, and how long workload certificates last.
#[derive(clap::Args, Clone, Debug)]
pub struct CaArgs {
    /// The API over TLS (Istio's CA port): proxies renew and register there
    /// with their certificates.
    #[arg(long, default_value = "127.0.0.1:15012")]
    pub api_tls_addr: SocketAddr,
    /// Keeps the CA's root and key (or the operator's own, in Istio's
    /// `cacerts` layout: ca-cert.pem, ca-key.pem, root-cert.pem,
    /// cert-chain.pem) and the admin token across restarts. Without it, a
    /// new private directory and root each start.
    #[arg(long, env = "WEFT_CA_DIR")]
    pub ca_dir: Option<PathBuf>,
    /// Workload certificates' lifetime (`24h`, `90m`); proxies renew at half.
    #[arg(long, default_value = "24h", value_parser = duration)]
    pub workload_cert_ttl: Duration,
}

/// `weft cert`'s arguments.
#[derive(clap::Args)]
pub struct CertArgs {
    /// The CA: the control plane API, `host:port` (its TLS port with `--ca-root`).
    #[arg(long, default_value = "127.0.0.1:15014")]
    ca: String,
    /// The mesh root (PEM), to speak TLS to the CA and check it.
    #[arg(long)]
    ca_root: Option<PathBuf>,
    /// A bootstrap token for this identity, or the admin token.
    #[arg(long, env = "WEFT_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    #[arg(long, default_value = "default")]
    namespace: String,
    #[arg(long, default_value = "default")]
    service_account: String,
    /// The folder the three files go to (created if missing).
    #[arg(long)]
    out: PathBuf,
}

pub async fn cert(a: CertArgs) -> anyhow::Result<()> {
    let api = control_api(a.ca, a.ca_root.as_deref(), a.token_file.as_deref())?;
    let id = weft_proxy::mtls::spiffe_id(&a.namespace, &a.service_account);
    let issued = weft_proxy::mtls::ca_client::issue(&api, None, &id).await?;
    std::fs::create_dir_all(&a.out)?;
    std::fs::write(a.out.join("cert.pem"), &issued.cert_pem)?;
    std::fs::write(a.out.join("root.pem"), &issued.root_pem)?;
    // The key readable by its owner only, from its first byte, also when
    // an older key.pem was there (`mode` applies on create).
    let mut key = std::fs::OpenOptions::new();
    std::os::unix::fs::OpenOptionsExt::mode(key.write(true).create(true).truncate(true), 0o600);
    let mut key = key.open(a.out.join("key.pem"))?;
    key.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    std::io::Write::write_all(&mut key, issued.key_pem.as_bytes())?;
    println!("{id}: cert.pem, key.pem, root.pem in {} (valid {} h)", a.out.display(), issued.ttl.as_secs() / 3600);
    Ok(())
}

/// `weft token create`'s arguments.
#[derive(clap::Args)]
pub struct TokenArgs {
    /// The control plane API, `host:port`.
    #[arg(long, env = "WEFT_CONTROL", default_value = "127.0.0.1:15014")]
    control: String,
    /// The admin token's file (the control plane prints its path at start).
    #[arg(long, env = "WEFT_ADMIN_TOKEN_FILE")]
    admin_token_file: PathBuf,
    #[arg(long, default_value = "default")]
    namespace: String,
    #[arg(long, default_value = "default")]
    service_account: String,
    /// How long the token can be exchanged for a certificate (at most 24h).
    #[arg(long, default_value = "1h", value_parser = duration)]
    ttl: Duration,
}

/// Prints a bootstrap token on stdout (alone, for `> file`), what it is for on stderr.
pub async fn token(a: TokenArgs) -> anyhow::Result<()> {
    let api = control_api(a.control, None, Some(&a.admin_token_file))?;
    let body = serde_json::json!({"namespace": a.namespace, "serviceAccount": a.service_account, "ttlSeconds": a.ttl.as_secs()});
    let (status, body) = api.call(None, weft_proxy::register::Method::POST, "/v1/tokens", Some(body)).await?;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if status != 200 {
        anyhow::bail!("the control plane refused ({status}): {}", v["error"].as_str().unwrap_or("no reason given"));
    }
    println!("{}", v["token"].as_str().unwrap_or_default());
    eprintln!(
        "a bootstrap token for {} valid {} s: `weft proxy --token-file FILE --ca ...` exchanges it for a certificate",
        v["identity"].as_str().unwrap_or_default(),
        v["expiresInSeconds"]
    );
    Ok(())
}
