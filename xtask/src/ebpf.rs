//! `cargo xtask build-ebpf` (placeholder until the eBPF crate lands).

pub fn build(_release: bool) -> anyhow::Result<()> {
    anyhow::bail!("the eBPF crate is not in this tree yet")
}

/// Builds the eBPF object before the tests when the crate is present (the eBPF tests need it).
pub fn build_for_tests() -> anyhow::Result<()> {
    if crate::root().join("neighsyncd-ebpf/Cargo.toml").exists() {
        build(true)
    } else {
        Ok(())
    }
}
