#!/usr/bin/env python3
"""How long the operator's commands take on a mesh of many proxies: a real
`weft control` with `--services` services, `--proxies` sidecars connected
to it (each with its admin port, as the commands reach them), then each
command run `--runs` times; prints the median and the slowest, in ms.
The target (issue 24): each answers in under a second on 100 proxies.

    python3 bench/ops.py [--proxies 100] [--services 100] [--runs 5] [--weft PATH]
"""

import argparse
import os
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from peers import ROOT, Procs, free_port
from weft import Control, scale_config, sidecar


def timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, env=env, timeout=60)
    took = (time.perf_counter() - start) * 1000
    # `weft check` exits 1 on a failure; anything else that fails is a bench error.
    if out.returncode not in (0, 1) or (out.returncode == 1 and cmd[1] != "check"):
        raise RuntimeError(f"{' '.join(cmd)}: {out.stderr.decode()[-500:]}")
    return took


def fetch_ms(url: str, token: str) -> float:
    start = time.perf_counter()
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        r.read()
    return (time.perf_counter() - start) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--proxies", type=int, default=100)
    ap.add_argument("--services", type=int, default=100)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--weft", default=str(ROOT / "target/release/weft"))
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="weft-bench-ops-"))
    procs = Procs(tmp)
    try:
        cfg = tmp / "config"
        scale_config(cfg, a.services, 1)
        control = Control(procs, a.weft, cfg)
        for i in range(a.proxies):
            sidecar(procs, a.weft, control, f"client-{i}", free_port(), labels=f"app=client-{i}")
        version = control.version()
        start = time.time()
        while True:
            synced = [p for p in control.proxies() if p.get("synced", 0) >= version]
            if len(synced) >= a.proxies:
                break
            if time.time() - start > 300:
                raise RuntimeError(f"{len(synced)}/{a.proxies} proxies synced after 300 s")
            procs.check()
            time.sleep(0.2)
        api = f"127.0.0.1:{control.api}"
        env = {**os.environ, "WEFT_CONTROL": api, "WEFT_ADMIN_TOKEN_FILE": str(control.admin_token)}
        commands = {
            "weft status": [a.weft, "status"],
            "weft proxy-config client-7": [a.weft, "proxy-config", "client-7."],
            "weft check": [a.weft, "check"],
            "weft stat": [a.weft, "stat"],
            "weft describe svc-7": [a.weft, "describe", "svc-7"],
        }
        rows = []
        for name, cmd in commands.items():
            runs = [timed(cmd, env) for _ in range(a.runs)]
            rows.append((name, statistics.median(runs), max(runs)))
        for name, path in [("dashboard: /debug/health", "/debug/health"), ("dashboard: /debug/certs", "/debug/certs")]:
            runs = [fetch_ms(f"http://{api}{path}", control.token()) for _ in range(a.runs)]
            rows.append((name, statistics.median(runs), max(runs)))
        print(f"{a.proxies} proxies, {a.services} services; {a.runs} runs each")
        print(f"{'command':<34} {'median ms':>10} {'slowest ms':>11}")
        for name, med, worst in rows:
            print(f"{name:<34} {med:>10.0f} {worst:>11.0f}")
    finally:
        procs.stop_all()


if __name__ == "__main__":
    main()
