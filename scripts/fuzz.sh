#!/usr/bin/env bash
# Fuzzes each target (PKG:FuzzName) for FUZZTIME, JOBS targets at a time with
# one worker each (-fuzz takes one target per go test run). Each target's
# output is shown when all have ended: its last progress line, or all of it
# when it failed. Exits non-zero if any target failed.
#
#   scripts/fuzz.sh FUZZTIME JOBS TARGET...
set -uo pipefail
fuzztime=$1 jobs=$2
shift 2
go=${GO:-go}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

run() { # index target
	local pkg=${2%%:*} name=${2#*:}
	"$go" test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" -parallel=1 "$pkg" >"$logs/$1.log" 2>&1
	echo $? >"$logs/$1.rc"
}

i=0
for t in "$@"; do
	i=$((i + 1))
	while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
		wait -n
	done
	run "$i" "$t" &
done
wait

fail=0 i=0
for t in "$@"; do
	i=$((i + 1))
	if [ "$(cat "$logs/$i.rc" 2>/dev/null)" = 0 ]; then
		echo "$t $(grep '^fuzz: elapsed' "$logs/$i.log" | tail -1)"
	else
		echo "$t: FAILED"
		cat "$logs/$i.log"
		fail=1
	fi
done
exit $fail
