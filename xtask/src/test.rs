//! `cargo xtask test`: the whole suite, as CI runs it.

use std::process::Command;

pub fn run(extra: &[String]) -> anyhow::Result<()> {
    crate::run(Command::new("cargo").args(["fmt", "--all", "--", "--check"]))?;
    crate::run(Command::new("cargo").args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    crate::run(Command::new("cargo").args(["build", "-p", "neighsyncd", "--bins"]))?;
    let mut test = Command::new("cargo");
    test.args(["test", "--workspace", "--all-targets"]);
    if !extra.is_empty() {
        test.arg("--").args(extra);
    }
    crate::run(&mut test)
}
