#!/usr/bin/env bash
# The Redis usage counter next to redis-benchmark on ONE private redis-server (127.0.0.1, a free port, nothing persisted).
#
#   benchmarks/redis-baseline.sh [redis-run options]
#
# Builds the benchmark project and runs its `redis-run` mode under the shared benchmark lock. redis-run loads the
# counter's Record script, prints the exact redis-benchmark command it runs (EVALSHA of that script with the keys and
# arguments RecordAsync sends for one event, the idempotency key random via __rand_int__ / -r), then measures in each
# round: redis-benchmark with 64 requests in flight (default -c 1 -P 64: one connection, as the .NET client has; pass
# --pipeline 1 for -c 64 -P 1), RecordAsync from 64 concurrent awaiting loops on one multiplexer, and RecordBatchAsync
# (16 writers, batches of 100 over 8 customers); it prints each rate, the ratio RecordAsync / redis-benchmark, server
# and client CPU per event, and checks the totals (exactly once). Options (see RedisRun.cs): --seconds 4 --requests
# 500000 --inflight 64 --pipeline 64 --writers 16 --batch 100 --customers 8 --repeat 3 --warmup 2 --limit
# --batch-mode auto|per-slot --phases rb,rbbatch,single,batch --no-coalesce
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null || {
  echo "redis-server and redis-benchmark are needed: apt-get install -y redis-server redis-tools" >&2
  exit 1
}
dotnet build "$root/benchmarks/Billing.Benchmarks" -c Release -v quiet -nologo >/dev/null
dll="$root/benchmarks/Billing.Benchmarks/bin/Release/net10.0/Billing.Benchmarks.dll"
args=("$@")
[[ " ${args[*]-} " == *" --pipeline "* ]] || args+=(--pipeline 64)
exec flock /tmp/billing-bench.lock dotnet "$dll" redis-run "${args[@]}"
