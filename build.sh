#!/usr/bin/env bash
# One entry point for building and testing on a fresh machine of this kind (Debian 12 + .NET SDK 10).
#   ./build.sh test    install what is missing, build, run every test, print "tests: N passed, N failed"
#   ./build.sh build   restore and build (Release, warnings as errors)
#   ./build.sh pack    build the NuGet packages into artifacts/packages
#   ./build.sh bench   run the BenchmarkDotNet suite (extra arguments go to BenchmarkSwitcher)
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)
artifacts="$root/artifacts"

say() { printf '\n==> %s\n' "$*"; }
fail() { printf 'error: %s\n' "$*" >&2; exit 1; }

apt_install() {
  # Installs Debian packages when missing; needs root (as on CI and developer machines of this kind).
  if [ "$(id -u)" -ne 0 ]; then
    fail "missing $*; install it: sudo apt-get update && sudo apt-get install -y $*"
  fi
  say "installing $* (apt)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_prerequisites() {
  command -v dotnet >/dev/null 2>&1 || fail "the .NET SDK is not on PATH; install .NET SDK 10.0.401 (see global.json)"
  # Billing periods are computed on IANA time zones: TimeZoneInfo reads them from tzdata.
  [ -e /usr/share/zoneinfo/America/New_York ] || apt_install tzdata
  # .NET globalization (culture-invariance tests switch cultures) needs ICU.
  ldconfig -p 2>/dev/null | grep -q libicuuc || apt_install libicu72
  # LocalPostgresServer (Billing.Testing) runs throwaway PostgreSQL servers from the machine's binaries. Debian puts them
  # in /usr/lib/postgresql/<version>/bin, off PATH; the server class looks there too.
  if ! command -v initdb >/dev/null 2>&1 && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
    apt_install postgresql
  fi
  # The client tools (createdb, psql) come with the server package; install them alone only when still missing.
  local tool
  for tool in createdb psql; do
    if ! command -v "$tool" >/dev/null 2>&1 && ! compgen -G "/usr/lib/postgresql/*/bin/$tool" >/dev/null; then
      apt_install postgresql-client
      break
    fi
  done
  # LocalRedisServer (Billing.Testing) runs throwaway Redis servers from the machine's redis-server (PATH, /usr/local/bin,
  # /usr/bin). The service the Debian package enables listens on 6379 and does not interfere: the fixture takes a free port.
  if ! command -v redis-server >/dev/null 2>&1 && [ ! -x /usr/local/bin/redis-server ] && [ ! -x /usr/bin/redis-server ]; then
    apt_install redis-server
  fi
}

build() {
  say "restore"
  dotnet restore Billing.Core.sln
  if [ -f .config/dotnet-tools.json ]; then dotnet tool restore; fi
  say "build (Release, warnings as errors)"
  dotnet build Billing.Core.sln -c Release --no-restore
}

run_tests() {
  local results="$artifacts/test-results"
  rm -rf "$results"
  say "test"
  local status=0
  dotnet test Billing.Core.sln -c Release --no-build \
    --results-directory "$results" --logger "trx" --logger "console;verbosity=minimal" || status=$?
  # One summary line over every test project (what CI reads).
  local passed=0 failed=0 skipped=0 files=0
  for trx in "$results"/*.trx; do
    [ -e "$trx" ] || continue
    files=$((files + 1))
    local counters
    counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)
    local p f e t
    p=$(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$counters")
    f=$(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$counters")
    t=$(sed -n 's/.* total="\([0-9]*\)".*/\1/p' <<<"$counters")
    e=$(sed -n 's/.* executed="\([0-9]*\)".*/\1/p' <<<"$counters")
    passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0})); skipped=$((skipped + ${t:-0} - ${e:-0}))
  done
  echo
  echo "tests: $passed passed, $failed failed, $skipped skipped"
  [ "$files" -gt 0 ] || fail "no test results were written"
  [ "$passed" -gt 0 ] || fail "no test ran"
  return $status
}

pack() {
  say "pack"
  rm -rf "$artifacts/packages"
  dotnet pack Billing.Core.sln -c Release --no-build -o "$artifacts/packages"
  ls -l "$artifacts/packages"
}

case "${1:-test}" in
  test) ensure_prerequisites; build; run_tests ;;
  build) ensure_prerequisites; build ;;
  pack) ensure_prerequisites; build; pack ;;
  bench) shift || true; ensure_prerequisites
         dotnet run -c Release --project benchmarks/Billing.Benchmarks -- "$@" ;;
  *) fail "unknown command '$1' (test | build | pack | bench)" ;;
esac
