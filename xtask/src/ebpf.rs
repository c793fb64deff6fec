//! `cargo xtask build-ebpf`: the eBPF object, built with nightly for `bpfel-unknown-none`
//! (`-Z build-std=core`, linked by bpf-linker). The daemon's build script embeds it.

use std::process::Command;

pub fn build(release: bool) -> anyhow::Result<()> {
    let dir = crate::root().join("neighsyncd-ebpf");
    let mut cmd = Command::new("cargo");
    cmd.current_dir(&dir).args([
        "+nightly",
        "build",
        "--target",
        "bpfel-unknown-none",
        "-Z",
        "build-std=core",
    ]);
    if release {
        cmd.arg("--release");
    }
    // The outer cargo's toolchain must not leak into the nightly build.
    for var in [
        "RUSTC",
        "RUSTDOC",
        "RUSTUP_TOOLCHAIN",
        "CARGO",
        "RUSTC_WRAPPER",
        "CARGO_TARGET_DIR",
        "RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    eprintln!("xtask: {cmd:?} (in {})", dir.display());
    let st = cmd
        .status()
        .map_err(|e| anyhow::anyhow!("cargo +nightly: {e}"))?;
    anyhow::ensure!(
        st.success(),
        "building the eBPF object failed ({st}); it needs the nightly toolchain with rust-src and bpf-linker: run `sudo bash scripts/setup.sh`"
    );
    let obj = dir.join(format!(
        "target/bpfel-unknown-none/{}/neighsyncd",
        if release { "release" } else { "debug" }
    ));
    eprintln!("xtask: eBPF object at {}", obj.display());
    Ok(())
}

/// Builds the eBPF object before the tests (the eBPF tests need it embedded in the daemon).
pub fn build_for_tests() -> anyhow::Result<()> {
    build(true)
}
