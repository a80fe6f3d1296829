#!/usr/bin/env python3
"""Builds weft with profile-guided optimisation (PGO) into
target/pgo/release/weft: the build the benchmarks measure as `weft`.

Why: the compiler lays out, inlines and orders branches for the paths
requests actually take. On the one-hop HTTP/1.1 request path that is ~26%
fewer instructions and ~24% less user CPU than `cargo build --release`
(BENCHMARKS.md, "Profile-guided build").

How:
 1. an instrumented build (`-Cprofile-generate`, in target/pgo-gen);
 2. `orderfile.exercise` with it: a control plane, a gateway and two
    sidecars, HTTP/1.1 and HTTP/2 through the gateway and the mesh path,
    a tenth as much through regex routes with faults, retries and
    mirroring, the mesh path over mutual TLS, a tcp port and new
    connections, idle timers; every process
    writes its counts when it stops;
 3. `llvm-profdata merge` of those counts into target/pgo/weft-<hash>.profdata;
 4. the release build again with `-Cprofile-use` (in target/pgo). The
    profile's hash is in its name, so a new profile rebuilds every crate
    (cargo tracks the flag, not the file).
The flags are added to the ones .cargo/config.toml sets (`--config`).

Needs llvm-profdata of the LLVM major version rustc uses (`rustc -vV`):
bench/setup installs Debian's `llvm-<major>`; rustup's `llvm-tools`
component works too. ~10 minutes on 2 cores.
"""

import argparse
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import orderfile  # noqa: E402
from peers import ROOT, Procs  # noqa: E402

GEN = ROOT / "target/pgo-gen"
USE = ROOT / "target/pgo"
BINARY = USE / "release/weft"
STAMP = USE / "release/weft.pgo.json"


@functools.cache
def rustc_facts() -> tuple[str, int, str]:
    """rustc's host triple, LLVM major version and sysroot."""
    vv = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
    host = re.search(r"^host: (\S+)", vv, re.M).group(1)
    major = int(re.search(r"^LLVM version: (\d+)", vv, re.M).group(1))
    sysroot = subprocess.run(["rustc", "--print", "sysroot"], capture_output=True, text=True, check=True).stdout.strip()
    return host, major, sysroot


def profdata_tool() -> str:
    """An llvm-profdata that reads what rustc's LLVM writes (same major)."""
    host, major, sysroot = rustc_facts()
    candidates = [f"/usr/lib/llvm-{major}/bin/llvm-profdata", f"{sysroot}/lib/rustlib/{host}/bin/llvm-profdata",
                  shutil.which(f"llvm-profdata-{major}"), shutil.which("llvm-profdata")]
    for c in filter(None, candidates):
        if not os.access(c, os.X_OK):
            continue
        out = subprocess.run([c, "--version"], capture_output=True, text=True).stdout
        if re.search(rf"LLVM version {major}\.", out):
            return c
    raise SystemExit(f"bench/pgo.py: no llvm-profdata for LLVM {major} (the version rustc uses). Install it with "
                     f"`apt-get install llvm-{major}` (bench/setup does) or `rustup component add llvm-tools`.")


def build(target_dir: Path, flag: str) -> Path:
    """`cargo build --release -p weft` into `target_dir` with one more rustc flag."""
    host, _, _ = rustc_facts()
    subprocess.run(["cargo", "build", "--release", "-p", "weft", "--config", f"target.{host}.rustflags=[{json.dumps(flag)}]"],
                   cwd=ROOT, check=True, env={**os.environ, "CARGO_TARGET_DIR": str(target_dir)})
    return target_dir / "release/weft"


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def source_tree() -> str:
    """A digest of what the build reads (the crates but their tests and
    benches, the manifests, cargo's config) as the checkout has them now,
    committed or not: `git stash create` records them without touching the
    checkout, and prints nothing when there is nothing to record."""
    listing = git("ls-tree", "-r", git("stash", "create") or "HEAD", "crates", "Cargo.toml", "Cargo.lock", ".cargo")
    kept = [line for line in listing.splitlines() if not re.search(r"^crates/[^/]+/(tests|benches)/", line.split("\t")[-1])]
    return hashlib.sha256("\n".join(kept).encode()).hexdigest()[:16]


def provenance(binary: str) -> dict:
    """What the benchmark measures: this script's build (the commit it was
    built on, and a warning when the sources have changed since) or a plain
    one."""
    if Path(binary).resolve() != BINARY.resolve() or not STAMP.exists():
        return {"kind": "not bench/pgo.py's build"}
    stamp = json.loads(STAMP.read_text())
    out = {"kind": "profile-guided build", **stamp}
    if stamp.get("tree") != source_tree():
        out["warning"] = f"built on {stamp['commit'][:8]}, and the sources have changed since: rerun bench/pgo.py"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=100_000, help="per protocol and path in the training run")
    ap.add_argument("--idle", type=float, default=5, help="seconds the proxies idle before they stop")
    args = ap.parse_args()
    tool = profdata_tool()  # before ten minutes of building, not after
    tree = source_tree()  # what is built: edits made meanwhile make it stale
    started = time.time()

    with tempfile.TemporaryDirectory(prefix="weft-pgo-") as tmp:
        tmp = Path(tmp)
        # Build scripts are instrumented too and write their counts there as
        # they run (a fixed path: the flag is part of what cargo compares to
        # decide what to rebuild); the training run's counts go to `raw`.
        instrumented = build(GEN, f"-Cprofile-generate={GEN / 'build-scripts'}")
        raw = tmp / "raw"
        raw.mkdir()
        os.environ["LLVM_PROFILE_FILE"] = str(raw / "weft-%p-%m.profraw")
        procs = Procs(tmp)
        try:
            orderfile.exercise(procs, str(instrumented), args.requests, args.idle)
        finally:
            procs.stop_all()
            del os.environ["LLVM_PROFILE_FILE"]
        counts = sorted(raw.glob("*.profraw"))
        if len(counts) < 4:  # a process that does not exit cleanly writes none
            logs = "".join(f"\n--- {name}:\n{(tmp / f'{name}.log').read_text()[-600:]}" for name, _ in procs.procs)
            raise SystemExit(f"bench/pgo.py: {len(counts)} processes wrote counts, expected 4 (the control plane, "
                             f"the gateway, two sidecars); one did not exit cleanly. Their logs:{logs}")
        merged = tmp / "merged.profdata"
        subprocess.run([tool, "merge", "-o", str(merged), *map(str, counts)], check=True)
        digest = hashlib.sha256(merged.read_bytes()).hexdigest()[:12]
        USE.mkdir(parents=True, exist_ok=True)
        for old in USE.glob("weft-*.profdata"):
            old.unlink()
        profile = USE / f"weft-{digest}.profdata"
        shutil.move(merged, profile)

    binary = build(USE, f"-Cprofile-use={profile}")
    STAMP.write_text(json.dumps({"commit": git("rev-parse", "HEAD"), "tree": tree, "profile": profile.name,
                                 "requests": args.requests, "date": time.strftime("%Y-%m-%d %H:%M")}, indent=2))
    print(f"bench/pgo.py: built {binary} in {time.time() - started:.0f} s (profile {profile.name})")


if __name__ == "__main__":
    main()
