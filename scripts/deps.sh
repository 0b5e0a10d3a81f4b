#!/usr/bin/env bash
# Installs the Debian packages the tests and benchmarks use, if missing.
# Idempotent and quiet when everything is there.
set -euo pipefail
need=()
for pkg in tini dumb-init catatonit podman buildah runc hyperfine strace wrk hey iproute2 openjdk-17-jdk-headless; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
# The JDK may come from elsewhere than Debian's package: accept any javac on PATH.
if command -v javac >/dev/null && command -v jlink >/dev/null; then
  need=("${need[@]/openjdk-17-jdk-headless}")
fi
pkgs=()
for p in "${need[@]}"; do [ -n "$p" ] && pkgs+=("$p"); done
if [ ${#pkgs[@]} -gt 0 ]; then
  echo "deps: installing ${pkgs[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi
