//! `cargo xtask deb`: the Debian package an image build or an operator installs. It holds the
//! two binaries, the systemd unit, the configuration (a conffile), neighsyncctl's completions,
//! the man pages (generated from the clap definitions), the docs and the deploy examples. Built
//! with `dpkg-deb` from a staged tree; `tests/tests/package.rs` installs it into a clean root.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

pub struct Options {
    /// Cargo profile of the binaries: `release` for a real package, `dev` for a quick one.
    pub profile: String,
    /// Where the `.deb` goes.
    pub out: PathBuf,
}

const DESCRIPTION: &str = "\
Kernel neighbor table to SONiC APPL_DB, in Rust, eBPF-accelerated
 neighsyncd mirrors the Linux kernel's neighbor table (ARP and NDP) into SONiC's
 APPL_DB NEIGH_TABLE with the ProducerStateTable protocol, as the C++ neighsyncd
 does, with consistent resyncs, REST and gRPC APIs, Prometheus metrics and an
 eBPF source. neighsyncctl is its command-line client.";

fn put(stage: &Path, path: &str, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dst = stage.join(path.trim_start_matches('/'));
    if let Some(dir) = dst.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(&dst, bytes).with_context(|| dst.display().to_string())?;
    fs::set_permissions(&dst, fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn copy(stage: &Path, from: &str, to: &str, mode: u32) -> anyhow::Result<()> {
    let bytes = fs::read(crate::root().join(from)).with_context(|| from.to_string())?;
    put(stage, to, &bytes, mode)
}

fn output(cmd: &mut Command) -> anyhow::Result<Vec<u8>> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    anyhow::ensure!(out.status.success(), "{cmd:?} failed: {}", out.status);
    Ok(out.stdout)
}

fn gzip(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    use std::io::Write;
    let mut child = Command::new("gzip")
        .args(["-9n"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("gzip's stdin")?
        .write_all(bytes)?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(out.status.success(), "gzip failed");
    Ok(out.stdout)
}

fn man_page(cmd: clap::Command) -> anyhow::Result<Vec<u8>> {
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut page)?;
    gzip(&page)
}

pub fn run(o: &Options) -> anyhow::Result<PathBuf> {
    crate::run(Command::new("cargo").args([
        "build",
        "--profile",
        &o.profile,
        "-p",
        "neighsyncd",
        "-p",
        "neighsyncctl",
        "--bins",
    ]))?;
    let dir = if o.profile == "dev" {
        "debug"
    } else {
        &o.profile
    };
    let bins = crate::root().join("target").join(dir);
    let version = env!("CARGO_PKG_VERSION");
    let arch = String::from_utf8(output(Command::new("dpkg").arg("--print-architecture"))?)?
        .trim()
        .to_string();
    let name = format!("neighsyncd_{version}_{arch}");
    let stage = crate::root().join("target/deb").join(&name);
    let _ = fs::remove_dir_all(&stage);

    for bin in ["neighsyncd", "neighsyncctl"] {
        put(
            &stage,
            &format!("/usr/bin/{bin}"),
            &fs::read(bins.join(bin))?,
            0o755,
        )?;
    }
    copy(
        &stage,
        "deploy/neighsyncd.service",
        "/usr/lib/systemd/system/neighsyncd.service",
        0o644,
    )?;
    copy(
        &stage,
        "deploy/neighsyncd-ha@.service",
        "/usr/lib/systemd/system/neighsyncd-ha@.service",
        0o644,
    )?;
    copy(
        &stage,
        "deploy/neighsyncd.toml.example",
        "/etc/neighsyncd/neighsyncd.toml",
        0o644,
    )?;
    let ctl = bins.join("neighsyncctl");
    for (shell, path) in [
        (
            "bash",
            "/usr/share/bash-completion/completions/neighsyncctl",
        ),
        ("zsh", "/usr/share/zsh/vendor-completions/_neighsyncctl"),
        (
            "fish",
            "/usr/share/fish/vendor_completions.d/neighsyncctl.fish",
        ),
    ] {
        let script = output(Command::new(&ctl).args(["completions", shell]))?;
        put(&stage, path, &script, 0o644)?;
    }
    let daemon = neighsyncd::config::Args::command_with_defaults();
    put(
        &stage,
        "/usr/share/man/man1/neighsyncd.1.gz",
        &man_page(daemon.clone())?,
        0o644,
    )?;
    if let Some(restore) = daemon.find_subcommand("restore") {
        put(
            &stage,
            "/usr/share/man/man1/neighsyncd-restore.1.gz",
            &man_page(restore.clone().name("neighsyncd-restore"))?,
            0o644,
        )?;
    }
    let ctl_page = output(Command::new(&ctl).arg("man"))?;
    put(
        &stage,
        "/usr/share/man/man1/neighsyncctl.1.gz",
        &gzip(&ctl_page)?,
        0o644,
    )?;
    let doc = "/usr/share/doc/neighsyncd";
    copy(&stage, "README.md", &format!("{doc}/README.md"), 0o644)?;
    for entry in fs::read_dir(crate::root().join("docs"))? {
        let f = entry?.file_name().to_string_lossy().into_owned();
        if f.ends_with(".md") {
            copy(&stage, &format!("docs/{f}"), &format!("{doc}/{f}"), 0o644)?;
        }
    }
    for (from, to) in [
        (
            "deploy/supervisord/neighsyncd.conf",
            "supervisord/neighsyncd.conf",
        ),
        ("deploy/grafana/neighsyncd.json", "grafana/neighsyncd.json"),
        (
            "deploy/prometheus/neighsyncd-alerts.yml",
            "prometheus/neighsyncd-alerts.yml",
        ),
        ("deploy/neighsyncd.toml.example", "neighsyncd.toml.example"),
    ] {
        copy(&stage, from, &format!("{doc}/examples/{to}"), 0o644)?;
    }
    put(
        &stage,
        &format!("{doc}/copyright"),
        b"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
Upstream-Name: neighsyncd\n\n\
Files: *\n\
License: Apache-2.0\n \
On Debian systems, the full text of the Apache License 2.0 is in\n \
/usr/share/common-licenses/Apache-2.0.\n",
        0o644,
    )?;
    let size_kib = du_kib(&stage)?;
    put(
        &stage,
        "/DEBIAN/control",
        format!(
            "Package: neighsyncd\n\
Version: {version}\n\
Architecture: {arch}\n\
Maintainer: neighsyncd developers <neighsyncd@localhost>\n\
Installed-Size: {size_kib}\n\
Depends: libc6 (>= 2.36), libgcc-s1\n\
Section: net\n\
Priority: optional\n\
Description: {DESCRIPTION}\n"
        )
        .as_bytes(),
        0o644,
    )?;
    put(
        &stage,
        "/DEBIAN/conffiles",
        b"/etc/neighsyncd/neighsyncd.toml\n",
        0o644,
    )?;
    fs::create_dir_all(&o.out)?;
    let deb = o.out.join(format!("{name}.deb"));
    crate::run(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(&stage)
            .arg(&deb),
    )?;
    println!("{}", deb.display());
    Ok(deb)
}

fn du_kib(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d)? {
            let e = e?;
            let m = e.metadata()?;
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.len().div_ceil(1024);
            }
        }
    }
    Ok(total)
}
