#!/usr/bin/env bash
# The sample host under HTTP load on loopback (Release build, real Kestrel).
#
#   benchmarks/host-load.sh [embedded|postgresql|both] [host-load options]
#
# Builds the sample host and the benchmark project in Release, then, under the shared benchmark lock and at high
# priority (nice -n -19 when allowed), runs the `host-load` mode of Billing.Benchmarks once per configuration:
#   embedded    SQLite file (in a temporary directory) + in-memory usage counters: the host's defaults
#   postgresql  a throwaway PostgreSQL 15 (durable: fsync and synchronous commit on; --pg-fast turns them off) and a
#               private redis-server for the usage counters, both on free loopback ports
# host-load starts those servers, starts the host (dotnet Billing.SampleHost.dll, Production, a free 127.0.0.1 port,
# Billing:BootstrapApiKey and Billing:Benchmarks:BareEndpoints=true from the environment), creates a metered plan,
# 1,000 customers and their subscriptions through the API, then measures:
#   usage  POST /v1/usage/batch, 8 closed-loop writers x 100 events (random customer, unique idempotency key, ~5%
#          repeats of an earlier event that must come back duplicate): events/s, p50/p90/p99 per request
#   bare   the same bodies to POST /benchmarks/bare/usage/batch (only parses the JSON): the ratio usage / bare
#   get    GET /v1/subscriptions/{id} in an open loop at 1,000 requests/s, latency from the intended send time
# and stops and deletes everything. Options (see HostLoadRun.cs): --seconds 10 --warmup 40 --writers 8 --batch 100
# --customers 1000 --duplicates 5 --rate 1000 --get-seconds 10 --phases usage,bare,get --repeat 1 --pg-fast
# Set DOTNET_PerfMapEnabled=1 to profile the host with perf (the host inherits the environment).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mode="both"
if [[ $# -gt 0 && "$1" != --* ]]; then mode="$1"; shift; fi
dotnet build "$root/samples/Billing.SampleHost" -c Release -v quiet -nologo >/dev/null
dotnet build "$root/benchmarks/Billing.Benchmarks" -c Release -v quiet -nologo >/dev/null
host_dll="$root/samples/Billing.SampleHost/bin/Release/net10.0/Billing.SampleHost.dll"
bench_dll="$root/benchmarks/Billing.Benchmarks/bin/Release/net10.0/Billing.Benchmarks.dll"
nice_cmd=(nice -n -19)
nice -n -19 true 2>/dev/null || nice_cmd=()
run() { flock /tmp/billing-bench.lock "${nice_cmd[@]}" dotnet "$bench_dll" host-load --host-dll "$host_dll" "$@"; }
case "$mode" in
  embedded)   run --provider sqlite "$@" ;;
  postgresql) run --provider postgresql --redis "$@" ;;
  both)       run --provider sqlite "$@"; run --provider postgresql --redis "$@" ;;
  *) echo "usage: benchmarks/host-load.sh [embedded|postgresql|both] [host-load options]" >&2; exit 2 ;;
esac
