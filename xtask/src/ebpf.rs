//! `cargo xtask build-ebpf` (placeholder until the eBPF crate lands).

pub fn build(_release: bool) -> anyhow::Result<()> {
    anyhow::bail!("the eBPF crate is not in this tree yet")
}
