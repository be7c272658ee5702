#!/usr/bin/env bash
# Memory check of evloop's C ABI under valgrind memcheck: the conformance player over the
# scenario corpus on epoll, poll and select, the C API tour (capi/tests/c/api_tour.c), then the
# C hello-world with clients and a SIGINT.
# Any memcheck error or leak (definite, indirect or possible) fails the run.
#
#   bash capi/valgrind.sh                 # the whole corpus (about 6 minutes on 2 cores)
#   bash capi/valgrind.sh SCENARIO...     # only these scenarios (file stems)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }
cargo build --release -q -p evloop-capi -p evloop-conformance
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ln -s "$PWD/target/release/libevloop_capi.so" "$work/libevent-2.1.so.7"
ln -s "$PWD/target/release/libevloop_capi.so" "$work/libevent_core-2.1.so.7"
cc -std=gnu11 -O1 -g -o "$work/player" conformance/player/player.c -levent -ldl -rdynamic
cc -O1 -g -o "$work/hello_world" examples/c/hello_world.c -levent
cc -O1 -g -o "$work/api_tour" capi/tests/c/api_tour.c -levent
vg=(valgrind -q --leak-check=full --show-leak-kinds=definite,indirect,possible
    --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99)

if [ $# -gt 0 ]; then
  scenarios=()
  for s in "$@"; do scenarios+=("conformance/scenarios/$s.scn"); done
else
  scenarios=(conformance/scenarios/*.scn)
fi
runs=0
for f in "${scenarios[@]}"; do
  ./target/release/evconform ir "$f" > "$work/ir"
  for m in epoll poll select; do
    if ! LD_LIBRARY_PATH="$work" "${vg[@]}" "$work/player" "$m" "$work/ir" > /dev/null 2> "$work/err"; then
      echo "memcheck: $(basename "$f" .scn) on $m failed:" >&2
      cat "$work/err" >&2
      exit 1
    fi
    runs=$((runs + 1))
  done
done
echo "memcheck: the player on evloop's C ABI is clean: ${#scenarios[@]} scenarios x 3 methods ($runs runs)"

if ! LD_LIBRARY_PATH="$work" "${vg[@]}" "$work/api_tour" > /dev/null 2> "$work/err"; then
  echo "memcheck: api_tour failed:" >&2
  cat "$work/err" >&2
  exit 1
fi
echo "memcheck: capi/tests/c/api_tour.c on evloop's C ABI is clean"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
LD_LIBRARY_PATH="$work" "${vg[@]}" "$work/hello_world" "$port" > "$work/hw.out" 2> "$work/hw.err" &
pid=$!
for _ in $(seq 1 200); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.05
done
for _ in 1 2 3; do
  exec 3<>"/dev/tcp/127.0.0.1/$port"
  cat <&3 >> "$work/answers"
  exec 3<&-
done
sleep 0.5
kill -INT "$pid"
if ! wait "$pid"; then
  echo "memcheck: the C hello-world failed:" >&2
  cat "$work/hw.err" >&2
  exit 1
fi
grep -c "Hello, NewConnection!" "$work/answers" | grep -qx 3 || { echo "hello-world: wrong answers" >&2; cat "$work/answers" >&2; exit 1; }
grep -qx done "$work/hw.out" || { echo "hello-world: no 'done'" >&2; exit 1; }
echo "memcheck: the C hello-world on evloop's C ABI is clean (a probe and 3 clients, SIGINT, exit 0)"
