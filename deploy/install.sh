#!/usr/bin/env bash
# Installs neighsyncd as a systemd service from a built tree (cargo build --release).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${1:-$here/../target/release/neighsyncd}"
[ -x "$bin" ] || { echo "install: $bin not found; run: cargo build --release -p neighsyncd" >&2; exit 1; }
install -m 0755 "$bin" /usr/local/bin/neighsyncd
install -d -m 0755 /etc/neighsyncd /usr/share/doc/neighsyncd
[ -e /etc/neighsyncd/neighsyncd.toml ] || install -m 0644 "$here/neighsyncd.toml.example" /etc/neighsyncd/neighsyncd.toml
install -m 0644 "$here/neighsyncd.service" /etc/systemd/system/neighsyncd.service
install -m 0644 "$here/../docs/DEPLOYMENT.md" /usr/share/doc/neighsyncd/DEPLOYMENT.md 2>/dev/null || true
systemctl daemon-reload
echo "installed; edit /etc/neighsyncd/neighsyncd.toml, then: systemctl enable --now neighsyncd"
