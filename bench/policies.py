"""What authorization policies cost on the mesh path, weft beside Envoy,
both configured by the same `weft control` (bench/run.py's `policies`
part): client sidecar → server sidecar → nginx, mutual TLS under a STRICT
PeerAuthentication, the server's workload under an ALLOW
AuthorizationPolicy of 0, 10 or 100 rules (only the last matches the
bench's requests, so every rule is judged). weft's sidecars are weft
proxies; Envoy's are Envoys driven over ADS on the control plane's TLS
port, their mesh certificates served over SDS, their policies the same
RBAC filters. The figure is CPU per request of both proxies against the
same path with no policy, and the added p99.
"""

import urllib.error
import urllib.request
from pathlib import Path

import peers
import weft as wf
from peers import Procs, free_port

RULES = (0, 10, 100)


def config(dir: Path, backend: int, envoy_inbound: dict[int, int]) -> None:
    """A service per data plane and rule count (`pol-N` for weft's server
    sidecars, which register; `envoy-pol-N` for Envoy's, at their inbound
    ports), STRICT for all, and each one's policy of N rules."""
    docs = [wf.service_yaml("backend"), wf.entry_yaml("backend-1", "backend", backend)]
    for n in RULES:
        docs.append(wf.service_yaml(f"pol-{n}"))
        docs.append(wf.service_yaml(f"envoy-pol-{n}"))
        docs.append(f"apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: envoy-pol-{n}}}\n"
                    f"spec: {{address: 127.0.0.1, ports: {{http: {envoy_inbound[n]}}}, serviceAccount: envoy-pol-{n},\n"
                    f"  labels: {{app: envoy-pol-{n}, security.istio.io/tlsMode: istio}}}}\n")
        if n:
            rules = "".join(f"    - to: [{{operation: {{methods: [POST], paths: [\"/none-{i}/*\"]}}}}]\n" for i in range(n - 1))
            rules += "    - to: [{operation: {methods: [GET], paths: [\"/*\"]}}]\n"
            for app in (f"pol-{n}", f"envoy-pol-{n}"):
                docs.append(f"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: {app}}}\n"
                            f"spec:\n  selector: {{matchLabels: {{app: {app}}}}}\n  rules:\n{rules}")
    docs.append("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\n"
                "spec: {mtls: {mode: STRICT}}\n")
    dir.mkdir(parents=True, exist_ok=True)
    (dir / "policies.yaml").write_text("---\n".join(docs))


def envoy_sidecar(procs: Procs, weft: str, control: wf.Control, name: str, meta: str) -> tuple:
    """An Envoy sidecar `name` on xDS over TLS with its own workload
    certificate (the control plane then serves it its mesh certificate
    over SDS); `meta` the node metadata's extra YAML fields."""
    certs = wf.mesh_cert(weft, control, name, procs.tmp / f"certs-{name}")
    return peers.envoy_xds(procs, name, f"ROLE: sidecar, {meta}", control.api_tls, certs)


def run(procs: Procs, weft: str, args, res: dict, in_rounds, wait_served) -> None:
    """Measures the six paths (weft and Envoy, 0/10/100 rules) in rounds
    and adds `res["policies"]`: per path CPU s per 1000 requests (both
    proxies), p99, and against the same data plane's path with no policy
    the CPU added (percent) and the p99 added (ms)."""
    backend, backend_h2 = free_port(), free_port()
    peers.nginx_backend(procs, backend, backend_h2)
    envoy_inbound = {n: free_port() for n in RULES}
    cfg = procs.tmp / "policies-config"
    config(cfg, backend, envoy_inbound)
    control = wf.Control(procs, weft, cfg, name="policies-control")
    started, paths = [], {}
    outbound = free_port()
    client, c_admin = wf.sidecar(procs, weft, control, "pol-client", outbound, mtls=True)
    e_out = free_port()
    e_client, _ = envoy_sidecar(procs, weft, control, "envoy-pol-client",
                                f'OUTBOUND_PORT: "{e_out}", LABELS: {{app: envoy-pol-client}}')
    started += [client, e_client]
    for n in RULES:
        server, s_admin = wf.sidecar(procs, weft, control, f"pol-{n}", free_port(), app_port=backend,
                                     labels=f"app=pol-{n}", register=True, mtls=True)
        es, _ = envoy_sidecar(procs, weft, control, f"envoy-pol-{n}",
                              f'OUTBOUND_PORT: "{free_port()}", INBOUND_PORT: "{envoy_inbound[n]}", '
                              f'APP_PORT: "{backend}", LABELS: {{app: envoy-pol-{n}}}')
        wf.wait_ready(s_admin, f"pol-{n} sidecar")
        started += [server, es]
        paths[f"weft-{n}"] = ([client.pid, server.pid], outbound, f"pol-{n}", None)
        paths[f"envoy-{n}"] = ([e_client.pid, es.pid], e_out, f"envoy-pol-{n}", None)
    wf.wait_ready(c_admin, "client sidecar")
    for name, (_, port, host, _) in paths.items():
        wait_served(port, host, name)
        if not name.endswith("-0"):
            denied(port, host, name)
    out = in_rounds(procs, "policies", paths, args)
    table = {}
    for name, m in out.items():
        kind, n = name.rsplit("-", 1)
        table[name] = {"rules": int(n), **peers.versus(m, out[f"{kind}-0"])}
    res["policies"] = table
    for p in started:
        procs.stop(p)
    procs.stop(control.proc)


def denied(port: int, host: str, name: str) -> None:
    """A request no rule allows is refused: the policy is in force."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/x", data=b"", method="POST", headers={"Host": host})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status = r.status
    except urllib.error.HTTPError as e:
        status = e.code
    if status != 403:
        raise RuntimeError(f"{name}: a POST no rule allows got {status}, not 403: the policy is not in force")


def lines(res: dict) -> list[str]:
    """The table's lines for the policies part."""
    t = res.get("policies")
    if not t:
        return []
    return [peers.side_by_side(f"policies {n:>3} rules, STRICT mTLS mesh path", t[f"weft-{n}"], t[f"envoy-{n}"])
            for n in RULES]
