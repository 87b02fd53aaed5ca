#!/usr/bin/env bash
# Helpers shared by scripts/run and scripts/browser-tests: reading the JSON
# the throwaway servers print, starting background helpers and stopping them
# on exit, and starting the gateway and reading the address it prints
# (`listening on http://ADDR`, so it can listen on port 0).
#
# Source it for the functions: `. scripts/lib.sh`. Run it as
# `scripts/lib.sh stop_gateway DIR` or `scripts/lib.sh restart_gateway DIR`:
# the browser tests' FRONTDESK_STOP_CMD / FRONTDESK_START_CMD hooks.
#
# A gateway's DIR holds frontdesk.toml (its configuration) and, once
# started: gateway.pid, gateway.out (its stdout), gateway.addr (the
# host:port it bound) and gateway.bin (the binary, for a restart).

# json_field FILE PATH [FORMAT]: the value at PATH (dot-separated keys and
# list indices, e.g. accounts.0.jid) in the JSON in FILE. With FORMAT, PATH
# is a list and each item is printed as FORMAT % item, one a line.
json_field() {
  /usr/bin/python3 - "$@" <<'PY'
import json, sys
value = json.load(open(sys.argv[1]))
for key in filter(None, sys.argv[2].split(".")):
    value = value[int(key)] if isinstance(value, list) else value[key]
print("\n".join(sys.argv[3] % item for item in value) if len(sys.argv) > 3 else value)
PY
}

# Background processes stopped (TERM, then waited for) by stop_all, last
# started first; `trap stop_all EXIT` in the calling script.
bg_pids=()
stop_all() {
  local i
  for ((i = ${#bg_pids[@]} - 1; i >= 0; i--)); do kill "${bg_pids[i]}" 2>/dev/null || true; done
  for i in "${bg_pids[@]}"; do wait "$i" 2>/dev/null || true; done
  bg_pids=()
}

# start_json_server NAME FILE COMMAND…: runs COMMAND in the background with
# its stdout in FILE, and waits (up to 30 s) until it has written it: the
# throwaway servers print one JSON document once they are ready.
start_json_server() {
  local name=$1 file=$2 pid i
  shift 2
  rm -f "$file"
  "$@" > "$file" &
  pid=$!
  bg_pids+=("$pid")
  for ((i = 0; i < 300; i++)); do
    [ -s "$file" ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "$name did not start" >&2
  return 1
}

# start_gateway BIN DIR [ADDR]: starts `BIN serve --config DIR/frontdesk.toml`
# in the background (on ADDR instead of the configured server.listen, when
# given) and waits (up to 60 s) for the address it prints. Sets gateway_pid
# and gateway_url (http://host:port). Its logs go to this function's stderr.
start_gateway() {
  local bin=$1 dir=$2 addr=${3:-} line="" i
  env ${addr:+FRONTDESK__SERVER__LISTEN="$addr"} "$bin" serve --config "$dir/frontdesk.toml" > "$dir/gateway.out" &
  gateway_pid=$!
  echo "$gateway_pid" > "$dir/gateway.pid"
  echo "$bin" > "$dir/gateway.bin"
  for ((i = 0; i < 600; i++)); do
    line=$(grep -m1 '^listening on http://' "$dir/gateway.out" || true)
    [ -n "$line" ] && break
    kill -0 "$gateway_pid" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$line" ] || { echo "the gateway did not start (no 'listening on' line)" >&2; return 1; }
  gateway_url=${line#listening on }
  echo "${gateway_url#http://}" > "$dir/gateway.addr"
}

# restart_gateway DIR: starts DIR's gateway again on the address it bound
# the first time (pages in a browser still point at it), logs appended to
# DIR/gateway.log.
restart_gateway() {
  local dir=$1
  start_gateway "$(cat "$dir/gateway.bin")" "$dir" "$(cat "$dir/gateway.addr")" 2>> "$dir/gateway.log"
}

# stop_gateway DIR: stops DIR's gateway (TERM) and waits until it has exited,
# so its port is free again.
stop_gateway() {
  local pid i
  pid=$(cat "$1/gateway.pid" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 200; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  echo "the gateway (pid $pid) did not stop within 20 s" >&2
  return 1
}

# wait_ready URL: waits (up to 30 s) until URL/readyz answers 200.
wait_ready() {
  local i
  for ((i = 0; i < 300; i++)); do
    curl -sf "$1/readyz" > /dev/null && return 0
    sleep 0.1
  done
  echo "$1/readyz did not answer" >&2
  return 1
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  case "${1:-}" in
    stop_gateway | restart_gateway) "$1" "${2:?DIR}" ;;
    *) echo "usage: scripts/lib.sh stop_gateway|restart_gateway DIR" >&2; exit 2 ;;
  esac
fi
