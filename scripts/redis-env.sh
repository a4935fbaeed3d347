# Sourced by ./aperture: the Redis of a local run. Uses the Redis at REDIS_URL when one answers there; otherwise, when
# REDIS_URL is on this machine and a redis-server binary is installed, starts a private one (bound to 127.0.0.1 on a
# free port, data under DATA_DIR/redis) for as long as the server runs; otherwise says in one line how to get one.
# Needs only bash, node and redis-server (plus mkdir and sleep).

APERTURE_REDIS_DEFAULT_URL="redis://127.0.0.1:6379"

# Sets aperture_redis_host and aperture_redis_port from REDIS_URL (redis[s]://[user:pass@]host[:port][/db]).
aperture_redis_parse() {
  local rest="${REDIS_URL:-$APERTURE_REDIS_DEFAULT_URL}"
  rest="${rest#*://}"
  rest="${rest##*@}"
  rest="${rest%%/*}"
  rest="${rest%%\?*}"
  if [[ "$rest" == \[* ]]; then
    aperture_redis_host="${rest#\[}"
    aperture_redis_host="${aperture_redis_host%%\]*}"
    rest="${rest#*\]}"
    aperture_redis_port="${rest#:}"
  elif [[ "$rest" == *:* ]]; then
    aperture_redis_host="${rest%%:*}"
    aperture_redis_port="${rest#*:}"
  else
    aperture_redis_host="$rest"
    aperture_redis_port=""
  fi
  [ -n "$aperture_redis_host" ] || aperture_redis_host=127.0.0.1
  [ -n "$aperture_redis_port" ] || aperture_redis_port=6379
}

# True when a Redis answers PING (any Redis reply: +PONG, or an error such as -NOAUTH) at host port.
aperture_redis_answers() {
  local reply=""
  { exec 3<>"/dev/tcp/$1/$2"; } 2>/dev/null || return 1
  printf 'PING\r\n' >&3 2>/dev/null || true
  IFS= read -r -t 2 reply <&3 || true
  exec 3>&- 3<&-
  [[ "$reply" == [+-]* ]]
}

aperture_redis_is_local() {
  case "$1" in 127.0.0.1 | localhost | ::1 | 0.0.0.0) return 0 ;; *) return 1 ;; esac
}

# Before installing and building: 0 when a local run can have a Redis (one answers, or a private one can start);
# otherwise one line on stderr saying how to get one, and 69 (EX_UNAVAILABLE).
aperture_redis_preflight() {
  aperture_redis_parse
  local url="${REDIS_URL:-$APERTURE_REDIS_DEFAULT_URL}"
  if aperture_redis_answers "$aperture_redis_host" "$aperture_redis_port"; then return 0; fi
  if ! aperture_redis_is_local "$aperture_redis_host"; then
    echo "aperture: no Redis answers at $url; start it, or unset REDIS_URL to use a local one" >&2
    return 69
  fi
  if command -v redis-server >/dev/null 2>&1; then return 0; fi
  echo "aperture: no Redis answers at $url and redis-server is not installed: install it (sudo apt-get install -y redis-server, or brew install redis) or run one (docker run -d -p 6379:6379 redis:7)" >&2
  return 69
}

aperture_redis_pid=""
aperture_redis_stop() {
  [ -n "$aperture_redis_pid" ] || return 0
  kill -TERM "$aperture_redis_pid" 2>/dev/null || true
  wait "$aperture_redis_pid" 2>/dev/null || true
  aperture_redis_pid=""
}

# Runs "$@" with a Redis: the one at REDIS_URL when it answers (then it execs "$@"); else a private redis-server, stopped when the command
# ends (also when the launcher gets Ctrl-C, SIGTERM or SIGHUP, which it passes on to the command first). Returns the
# command's status.
aperture_with_redis() {
  aperture_redis_preflight || return $?
  if aperture_redis_answers "$aperture_redis_host" "$aperture_redis_port"; then exec "$@"; fi
  local url="${REDIS_URL:-$APERTURE_REDIS_DEFAULT_URL}" data port dir
  data="${DATA_DIR:-./data}"
  mkdir -p "$data/redis"
  dir="$(cd "$data/redis" && pwd)"
  port="$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
  trap aperture_redis_stop EXIT
  # Job control puts the private Redis and the command in process groups of their own: Ctrl-C reaches only the
  # launcher, which stops the command first and Redis after it (the server still needs Redis while it shuts down).
  set -m
  redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --logfile "$dir/redis.log" --save "60 1" --appendonly no \
    --daemonize no >/dev/null 2>&1 &
  aperture_redis_pid=$!
  set +m
  local i
  for ((i = 0; i < 100; i++)); do
    aperture_redis_answers 127.0.0.1 "$port" && break
    if ! kill -0 "$aperture_redis_pid" 2>/dev/null; then
      echo "aperture: the private redis-server did not start; see $dir/redis.log" >&2
      aperture_redis_pid=""
      return 1
    fi
    sleep 0.1
  done
  if ((i == 100)); then
    echo "aperture: the private redis-server did not answer within 10 s; see $dir/redis.log" >&2
    aperture_redis_stop
    return 1
  fi
  echo "aperture: no Redis answers at $url; started a private one at redis://127.0.0.1:$port (data in $dir), stopped with the server" >&2
  export REDIS_URL="redis://127.0.0.1:$port"
  set -m
  "$@" &
  local child=$! status=0
  set +m
  trap 'kill -INT "$child" 2>/dev/null' INT
  trap 'kill -TERM "$child" 2>/dev/null' TERM HUP
  while :; do
    status=0
    wait "$child" || status=$?
    kill -0 "$child" 2>/dev/null || break
  done
  trap - INT TERM HUP
  aperture_redis_stop
  trap - EXIT
  return "$status"
}
