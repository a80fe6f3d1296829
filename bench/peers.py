"""The processes a benchmark run starts: the nginx backend, the proxies
(weft, Envoy, HAProxy, nginx), each with one worker, and helpers to
measure them (CPU seconds, RSS) from /proc."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BODY = "x" * 1024  # the 1 KiB response every test fetches
HOST = "bench.local"  # the Host the load generators send


def tool(name: str) -> str:
    """A load generator or profiler on PATH (or cargo's bin directory)."""
    path = shutil.which(name) or str(Path.home() / ".cargo/bin" / name)
    if not Path(path).exists():
        sys.exit(f"{name} is missing: run bench/setup")
    return path


_given: set[int] = set()


def free_port() -> int:
    """A free port not handed out before in this run (the OS may offer the
    same free port twice; with hundreds of proxies that would collide)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _given:
            _given.add(port)
            return port


def wait_port(port: int, what: str, timeout: float = 30.0, host: str = "127.0.0.1", proc=None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode}) before listening on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"{what} did not listen on {host}:{port} within {timeout}s")


def tree(pid: int) -> list[int]:
    """A process and its descendants (nginx's workers are children of its master)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for t in Path(f"/proc/{p}/task").glob("*/children"):
            todo.extend(int(c) for c in t.read_text().split())
    return out


def cpu_times(pid: int) -> tuple[float, float]:
    """User and kernel CPU seconds of a process and its descendants so far."""
    user = kernel = 0
    for p in tree(pid):
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        user += int(fields[11])
        kernel += int(fields[12])
    tick = os.sysconf("SC_CLK_TCK")
    return user / tick, kernel / tick


def cpu_seconds(pid: int) -> float:
    """User + kernel CPU time of a process and its descendants so far."""
    return sum(cpu_times(pid))


def private_kib(pid: int) -> int:
    """Memory only this process and its descendants hold (USS: private clean
    and dirty pages), without the code pages processes of one binary share."""
    total = 0
    for p in tree(pid):
        for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1])
    return total


def rss_kib(pid: int) -> int:
    """Resident memory of a process and its descendants."""
    total = 0
    for p in tree(pid):
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def envoy_bin() -> str:
    out = subprocess.run(
        [sys.executable, "-c", "import envoy._bin, os; print(os.path.join(os.path.dirname(envoy._bin.__file__), 'envoy'))"],
        capture_output=True, text=True, check=True)
    return out.stdout.strip()


class Procs:
    """Every process of a run; all are stopped (process group) at the end."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, cmd: list[str], env: dict | None = None) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "w")
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env={**os.environ, **(env or {})}, start_new_session=True)
        self.procs.append((name, p))
        return p

    def stop(self, p: subprocess.Popen) -> None:
        """Stops `p`, which `check` then no longer expects to run."""
        self.procs = [(n, q) for n, q in self.procs if q is not p]
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def stop_all(self) -> None:
        for _, p in reversed(list(self.procs)):
            self.stop(p)

    def check(self) -> None:
        for name, p in self.procs:
            if p.poll() is not None:
                log = (self.tmp / f"{name}.log").read_text()[-2000:]
                raise RuntimeError(f"{name} exited ({p.returncode}):\n{log}")


def nginx(procs: Procs, name: str, port: int, h2_port: int, http_extra: str, location: str) -> subprocess.Popen:
    """nginx with one worker, listening for HTTP/1.1 on `port` and h2c on `h2_port`."""
    d = procs.tmp / name
    d.mkdir(exist_ok=True)
    conf = d / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log stderr error;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  {http_extra}
  server {{
    listen 127.0.0.1:{port};
    listen 127.0.0.1:{h2_port} http2;
    location / {{ {location} }}
  }}
}}
""")
    p = procs.start(name, ["nginx", "-c", str(conf), "-p", str(d), "-e", "stderr"])
    wait_port(port, name)
    return p


def nginx_backend(procs: Procs, port: int, h2_port: int) -> subprocess.Popen:
    """The backend every test fetches from: 1 KiB bodies."""
    return nginx(procs, "nginx-backend", port, h2_port, "", f'default_type text/plain; return 200 "{BODY}";')


def nginx_proxy(procs: Procs, port: int, h2_port: int, backend: int) -> subprocess.Popen:
    """nginx as a one-hop proxy with pooled keep-alive upstream connections."""
    upstream = f"upstream backend {{ server 127.0.0.1:{backend}; keepalive 64; keepalive_requests 10000000; }}"
    return nginx(procs, "nginx-proxy", port, h2_port, upstream,
                 'proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection "";')


def haproxy(procs: Procs, port: int, h2_port: int, backend: int, prefix: tuple = ()) -> subprocess.Popen:
    """HAProxy as a one-hop proxy. `prefix` runs it under a tool (valgrind)."""
    conf = procs.tmp / "haproxy.cfg"
    conf.write_text(f"""
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend fe
  bind 127.0.0.1:{port}
  bind 127.0.0.1:{h2_port} proto h2
  default_backend be
backend be
  server s1 127.0.0.1:{backend}
""")
    p = procs.start("haproxy", [*prefix, "haproxy", "-f", str(conf), "-db"])
    wait_port(port, "haproxy", timeout=120 if prefix else 30, proc=p)
    return p


def envoy_tls(certs: Path | None, side: str, alpn: str) -> str:
    """An Envoy TLS transport socket on mesh certificates (the files `weft
    cert` writes): `side` Downstream (the client must present a certificate
    of the mesh root) or Upstream; '' without `certs`."""
    if certs is None:
        return ""
    require = "require_client_certificate: true\n    " if side == "Downstream" else ""
    return f"""transport_socket:
  name: envoy.transport_sockets.tls
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.{side}TlsContext
    {require}common_tls_context:
      tls_certificates: [{{certificate_chain: {{filename: {certs}/cert.pem}}, private_key: {{filename: {certs}/key.pem}}}}]
      validation_context: {{trusted_ca: {{filename: {certs}/root.pem}}}}
      alpn_protocols: [{alpn}]"""


def envoy_static(procs: Procs, name: str, port: int, upstream: int, admin: int,
                 tls_in: Path | None = None, tls_out: Path | None = None) -> subprocess.Popen:
    """Envoy as a one-hop proxy: listener → route → cluster (HTTP/1.1
    upstream); with `tls_in` its listener takes mutual TLS, with `tls_out`
    its cluster speaks it (a sidecar pair's two sides, as Istio configures them)."""
    conf = procs.tmp / f"{name}.yaml"
    ind = lambda text, n: text.replace("\n", "\n" + " " * n)  # noqa: E731
    conf.write_text(f"""
admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}}}
static_resources:
  listeners:
    - name: l
      address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
      filter_chains:
        - {ind(envoy_tls(tls_in, "Downstream", "h2, http/1.1"), 10)}
          filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: bench
                codec_type: AUTO
                route_config:
                  virtual_hosts: [{{name: all, domains: ["*"], routes: [{{match: {{prefix: /}}, route: {{cluster: backend}}}}]}}]
                http_filters: [{{name: envoy.filters.http.router, typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}}}]
  clusters:
    - name: backend
      type: STATIC
      connect_timeout: 5s
      {ind(envoy_tls(tls_out, "Upstream", "http/1.1"), 6)}
      load_assignment:
        cluster_name: backend
        endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {upstream}}}}}}}}}]}}]
""")
    p = procs.start(name, [envoy_bin(), "-c", str(conf), "--concurrency", "1", "--disable-hot-restart", "-l", "error"])
    wait_port(port, name)
    return p


def envoy_xds(procs: Procs, name: str, meta: str, xds: int, certs: Path | None = None) -> tuple:
    """Envoy as a proxy of the mesh, driven over ADS by `weft control` on
    `xds`: its node `name` with `meta` (YAML fields: ROLE, LABELS, ports) in
    its metadata; with `certs` (`weft cert` files) xDS goes over TLS on the
    control plane's TLS port, which then serves it its mesh certificate
    over SDS. Returns the process and its admin port."""
    admin = free_port()
    tls = "" if certs is None else f"""
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
          common_tls_context:
            alpn_protocols: [h2]
            tls_certificates: [{{certificate_chain: {{filename: {certs}/cert.pem}}, private_key: {{filename: {certs}/key.pem}}}}]
            validation_context: {{trusted_ca: {{filename: {certs}/root.pem}}}}"""
    conf = procs.tmp / f"{name}.yaml"
    conf.write_text(f"""
node:
  id: {name}
  cluster: {name}
  metadata: {{NAMESPACE: default, WORKLOAD_NAME: {name}, LISTEN_IP: 127.0.0.1, {meta}}}
admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}}}
dynamic_resources:
  ads_config: {{api_type: GRPC, transport_api_version: V3, grpc_services: [{{envoy_grpc: {{cluster_name: xds}}}}]}}
  cds_config: {{ads: {{}}, resource_api_version: V3}}
  lds_config: {{ads: {{}}, resource_api_version: V3}}
static_resources:
  clusters:
    - name: xds
      type: STATIC
      connect_timeout: 1s
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config: {{http2_protocol_options: {{}}}}
      load_assignment:
        cluster_name: xds
        endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {xds}}}}}}}}}]}}]{tls}
""")
    p = procs.start(name, [envoy_bin(), "-c", str(conf), "--concurrency", "1", "--disable-hot-restart", "-l", "error"])
    return p, admin


def versus(m: dict, base: dict) -> dict:
    """A path's CPU per 1000 requests and p99 (from `in_rounds`), and what
    they add to `base`'s: percent of CPU, ms of p99."""
    return {
        "cpu_s_per_1000_req": m["cpu_s_per_1000_req"],
        "p99_ms": m["latency_ms"]["p99"],
        "cpu_added_pct": 100 * (m["cpu_s_per_1000_req"] / base["cpu_s_per_1000_req"] - 1),
        "p99_added_ms": m["latency_ms"]["p99"] - base["latency_ms"]["p99"],
    }


def side_by_side(label: str, w: dict, e: dict) -> str:
    """One line of weft's `versus` figures beside Envoy's."""
    one = lambda x: f"{x['cpu_s_per_1000_req']:.4f} s/1k ({x['cpu_added_pct']:+.1f}%, p99 {x['p99_added_ms']:+.3f} ms)"  # noqa: E731
    return f"{label}: weft {one(w)}   envoy {one(e)}   weft ÷ envoy CPU {w['cpu_s_per_1000_req'] / e['cpu_s_per_1000_req']:.2f}"
