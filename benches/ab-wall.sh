#!/usr/bin/env bash
# Wall time of two (or more) dbtap builds on the same capture, in alternating runs: on a shared
# machine whose speed drifts from one minute to the next, runs taken side by side compare
# builds fairly where separate series do not.
#
#   benches/ab-wall.sh RUNS FILE DBTAP_A [DBTAP_B ...]
#
# Each run is `DBTAP replay FILE --workers W --records OUT --summary none` (W from WORKERS,
# default 1), with OUT a file in a fresh temporary directory (or RECORDS_TO, e.g. /dev/null),
# removed and synced before each run so that a previous run's records are not written back
# during the next. Prints, per build, the minimum and median of its RUNS wall times.
set -euo pipefail
[[ $# -ge 3 ]] || { sed -n '2,11p' "$0" >&2; exit 2; }
RUNS="$1" FILE="$2"
shift 2
[[ -r "$FILE" ]] || { echo "ab-wall: cannot read $FILE" >&2; exit 1; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
OUT="${RECORDS_TO:-$WORK/records.jsonl}"
declare -A TIMES
for ((i = 1; i <= RUNS; i++)); do
    for b in "$@"; do
        [[ "$OUT" == /dev/* ]] || rm -f "$OUT"
        sync
        t0=$EPOCHREALTIME
        "$b" replay "$FILE" --workers "${WORKERS:-1}" --records "$OUT" --summary none \
            --progress never >/dev/null
        t1=$EPOCHREALTIME
        TIMES[$b]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }') "
    done
done
for b in "$@"; do
    # shellcheck disable=SC2086
    printf '%s\n' ${TIMES[$b]} | sort -g | awk -v name="$b" '{ v[NR] = $1 }
        END { printf "%s: min %.3f s, median %.3f s (%d runs)\n", name, v[1], v[int((NR + 1) / 2)], NR }'
done
