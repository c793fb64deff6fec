//! The Debian package (`cargo xtask deb`; `cargo xtask test` builds it with the dev profile
//! before the tests run), installed with dpkg into a clean root: its files where Debian wants
//! them, the config a conffile, the unit verified by systemd-analyze against the installed
//! tree, the binaries and man pages working; then removed and purged.

use std::path::{Path, PathBuf};
use std::process::Command;

use neighsyncd_tests::require_tool;
use neighsyncd_tests::root;

/// The newest `.deb` in target/deb.
fn package(test: &str) -> PathBuf {
    let dir = root().join("target/deb");
    std::fs::read_dir(&dir)
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .unwrap_or_else(|| {
            panic!(
                "{test} needs the package: `cargo xtask deb --profile dev` (cargo xtask test builds it) into {}",
                dir.display()
            )
        })
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed: {text}");
    text
}

fn dpkg(root: &Path) -> Command {
    let mut c = Command::new("dpkg");
    // A clean root has none of the package's dependencies (libc6, libgcc-s1) registered.
    c.arg(format!("--root={}", root.display()))
        .arg("--force-depends");
    c
}

#[test]
fn the_package_installs_into_a_clean_root_and_works() {
    let test = "the_package_installs_into_a_clean_root_and_works";
    require_tool("dpkg", test);
    require_tool("systemd-analyze", test);
    require_tool("man", test);
    let deb = package(test);
    let dir = tempfile::Builder::new()
        .prefix("nsd-deb-root-")
        .tempdir()
        .unwrap();
    let r = dir.path();
    for d in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
    ] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    for f in ["var/lib/dpkg/status", "var/lib/dpkg/available"] {
        std::fs::write(r.join(f), "").unwrap();
    }
    run(dpkg(r).arg("-i").arg(&deb));

    for f in [
        "usr/bin/neighsyncd",
        "usr/bin/neighsyncctl",
        "usr/lib/systemd/system/neighsyncd.service",
        "usr/lib/systemd/system/neighsyncd-ha@.service",
        "etc/neighsyncd/neighsyncd.toml",
        "usr/share/bash-completion/completions/neighsyncctl",
        "usr/share/zsh/vendor-completions/_neighsyncctl",
        "usr/share/fish/vendor_completions.d/neighsyncctl.fish",
        "usr/share/man/man1/neighsyncd.1.gz",
        "usr/share/man/man1/neighsyncd-restore.1.gz",
        "usr/share/man/man1/neighsyncctl.1.gz",
        "usr/share/doc/neighsyncd/copyright",
        "usr/share/doc/neighsyncd/MIGRATION.md",
        "usr/share/doc/neighsyncd/SECURITY.md",
        "usr/share/doc/neighsyncd/examples/supervisord/neighsyncd.conf",
    ] {
        assert!(r.join(f).is_file(), "the package does not install /{f}");
    }
    let conffiles = run(Command::new("dpkg-query")
        .arg(format!("--admindir={}", r.join("var/lib/dpkg").display()))
        .args(["-W", "-f=${Status}|${Conffiles}", "neighsyncd"]));
    assert!(
        conffiles.starts_with("install ok installed|")
            && conffiles.contains("/etc/neighsyncd/neighsyncd.toml"),
        "{conffiles}"
    );

    // The unit, as installed, against the installed tree (systemd's own units copied in, as a
    // real root has them): its ExecStart= must exist there, its directives must parse.
    run(Command::new("cp")
        .arg("-an")
        .arg("/usr/lib/systemd/system/.")
        .arg(r.join("usr/lib/systemd/system")));
    let verify = run(Command::new("systemd-analyze")
        .arg(format!("--root={}", r.display()))
        .args(["verify", "neighsyncd.service", "neighsyncd-ha@9091.service"]));
    assert!(verify.trim().is_empty(), "systemd-analyze verify: {verify}");

    let version = run(Command::new(r.join("usr/bin/neighsyncd")).arg("--version"));
    assert!(version.starts_with("neighsyncd "), "{version}");
    let version = run(Command::new(r.join("usr/bin/neighsyncctl")).arg("--version"));
    assert!(version.starts_with("neighsyncctl "), "{version}");
    let page = run(Command::new("man")
        .arg("-l")
        .arg(r.join("usr/share/man/man1/neighsyncd.1.gz"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80"));
    assert!(
        page.contains("neighsyncd") && page.contains("--config"),
        "{page}"
    );

    // Removed: the files go, the edited conffile stays; purged: it goes too.
    std::fs::write(r.join("etc/neighsyncd/neighsyncd.toml"), "# edited\n").unwrap();
    run(dpkg(r).args(["-r", "neighsyncd"]));
    assert!(
        !r.join("usr/bin/neighsyncd").exists(),
        "removed, yet the binary stays"
    );
    assert!(
        r.join("etc/neighsyncd/neighsyncd.toml").exists(),
        "removed: the conffile must stay"
    );
    run(dpkg(r).args(["-P", "neighsyncd"]));
    assert!(
        !r.join("etc/neighsyncd/neighsyncd.toml").exists(),
        "purged, yet the conffile stays"
    );
}
