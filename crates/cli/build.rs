//! Lays out the functions weft runs first and together, in the order of
//! `weft.order` (written by `bench/orderfile.py`): a process's resident code
//! is the pages its functions touch (and the kernel maps 64 KiB around each
//! fault), so scattered over the whole text they kept ~6.3 MiB of an idle
//! sidecar resident; together, ~2.1 MiB (BENCHMARKS.md, "Idle memory").
//!
//! Release builds for x86_64 Linux only, and only when rustc links with its
//! own lld (the default since Rust 1.90; other linkers do not take the
//! option). `WEFT_LINK_ORDER=0` keeps the default layout.

use std::{env, path::PathBuf, process::Command};

fn main() {
    println!("cargo:rerun-if-changed=weft.order");
    println!("cargo:rerun-if-env-changed=WEFT_LINK_ORDER");
    let var = |name: &str| env::var(name).unwrap_or_default();
    let order = PathBuf::from(var("CARGO_MANIFEST_DIR")).join("weft.order");
    let wanted = var("TARGET") == "x86_64-unknown-linux-gnu"
        && var("PROFILE") == "release"
        && var("WEFT_LINK_ORDER") != "0"
        && order.exists();
    if wanted && links_with_rust_lld() {
        // Names this build no longer has (changed code) are skipped.
        println!(
            "cargo:rustc-link-arg-bin=weft=-Wl,--symbol-ordering-file={},--no-warn-symbol-ordering",
            order.display()
        );
    }
}

/// No linker chosen by configuration (cargo's `linker` setting, rustflags),
/// and the toolchain ships the lld rustc then links with.
fn links_with_rust_lld() -> bool {
    if env::var_os("RUSTC_LINKER").is_some() || env::var("CARGO_ENCODED_RUSTFLAGS").is_ok_and(|f| f.contains("linker"))
    {
        return false;
    }
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).args(["--print", "sysroot"]).output() else {
        return false;
    };
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    PathBuf::from(sysroot).join("lib/rustlib/x86_64-unknown-linux-gnu/bin/gcc-ld/ld.lld").exists()
}
