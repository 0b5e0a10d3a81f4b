#!/bin/sh
# trap-int.sh LOG CODE: the foreground app of test/pid1's terminal test.
# It appends "ready <pid>" to LOG once its trap is set, then waits; on
# SIGINT (Ctrl-C) it appends "INT" and exits with CODE.
trap 'echo INT >> "$1"; exit "$2"' INT
echo "ready $$" >> "$1"
while :; do sleep 0.05; done
