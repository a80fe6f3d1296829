"""What traces and access logs cost a request, weft beside Envoy, both
configured by the same `weft control` (bench/run.py's `telemetry` part):
the one-hop gateway to nginx with nothing on, with tracing at 1% and at
100% (spans to an OTLP receiver that discards them), and with an access
log to a file (Istio's JSON fields). weft's gateways are `weft gateway`s,
Envoy's are Envoys driven over ADS, each pair selected by one Gateway and
one Telemetry, as an operator writes them. The figures are CPU per request
and p99 against the same data plane's gateway with nothing on.
"""

import sys
import urllib.request
from pathlib import Path

import peers
import weft as wf
from peers import ROOT, Procs, free_port, wait_port

MODES = ("off", "trace1", "trace100", "log")


def config(dir: Path, backend: int, collector: int, logs: Path) -> None:
    """Per mode a Gateway (its weft and Envoy gateways alike) routing any
    host to `backend`, and the Telemetry that turns the mode on for each
    data plane (each one's own log file)."""
    docs = [wf.service_yaml("backend"), wf.entry_yaml("backend-1", "backend", backend),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: |\n"
            "    extensionProviders:\n"
            f"    - {{name: otel, opentelemetry: {{service: 127.0.0.1, port: {collector}}}}}\n"
            f"    - {{name: file-weft, envoyFileAccessLog: {{path: {logs / 'weft.log'}}}}}\n"
            f"    - {{name: file-envoy, envoyFileAccessLog: {{path: {logs / 'envoy.log'}}}}}\n"]
    for m in MODES:
        docs.append(f"apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: tel-{m}}}\n"
                    f"spec:\n  selector: {{bench: tel-{m}}}\n"
                    "  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [\"*\"]}]\n")
        docs.append(f"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: tel-{m}}}\n"
                    f"spec:\n  hosts: [\"*\"]\n  gateways: [tel-{m}]\n  http: [{{route: [{{destination: {{host: backend}}}}]}}]\n")
        for plane in ("weft", "envoy"):
            if m == "off":
                continue
            spec = (f"  accessLogging: [{{providers: [{{name: file-{plane}}}]}}]\n" if m == "log" else
                    f"  tracing: [{{providers: [{{name: otel}}], randomSamplingPercentage: {m.removeprefix('trace')}}}]\n")
            docs.append(f"apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {{name: tel-{m}-{plane}}}\n"
                        f"spec:\n  selector: {{matchLabels: {{bench: tel-{m}, proxy: {plane}}}}}\n{spec}")
    dir.mkdir(parents=True, exist_ok=True)
    (dir / "telemetry.yaml").write_text("---\n".join(docs))


def run(procs: Procs, weft: str, args, res: dict, in_rounds, wait_served) -> None:
    """Measures the eight gateways (weft and Envoy, four modes) in rounds
    and adds `res["telemetry"]`: per gateway CPU s per 1000 requests, p99,
    and against the same data plane with nothing on the CPU added
    (percent) and the p99 added (ms)."""
    backend, backend_h2 = free_port(), free_port()
    peers.nginx_backend(procs, backend, backend_h2)
    collector = free_port()
    receiver = ROOT / "crates/cli/tests/otlp/receiver.py"
    procs.start("telemetry-otlp", [sys.executable, str(receiver), "--port", str(collector), "--quiet"])
    wait_port(collector, "otlp-receiver", timeout=30)
    cfg = procs.tmp / "telemetry-config"
    config(cfg, backend, collector, procs.tmp)
    control = wf.Control(procs, weft, cfg, name="telemetry-control")
    started, paths, admins = [], {}, {}
    for m in MODES:
        port = free_port()
        gw, admins[f"weft-{m}"] = wf.gateway(procs, weft, control, port, name=f"weft-tel-{m}", labels=f"bench=tel-{m},proxy=weft")
        e_port = free_port()
        eg, admins[f"envoy-{m}"] = peers.envoy_xds(procs, f"envoy-tel-{m}",
                                f'ROLE: gateway, PORT_OFFSET: "{e_port - 80}", LABELS: {{bench: tel-{m}, proxy: envoy}}',
                                control.xds)
        wait_port(e_port, f"envoy-tel-{m}", timeout=60, proc=eg)
        started += [gw, eg]
        paths[f"weft-{m}"] = ([gw.pid], port, peers.HOST, None)
        paths[f"envoy-{m}"] = ([eg.pid], e_port, peers.HOST, None)
    for name, (_, port, host, _) in paths.items():
        wait_served(port, host, name)
    out = in_rounds(procs, "telemetry", paths, args)
    # Each mode was in force: logs written, requests traced.
    for plane in ("weft", "envoy"):
        log = procs.tmp / f"{plane}.log"
        if not log.exists() or log.stat().st_size == 0:
            raise RuntimeError(f"{plane}'s gateway wrote no access log: the log mode measured nothing")
    if wf.counter(admins["weft-trace100"], "weft_spans_exported_total") + \
            wf.counter(admins["weft-trace100"], "weft_spans_dropped_total") == 0:
        raise RuntimeError("weft's gateway at 100% traced nothing")
    if envoy_stat(admins["envoy-trace100"], "tracing.random_sampling") == 0:
        raise RuntimeError("Envoy's gateway at 100% traced nothing")
    table = {}
    for name, m in out.items():
        plane, mode = name.split("-", 1)
        table[name] = {"mode": mode, **peers.versus(m, out[f"{plane}-off"])}
    res["telemetry"] = table
    for p in started:
        procs.stop(p)
    procs.stop(control.proc)


def envoy_stat(admin: int, suffix: str) -> int:
    """The sum of an Envoy's counters whose names end in `suffix`."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/stats?filter={suffix}", timeout=5) as r:
        text = r.read().decode()
    return sum(int(v) for k, v in (line.split(": ", 1) for line in text.splitlines() if ": " in line)
               if k.endswith(suffix) and v.strip().isdigit())


def lines(res: dict) -> list[str]:
    """The table's lines for the telemetry part."""
    t = res.get("telemetry")
    if not t:
        return []
    return [peers.side_by_side(f"telemetry {m:<8} one hop", t[f"weft-{m}"], t[f"envoy-{m}"]) for m in MODES]
