"""weft's side of a benchmark run: generated configs, the control plane,
gateways and sidecars, and waiting until proxies have applied a version."""

import json
import os
import sys
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from peers import ROOT, Procs, free_port, nginx_backend, wait_port


def http_json(url: str, timeout: float = 10.0, token: str | None = None):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def service_yaml(name: str, port: int = 80, selector: str | None = None) -> str:
    sel = f"\n  selector: {{app: {selector or name}}}"
    return f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:{sel}\n  ports: [{{name: http, port: {port}}}]\n"


def entry_yaml(name: str, app: str, port: int) -> str:
    return (f"apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: {name}}}\n"
            f"spec: {{address: 127.0.0.1, ports: {{http: {port}}}, labels: {{app: {app}}}}}\n")


def bench_config(dir: Path, backend: int) -> None:
    """A gateway on port 80 (any host) to `backend`, and `mesh-backend`
    and `mesh-backend-tls` whose instances register through their sidecars."""
    docs = [
        service_yaml("backend"),
        entry_yaml("backend-1", "backend", backend),
        service_yaml("mesh-backend"),
        service_yaml("mesh-backend-tls"),
        """apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bench}
spec:
  selector: {bench: one-hop}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
""",
        """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bench}
spec:
  hosts: ["*"]
  gateways: [bench]
  http: [{route: [{destination: {host: backend}}]}]
""",
    ]
    dir.mkdir(parents=True, exist_ok=True)
    (dir / "bench.yaml").write_text("---\n".join(docs))


TRAIN_HOST = "train.bench"


def training_config(dir: Path, backend: int, tcp_port: int) -> None:
    """What the profile-guided build's training sends besides the
    benchmark's plain route (bench/orderfile.py `exercise`): on the gateway,
    host `train.bench`, routes matching regexes on the path and a header,
    setting and removing headers, with fault injection, with retries and
    timeouts, and mirroring every request; and `train-tcp`, a tcp port
    (`tcp_port`) that sidecars splice to the backend. Code the training never
    runs is optimised for size, not speed (BENCHMARKS.md)."""
    docs = [
        f"""apiVersion: v1
kind: Service
metadata: {{name: train-tcp}}
spec:
  selector: {{app: train-tcp}}
  ports: [{{name: tcp-train, port: {tcp_port}}}]
""",
        f"""apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: train-tcp-1}}
spec: {{address: 127.0.0.1, ports: {{tcp-train: {backend}}}, labels: {{app: train-tcp}}}}
""",
        f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: train}}
spec:
  hosts: [{TRAIN_HOST}]
  gateways: [bench]
  http:
  - match: [{{uri: {{regex: "/fault/[a-z0-9]+"}}, headers: {{x-train: {{regex: "f[a-z]*"}}}}}}]
    fault:
      abort: {{httpStatus: 503, percentage: {{value: 0.1}}}}
      delay: {{fixedDelay: 1ms, percentage: {{value: 0.1}}}}
    headers: {{request: {{set: {{x-route: fault}}}}}}
    route: [{{destination: {{host: backend}}}}]
  - match: [{{uri: {{regex: "/retry/[a-z0-9]+"}}, method: {{exact: GET}}}}]
    retries: {{attempts: 2, perTryTimeout: 2s, retryOn: "5xx,connect-failure"}}
    timeout: 5s
    headers:
      request: {{set: {{x-route: retry}}, add: {{x-trace: train}}}}
      response: {{remove: [server]}}
    route: [{{destination: {{host: backend}}}}]
  - match: [{{uri: {{prefix: /mirror}}}}]
    route: [{{destination: {{host: backend}}}}]
    mirror: {{host: backend}}
    mirrorPercentage: {{value: 100}}
""",
    ]
    dir.mkdir(parents=True, exist_ok=True)
    (dir / "train.yaml").write_text("---\n".join(docs))


def scale_config(dir: Path, services: int, endpoints_per_service: int, base_port: int = 20000) -> None:
    """`services` Services with `endpoints_per_service` WorkloadEntries each,
    every endpoint its own address (as in a real mesh: a proxy keeps state
    per host, not only per service)."""
    dir.mkdir(parents=True, exist_ok=True)
    docs = []
    for i in range(services):
        docs.append(service_yaml(f"svc-{i}"))
        for j in range(endpoints_per_service):
            docs.append(entry_yaml(f"svc-{i}-{j}", f"svc-{i}", base_port + (i * endpoints_per_service + j) % 40000))
    (dir / "scale.yaml").write_text("---\n".join(docs))


def one_hop_control(procs: Procs, weft: str, extra_services: int = 0, train_tcp: int | None = None,
                    policies: int = 0, access_log: bool = False, tracing: float | None = None):
    """The one-hop setup: the nginx backend (HTTP/1.1 and h2c ports), the
    bench config (plus `extra_services` services of one endpoint each, with
    `train_tcp` the training's routes and tcp port, and with `policies` an
    AuthorizationPolicy of that many rules on the gateway; with `access_log`
    the gateway's access log to a file; with `tracing` that percentage of
    requests traced and reported to an OTLP receiver) and a control plane
    serving it. Returns (backend, backend_h2, control)."""
    backend, backend_h2 = free_port(), free_port()
    nginx_backend(procs, backend, backend_h2)
    cfg = procs.tmp / "weft-config"
    bench_config(cfg, backend)
    if policies:
        policy_config(cfg, policies)
    if access_log or tracing is not None:
        telemetry_config(procs, cfg, access_log, tracing)
    if extra_services:
        scale_config(cfg, extra_services, 1)
    if train_tcp:
        training_config(cfg, backend, train_tcp)
    return backend, backend_h2, Control(procs, weft, cfg)


def policy_config(cfg: Path, rules: int) -> None:
    """An ALLOW AuthorizationPolicy on the bench gateway with `rules` rules,
    only the last of which matches the bench's requests: every rule is
    evaluated on each request (the worst case)."""
    body = "".join(f"    - to: [{{operation: {{methods: [POST], paths: [\"/none-{i}/*\"]}}}}]\n" for i in range(rules - 1))
    body += "    - to: [{operation: {methods: [GET], paths: [\"/*\"]}}]\n"
    (cfg / "policies.yaml").write_text(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: bench}\nspec:\n"
        "  selector: {matchLabels: {bench: one-hop}}\n  rules:\n" + body)


def telemetry_config(procs: Procs, cfg: Path, access_log: bool, tracing: float | None) -> None:
    """The bench gateway's access log (JSON lines to a file, Istio's fields)
    and tracing (`tracing` percent sampled, spans to the tests' OTLP
    receiver, which discards them), as an operator writes them: the mesh
    config's providers and a Telemetry selecting the gateway."""
    collector = 0
    if tracing is not None:
        collector = free_port()
        receiver = ROOT / "crates/cli/tests/otlp/receiver.py"
        procs.start("otlp-receiver", [sys.executable, str(receiver), "--port", str(collector), "--quiet"])
        wait_port(collector, "otlp-receiver", timeout=30)
    log = procs.tmp / "access.log"
    mesh = ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: |\n"
            "    extensionProviders:\n"
            f"    - {{name: otel, opentelemetry: {{service: 127.0.0.1, port: {collector}}}}}\n"
            f"    - {{name: file, envoyFileAccessLog: {{path: {log}}}}}\n")
    spec = ""
    if access_log:
        spec += "  accessLogging: [{providers: [{name: file}]}]\n"
    if tracing is not None:
        spec += f"  tracing: [{{providers: [{{name: otel}}], randomSamplingPercentage: {tracing}}}]\n"
    (cfg / "telemetry.yaml").write_text(
        mesh + "---\napiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: bench}\nspec:\n"
        "  selector: {matchLabels: {bench: one-hop}}\n" + spec)


class Control:
    def __init__(self, procs: Procs, weft: str, config: Path, name: str = "control"):
        self.xds, self.api, self.api_tls = free_port(), free_port(), free_port()
        # The CA's directory: its admin token lets the bench's sidecars and
        # `weft cert` prove the identities they ask for.
        self.ca_dir = Path(tempfile.mkdtemp(prefix="weft-bench-ca-"))
        self.admin_token = self.ca_dir / "admin-token"
        self.proc = procs.start(name, [weft, "control", "--config", str(config),
                                       "--xds-addr", f"127.0.0.1:{self.xds}", "--api-addr", f"127.0.0.1:{self.api}",
                                       "--api-tls-addr", f"127.0.0.1:{self.api_tls}", "--ca-dir", str(self.ca_dir)],
                                env={"WEFT_LOG": os.environ.get("WEFT_LOG", "warn")})
        wait_port(self.api, name, timeout=600, proc=self.proc)

    def token(self) -> str:
        """The admin token: the control plane's reads need it."""
        return self.admin_token.read_text().strip()

    def version(self) -> int:
        return http_json(f"http://127.0.0.1:{self.api}/debug/version", timeout=60, token=self.token())["version"]

    def proxies(self) -> list:
        return http_json(f"http://127.0.0.1:{self.api}/debug/proxies", token=self.token())

    def wait_acked(self, ids: set[str], version: int, timeout: float = 300.0,
                   types=("Cluster", "ClusterLoadAssignment", "Listener", "RouteConfiguration")) -> float:
        """Seconds until every proxy in `ids` has ACKed `version` (or later) for `types`."""
        start = time.time()
        while True:
            done = set()
            for p in self.proxies():
                acked = p.get("acked", {})
                if all(t in acked and int(acked[t]) >= version for t in types):
                    done.add(p["id"])
            if ids <= done:
                return time.time() - start
            if time.time() - start > timeout:
                raise RuntimeError(f"{len(ids - done)} proxies did not ACK version {version} in {timeout}s")
            time.sleep(0.005)


def gateway(procs: Procs, weft: str, control: Control, port: int, prefix: tuple = (), name: str = "weft-gateway",
            labels: str = "bench=one-hop") -> tuple:
    """The one-hop gateway on `port`, its process (and workload) called
    `name`, with `labels`. `prefix` runs it under a tool (valgrind)."""
    admin = free_port()
    p = procs.start(name, [*prefix, weft, "--concurrency", "1", "gateway", "--xds", f"127.0.0.1:{control.xds}",
                           "--labels", labels, "--port-offset", str(port - 80), "--workload", name,
                           "--admin-port", str(admin), "--metrics-port", "0", "--health-port", "0"],
                    env={"WEFT_LOG": os.environ.get("WEFT_LOG", "warn")})
    wait_port(port, name, timeout=120, proc=p)
    return p, admin


def sidecar(procs: Procs, weft: str, control: Control, name: str, outbound: int, app_port: int | None = None,
            inbound: int | None = None, labels: str = "", register: bool = False, prefix: tuple = (),
            listen_ip: str = "127.0.0.1", mtls: bool = False) -> tuple:
    """A sidecar named `name`, its listeners on `listen_ip` (two sidecars on
    one address would both bind the mesh's tcp ports). `prefix` runs it
    under a tool (valgrind). With `mtls` it gets a certificate from the
    control plane's CA and speaks mutual TLS to the mesh's sidecars."""
    admin = free_port()
    cmd = [*prefix, weft, "--concurrency", "1", "proxy", "--xds", f"127.0.0.1:{control.xds}", "--workload", name,
           "--outbound-port", str(outbound), "--admin-port", str(admin), "--metrics-port", "0", "--health-port", "0",
           "--listen-ip", listen_ip]
    if labels:
        cmd += ["--labels", labels]
    if app_port:
        cmd += ["--app-port", str(app_port), "--inbound-port", str(inbound or free_port())]
    if register:
        cmd += ["--register", f"127.0.0.1:{control.api}"]
    if mtls:
        cmd += ["--ca", f"127.0.0.1:{control.api}"]
    if register or mtls:
        cmd += ["--token-file", str(control.admin_token)]
    p = procs.start(name, cmd, env={"WEFT_LOG": os.environ.get("WEFT_LOG", "warn")})
    return p, admin


def mesh_cert(weft: str, control: Control, account: str, out: Path) -> Path:
    """A workload certificate from the control plane's CA (`weft cert`),
    for a peer that is not a weft proxy."""
    subprocess.run([weft, "cert", "--ca", f"127.0.0.1:{control.api}", "--service-account", account,
                    "--token-file", str(control.admin_token), "--out", str(out)], check=True, capture_output=True, timeout=60)
    return out


def counter(admin: int, name: str) -> int:
    """A counter's value on a weft proxy's `/stats/prometheus`."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/stats/prometheus", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return int(float(line.split()[1]))
    raise RuntimeError(f"no counter {name} on :{admin}")


def wait_ready(admin: int, what: str, timeout: float = 120.0) -> None:
    wait_port(admin, what, timeout)
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{what} not ready within {timeout}s")
