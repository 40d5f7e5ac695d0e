#!/usr/bin/env bash
# Ensures a Redis server answers and prints its address (host:port).
# Order: $REDIS_ADDR or 127.0.0.1:6379 if it answers PING; else start the
# installed redis-server on that address; else install redis-server with apt
# and start it. Everything it starts keeps nothing on disk.
set -euo pipefail
addr="${REDIS_ADDR:-127.0.0.1:6379}"
host="${addr%:*}"
port="${addr##*:}"

ping() {
  exec 3<>"/dev/tcp/$host/$port" 2>/dev/null || return 1
  printf 'PING\r\n' >&3
  local reply=""
  read -r -t 2 reply <&3 || true
  exec 3>&- 3<&-
  [[ "$reply" == +PONG* ]]
}

if ping; then echo "$addr"; exit 0; fi

if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis.sh: redis-server not found; installing it with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq redis-server >&2
fi
echo "redis.sh: starting redis-server on $addr" >&2
dir="$(mktemp -d)"
redis-server --daemonize yes --bind "$host" --port "$port" --save "" --appendonly no \
  --dir "$dir" --logfile "$dir/redis.log" >&2
for _ in $(seq 1 50); do
  if ping; then echo "$addr"; exit 0; fi
  sleep 0.1
done
echo "redis.sh: redis-server did not answer on $addr" >&2
exit 1
