#!/usr/bin/env python3
"""What one request costs a proxy, counted rather than timed: instructions
(valgrind's callgrind) and syscalls (strace), per request, for the kinds of
request BENCHMARKS.md tables. Counts are steady on a noisy machine where
wall-clock numbers move ±10%, so this is how a change is judged before a
full `bench/run.py`.

The setup is the benchmark's one hop: nginx returning 1 KiB behind a
`weft gateway` with one worker, routing and request metrics on. For each
kind, the gateway is started under the tool, warmed up (its upstream
connections pooled), and only the measured requests are counted:
callgrind's counters are dumped before and after them (`callgrind_control`),
strace attaches for them alone. HAProxy, configured as in the benchmark,
gets the same syscall count beside it (`--peers haproxy`), and the same
instruction count with `--peers-instructions`. `--cache-sim` adds
callgrind's simulated cache misses a request (instructions alone miss
what a request costs in moved and cold data).

Kinds:
  h1       HTTP/1.1 keep-alive, h2load 4 connections, one request at a time each
  h2       HTTP/2 (h2c), h2load 4 connections x 2 streams
  h2-bench HTTP/2 at bench/run.py's concurrency, 16 connections x 10 streams:
           160 requests in flight, whose state no longer fits the first-level
           cache (not in the default kinds)
  h1-conn  HTTP/1.1, a connection per request (oha --disable-keepalive, 4 at a time)

Needs valgrind, strace, h2load and oha (bench/setup installs them). It prints
a table and writes JSON (`--out`).
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import weft as wf  # noqa: E402
from orderfile import h2load, new_connections  # noqa: E402
from peers import HOST, ROOT, Procs, free_port, haproxy  # noqa: E402

KINDS = ("h1", "h2", "h1-conn")
OPTIONAL_KINDS = ("h2-bench",)
WHAT = ("instructions", "syscalls")


def load(kind: str, port: int, n: int) -> None:
    """`n` requests of `kind` to `port` (the load generators of the PGO
    training); every one must succeed."""
    if kind == "h1-conn":
        new_connections(port, n, HOST)
    elif kind == "h2-bench":
        h2load(port, n, HOST, h1=False, streams=10, conns=min(16, n))  # h2load needs a request a connection
    else:
        h2load(port, n, HOST, h1=kind == "h1", streams=1 if kind == "h1" else 2)


def dump(pid: int, dir: Path) -> Path:
    """Dumps the callgrind counters of `pid` (which zeroes them) and returns
    the new dump's file."""
    before = set(dir.glob("cg.out*"))
    r = subprocess.run(["callgrind_control", "-d", str(pid)], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"callgrind_control could not dump pid {pid}: {(r.stdout + r.stderr)[-600:]}\n"
                           "It reaches the process through vgdb, which needs ptrace: run as root, or set "
                           "/proc/sys/kernel/yama/ptrace_scope to 0")
    deadline = time.time() + 60
    while time.time() < deadline:
        new = [p for p in set(dir.glob("cg.out*")) - before if "totals:" in p.read_text(errors="replace")[-4096:]]
        if new:
            return new[0]
        time.sleep(0.1)
    raise RuntimeError(f"callgrind wrote no dump for pid {pid}")


def dump_totals(path: Path) -> dict[str, int]:
    """A dump's totals by event (Ir, and with the cache simulation I1mr, D1mr...)."""
    text = path.read_text(errors="replace")
    events = re.search(r"^events: (.+)$", text, re.M)
    totals = re.search(r"^(?:totals|summary): ([\d ]+)$", text, re.M)
    if not events or not totals:
        raise RuntimeError(f"{path}: no events or totals line")
    counts = list(map(int, totals.group(1).split()))
    # Callgrind leaves trailing zero counts out of the line.
    return {e: counts[i] if i < len(counts) else 0 for i, e in enumerate(events.group(1).split())}


def instructions(procs: Procs, start, kind: str, n: int, warm: int, tmp: Path, keep: Path | None = None,
                 name: str = "", cache_sim: bool = False) -> dict:
    """Instructions a request of `kind` in the proxy `start(prefix)` starts,
    and with `cache_sim` the simulated cache misses a request (first-level
    instruction and data caches, last level). With `keep`, the measured
    requests' dump is copied there as `callgrind-<name>-<kind>.out` (for
    callgrind_annotate)."""
    d = tmp / f"cg-{kind}-{time.monotonic_ns()}"
    d.mkdir()
    tool_args = ("valgrind", "--tool=callgrind", f"--callgrind-out-file={d}/cg.out",
                 *(("--cache-sim=yes",) if cache_sim else ()))
    p, port = start(tool_args)
    try:
        load(kind, port, warm)
        dump(p.pid, d)
        load(kind, port, n)
        measured = dump(p.pid, d)
        if keep:
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(measured, keep / f"callgrind-{name}-{kind}.out")
        t = dump_totals(measured)
        out = {"instructions": round(t["Ir"] / n)}
        if cache_sim:
            out["cache_misses"] = {
                "I1": round(t["I1mr"] / n, 1),
                "D1": round((t["D1mr"] + t["D1mw"]) / n, 1),
                "LL": round((t["ILmr"] + t["DLmr"] + t["DLmw"]) / n, 1),
            }
        return out
    finally:
        procs.stop(p)


def syscalls(procs: Procs, start, kind: str, n: int, warm: int, tmp: Path) -> dict:
    """Syscalls a request of `kind`, in all and by name (the top ones)."""
    p, port = start(())
    try:
        load(kind, port, warm)
        out = tmp / f"strace-{kind}-{time.monotonic_ns()}.txt"
        st = subprocess.Popen(["strace", "-f", "-c", "-o", str(out), "-p", str(p.pid)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # Its first line says it has attached ("Process N attached with K threads").
        first = st.stderr.readline()
        if "attached" not in first:
            st.kill()
            raise RuntimeError(f"strace did not attach to {p.pid}: {first}{st.stderr.read()[-600:]}\n"
                               "strace -p needs ptrace: run as root, or set /proc/sys/kernel/yama/ptrace_scope to 0")
        load(kind, port, n)
        st.send_signal(2)
        _, err = st.communicate(timeout=60)
        err = first + err
        calls = {}
        for line in out.read_text().splitlines():
            parts = line.split()
            # % time, seconds, usecs/call, calls, [errors], syscall
            if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
                calls[parts[-1]] = int(parts[3])
        if not calls:
            raise RuntimeError(f"strace counted nothing: {err[-600:]}")
        total = sum(calls.values())
        top = sorted(calls.items(), key=lambda kv: -kv[1])
        return {"per_request": total / n, "by_name": {k: round(v / n, 3) for k, v in top if v / n >= 0.005}}
    finally:
        procs.stop(p)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weft", default=str(ROOT / "target/release/weft"))
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, of {', '.join(KINDS + OPTIONAL_KINDS)}")
    ap.add_argument("--requests", type=int, default=5000, help="measured requests of each kind")
    ap.add_argument("--warm", type=int, default=500, help="requests before the measured ones")
    ap.add_argument("--peers", default="haproxy", choices=("haproxy", ""),
                    help="'haproxy' or '' (none): syscalls counted beside weft's")
    ap.add_argument("--peers-instructions", action="store_true", help="count the peers' instructions too")
    ap.add_argument("--what", default=",".join(WHAT), help=f"comma-separated, of {', '.join(WHAT)}")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    ap.add_argument("--cache-sim", action="store_true", help="simulate the caches too (callgrind --cache-sim=yes): "
                    "misses a request in the first-level instruction and data caches and the last level")
    ap.add_argument("--policies", type=int, default=0, help="an ALLOW AuthorizationPolicy of this many rules on the "
                    "gateway, the last one matching (each request evaluates them all)")
    ap.add_argument("--access-log", action="store_true", help="the gateway writes an access log line a request "
                    "(Istio's JSON fields, to a file)")
    ap.add_argument("--tracing", type=float, help="the gateway traces this percentage of requests and reports their "
                    "spans over OTLP to a local receiver")
    ap.add_argument("--keep", type=Path, help="keep the callgrind dumps of the measured requests in this folder "
                    "(read them with callgrind_annotate --inclusive=yes)")
    args = ap.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    known = KINDS + OPTIONAL_KINDS
    if not kinds or not set(kinds) <= set(known):
        why = f"{', '.join(k for k in kinds if k not in known)} is not a kind of request" if kinds else "it is empty"
        sys.exit(f"--kinds {args.kinds!r}: {why}; use {', '.join(known)}, comma-separated")
    what = {w for w in args.what.split(",") if w}
    if not what or not what <= set(WHAT):
        why = f"{', '.join(sorted(what - set(WHAT)))} is not a count" if what else "it is empty"
        sys.exit(f"--what {args.what!r}: {why}; use {', '.join(WHAT)}, comma-separated")
    res: dict = {"meta": {"weft": args.weft, "requests": args.requests, "warm": args.warm, "policies": args.policies,
                          "access_log": args.access_log, "tracing": args.tracing},
                 "weft": {}, "haproxy": {}}
    with tempfile.TemporaryDirectory(prefix="weft-cost-") as tmp:
        tmp = Path(tmp)
        procs = Procs(tmp)
        try:
            backend, _, control = wf.one_hop_control(procs, args.weft, policies=args.policies,
                                                     access_log=args.access_log, tracing=args.tracing)

            def weft_gateway(prefix):
                port = free_port()
                p, admin = wf.gateway(procs, args.weft, control, port, prefix=prefix)
                wf.wait_ready(admin, "weft gateway", timeout=300)
                return p, port

            def haproxy_proxy(prefix):
                port = free_port()
                p = haproxy(procs, port, free_port(), backend, prefix=prefix)
                return p, port

            targets = {"weft": (weft_gateway, True)}
            if args.peers == "haproxy":
                targets["haproxy"] = (haproxy_proxy, args.peers_instructions)
            for kind in kinds:
                for name, (start, count_instructions) in targets.items():
                    r = res[name].setdefault(kind, {})
                    if "instructions" in what and count_instructions:
                        r.update(instructions(procs, start, kind, args.requests, args.warm, tmp, args.keep, name,
                                              args.cache_sim))
                    if "syscalls" in what:
                        r["syscalls"] = syscalls(procs, start, kind, args.requests, args.warm, tmp)
        finally:
            procs.stop_all()
    print(f"{'kind':8} {'target':8} {'instructions':>13} {'syscalls':>9}  by name")
    for kind in kinds:
        for name in ("weft", "haproxy"):
            r = res[name].get(kind)
            if not r:
                continue
            ins = f"{r['instructions']:,}" if "instructions" in r else "-"
            sc = r.get("syscalls")
            calls = f"{sc['per_request']:.2f}" if sc else "-"
            names = ", ".join(f"{k} {v:g}" for k, v in list(sc["by_name"].items())[:8]) if sc else ""
            print(f"{kind:8} {name:8} {ins:>13} {calls:>9}  {names}")
            if "cache_misses" in r:
                print(f"{'':8} {'':8} cache misses a request (simulated): " +
                      ", ".join(f"{k} {v:,}" for k, v in r["cache_misses"].items()))
    if args.out:
        args.out.write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
