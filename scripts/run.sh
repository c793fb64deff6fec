#!/usr/bin/env bash
# The README's two commands in one: set this machine up (scripts/setup.sh, rustup included),
# then run `cargo xtask ARGS...` (`demo`, `test`, ...). As root, or through sudo where it
# exists: the project needs root (network namespaces, the eBPF program). sudo's secure_path
# drops ~/.cargo/bin, so the script finds cargo itself instead of relying on PATH.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
        echo "run.sh: needs root (network namespaces, eBPF), and there is no sudo: run it as root" >&2
        exit 1
    fi
    exec sudo bash "$0" "$@"
fi
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
exec cargo xtask "$@"
