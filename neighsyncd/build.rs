//! Embeds the eBPF object when `cargo xtask build-ebpf` has built it; without it the daemon
//! still builds, and `--source ebpf` explains what is missing.

use std::path::PathBuf;

fn main() {
    // The gRPC API, with a descriptor set for server reflection. Needs `protoc`
    // (Debian: protobuf-compiler; scripts/setup.sh installs it).
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    if let Err(e) = tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("neighsyncd_descriptor.bin"))
        .compile_protos(&["../proto/neighsyncd.proto"], &["../proto"])
    {
        panic!(
            "compiling proto/neighsyncd.proto failed (is protoc installed? sudo bash scripts/setup.sh): {e}"
        );
    }
    // Naming any file to watch turns off cargo's default (rerun when the package changes), and
    // the proto lives outside the package: say it, or an edited API compiles against the old.
    println!("cargo:rerun-if-changed=../proto/neighsyncd.proto");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(neighsyncd_ebpf)");
    println!("cargo:rerun-if-env-changed=NEIGHSYNCD_EBPF_OBJECT");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let obj = std::env::var_os("NEIGHSYNCD_EBPF_OBJECT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            manifest.join("../neighsyncd-ebpf/target/bpfel-unknown-none/release/neighsyncd")
        });
    println!("cargo:rerun-if-changed={}", obj.display());
    if obj.is_file() {
        println!("cargo:rustc-cfg=neighsyncd_ebpf");
        println!(
            "cargo:rustc-env=NEIGHSYNCD_EBPF_OBJECT_PATH={}",
            obj.display()
        );
    } else {
        println!(
            "cargo:warning=eBPF object not found at {}: building without the eBPF source (run `cargo xtask build-ebpf`)",
            obj.display()
        );
    }
}
