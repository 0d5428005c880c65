#!/bin/sh
# run_fuzzer.sh FUZZER CORPUS SECONDS - fuzz for SECONDS from a scratch copy of the committed
# corpus (the repository is never written); on a crash libFuzzer saves the input as
# crash-*/leak-*/timeout-* in the scratch directory and this prints where: copy it into
# CORPUS to make it a regression test.
set -eu
fuzzer=$1 corpus=$2 seconds=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/gru-fuzz.XXXXXX")
mkdir -p "$work/corpus"
cp -r "$corpus"/. "$work/corpus/" 2>/dev/null || true
cd "$work"
set +e
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 corpus
rc=$?
set -e
if [ $rc -ne 0 ]; then
    echo "run_fuzzer: $fuzzer failed (exit $rc); the input is in $work" >&2
    exit $rc
fi
rm -rf "$work"
