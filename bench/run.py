#!/usr/bin/env python3
"""weft's benchmarks, side by side with a direct connection, Envoy, HAProxy
and nginx, in one run on one machine. What is measured and why is in
BENCHMARKS.md; `bench/run.py --quick` is the tiny run the test suite uses.
`--pgo` measures the profile-guided build (bench/pgo.py), the one the
published figures are of, with the plain release build beside it.

Prints a table, writes bench/results/latest.json and draws
bench/results/latest.png.
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent))
import orderfile  # noqa: E402
import peers  # noqa: E402
import pgo  # noqa: E402
import policies  # noqa: E402
import telemetry  # noqa: E402
import weft as wf  # noqa: E402
from peers import HOST, ROOT, Procs, cpu_seconds, cpu_times, free_port, private_kib, rss_kib, tool  # noqa: E402



def wrk(port: int, seconds: int, host: str = HOST) -> tuple[float, int]:
    """Requests/s and request count with wrk: 1 thread, 16 connections, HTTP/1.1 keep-alive."""
    out = subprocess.run([tool("wrk"), "-t1", "-c16", f"-d{seconds}s", "-H", f"Host: {host}", f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    n = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"wrk on :{port} got {errors.group(1)} error responses:\n{out}")
    return rps, n


def h2load(port: int, seconds: int) -> tuple[float, int]:
    """Requests/s over HTTP/2 (h2c prior knowledge): 1 thread, 16 connections, 10 streams each."""
    out = subprocess.run([tool("h2load"), "-t1", "-c16", "-m10", "-D", str(seconds), "--warm-up-time=1",
                          "-H", f":authority: {HOST}", f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))
    m = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    if m and m.group(1) != m.group(2):
        raise RuntimeError(f"h2load on :{port}: {m.group(0)}\n{out}")
    return rps, int(m.group(2)) if m else 0


QUANTILES = ("p50", "p90", "p99")


def oha(port: int, seconds: int, rate: int, host: str = HOST) -> dict:
    """Latency percentiles (ms) at a fixed rate, 16 connections, corrected for coordinated omission."""
    out = subprocess.run([tool("oha"), "-z", f"{seconds}s", "-q", str(rate), "-c", "16", "--latency-correction",
                          "--no-tui", "--output-format", "json", "-H", f"Host: {host}", f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, check=True).stdout
    j = json.loads(out)
    p = j["latencyPercentiles"]
    codes = j.get("statusCodeDistribution", {})
    bad = {k: v for k, v in codes.items() if k != "200"}
    if bad:
        raise RuntimeError(f"oha on :{port} got non-200 responses: {bad}")
    return {k: p[k] * 1000 for k in QUANTILES}


def with_cpu(pids: list[int], f):
    """Runs f(); returns its result and the user and kernel CPU seconds
    `pids` used meanwhile."""
    before = [cpu_times(p) for p in pids]
    r = f()
    after = [cpu_times(p) for p in pids]
    return r, tuple(sum(a[i] - b[i] for a, b in zip(after, before)) for i in (0, 1))


def in_rounds(procs: Procs, section: str, targets: dict, args) -> dict:
    """Measures every target in turn, `args.rounds` times: the machine's
    drift (the load generator, backend and proxy share two cores with
    whatever else runs) then spreads over all targets instead of landing on
    one. `targets`: name → (pids, port, host, HTTP/2 port or None). A round
    runs wrk on every target (counting the pids' CPU), then h2load on those
    with an HTTP/2 port, then oha: the same measurement of two targets is
    seconds apart, inside one of the kernel's slow or fast phases (which
    last seconds; see BENCHMARKS.md), rather than a whole round apart. Odd
    rounds go through the targets in reverse order, so that none always
    follows the same one. Returns per target the medians, the CPU seconds
    per 1000 requests (None without pids) and every round's figures."""
    runs = {name: {"h1": [], "h2": [], "latency_ms": [], "cpu_s": [0.0, 0.0], "requests": 0,
                   "cpu_s_h2": [0.0, 0.0], "requests_h2": 0} for name in targets}
    order = list(targets)
    for r in range(args.rounds):
        names = order if r % 2 == 0 else order[::-1]
        head = f"  {section:<8} round {r + 1}/{args.rounds}"
        for name in names:
            pids, port, host, _ = targets[name]
            run = runs[name]
            (rps, n), (user, kernel) = with_cpu(pids, lambda: wrk(port, args.duration, host=host))
            run["h1"].append(rps)
            run["cpu_s"][0] += user
            run["cpu_s"][1] += kernel
            run["requests"] += n
            procs.check()  # a proxy that died shows its log, not a load generator's error
            print(f"{head}  {name:<8} h1 {rps:>9.0f} rps", flush=True)
        for name in names:
            if port2 := targets[name][3]:
                (rps, n), (user, kernel) = with_cpu(targets[name][0], lambda: h2load(port2, args.duration))
                runs[name]["h2"].append(rps)
                runs[name]["cpu_s_h2"][0] += user
                runs[name]["cpu_s_h2"][1] += kernel
                runs[name]["requests_h2"] += n
                procs.check()
                print(f"{head}  {name:<8} h2 {runs[name]['h2'][-1]:>9.0f} rps", flush=True)
        for name in names:
            _, port, host, _ = targets[name]
            runs[name]["latency_ms"].append(oha(port, args.duration, args.rate, host=host))
            procs.check()
            print(f"{head}  {name:<8} p99@{args.rate} {runs[name]['latency_ms'][-1]['p99']:.3f} ms", flush=True)
    def summary(name: str, run: dict) -> dict:
        # Where the CPU goes: a proxy's own work (user) and the loopback TCP
        # it drives (kernel), µs a request; None for a target without pids.
        split = [c / run["requests"] * 1e6 for c in run["cpu_s"]] if targets[name][0] else None
        # HTTP/2 at 16 x 10 streams keeps a proxy's one thread busy, so its
        # throughput is this CPU a request, which is the steadier number.
        split_h2 = [c / run["requests_h2"] * 1e6 for c in run["cpu_s_h2"]] if targets[name][0] and run["requests_h2"] else None
        return {"h1": median(run["h1"]), "h2": median(run["h2"]) if run["h2"] else None,
                "latency_ms": {q: median(x[q] for x in run["latency_ms"]) for q in QUANTILES},
                "cpu_s_per_1000_req": sum(split) / 1000 if split else None,
                "cpu_us_per_req_user_kernel": split,
                "cpu_us_per_h2_req_user_kernel": split_h2,
                "rounds": {k: run[k] for k in ("h1", "h2", "latency_ms") if run[k]}}
    return {name: summary(name, run) for name, run in runs.items()}


def paired_p99(rounds: dict, peer: str) -> dict:
    """Each target's p99 against `peer`'s, round by round: the two ran
    seconds apart in every round, so the machine's slow and fast phases
    (which decide a p99 as much as the proxy does) fall on both alike more
    often than on two medians of separate rounds. How many rounds it was
    lower in, and the median of the per-round differences (ms)."""
    out = {}
    for name, r in rounds.items():
        if name in (peer, "direct"):
            continue
        d = [a["p99"] - b["p99"] for a, b in zip(r["latency_ms"], rounds[peer]["latency_ms"])]
        out[name] = {"lower_rounds": sum(x < 0 for x in d), "rounds": len(d), "median_difference_ms": median(d)}
    return out


def one_hop(procs: Procs, weft: str, args, res: dict) -> None:
    backend, backend_h2, control = wf.one_hop_control(procs, weft)
    targets = {}
    targets["direct"] = (None, backend, backend_h2)
    wp = free_port()
    gw, _ = wf.gateway(procs, weft, control, wp)
    targets["weft"] = (gw, wp, wp)
    if args.baseline:  # the same code without PGO, side by side
        bp = free_port()
        targets["weft-plain"] = (wf.gateway(procs, args.baseline, control, bp, name="weft-plain")[0], bp, bp)
    ep = free_port()
    targets["envoy"] = (peers.envoy_static(procs, "envoy", ep, backend, free_port()), ep, ep)
    hp, hp2 = free_port(), free_port()
    targets["haproxy"] = (peers.haproxy(procs, hp, hp2, backend), hp, hp2)
    np_, np2 = free_port(), free_port()
    targets["nginx"] = (peers.nginx_proxy(procs, np_, np2, backend), np_, np2)
    for _, port, _ in targets.values():
        wrk(port, 1)  # warm up: connections pooled, pages touched
    res["idle_rss_kib"] = {k: rss_kib(p.pid) for k, (p, _, _) in targets.items() if p}
    out = in_rounds(procs, "one hop", {k: ([p.pid] if p else [], port, HOST, port2) for k, (p, port, port2) in targets.items()}, args)
    res["throughput_h1"] = {k: v["h1"] for k, v in out.items()}
    res["throughput_h2"] = {k: v["h2"] for k, v in out.items()}
    for key in ("cpu_s_per_1000_req", "cpu_us_per_req_user_kernel", "cpu_us_per_h2_req_user_kernel"):
        res[key] = {k: v[key] for k, v in out.items() if v[key] is not None}
    res["loaded_rss_kib"] = {k: rss_kib(p.pid) for k, (p, _, _) in targets.items() if p}
    lat = {k: v["latency_ms"] for k, v in out.items()}
    res["latency_ms"] = lat
    res["rounds"] = {k: v["rounds"] for k, v in out.items()}
    res["added_latency_ms"] = {k: {q: v[q] - lat["direct"][q] for q in v} for k, v in lat.items() if k != "direct"}
    res["p99_against_haproxy"] = paired_p99(res["rounds"], "haproxy")

    # The mesh path: client sidecar → server sidecar → backend, plaintext
    # and with mutual TLS (the certificates from weft's CA, Envoy's too).
    paths, mesh_procs = {}, []
    for tls, suffix in ((False, ""), (True, "-mtls")):
        service = "mesh-backend-tls" if tls else "mesh-backend"
        outbound, inbound = free_port(), free_port()
        server, s_admin = wf.sidecar(procs, weft, control, service, free_port(), app_port=backend, inbound=inbound,
                                     labels=f"app={service}", register=True, mtls=tls)
        client, c_admin = wf.sidecar(procs, weft, control, f"mesh-client{suffix}", outbound, mtls=tls)
        wf.wait_ready(s_admin, "server sidecar")
        wf.wait_ready(c_admin, "client sidecar")
        wait_served(outbound, service, f"mesh path{suffix}")
        if tls and wf.counter(s_admin, "weft_inbound_mtls_connections_total") == 0:
            raise RuntimeError("the mTLS mesh path's server sidecar served no mutual-TLS connection")
        e_server, e_client = free_port(), free_port()
        certs = [wf.mesh_cert(weft, control, f"envoy-{side}", procs.tmp / f"certs-{side}") if tls else None
                 for side in ("server", "client")]
        es = peers.envoy_static(procs, f"envoy-mesh-server{suffix}", e_server, backend, free_port(), tls_in=certs[0])
        ec = peers.envoy_static(procs, f"envoy-mesh-client{suffix}", e_client, e_server, free_port(), tls_out=certs[1])
        paths[f"weft{suffix}"] = ([client.pid, server.pid], outbound, service, None)
        paths[f"envoy{suffix}"] = ([ec.pid, es.pid], e_client, HOST, None)
        mesh_procs += [client, server, ec, es]
    for _, port, host, _ in paths.values():
        wrk(port, 1, host=host)
    res["mesh"] = {name: {"throughput_h1": m["h1"], "cpu_s_per_1000_req": m["cpu_s_per_1000_req"],
                          "latency_ms": m["latency_ms"],
                          "added_latency_ms": {q: m["latency_ms"][q] - lat["direct"][q] for q in QUANTILES},
                          "rss_kib": sum(rss_kib(p) for p in paths[name][0])}
                   for name, m in in_rounds(procs, "mesh", paths, args).items()}
    for p in mesh_procs + [gw] + [t[0] for t in targets.values() if t[0]]:
        procs.stop(p)
    procs.stop(control.proc)


def wait_served(port: int, host: str, what: str, timeout: float = 60.0) -> None:
    """Until a second of wrk through `port` for `host` succeeds: the
    server's registration and certificates have reached every proxy."""
    deadline = time.time() + timeout
    while True:
        try:
            wrk(port, 1, host=host)
            return
        except (RuntimeError, subprocess.CalledProcessError, AttributeError) as e:
            if time.time() > deadline:
                raise RuntimeError(f"{what} served nothing within {timeout}s") from e
            time.sleep(0.1)


def config_memory(procs: Procs, weft: str, args, res: dict) -> None:
    """RSS of a weft sidecar and of an Envoy with N services in their config."""
    out = {}
    for n in args.services:
        cfg = procs.tmp / f"mem-{n}"
        wf.scale_config(cfg, n, 1)
        control = wf.Control(procs, weft, cfg, name=f"control-mem-{n}")
        version = control.version()
        w, w_admin = wf.sidecar(procs, weft, control, f"mem-weft-{n}", free_port())
        e, _ = peers.envoy_xds(procs, f"mem-envoy-{n}", f'ROLE: sidecar, OUTBOUND_PORT: "{free_port()}"', control.xds)
        acked = control.wait_acked({f"sidecar~127.0.0.1~mem-weft-{n}.default", f"mem-envoy-{n}"}, version)
        time.sleep(1)  # let allocators settle
        out[n] = {"weft_rss_kib": rss_kib(w.pid), "envoy_rss_kib": rss_kib(e.pid), "seconds_to_ack": acked,
                  "weft_private_kib": private_kib(w.pid), "envoy_private_kib": private_kib(e.pid)}
        print(f"  memory   {n:>6} services: weft {out[n]['weft_rss_kib'] / 1024:.1f} MiB (private {out[n]['weft_private_kib'] / 1024:.1f}), "
              f"envoy {out[n]['envoy_rss_kib'] / 1024:.1f} MiB (private {out[n]['envoy_private_kib'] / 1024:.1f})", flush=True)
        for p in (w, e, control.proc):
            procs.stop(p)
    res["config_memory"] = out


def control_plane(procs: Procs, weft: str, args, res: dict) -> None:
    """Time from a config change to every proxy having applied it."""
    n_svc, n_ep, n_proxies = args.scale
    cfg = procs.tmp / "scale"
    wf.scale_config(cfg, n_svc, n_ep)
    control = wf.Control(procs, weft, cfg, name="control-scale")
    version = control.version()
    ids = set()
    for i in range(n_proxies):
        wf.sidecar(procs, weft, control, f"scale-{i}", free_port())
        ids.add(f"sidecar~127.0.0.1~scale-{i}.default")
    initial = control.wait_acked(ids, version, timeout=600)
    time.sleep(1)
    cpu0 = cpu_seconds(control.proc.pid)
    # The change: one more endpoint for one service.
    (cfg / "change.yaml").write_text(wf.entry_yaml("svc-0-extra", "svc-0", 19999))
    start = time.time()
    while control.version() == version:
        time.sleep(0.002)
    reloaded = time.time() - start
    applied = control.wait_acked(ids, version + 1, timeout=600, types=("ClusterLoadAssignment",)) + reloaded
    out = {"services": n_svc, "endpoints": n_svc * n_ep, "proxies": n_proxies, "initial_push_s": initial, "config_reloaded_s": reloaded,
           "change_applied_by_all_s": applied, "control_cpu_s_for_change": cpu_seconds(control.proc.pid) - cpu0,
           "control_rss_kib": rss_kib(control.proc.pid)}
    print(f"  control  {n_svc} services, {n_svc * n_ep} endpoints, {n_proxies} proxies: change applied by all in {applied:.3f} s (reload {reloaded:.3f} s), "
          f"control RSS {out['control_rss_kib'] / 1024:.0f} MiB", flush=True)
    res["control_plane"] = out


def table(res: dict) -> str:
    lines = []
    h1, h2 = res["throughput_h1"], res["throughput_h2"]
    lines.append(f"{'':<10}{'h1 rps':>10}{'÷direct':>9}{'h2 rps':>10}{'p50+':>8}{'p90+':>8}{'p99+':>8}{'cpu s/1k':>10}{'RSS idle':>10}{'RSS load':>10}")
    for k in h1:
        add = res["added_latency_ms"].get(k, {"p50": 0, "p90": 0, "p99": 0})
        cpu = res["cpu_s_per_1000_req"].get(k)
        idle = res["idle_rss_kib"].get(k)
        load = res["loaded_rss_kib"].get(k)
        lines.append(f"{k:<10}{h1[k]:>10.0f}{h1[k] / h1['direct']:>9.2f}{h2[k]:>10.0f}{add['p50']:>8.3f}{add['p90']:>8.3f}{add['p99']:>8.3f}"
                     f"{'-' if cpu is None else f'{cpu:.4f}':>10}{'-' if idle is None else f'{idle / 1024:.1f}M':>10}{'-' if load is None else f'{load / 1024:.1f}M':>10}")
    for w in (w for w in ("weft", "weft-plain") if w in h1):
        for t, proto in ((h1, "HTTP/1.1"), (h2, "HTTP/2")):
            lines.append(f"{w} ÷ haproxy {t[w] / t['haproxy']:.2f}   ÷ nginx {t[w] / t['nginx']:.2f}   ÷ envoy {t[w] / t['envoy']:.2f}   ({proto})")
    for w, p in res.get("p99_against_haproxy", {}).items():
        lines.append(f"p99 round by round, {w} against haproxy: lower in {p['lower_rounds']} of {p['rounds']} rounds, "
                     f"median difference {p['median_difference_ms']:+.3f} ms")
    split = res.get("cpu_us_per_req_user_kernel", {})
    if split:
        lines.append("CPU per HTTP/1.1 request, user + kernel µs: " + "   ".join(f"{k} {u:.1f} + {s:.1f}" for k, (u, s) in split.items()))
    split = res.get("cpu_us_per_h2_req_user_kernel", {})
    if split:
        lines.append("CPU per HTTP/2 request, user + kernel µs:   " + "   ".join(f"{k} {u:.1f} + {s:.1f}" for k, (u, s) in split.items()))
    for k, m in res["mesh"].items():
        lines.append(f"mesh path {k:<10} p99+ {m['added_latency_ms']['p99']:.3f} ms   cpu {m['cpu_s_per_1000_req']:.4f} s/1k req   RSS {m['rss_kib'] / 1024:.1f} MiB (both proxies)")
    lines += policies.lines(res)
    lines += telemetry.lines(res)
    for n, m in res["config_memory"].items():
        lines.append(f"{n:>6} services in config: weft {m['weft_rss_kib'] / 1024:.1f} MiB (private {m['weft_private_kib'] / 1024:.1f}), "
                     f"envoy {m['envoy_rss_kib'] / 1024:.1f} MiB (private {m['envoy_private_kib'] / 1024:.1f})")
    ns = sorted(res["config_memory"], key=int)
    if len(ns) > 1:
        lo, hi = res["config_memory"][ns[0]], res["config_memory"][ns[-1]]
        per = lambda k: (hi[k] - lo[k]) * 1024 / (int(ns[-1]) - int(ns[0]))  # noqa: E731
        lines.append(f"per service in config: weft {per('weft_rss_kib'):.0f} bytes, envoy {per('envoy_rss_kib'):.0f} bytes")
    c = res["control_plane"]
    lines.append(f"control plane: {c['services']} services / {c['endpoints']} endpoints / {c['proxies']} proxies: change applied by all in {c['change_applied_by_all_s']:.3f} s, "
                 f"{c['control_cpu_s_for_change']:.2f} CPU s, RSS {c['control_rss_kib'] / 1024:.0f} MiB")
    return "\n".join(lines)


def plot(res: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(2, 2, figsize=(12, 8))
    names = list(res["throughput_h1"])
    ax[0][0].bar(names, [res["throughput_h1"][n] / 1000 for n in names], color="#4477aa")
    ax[0][0].set_title("one hop, HTTP/1.1, 16 connections (k req/s)")
    ax[0][1].bar(names, [res["throughput_h2"][n] / 1000 for n in names], color="#66ccee")
    ax[0][1].set_title("one hop, HTTP/2 h2c, 16×10 streams (k req/s)")
    prox = [n for n in names if n != "direct"]
    for i, q in enumerate(QUANTILES):
        ax[1][0].bar([j + i * 0.27 for j in range(len(prox))], [res["added_latency_ms"][n][q] for n in prox], width=0.27, label=q)
    ax[1][0].set_xticks([j + 0.27 for j in range(len(prox))], prox)
    ax[1][0].set_title(f"added latency at {res['meta']['rate']} req/s (ms)")
    ax[1][0].legend()
    mem = res["config_memory"]
    ns = list(mem)
    ax[1][1].plot(ns, [mem[n]["weft_rss_kib"] / 1024 for n in ns], "o-", label="weft sidecar")
    ax[1][1].plot(ns, [mem[n]["envoy_rss_kib"] / 1024 for n in ns], "o-", label="Envoy")
    ax[1][1].set_title("RSS with N services in config (MiB)")
    ax[1][1].set_xscale("log")
    ax[1][1].legend()
    fig.suptitle(f"weft benchmarks, {res['meta']['machine']}, {res['meta']['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="tiny run (seconds) for the test suite")
    ap.add_argument("--duration", type=int, default=4, help="seconds per run of a measurement")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of runs over all targets; medians are reported")
    ap.add_argument("--rate", type=int, default=1000, help="requests/s for latency")
    ap.add_argument("--services", type=int, nargs="*", default=[1, 1000, 10000])
    ap.add_argument("--scale", type=int, nargs=3, default=[1000, 10, 100], metavar=("SERVICES", "ENDPOINTS_PER", "PROXIES"))
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results")
    ap.add_argument("--weft", help="the weft binary to measure (default target/release/weft, or with --pgo target/pgo/release/weft)")
    ap.add_argument("--pgo", action="store_true", help="measure the profile-guided build (bench/pgo.py builds it if missing) "
                    "and, one hop, the plain release build beside it as weft-plain")
    ap.add_argument("--baseline", help="another weft binary measured one hop beside --weft, as weft-plain")
    ap.add_argument("--parts", default="one-hop,policies,telemetry,memory,control", help="comma-separated subset to run")
    args = ap.parse_args()
    if args.quick:
        args.duration, args.rounds, args.rate, args.services, args.scale = 1, 1, 200, [1, 50], [20, 2, 3]
    plain = str(ROOT / "target/release/weft")
    if args.pgo:
        args.weft = args.weft or str(pgo.BINARY)
        args.baseline = args.baseline or plain
        if not Path(args.weft).exists():
            subprocess.run([sys.executable, str(ROOT / "bench/pgo.py")], check=True)
    args.weft = args.weft or plain
    if not Path(plain).exists() and plain in (args.weft, args.baseline):
        subprocess.run(["cargo", "build", "--release", "-p", "weft"], cwd=ROOT, check=True)
    build = pgo.provenance(args.weft)
    res = {"meta": {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{os.cpu_count()} cores, {platform.machine()}, Linux {platform.release()}",
                    "duration_s": args.duration, "rounds": args.rounds, "rate": args.rate, "quick": args.quick,
                    "weft": subprocess.run([args.weft, "--version"], capture_output=True, text=True).stdout.strip(),
                    "code_layout": orderfile.coverage(args.weft), "build": build, "baseline": args.baseline}}
    print(f"weft: {args.weft} ({build['kind']}{', ' + build['warning'] if build.get('warning') else ''})")
    lay = res["meta"]["code_layout"]
    print(f"code layout: {lay['found']} of the {lay['listed']} functions in crates/cli/weft.order are in this binary"
          + (" (rerun bench/orderfile.py)" if lay["found"] < 0.8 * lay["listed"] else ""))
    with tempfile.TemporaryDirectory(prefix="weft-bench-") as tmp:
        procs = Procs(Path(tmp))
        try:
            parts = args.parts.split(",")
            if "one-hop" in parts:
                one_hop(procs, args.weft, args, res)
            if "policies" in parts:
                policies.run(procs, args.weft, args, res, in_rounds, wait_served)
            if "telemetry" in parts:
                telemetry.run(procs, args.weft, args, res, in_rounds, wait_served)
            if "memory" in parts:
                config_memory(procs, args.weft, args, res)
            if "control" in parts:
                control_plane(procs, args.weft, args, res)
        finally:
            procs.stop_all()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(res, indent=2))
    if set(parts) >= {"one-hop", "memory", "control"}:  # the table needs every part
        print("\n" + table(res))
        plot(res, args.out / "latest.png")
    print(f"\nwrote {args.out / 'latest.json'} and {args.out / 'latest.png'}")


if __name__ == "__main__":
    main()
