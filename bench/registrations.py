#!/usr/bin/env python3
"""Registration cost as the registry grows: register N instances one after
another against a real `weft control` and print the median latency of each
slice of them. Flat medians mean a registration costs the same at 16k
instances as at the first (no per-registration rebuild of the whole set).

    python3 bench/registrations.py [N] [--weft PATH]
"""

import argparse
import http.client
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from peers import free_port, wait_port


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("n", nargs="?", type=int, default=16000)
    ap.add_argument("--weft", default=str(Path(__file__).resolve().parent.parent / "target/release/weft"))
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        Path(d, "svc.yaml").write_text(
            "apiVersion: v1\nkind: Service\nmetadata: {name: reg}\nspec:\n  selector: {app: reg}\n  ports: [{name: http, port: 80}]\n")
        api, xds, tls = free_port(), free_port(), free_port()
        ca = Path(d, "ca")
        ctl = subprocess.Popen([a.weft, "control", "--config", d, "--api-addr", f"127.0.0.1:{api}",
                                "--xds-addr", f"127.0.0.1:{xds}", "--api-tls-addr", f"127.0.0.1:{tls}",
                                "--ca-dir", str(ca)], stderr=subprocess.DEVNULL)
        try:
            wait_port(api, "control API")
            conn = http.client.HTTPConnection("127.0.0.1", api)
            headers = {"content-type": "application/json", "host": f"127.0.0.1:{api}",
                       "authorization": "Bearer " + (ca / "admin-token").read_text().strip()}
            slice_ms, rows = [], []
            step = max(a.n // 8, 1)
            for i in range(a.n):
                body = json.dumps({"name": "reg", "address": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
                                   "port": 9080, "labels": {"app": "reg", "version": "v1"}, "ttlSeconds": 300})
                t = time.perf_counter()
                conn.request("POST", "/v1/instances", body, headers)
                r = conn.getresponse()
                r.read()
                slice_ms.append((time.perf_counter() - t) * 1000)
                if r.status != 200:
                    raise SystemExit(f"registration {i} refused: {r.status}")
                if (i + 1) % step == 0:
                    rows.append((i + 1, statistics.median(slice_ms), max(slice_ms)))
                    slice_ms = []
            print(f"{'instances':>10} {'p50 ms':>8} {'max ms':>8}")
            for n, p50, mx in rows:
                print(f"{n:>10} {p50:>8.3f} {mx:>8.2f}")
        finally:
            ctl.terminate()
            ctl.wait()


if __name__ == "__main__":
    main()
