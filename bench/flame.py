#!/usr/bin/env python3
"""Flame graphs of weft's request path: a gateway under load, sampled with
perf, drawn with inferno.

The setup is the benchmark's one hop (bench/run.py): nginx returning 1 KiB,
a `weft gateway` with one worker, routing and request metrics on, loaded
with wrk (HTTP/1.1, 16 connections) or h2load (HTTP/2, 16 connections × 10
streams). perf samples the gateway's CPU time (`cpu-clock`, DWARF call
stacks, so the release build needs no frame pointers); inferno folds the
stacks and draws `flame-h1.svg` / `flame-h2.svg`. It also prints where the
samples end (the leaf frame): the kernel, glibc, or which crate.

Needs perf (linux-perf) and inferno (`cargo install --locked inferno`);
bench/setup installs both.
"""

import argparse
import collections
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (the benchmark's own load generators)
import weft as wf  # noqa: E402
from peers import ROOT, Procs, free_port, tool  # noqa: E402


def leaf_owner(frame: str) -> str:
    """Who a sampled function belongs to: the kernel, a C library, or a crate."""
    if frame.endswith("_[k]"):
        return "kernel"
    if frame.startswith("[") or frame in ("", "[unknown]"):
        return "unknown"
    m = re.match(r"_*<?(?:<)?([a-z_][a-z0-9_]*)::", frame)
    if m:
        return m.group(1)
    return "libc and other C"


def profile(proto: str, weft: str, seconds: int, out: Path, procs: Procs, control: wf.Control, tmp: Path) -> dict:
    port = free_port()
    gw, _ = wf.gateway(procs, weft, control, port)
    load = run.wrk if proto == "h1" else run.h2load
    load(port, 1)  # warm up: connections pooled
    data = tmp / f"perf-{proto}.data"
    # perf samples for `seconds`; the load outlasts it by a second.
    perf = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "499", "--call-graph", "dwarf,16384",
                             "-p", str(gw.pid), "-o", str(data), "--", "sleep", str(seconds)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    load(port, seconds + 1)
    text, _ = perf.communicate(timeout=60)
    procs.stop(gw)
    if perf.returncode != 0:
        raise RuntimeError(f"perf record on the gateway (pid {gw.pid}) failed:\n{text}\n"
                           "perf must be installed (bench/setup) and allowed to sample other processes: "
                           "run as root, or set /proc/sys/kernel/perf_event_paranoid to 1 or less")
    script = subprocess.run(["perf", "script", "-i", str(data)], check=True, capture_output=True, text=True).stdout
    folded = subprocess.run([tool("inferno-collapse-perf"), "--all"], input=script, check=True, capture_output=True,
                            text=True).stdout
    title = f"weft gateway, one hop, {'HTTP/1.1 (wrk, 16 connections)' if proto == 'h1' else 'HTTP/2 (h2load, 16 x 10 streams)'}"
    svg = subprocess.run([tool("inferno-flamegraph"), "--title", title, "--width", "1600", "--minwidth", "1"], input=folded, check=True,
                         capture_output=True, text=True).stdout
    out.mkdir(parents=True, exist_ok=True)
    (out / f"flame-{proto}.svg").write_text(svg)
    owners: collections.Counter = collections.Counter()
    total = 0
    for line in folded.splitlines():
        stack, _, count = line.rpartition(" ")
        leaf = stack.rsplit(";", 1)[-1]
        owners[leaf_owner(leaf)] += int(count)
        total += int(count)
    # cpu-clock samples are weighted by their period, in nanoseconds.
    return {"cpu_s": total / 1e9, "leaf_share": {k: v / total for k, v in owners.most_common()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weft", default=str(ROOT / "target/release/weft"))
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--protocols", default="h1,h2")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="weft-flame-") as tmp:
        tmp = Path(tmp)
        procs = Procs(tmp)
        try:
            _, _, control = wf.one_hop_control(procs, args.weft)
            for proto in args.protocols.split(","):
                res = profile(proto, args.weft, args.seconds, args.out, procs, control, tmp)
                shares = ", ".join(f"{k} {v:.0%}" for k, v in list(res["leaf_share"].items())[:8])
                print(f"{proto}: {res['cpu_s']:.1f} CPU s sampled; where the time is spent (leaf frames): {shares}")
                print(f"  wrote {args.out / f'flame-{proto}.svg'}")
        finally:
            procs.stop_all()


if __name__ == "__main__":
    main()
