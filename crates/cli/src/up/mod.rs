//! `weft up DIR`: the whole mesh on one machine. The control plane runs in
//! this process; each gateway, each workload replica and its sidecar run as
//! child processes on free ports. Ctrl-C (or SIGTERM) stops them all.

mod creds;
pub mod current;
mod process;
mod replica;
mod rollout;
mod supervise;

use process::{Ports, Proc, port_is_free, spawn};
use replica::{Launcher, Replica, http_ok, tcp_ok};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use weft_api::Spec;
use weft_api::types::Labels;

#[derive(clap::Args)]
pub struct UpArgs {
    /// Folder of Kubernetes/Istio YAML plus weft `Workload`s to run.
    dir: PathBuf,
    /// Gateways serve port P on P + offset, so port 80 needs no root.
    #[arg(long, default_value_t = 8000)]
    port_offset: u16,
    /// Write what runs where as JSON to this file once everything is ready.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Give every workload a free port even where it declares one, so
    /// several meshes can run on one machine at once.
    #[arg(long)]
    free_ports: bool,
    /// Seconds to wait for everything to become ready.
    #[arg(long, default_value_t = 60)]
    ready_timeout: u64,
    /// Keep the mesh CA's root and admin token here across runs (see
    /// `weft control --ca-dir`); a new root each run without it.
    #[arg(long, env = "WEFT_CA_DIR")]
    ca_dir: Option<PathBuf>,
    /// Workload certificates' lifetime (`24h`, `90m`); proxies renew at half.
    #[arg(long, default_value = "24h", value_parser = |s: &str| weft_api::types::Duration::parse(s).map(|d| d.0))]
    workload_cert_ttl: Duration,
    #[command(flatten)]
    limits: crate::control_args::LimitArgs,
}

pub struct GatewayProc {
    name: String,
    labels: Labels,
    admin: u16,
    ports: BTreeMap<u16, u16>,
    /// Ports served as TCP (TCP or TLS passthrough servers), not HTTP.
    tcp_ports: BTreeSet<u16>,
    /// Ports of HTTPS servers the gateway terminates.
    https_ports: BTreeSet<u16>,
    hosts: BTreeSet<String>,
    proc: Proc,
    /// How it was started, to start it again (`supervise`).
    args: Vec<String>,
    env: BTreeMap<String, String>,
    creds: std::sync::Arc<creds::Creds>,
}

impl GatewayProc {
    /// Starts the gateway again with the arguments it was started with,
    /// and a new token in its token file.
    fn respawn(&mut self, exe: &Path) -> anyhow::Result<()> {
        self.creds.proxy_args(&self.name, "default", &gateway_account(&self.name))?;
        self.proc = spawn(&self.name, exe, &self.args, &self.env)?;
        Ok(())
    }
}

/// A gateway's service account, as `weft gateway` names it.
fn gateway_account(name: &str) -> String {
    format!("{name}-service-account")
}

impl GatewayProc {}

fn labels_arg(l: &Labels) -> String {
    l.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

fn check_config(dir: &Path, limits: &weft_api::load::LoadLimits) -> anyhow::Result<Vec<weft_api::Resource>> {
    match weft_control::source::load(dir, limits) {
        Ok((resources, warnings)) => {
            for w in &warnings {
                eprintln!("{w}\n");
            }
            Ok(resources)
        }
        Err(diags) => {
            for d in &diags {
                eprintln!("{d}\n");
            }
            let n = diags.iter().filter(|d| d.is_error()).count();
            anyhow::bail!(
                "{} has {n} error(s); fix them and run `weft up` again (`weft validate {}` checks without starting anything)",
                dir.display(),
                dir.display()
            )
        }
    }
}

pub async fn run(a: UpArgs) -> anyhow::Result<()> {
    let dir = a.dir.canonicalize().map_err(|e| anyhow::anyhow!("cannot open {}: {e}", a.dir.display()))?;
    let limits = a.limits.limits();
    let resources = check_config(&dir, &limits.config)?;
    if resources.is_empty() {
        // Nothing would run: the gateways and workloads are started from
        // what is here now.
        anyhow::bail!(
            "{} has no resources: `weft up` reads the *.yaml, *.yml and *.json files in it and its subfolders \
             (Kubernetes Service, Istio Gateway, VirtualService, DestinationRule..., weft Workload); \
             try `weft up examples/seed`",
            dir.display()
        );
    }
    let exe = std::env::current_exe()?;
    let control = weft_control::start(weft_control::ControlOptions {
        config_dir: dir.clone(),
        xds_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        insecure_plaintext_xds: false,
        api_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        api_tls_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        ca_dir: a.ca_dir.clone(),
        workload_ttl: a.workload_cert_ttl,
        trace_store_addr: a.limits.trace_store_addr,
        limits,
    })
    .await?;
    let xds = control.xds_addr.to_string();
    // Its proxies take xDS on the TLS port, each showing its certificate;
    // the plaintext port stays on loopback for other xDS clients (Envoy).
    let proxies_xds = format!("https://{}", control.api_tls_addr);
    let api = control.api_addr.to_string();
    let creds_dir = control.ca_dir.join("proxies");
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&creds_dir)?;
    }
    let creds = std::sync::Arc::new(creds::Creds {
        auth: control.auth.clone(),
        dir: creds_dir,
        root: control.ca_dir.join("root-cert.pem"),
        api_tls: control.api_tls_addr.to_string(),
    });
    let child_log = std::env::var("WEFT_LOG").unwrap_or_else(|_| "warn".into());

    // Gateways: one process per distinct selector.
    // Per distinct selector: labels, port → public port, HTTP hosts, port → has an HTTP server.
    type Plan = (Labels, BTreeMap<u16, u16>, BTreeSet<String>, BTreeMap<u16, bool>, BTreeSet<u16>);
    let mut gw_specs: BTreeMap<String, Plan> = BTreeMap::new();
    for r in &resources {
        if let Spec::Gateway(g) = &r.spec {
            let e = gw_specs.entry(labels_arg(&g.selector)).or_insert_with(|| {
                (g.selector.clone(), BTreeMap::new(), BTreeSet::new(), BTreeMap::new(), BTreeSet::new())
            });
            // Only what a gateway serves: `weft validate` warns of the rest.
            for s in g.servers.iter().filter(|s| s.served()) {
                let public = s.port.number.checked_add(a.port_offset).ok_or_else(|| {
                    anyhow::anyhow!("port {} + offset {} is past 65535", s.port.number, a.port_offset)
                })?;
                e.1.insert(s.port.number, public);
                if s.http() {
                    e.2.extend(s.hosts.iter().map(|h| h.split_once('/').map_or(h.as_str(), |(_, h)| h).to_owned()));
                }
                *e.3.entry(s.port.number).or_default() |= s.http();
                if s.terminates().is_some() {
                    e.4.insert(s.port.number);
                }
            }
        }
    }
    let mut launcher = Launcher {
        ports: Ports::default(),
        exe: exe.clone(),
        xds: proxies_xds.clone(),
        log: child_log.clone(),
        stalled: Default::default(),
        creds: creds.clone(),
    };
    launcher.ports.ignore_declared = a.free_ports;
    let mut gateways = Vec::new();
    for (i, (_, (labels, ports, hosts, http, https_ports))) in gw_specs.into_iter().enumerate() {
        // A port with an HTTP server is served as HTTP (the control plane's rule).
        let tcp_ports: BTreeSet<u16> = http.into_iter().filter(|(_, h)| !h).map(|(p, _)| p).collect();
        for (port, public) in &ports {
            if !port_is_free(*public) {
                anyhow::bail!(
                    "gateway port {port} would be served on {public}, which is in use; pick another offset with --port-offset"
                );
            }
        }
        let name = labels
            .get("istio")
            .or(labels.get("app"))
            .or(labels.get(weft_api::gateway_api::GATEWAY_NAME_LABEL))
            .cloned()
            .unwrap_or_else(|| format!("gateway-{i}"));
        let admin = launcher.ports.free()?;
        let args: Vec<String> = [
            "gateway",
            "--xds",
            &proxies_xds,
            "--labels",
            &labels_arg(&labels),
            "--port-offset",
            &a.port_offset.to_string(),
            "--workload",
            &name,
            "--admin-port",
            &admin.to_string(),
            "--metrics-port",
            "0",
            "--health-port",
            "0",
        ]
        .iter()
        .map(|s| s.to_string())
        // Mutual TLS to the sidecars behind it, as Istio's ingress gateway.
        .chain(creds.proxy_args(&name, "default", &gateway_account(&name))?)
        .collect();
        let env = BTreeMap::from([("WEFT_LOG".to_owned(), child_log.clone())]);
        let proc = spawn(&name, &exe, &args, &env)?;
        gateways.push(GatewayProc {
            name,
            labels,
            admin,
            ports,
            tcp_ports,
            https_ports,
            hosts,
            proc,
            args,
            env,
            creds: creds.clone(),
        });
    }

    // Workloads: each replica is an app plus its sidecar.
    let mut replicas = Vec::new();
    for r in &resources {
        let Spec::Workload(w) = &r.spec else { continue };
        let n = w.replicas.unwrap_or(1);
        for i in 0..n {
            replicas.push(launcher.start(r.name(), r.namespace(), w, i, n)?);
        }
    }

    // Wait until every process answers.
    let deadline = Instant::now() + Duration::from_secs(a.ready_timeout);
    loop {
        let mut waiting = Vec::new();
        for g in &gateways {
            if !http_ok(g.admin, "/ready").await {
                waiting.push(g.name.clone());
            }
        }
        for r in &replicas {
            if !http_ok(r.admin, "/ready").await {
                waiting.push(format!("{} sidecar", r.name));
            } else if !tcp_ok(r.app_port).await {
                waiting.push(format!("{} app on port {}", r.name, r.app_port));
            }
        }
        if waiting.is_empty() {
            break;
        }
        for p in gateways
            .iter_mut()
            .map(|g| &mut g.proc)
            .chain(replicas.iter_mut().flat_map(|r| [&mut r.app, &mut r.sidecar]))
        {
            if let Ok(Some(status)) = p.child.try_wait() {
                anyhow::bail!("{} exited during start-up ({status}); see its output above", p.name);
            }
        }
        if Instant::now() > deadline {
            anyhow::bail!("not ready after {}s: {}", a.ready_timeout, waiting.join(", "));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Ready means consistent: every instance registered, and every proxy
    // holding the config that includes them (so the first request through
    // the gateway finds every service's endpoints).
    loop {
        // From one snapshot: the registrations its version holds.
        let snap = control.hub.snapshot();
        let version = snap.version;
        let registered = replicas.iter().filter(|r| snap.instances.iter().any(|i| i.address == r.ip)).count();
        let proxies = control.hub.proxies();
        let synced = proxies.iter().filter(|p| p.synced >= version).count();
        if registered >= replicas.len() && proxies.len() >= gateways.len() + replicas.len() && synced == proxies.len() {
            break;
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "not ready after {}s: {registered}/{} instances registered, {synced}/{} proxies synced to config version {version}",
                a.ready_timeout,
                replicas.len(),
                proxies.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    print_table(&dir, &xds, &api, &gateways, &replicas);
    println!("  mesh CA         {} (admin token {})\n", control.ca_dir.display(), control.auth.admin_path().display());
    let control_info = json!({
        "xds": xds,
        "api": api,
        "apiTls": control.api_tls_addr.to_string(),
        "dashboard": format!("http://{api}/dashboard"),
        "caDir": control.ca_dir,
        "adminToken": control.auth.admin_path(),
    });
    if let Some(f) = &a.ready_file {
        write_ready(f, &control_info, &gateways, &replicas)?;
    }
    if let Err(e) = current::write(&api, control.auth.admin_path()) {
        tracing::warn!(error = %e, "cannot record this mesh for `weft status`");
    }

    let stop = weft_proxy::stop_signal();
    tokio::pin!(stop);
    // Edits to the folder roll the workloads they change.
    let mut snaps = control.hub.subscribe();
    let mut applied = rollout::desired(&resources);
    let timeout = Duration::from_secs(a.ready_timeout);
    // How long a process gets to drain before it is killed.
    let grace = Duration::from_secs(6);
    let mut supervisor = supervise::Supervisor::default();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut gave_up = None;
    loop {
        tokio::select! {
            signal = &mut stop => {
                signal?;
                break;
            }
            _ = tick.tick() => {
                let gateways_changed = match supervisor.check_gateways(&mut gateways, &exe) {
                    Ok(changed) => changed,
                    Err(e) => {
                        gave_up = Some(e);
                        break;
                    }
                };
                match supervisor.check(&mut launcher, &control.hub, &mut replicas, &applied, timeout, grace).await.map(|c| c || gateways_changed) {
                    Ok(false) => {}
                    Ok(true) => {
                        if let Some(f) = &a.ready_file {
                            write_ready(f, &control_info, &gateways, &replicas)?;
                        }
                    }
                    Err(e) => {
                        gave_up = Some(e);
                        break;
                    }
                }
            }
            changed = snaps.changed() => {
                if changed.is_err() {
                    break;
                }
                let wanted = rollout::desired(&snaps.borrow_and_update().resources);
                if wanted != applied {
                    rollout::apply(&mut launcher, &control.hub, &mut replicas, &applied, &wanted, timeout, grace).await;
                    applied = wanted;
                    if let Some(f) = &a.ready_file {
                        write_ready(f, &control_info, &gateways, &replicas)?;
                    }
                }
            }
        }
    }
    current::remove();
    eprintln!("\nstopping: workloads, then sidecars and gateways");
    for r in &mut replicas {
        r.app.terminate();
    }
    for r in &mut replicas {
        r.app.stop(grace).await;
    }
    for p in replicas.iter_mut().map(|r| &mut r.sidecar).chain(gateways.iter_mut().map(|g| &mut g.proc)) {
        p.terminate();
    }
    for p in replicas.iter_mut().map(|r| &mut r.sidecar).chain(gateways.iter_mut().map(|g| &mut g.proc)) {
        p.stop(grace).await;
    }
    eprintln!("stopped");
    match gave_up {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// What runs where, as JSON (`--ready-file`); rewritten after a rollout.
fn write_ready(
    f: &Path,
    control: &serde_json::Value,
    gateways: &[GatewayProc],
    replicas: &[Replica],
) -> anyhow::Result<()> {
    let info = json!({
        "control": control,
        "gateways": gateways.iter().map(|g| json!({"name": g.name, "labels": g.labels, "admin": g.admin, "ports": g.ports, "hosts": g.hosts, "pid": g.proc.pid()})).collect::<Vec<_>>(),
        "workloads": replicas.iter().map(|r| json!({"name": r.name, "ip": r.ip, "appPort": r.app_port, "inboundPort": r.inbound, "outboundPort": r.outbound, "admin": r.admin, "pid": r.app.pid(), "sidecarPid": r.sidecar.pid()})).collect::<Vec<_>>(),
    });
    // Written whole then renamed, so a reader never sees half a file.
    let tmp = f.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&info)?)?;
    std::fs::rename(&tmp, f)?;
    Ok(())
}

fn print_table(dir: &Path, xds: &str, api: &str, gateways: &[GatewayProc], replicas: &[Replica]) {
    println!("weft up: the mesh from {} is running\n", dir.display());
    println!("  control plane   xDS {xds} (plaintext, loopback; the proxies use TLS)   API http://{api}");
    println!(
        "  dashboard       http://{api}/dashboard   (`weft dashboard` prints it with the admin token its reads need)"
    );
    println!();
    let row = |role: &str, name: &str, pid: &str, app: &str, ip: &str, inb: &str, out: &str, admin: &str| {
        format!("  {role:<9} {name:<20} {pid:>7} {app:>6} {ip:<11} {inb:>8} {out:>9} {admin:>6}")
    };
    println!("{}", row("ROLE", "NAME", "PID", "APP", "SIDECAR IP", "INBOUND", "OUTBOUND", "ADMIN"));
    for g in gateways {
        let pid = g.proc.pid().map_or("-".into(), |p| p.to_string());
        let ports: Vec<String> = g
            .ports
            .iter()
            .map(|(p, q)| {
                let kind = if g.tcp_ports.contains(p) {
                    " (tcp)"
                } else if g.https_ports.contains(p) {
                    " (https)"
                } else {
                    ""
                };
                format!(":{p}→:{q}{kind}")
            })
            .collect();
        let line = row("gateway", &g.name, &pid, "-", "127.0.0.1", "-", "-", &g.admin.to_string());
        println!("{line}   serves {}", ports.join(" "));
    }
    for r in replicas {
        let pid = r.app.pid().map_or("-".into(), |p| p.to_string());
        let (app, inb, out, admin) =
            (r.app_port.to_string(), r.inbound.to_string(), r.outbound.to_string(), r.admin.to_string());
        println!("{}", row("workload", &r.name, &pid, &app, &r.ip, &inb, &out, &admin));
    }
    println!();
    for g in gateways {
        for (port, public) in g.ports.iter().filter(|(p, _)| !g.tcp_ports.contains(p)) {
            let specific: Vec<&String> = g.hosts.iter().filter(|h| *h != "*").collect();
            let host = specific.first().map(|h| h.trim_start_matches("*."));
            match (host, g.https_ports.contains(port)) {
                (None, false) => println!("Try:  curl http://127.0.0.1:{public}/"),
                (Some(h), false) => println!("Try:  curl -H 'Host: {h}' http://127.0.0.1:{public}/"),
                (h, true) => {
                    let h = h.unwrap_or("localhost");
                    println!(
                        "Try:  curl --cacert <the server CA> --resolve {h}:{public}:127.0.0.1 https://{h}:{public}/"
                    )
                }
            }
        }
    }
    println!("Admin of any proxy: curl http://127.0.0.1:<ADMIN>/config_dump   Ctrl-C stops everything.");
}
