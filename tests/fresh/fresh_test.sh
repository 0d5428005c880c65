#!/usr/bin/env bash
# tests/fresh/fresh_test.sh - README's "Two commands" on a fresh Debian 12 system, exactly as
# written there. ctest: fresh_system (LABELS fresh; `make fresh`, run by .ci/run).
#
# In a clean container made from the container test's debootstrap base (minbase, nothing else:
# tests/deploy/container_test.sh --base-only), with a clean checkout of HEAD (git archive: no
# build folders, no node_modules, no uncommitted changes) at /root/gru-sentiment and this
# machine's ../shared/data mounted read-only at /root/shared/data when it exists (so the data
# tests run too), it runs the code block of README.md's "Two commands" section line by line:
#   1. its prerequisite line (the only thing installed before the two commands);
#   2. `make run` in the background until GET /readyz answers 200, then an English and a Chinese
#      POST /v1/sentiment checked for a label of the model, then SIGTERM to gru-serve: `make run`
#      must exit 0 (the server drained);
#   3. `make test`: it must pass, and no test may skip but those labelled container, browser or
#      fresh (no podman and no browser session inside; they run on the host);
#   4. `make fuzz` for a few seconds per fuzzer (README's next paragraph; CI's clang toolchain).
# So a package missing from tools/install-deps.sh fails it. Each phase prints its time.
#
# Needs root and podman (tools/install-deps.sh container); exits 77 (skipped) without them.
# The container reaches the Debian mirror of this machine's apt configuration (the base's
# sources) and, for the browser test's `npm ci`, npm's registry, through slirp4netns: the
# server's 127.0.0.1:8080 stays inside the container. About 8 minutes on 2 cores, most of it
# make test's package installs and build.
#
# usage: tests/fresh/fresh_test.sh [--repo DIR] [--keep]
# env:   GRU_CI_CACHE        cache folder of the base tarball (default /var/tmp/gru-ci)
#        GRU_FRESH_TIMEOUT_S longest any one phase may take (default 2400)
#        GRU_FRESH_FUZZ_SECONDS  then `make fuzz` with this many seconds per fuzzer (default 5; 0: not)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
GRU_TEST=fresh_test
source "$REPO/tests/deploy/podman_lib.sh"
pm_args "[--repo DIR] [--keep]" "$@"
PHASE_MAX=${GRU_FRESH_TIMEOUT_S:-2400}
FUZZ_S=${GRU_FRESH_FUZZ_SECONDS:-5}
pm_require
git -C "$REPO" rev-parse --verify -q HEAD >/dev/null || skip "$REPO is not a git checkout (the test copies HEAD)"

# Phases: name and seconds, printed as they end and again at the end.
PHASES=()
P_NAME="" P_T=0
phase() { # phase NAME: end the current phase, start NAME
    local now
    now=$(date +%s)
    if [ -n "$P_NAME" ]; then
        PHASES+=("$(printf '%-60s %5d s' "$P_NAME" $((now - P_T)))")
        say "phase done: $P_NAME in $((now - P_T)) s"
    fi
    P_NAME=$1 P_T=$now
    [ -n "$P_NAME" ] && say "phase: $P_NAME"
    return 0
}
report() {
    phase ""
    echo "fresh_test phases:"
    printf '  %s\n' "${PHASES[@]}"
    printf '  %-60s %5d s\n' total $(($(date +%s) - T0))
}

# --- README's code block -------------------------------------------------------------------------
mapfile -t BLOCK < <(awk '/^## Two commands/ {s = 1; next} s && /^## / {exit}
                          s && /^```sh/ {b = 1; next} b && /^```/ {exit} b {print}' "$REPO/README.md")
strip() { sed -e 's/[[:space:]]#.*$//' -e 's/[[:space:]]*$//' <<<"$1"; }
[ ${#BLOCK[@]} = 3 ] || die "README.md's 'Two commands' block has ${#BLOCK[@]} lines, want 3 (prerequisites, make run, make test)"
PREREQ=$(strip "${BLOCK[0]}")
[ "$(strip "${BLOCK[1]}")" = "make run" ] || die "README.md's second line is '${BLOCK[1]}', not 'make run'"
[ "$(strip "${BLOCK[2]}")" = "make test" ] || die "README.md's third line is '${BLOCK[2]}', not 'make test'"
case $PREREQ in make*) die "README.md's first line should be the prerequisites, not '$PREREQ'" ;; esac
say "README.md: prerequisites '$PREREQ', then 'make run', then 'make test'"

# --- The base, the checkout, the container ------------------------------------------------------
phase "base: Debian 12 minbase tarball, import"
pm_private fresh
NAME=gru-fresh-$$
on_exit_hook() { [ -z "$P_NAME" ] || report; }
pm_on_exit
pm_base

phase "checkout: git archive HEAD"
rev=$(git -C "$REPO" rev-parse --short HEAD)
[ -z "$(git -C "$REPO" status --porcelain --untracked-files=no)" ] ||
    say "note: $REPO has uncommitted changes; this tests HEAD ($rev) only"
git -C "$REPO" archive --format=tar --prefix=gru-sentiment/ HEAD >"$WORK/src.tar"
say "HEAD $rev: $(tar -tf "$WORK/src.tar" | grep -vc '/$') files"

SHARED_DATA=$(cd "$REPO/.." && pwd)/shared/data
mounts=() test_env=() have_data=0
if [ -d "$SHARED_DATA" ]; then
    mounts+=(-v "$SHARED_DATA:/root/shared/data:ro")
    have_data=1
    say "mounting $SHARED_DATA read-only at /root/shared/data (the data tests run)"
else
    say "no $SHARED_DATA: the tests that need it will skip"
fi
# A machine whose TLS goes through a proxy with its own CA tells node so (NODE_EXTRA_CA_CERTS);
# make test's npm ci in the container gets the same, as it gets this machine's Debian mirror.
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -r "$NODE_EXTRA_CA_CERTS" ]; then
    mounts+=(-v "$NODE_EXTRA_CA_CERTS:/run/host-extra-ca.pem:ro")
    test_env=(-e NODE_EXTRA_CA_CERTS=/run/host-extra-ca.pem)
    say "passing this machine's NODE_EXTRA_CA_CERTS to make test (npm ci)"
fi
pm run -d --name "$NAME" --hostname fresh --network=slirp4netns "${mounts[@]}" \
    "$BASE_IMAGE" sleep infinity >/dev/null
pm exec -i "$NAME" tar -x -C /root <"$WORK/src.tar"
PID=$(pm inspect --format '{{.State.Pid}}' "$NAME")
in_c() { pm exec "$NAME" bash -c "cd /root/gru-sentiment && $1"; }
installed() { pm exec "$NAME" dpkg-query -W -f='${Status}\n' 2>/dev/null | grep -c 'install ok installed' || true; }
say "container $NAME: $(installed) packages installed (minbase)"

# --- 1. Prerequisites ---------------------------------------------------------------------------
phase "prerequisites: $PREREQ"
if ! in_c "$PREREQ" >"$WORK/prereq.log" 2>&1; then
    tail -n 30 "$WORK/prereq.log"
    die "README's prerequisite line failed"
fi
say "$(installed) packages installed"

# --- 2. make run --------------------------------------------------------------------------------
phase "make run: install, build, serve until /readyz is 200"
pm exec -d "$NAME" bash -c 'cd /root/gru-sentiment && { make run >/root/make-run.log 2>&1; echo $? >/root/make-run.rc; }' >/dev/null
URL=http://127.0.0.1:8080
run_log() { pm exec "$NAME" tail -n "$1" /root/make-run.log 2>/dev/null | sed 's/^/  | /'; }
run_rc() { pm exec "$NAME" cat /root/make-run.rc 2>/dev/null || true; }
t=$(date +%s)
until in_netns "$PID" curl -fsS -o /dev/null --max-time 2 "$URL/readyz" 2>/dev/null; do
    rc=$(run_rc)
    [ -z "$rc" ] || { run_log 40; die "make run exited ($rc) before /readyz answered 200"; }
    [ $(($(date +%s) - t)) -lt "$PHASE_MAX" ] || { run_log 40; die "/readyz not 200 after $PHASE_MAX s"; }
    sleep 2
done
run_log 3
say "$(installed) packages installed; /readyz 200"

phase "make run: requests, SIGTERM"
in_netns "$PID" python3 - "$URL" <<'EOF'
import json, sys, urllib.request

url = sys.argv[1]
TEXTS = {"word": "the food was cold but the staff were lovely", "char": "菜很好吃，送餐也很快"}


def call(path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


models = {m["tokenizer"]["kind"]: m for m in call("/v1/models")["models"]}
for kind, text in TEXTS.items():
    if kind not in models:
        sys.exit(f"FAIL: no model with a {kind} tokenizer (English and Chinese are shipped)")
    m = models[kind]
    doc = call("/v1/sentiment", {"text": text, "model": m["name"]})
    if doc.get("label") not in m["labels"]:
        sys.exit(f"FAIL: {m['name']}: label {doc.get('label')!r} not one of {m['labels']}")
    print(f"  POST /v1/sentiment {m['name']}: {text!r} -> {doc['label']} {doc['score']:.3f}")
EOF
serve_pid=$(pm exec "$NAME" bash -c 'for d in /proc/[0-9]*; do [ "$(cat "$d/comm" 2>/dev/null)" = gru-serve ] && echo "${d#/proc/}"; done; true')
[ -n "$serve_pid" ] || die "no gru-serve process in the container"
pm exec "$NAME" kill -TERM "$serve_pid"
t=$(date +%s)
until [ -n "$(run_rc)" ]; do
    [ $(($(date +%s) - t)) -lt 60 ] || { run_log 20; die "make run still running 60 s after SIGTERM"; }
    sleep 0.5
done
run_log 2
[ "$(run_rc)" = 0 ] || die "make run exited $(run_rc) after SIGTERM, want 0"
pm exec "$NAME" grep -q draining /root/make-run.log || die "no 'draining' line in make run's output"
say "SIGTERM: make run exited 0"
# make run installs no test packages, and CMake said why the tests are off.
pm exec "$NAME" grep -h 'Tests are off' /root/make-run.log | sed 's/^/  | /' ||
    die "make run's CMake did not say 'Tests are off' (did it install the test packages?)"
in_c "tools/install-deps.sh --list run" >"$WORK/run-pkgs"
# (explicitly installed, i.e. marked manual; a dependency of a run package may be one too)
extra=$(in_c "tools/install-deps.sh --list test" | tr ' ' '\n' | grep -vxF -f <(tr ' ' '\n' <"$WORK/run-pkgs") |
        grep -xF -f <(pm exec "$NAME" apt-mark showmanual) || true)
[ -z "$extra" ] || die "make run installed test packages: $extra"

# --- 3. make test -------------------------------------------------------------------------------
phase "make test: install, build, ctest"
if ! timeout "$PHASE_MAX" podman --tmpdir "$WORK/tmp" exec "${test_env[@]}" "$NAME" bash -c 'cd /root/gru-sentiment && make test' \
    >"$WORK/make-test.log" 2>&1; then
    # ctest --output-on-failure: the failures' output, then the summary.
    grep -n 'Failed\|\*\*\*\|Error\|error:' "$WORK/make-test.log" | head -n 40
    tail -n 60 "$WORK/make-test.log"
    die "make test failed"
fi
grep -E '^make: warning|^npm (ERR|error)' "$WORK/make-test.log" | head -n 8 | sed 's/^/  | /' || true
sed -n '/tests passed/,$p' "$WORK/make-test.log" | sed 's/^/  | /'
# Skips are allowed only for the labels that cannot run in here (and, when this machine has no
# ../shared/data to mount, for the tests that say they skip for want of it).
may_skip=$(in_c "cd build && ctest -N -L 'container|browser|fresh'" | awk '/Test +#/ {print $3}')
skipped=$(sed -n '/The following tests did not run/,/^$/p' "$WORK/make-test.log" | awk '/\(Skipped\)/ {print $1 " " $3}')
if [ -n "$skipped" ]; then # why, in their own words: "N: SKIP: ..."
    in_c "cd build && ctest -V -R '^($(awk '{print $2}' <<<"$skipped" | paste -sd '|'))\$'" | grep 'SKIP' | sort -u >"$WORK/skips.txt" || true
    sed 's/^/  | /' "$WORK/skips.txt"
fi
while read -r num t_name; do
    [ -n "$t_name" ] || continue
    grep -qx "$t_name" <<<"$may_skip" && continue
    [ $have_data = 0 ] && grep -q "^$num: SKIP.*shared/data" "$WORK/skips.txt" && continue
    die "$t_name skipped in the fresh system: something it needs is not installed by make test"
done <<<"$skipped"
say "make test passed; skipped, as allowed: $(awk '{print $2}' <<<"$skipped" | paste -sd ' ')"
# --- 4. make fuzz (README's next paragraph): the clang toolchain of the test group ----------------
if [ "$FUZZ_S" != 0 ]; then
    phase "make fuzz FUZZ_SECONDS=$FUZZ_S: clang build, each fuzzer"
    if ! in_c "make fuzz FUZZ_SECONDS=$FUZZ_S" >"$WORK/make-fuzz.log" 2>&1; then
        tail -n 40 "$WORK/make-fuzz.log"
        die "make fuzz failed"
    fi
    grep 'tests passed' "$WORK/make-fuzz.log" | sed 's/^/  | /'
fi
say "PASS: $(installed) packages installed in the end"
