#!/usr/bin/env python3
"""Regenerates crates/cli/weft.order, the order in which the linker lays out
the functions weft runs (`--symbol-ordering-file`, see crates/cli/build.rs).

Why: a process's resident code is not the code it runs but the pages that
code touches, and the kernel maps 64 KiB around every page fault. The
functions a sidecar runs are spread over the whole 11 MB of text, so an idle
sidecar kept ~6.4 MiB of it resident. Laid out together, first, they fit in
a fraction of that (BENCHMARKS.md has the figures).

How: a gateway, a server sidecar (registered, inbound) and a client sidecar
run under callgrind against the same control plane; HTTP/1.1 and HTTP/2
requests go through the gateway and the mesh path, fewer through the
training's routes (regexes, faults, retries, mirroring), a tcp port and
new connections, then the proxies idle (timers, health) and stop. Every
weft function that ran is listed, the most instructions first, so the
request path sits together at the front.

Needs valgrind and h2load (bench/setup installs both). Run it from a
release build: `cargo build --release && bench/orderfile.py`, then rebuild;
with the profile-guided build too (which inlines differently, so names
differ): `bench/orderfile.py --weft target/pgo/release/weft --weft
target/release/weft`, then rebuild both. Symbols of changed code drift out
of the list over time (the linker skips names it does not find); rerun
after large changes.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import weft as wf  # noqa: E402
from peers import HOST, ROOT, Procs, free_port, tool  # noqa: E402

ORDER = ROOT / "crates/cli/weft.order"


def callgrind(out: Path) -> tuple:
    """The prefix that runs a proxy under callgrind, writing `out`."""
    return ("valgrind", "--tool=callgrind", "--demangle=no", f"--callgrind-out-file={out}")


def h2load(port: int, n: int, host: str, h1: bool, path: str = "/", ip: str = "127.0.0.1",
           headers: tuple = (), aborts: bool = False, streams: int = 2, conns: int = 4) -> None:
    """`n` requests, `conns` connections × `streams` (on HTTP/1.1, requests
    pipelined), every one answered with a 2xx, or with `aborts` (a route
    with fault injection) answered with any status: h2load counts a 5xx as
    failed, and at a small `n` even a rare abort would fail the run."""
    args = ["--h1"] if h1 else []
    for h in headers:
        args += ["-H", h]
    r = subprocess.run(["h2load", *args, "-n", str(n), f"-c{conns}", f"-m{streams}", "-H", f":authority: {host}",
                        f"http://{ip}:{port}{path}"],
                       capture_output=True, text=True, timeout=300)
    ok = re.search(r"(\d+) done, (\d+) succeeded, \d+ failed, (\d+) errored", r.stdout)
    if not ok or int(ok.group(1 if aborts else 2)) != n or int(ok.group(3)) != 0:
        raise RuntimeError(f"h2load through {ip}:{port}{path} ({host}): {r.stdout[-600:]}")


def new_connections(port: int, n: int, host: str, ip: str = "127.0.0.1") -> None:
    """`n` HTTP/1.1 requests, each on a connection of its own (oha), 4 at a time."""
    r = subprocess.run([tool("oha"), "-n", str(n), "-c", "4", "--disable-keepalive", "--no-tui", "--output-format", "json",
                        "-H", f"Host: {host}", f"http://{ip}:{port}/"], capture_output=True, text=True, timeout=300)
    codes = json.loads(r.stdout).get("statusCodeDistribution", {}) if r.returncode == 0 else {}
    if codes.get("200") != n:
        raise RuntimeError(f"oha through {ip}:{port} ({host}): {codes or r.stderr[-600:]}")


def self_costs(path: Path) -> dict[str, int]:
    """Instructions each function ran itself (not in its callees), by mangled name."""
    names, cost = {}, {}
    current, after_call = None, False
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("fn="):
            m = re.match(r"fn=\((\d+)\)(?: (.*))?", line)
            if m.group(2):
                names[m.group(1)] = m.group(2)
            current = names.get(m.group(1))
            after_call = False
        elif line.startswith("cfn="):
            m = re.match(r"cfn=\((\d+)\)(?: (.*))?", line)
            if m and m.group(2):
                names[m.group(1)] = m.group(2)
        elif line.startswith("calls="):
            after_call = True
        elif line[:1].isdigit() or line[:1] in "+-*":
            if after_call:
                after_call = False  # the call's inclusive cost, not this function's
            elif current is not None:
                parts = line.split()
                if len(parts) > 1:
                    cost[current] = cost.get(current, 0) + int(parts[1])
    return cost


def text_symbols(binary: Path) -> dict[str, int]:
    """The binary's function symbols and their sizes."""
    out = subprocess.run(["nm", "-S", "--defined-only", str(binary)], capture_output=True, text=True, check=True).stdout
    syms = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "tTwW":
            syms[parts[3]] = int(parts[1], 16)
    return syms


def coverage(binary: str, order: Path = ORDER) -> dict:
    """How many of the order file's functions the binary has (the linker
    skips the rest): below ~80%, rerun this script. (Written from both the
    PGO and the plain build, it lists names each has alone: each finds
    ~85-90% of them when fresh.)"""
    listed = order.read_text().split() if order.exists() else []
    syms = text_symbols(Path(binary))
    return {"listed": len(listed), "found": sum(1 for n in listed if n in syms)}


def until_routed(outbound: int, host: str, ip: str) -> None:
    """Waits until a server sidecar's registration has reached the client."""
    deadline = time.time() + 120
    while True:
        try:
            h2load(outbound, 10, host, True, ip=ip)
            return
        except RuntimeError:
            if time.time() > deadline:
                raise
            time.sleep(0.5)


def exercise(procs: Procs, weft: str, requests: int, idle: float, prefix=lambda name: ()) -> None:
    """The workload weft's release build is laid out and tuned on (this
    file's function order, bench/pgo.py's profile): a gateway, a server
    sidecar (registered, inbound) and a client sidecar against one control
    plane; `requests` HTTP/1.1 and then HTTP/2 requests through the gateway
    and through the mesh path; a tenth as many through each of the
    training's routes, the mesh path over mutual TLS (a second pair of
    sidecars), a tcp port's splice and new connections; `idle`
    seconds of timers, health and outlier sweeps; then every weft process
    stops gracefully (a profile is written at exit). `prefix(name)` runs that proxy under a tool (callgrind)."""
    # One more service: what the idle-memory benchmark's sidecar gets.
    tcp = free_port()
    backend, _, control = wf.one_hop_control(procs, weft, extra_services=1, train_tcp=tcp)
    gw_port, outbound = free_port(), free_port()
    gw, gw_admin = wf.gateway(procs, weft, control, gw_port, prefix=prefix("gateway"))
    server, s_admin = wf.sidecar(procs, weft, control, "mesh-backend", free_port(), app_port=backend,
                                 labels="app=mesh-backend", register=True, prefix=prefix("server"))
    # The client on an address of its own: both sidecars listen on the tcp port.
    client_ip = "127.0.0.2"
    client, c_admin = wf.sidecar(procs, weft, control, "mesh-client", outbound, prefix=prefix("client"),
                                 listen_ip=client_ip)
    # The mesh path over mutual TLS, each sidecar on an address of its own.
    tls_server, ts_admin = wf.sidecar(procs, weft, control, "mesh-backend-tls", free_port(), app_port=backend,
                                      labels="app=mesh-backend-tls", register=True, prefix=prefix("server-mtls"),
                                      listen_ip="127.0.0.4", mtls=True)
    tls_client_ip = "127.0.0.3"
    tls_client, tc_admin = wf.sidecar(procs, weft, control, "mesh-client-tls", tls_outbound := free_port(),
                                      prefix=prefix("client-mtls"), listen_ip=tls_client_ip, mtls=True)
    for admin in (gw_admin, s_admin, c_admin, ts_admin, tc_admin):
        wf.wait_ready(admin, "proxy", timeout=300)
    for h1 in (True, False):
        h2load(gw_port, requests, HOST, h1)
    until_routed(outbound, "mesh-backend", client_ip)
    until_routed(tls_outbound, "mesh-backend-tls", tls_client_ip)
    for h1 in (True, False):
        h2load(outbound, requests, "mesh-backend", h1, ip=client_ip)
    # What users run besides the plain route, a tenth as often each: the
    # training's routes (bench/weft.py training_config) over both protocols,
    # a tcp port's splice, and connections opened per request.
    few = max(requests // 10, 10)
    for h1 in (True, False):
        h2load(gw_port, few, wf.TRAIN_HOST, h1, path="/fault/a1", headers=("x-train: fault",), aborts=True)
        h2load(gw_port, few, wf.TRAIN_HOST, h1, path="/retry/b2")
        h2load(gw_port, few, wf.TRAIN_HOST, h1, path="/mirror")
    for h1 in (True, False):
        h2load(tls_outbound, few, "mesh-backend-tls", h1, ip=tls_client_ip)
    h2load(tcp, few, HOST, True, ip=client_ip)
    new_connections(gw_port, few, HOST)
    new_connections(tcp, few, HOST, ip=client_ip)
    time.sleep(idle)
    for p in (gw, server, client, tls_server, tls_client):
        os.killpg(p.pid, signal.SIGTERM)
    for p in (gw, server, client, tls_server, tls_client):
        p.wait(timeout=120)
    procs.stop(control.proc)


def ran_functions(weft: str, requests: int, idle: float) -> list[str]:
    """The weft functions `exercise` ran in `weft`'s proxies, the most
    instructions first."""
    with tempfile.TemporaryDirectory(prefix="weft-order-") as tmp:
        tmp = Path(tmp)
        procs = Procs(tmp)
        try:
            exercise(procs, weft, requests, idle, prefix=lambda name: callgrind(tmp / f"cg-{name}.out"))
        finally:
            procs.stop_all()
        cost: dict[str, int] = {}
        for out in tmp.glob("cg-*.out"):
            for name, c in self_costs(out).items():
                cost[name] = cost.get(name, 0) + c
    syms = text_symbols(Path(weft))
    return sorted((n for n in cost if n in syms), key=lambda n: (-cost[n], n))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weft", action="append", help="a weft binary to record (default target/release/weft); given twice "
                    "(the PGO build and the plain one), the first one's functions come first, then the second's others")
    ap.add_argument("--out", default=str(ORDER))
    ap.add_argument("--requests", type=int, default=2000, help="per protocol and path")
    ap.add_argument("--idle", type=float, default=12, help="seconds the proxies idle before they stop")
    args = ap.parse_args()
    order: list[str] = []
    for weft in args.weft or [str(ROOT / "target/release/weft")]:
        ran = ran_functions(weft, args.requests, args.idle)
        listed = set(order)
        order += [n for n in ran if n not in listed]
        syms = text_symbols(Path(weft))
        size = sum(syms[n] for n in ran)
        print(f"{weft}: {len(ran)} functions ran ({size / 1024:.0f} KiB of {sum(syms.values()) / 1024:.0f} KiB of functions)")
    Path(args.out).write_text("".join(f"{n}\n" for n in order))
    print(f"wrote {len(order)} names to {args.out}")


if __name__ == "__main__":
    main()
