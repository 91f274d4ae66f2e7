#!/usr/bin/env bash
# interrupt_group.sh LOG COMMAND...: runs COMMAND in a process group of its
# own, waits until LOG holds a step (a header and one row), then sends one
# SIGINT to the whole group, as a terminal's Ctrl-C does (mpirun and every
# rank it started receive it), and exits with COMMAND's status. Gives up
# (status 124) if no step is logged within 120 s, and returns at once if
# COMMAND ends by itself first.
set -u
log=$1
shift
setsid "$@" &
pid=$!
for _ in $(seq 1200); do
  if [[ -f $log && $(wc -l <"$log") -ge 2 ]]; then
    kill -INT -- "-$pid"
    wait "$pid"
    exit $?
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid"
    exit $?
  fi
  sleep 0.1
done
kill -KILL -- "-$pid"
exit 124
