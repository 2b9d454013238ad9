#!/usr/bin/env bash
# Runs every fuzz target in the module for FUZZTIME (default 5s).
#
# A target fails the run when the fuzzer finds an input that breaks it
# (go test writes it to testdata/fuzz/<target>/, where it then stays a
# regression seed) or when the seed corpus fails. Go's fuzzing engine can
# also fail without any failing input, e.g. when it loses a worker on a
# loaded machine ("fuzzing process hung or terminated unexpectedly"): that
# is printed in full (indented) and the target is run once more. A seed or build
# failure fails again, so an engine hiccup does not fail CI while every
# real failure still does.
set -euo pipefail
fuzztime=${FUZZTIME:-5s}
go=${GO:-go}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for pkg in $($go list ./...); do
  dir=$($go list -f '{{.Dir}}' "$pkg")
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/func //'); do
    echo "fuzz $pkg $f"
    for try in 1 2; do
      if $go test -run='^$' -fuzz="^$f\$" -fuzztime="$fuzztime" "$pkg" >"$log" 2>&1; then
        break
      fi
      if [ "$try" = 2 ] || grep -q 'Failing input written to' "$log"; then
        cat "$log"
        echo "FAIL fuzz $pkg $f"
        exit 1
      fi
      # Indented, so that a log reader does not count the engine's
      # "--- FAIL" line of a try that is run again as a failed test.
      sed 's/^/    first try: /' "$log"
      echo "fuzz $pkg $f: failed without a failing input; running it again"
    done
  done
done
