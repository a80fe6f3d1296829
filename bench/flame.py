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
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import weft as wf  # noqa: E402
from peers import HOST, ROOT, Procs, free_port, tool  # noqa: E402



def load(proto: str, port: int, seconds: int) -> subprocess.Popen:
    if proto == "h1":
        cmd = [tool("wrk"), "-t1", "-c16", f"-d{seconds}s", "-H", f"Host: {HOST}", f"http://127.0.0.1:{port}/"]
    else:
        cmd = [tool("h2load"), "-t1", "-c16", "-m10", "-D", str(seconds), "-H", f":authority: {HOST}", f"http://127.0.0.1:{port}/"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


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
    warm = load(proto, port, 1)
    warm.communicate(timeout=60)
    data = tmp / f"perf-{proto}.data"
    gen = load(proto, port, seconds + 2)
    time.sleep(0.5)
    subprocess.run(["perf", "record", "-e", "cpu-clock", "-F", "499", "--call-graph", "dwarf,16384", "-p", str(gw.pid),
                    "-o", str(data), "--", "sleep", str(seconds)], check=True, capture_output=True)
    text, _ = gen.communicate(timeout=seconds + 60)
    procs.stop(gw)
    if gen.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{text}")
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
