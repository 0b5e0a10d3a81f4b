#!/usr/bin/env bash
# Prepares a rootful podman that works on this kind of machine (a VM or CI
# runner with cgroup v1, no default bridge, low hard ulimits) without touching
# the system's /etc/containers: installs the packages if missing and writes a
# private containers.conf and storage.conf.
#
# Usage: scripts/podman-setup.sh [--test-deps] [DIR]
#   DIR         where config, storage and run state live
#               (default ${GI_CACHE:-$HOME/.cache/gracefulinit}/podman)
#   --test-deps also installs busybox-static and tini (the container test puts
#               /bin/busybox and tini-static into its image)
#
# Prints the variables to export as shell commands, one per line, e.g.:
#   eval "$(scripts/podman-setup.sh)"; podman info
#
# Settings and why (each was found by trying):
#   runtime runc, cgroupfs manager  crun fails with "cgroups in hybrid mode not
#                                   supported"; systemd is not PID 1 here.
#   default_ulimits = []            a limit above `ulimit -H` makes runc fail with
#                                   "setrlimit ... operation not permitted".
#   netns "none"                    the default bridge creates a host interface.
#   events_logger "file"            journald is not running.
# Buildah keeps RUN --mount=type=cache directories under $TMPDIR (default
# /var/tmp), which no config file moves: set TMPDIR=DIR/tmp for podman build
# to keep those private too (the container test does).
# Idempotent; parallel callers serialize on a lock in DIR.
set -euo pipefail

test_deps=false
dir=
for arg in "$@"; do
	case $arg in
	--test-deps) test_deps=true ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	-*)
		echo "podman-setup: unknown option $arg" >&2
		exit 2
		;;
	*) dir=$arg ;;
	esac
done
dir=${dir:-${GI_CACHE:-${HOME:-/root}/.cache/gracefulinit}/podman}

need=()
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v buildah >/dev/null 2>&1 || need+=(buildah)
command -v runc >/dev/null 2>&1 || [[ -x /usr/sbin/runc ]] || need+=(runc)
if $test_deps; then
	# Debian's plain busybox package is dynamically linked: useless in an image.
	dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || need+=(busybox-static)
	[[ -x /usr/bin/tini-static ]] || need+=(tini)
fi

mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9

if ((${#need[@]})); then
	if [[ $(id -u) != 0 ]]; then
		echo "podman-setup: missing ${need[*]}; run as root or: sudo apt-get install -y ${need[*]}" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	# Only refresh the package lists when the install fails on stale ones,
	# so repeated runs cost nothing and never hit the network.
	if ! apt-get install -y --no-install-recommends "${need[@]}" >&2; then
		apt-get update >&2
		apt-get install -y --no-install-recommends "${need[@]}" >&2
	fi
fi

runtime=$(command -v runc || echo /usr/sbin/runc)
# overlay needs a filesystem that can hold an upper dir (not overlayfs or
# tmpfs under some kernels); vfs always works, at the cost of full copies.
driver=${GI_STORAGE_DRIVER:-}
if [[ -z $driver ]]; then
	driver=vfs
	if grep -qw overlay /proc/filesystems; then
		fstype=$(stat -f -c %T "$dir")
		case $fstype in ext2/ext3 | xfs | btrfs) driver=overlay ;; esac
	fi
fi

mkdir -p "$dir/storage" "$dir/run" "$dir/tmp" "$dir/networks"

tmpconf=$(mktemp "$dir/.containers.conf.XXXXXX")
cat >"$tmpconf" <<EOF
# Written by scripts/podman-setup.sh; rewritten on every run.
[containers]
default_ulimits = []
netns = "none"
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$dir/tmp"
# static_dir, volume_path and the events log keep their defaults, derived
# from graphroot and tmp_dir: conmon starts "podman container cleanup"
# without CONTAINERS_CONF, and that process must find the same database, or
# attached runs and "podman wait" hang 20 s waiting for the exit to be
# recorded.

[engine.runtimes]
runc = ["$runtime"]

[network]
network_config_dir = "$dir/networks"
EOF
mv -f "$tmpconf" "$dir/containers.conf"

tmpstorage=$(mktemp "$dir/.storage.conf.XXXXXX")
cat >"$tmpstorage" <<EOF
# Written by scripts/podman-setup.sh; rewritten on every run.
[storage]
driver = "$driver"
graphroot = "$dir/storage"
runroot = "$dir/run"
EOF
# Changing the driver under an existing graphroot breaks podman; keep the
# one the store was created with.
if [[ -f $dir/storage.conf ]]; then
	old=$(sed -n 's/^driver = "\(.*\)"$/\1/p' "$dir/storage.conf")
	if [[ -n $old && $old != "$driver" ]]; then
		sed -i "s/^driver = \".*\"$/driver = \"$old\"/" "$tmpstorage"
	fi
fi
mv -f "$tmpstorage" "$dir/storage.conf"

printf 'export CONTAINERS_CONF=%q\n' "$dir/containers.conf"
printf 'export CONTAINERS_STORAGE_CONF=%q\n' "$dir/storage.conf"
