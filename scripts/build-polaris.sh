#!/usr/bin/env bash
# Builds the Polaris v1.18.1 server (our real Nacos- and Eureka-protocol test
# server) once into a cache and prints the binary's path on stdout.
#
# Why not `go install`: the module proxy refuses polaris's version list, so
# only `go mod download` of the exact version works; the module dir is
# read-only, so the build happens in a writable copy.
#
# Idempotent and safe to run from parallel test processes: the build runs
# under flock and the binary is renamed into place atomically.
set -euo pipefail

version=v1.18.1
cache=${GI_CACHE:-${HOME:-/root}/.cache/gracefulinit}
dest=$cache/polaris-$version
bin=$dest/polaris-server

if [[ -x $bin ]]; then
	echo "$bin"
	exit 0
fi

mkdir -p "$dest"
exec 9>"$dest/.lock"
flock 9
# Another caller may have built it while we waited for the lock.
if [[ -x $bin ]]; then
	echo "$bin"
	exit 0
fi

go=${GO:-go}
command -v "$go" >/dev/null 2>&1 || go=/usr/local/go/bin/go
# Run outside any module so the caller's go.mod/GOFLAGS don't interfere.
moddir=$(cd / && GOFLAGS=-mod=mod "$go" mod download -json "github.com/polarismesh/polaris@$version" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
if [[ -z $moddir || ! -d $moddir ]]; then
	echo "build-polaris: go mod download github.com/polarismesh/polaris@$version gave no module dir" >&2
	exit 1
fi

src=$(mktemp -d "$dest/src.XXXXXX")
trap 'rm -rf "$src"' EXIT
cp -r "$moddir/." "$src/"
chmod -R u+w "$src"
echo "build-polaris: building polaris $version (cold build takes about 80 s)" >&2
(cd "$src" && GOFLAGS=-buildvcs=false GOWORK=off CGO_ENABLED=0 "$go" build -trimpath -o "$dest/polaris-server.tmp" .)
mv -f "$dest/polaris-server.tmp" "$bin"
echo "$bin"
