//! Compiles the gRPC API, and builds and embeds the eBPF program, so that plain `cargo build`
//! yields a complete daemon (the way aya's template does it).
//!
//! The eBPF object comes from, in order:
//! - `NEIGHSYNCD_EBPF_OBJECT=<path>`: a prebuilt object;
//! - `NEIGHSYNCD_EBPF=off`: none (a netlink-only daemon, on purpose);
//! - otherwise it is built here (`neighsyncd-ebpf`, nightly, `bpfel-unknown-none`,
//!   `-Z build-std=core`, linked by bpf-linker) when the nightly toolchain with rust-src and
//!   bpf-linker are present. When they are not, the build warns and produces a netlink-only
//!   daemon that says so in `--version` and at start.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    proto(&out);

    println!("cargo::rustc-check-cfg=cfg(neighsyncd_ebpf)");
    println!("cargo:rerun-if-env-changed=NEIGHSYNCD_EBPF_OBJECT");
    println!("cargo:rerun-if-env-changed=NEIGHSYNCD_EBPF");
    let status = match ebpf_object(&manifest) {
        Ok(obj) => {
            println!("cargo:rerun-if-changed={}", obj.display());
            println!("cargo:rustc-cfg=neighsyncd_ebpf");
            println!(
                "cargo:rustc-env=NEIGHSYNCD_EBPF_OBJECT_PATH={}",
                obj.display()
            );
            "eBPF program embedded".to_string()
        }
        Err(why) => {
            println!(
                "cargo:warning=building neighsyncd WITHOUT its eBPF program ({why}): it will use rtnetlink only. Run `bash scripts/setup.sh` to install the nightly toolchain and bpf-linker, then build again."
            );
            format!("netlink only: eBPF program not built ({why})")
        }
    };
    println!("cargo:rustc-env=NEIGHSYNCD_BUILD_EBPF={status}");
}

/// The gRPC API, with a descriptor set for server reflection. Needs `protoc`
/// (Debian: protobuf-compiler; scripts/setup.sh installs it).
fn proto(out: &Path) {
    // Naming any file to watch turns off cargo's default (rerun when the package changes), and
    // the proto lives outside the package: say it, or an edited API compiles against the old.
    println!("cargo:rerun-if-changed=../proto/neighsyncd.proto");
    println!("cargo:rerun-if-changed=build.rs");
    if let Err(e) = tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("neighsyncd_descriptor.bin"))
        .compile_protos(&["../proto/neighsyncd.proto"], &["../proto"])
    {
        panic!(
            "compiling proto/neighsyncd.proto failed (is protoc installed? bash scripts/setup.sh): {e}"
        );
    }
}

/// The eBPF object to embed, or why there is none.
fn ebpf_object(manifest: &Path) -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("NEIGHSYNCD_EBPF_OBJECT") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "NEIGHSYNCD_EBPF_OBJECT={} is no file",
                path.display()
            ))
        };
    }
    if std::env::var("NEIGHSYNCD_EBPF").as_deref() == Ok("off") {
        return Err("NEIGHSYNCD_EBPF=off".into());
    }
    let crate_dir = manifest.join("../neighsyncd-ebpf");
    for dir in ["neighsyncd-ebpf/src", "neighsyncd-common/src"] {
        println!("cargo:rerun-if-changed=../{dir}");
    }
    println!("cargo:rerun-if-changed=../neighsyncd-ebpf/Cargo.toml");
    toolchain_present()?;
    let mut cmd = Command::new("cargo");
    cmd.current_dir(&crate_dir).args([
        "+nightly",
        "build",
        "--release",
        "--target",
        "bpfel-unknown-none",
        "-Z",
        "build-std=core",
    ]);
    // What cargo set for this build script (the outer toolchain, flags, target, jobserver,
    // cfgs) must not leak into the nightly build and its build scripts; where the toolchains
    // and the registry live stays.
    for (var, _) in std::env::vars_os() {
        let var = var.to_string_lossy().into_owned();
        let build_script_env = [
            "TARGET",
            "HOST",
            "OUT_DIR",
            "PROFILE",
            "OPT_LEVEL",
            "DEBUG",
            "NUM_JOBS",
            "MAKEFLAGS",
            "MFLAGS",
        ]
        .contains(&var.as_str());
        let toolchain_env = (var.starts_with("CARGO") && var != "CARGO_HOME")
            || (var.starts_with("RUST") && var != "RUSTUP_HOME");
        if build_script_env || toolchain_env {
            cmd.env_remove(&var);
        }
    }
    let output = cmd
        .output()
        .map_err(|e| format!("cannot run cargo +nightly: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().rev().take(5).collect::<Vec<_>>();
        return Err(format!(
            "cargo +nightly build of neighsyncd-ebpf failed: {}",
            last.into_iter().rev().collect::<Vec<_>>().join(" / ")
        ));
    }
    let obj = crate_dir.join("target/bpfel-unknown-none/release/neighsyncd");
    if obj.is_file() {
        Ok(obj)
    } else {
        Err(format!("no object at {} after the build", obj.display()))
    }
}

/// The nightly toolchain with rust-src, and bpf-linker.
fn toolchain_present() -> Result<(), String> {
    let sysroot = Command::new("rustc")
        .args(["+nightly", "--print", "sysroot"])
        .env_remove("RUSTC")
        .env_remove("RUSTUP_TOOLCHAIN")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .ok_or("no nightly toolchain (rustup toolchain install nightly)")?;
    if !sysroot.join("lib/rustlib/src/rust/library/core").is_dir() {
        return Err("the nightly toolchain lacks rust-src (rustup component add rust-src --toolchain nightly)".into());
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("bpf-linker").is_file()))
        .unwrap_or(false);
    if !on_path {
        return Err("bpf-linker is not on PATH (cargo install bpf-linker)".into());
    }
    Ok(())
}
