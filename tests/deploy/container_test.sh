#!/usr/bin/env bash
# tests/deploy/container_test.sh - build the gru-serve image from ./Dockerfile with podman, run it
# as deploy/ does (read-only root, no capabilities), send it real requests, check it runs as
# non-root and passes its HEALTHCHECK, stop it with SIGTERM, check it exits 0, check the image
# size, and remove everything it made. ctest: container_image (LABELS container).
#
# Needs root, curl, python3 and podman with its helpers; this script installs nothing
# (`tools/install-deps.sh container` does). Without podman it exits 77 (skipped).
#
# No registry is reachable here, so the base image is made locally: debootstrap --variant=minbase
# bookworm, slimmed like debian:bookworm-slim, imported as localhost/debian:bookworm-slim and
# passed as the Dockerfile's BASE. The rootfs tarball is cached in $GRU_CI_CACHE (made on first
# use, kept); podman's storage is a fresh folder per run, deleted at the end.
#
# usage: tests/deploy/container_test.sh [--repo DIR] [--keep]   the whole test (about 4 minutes)
#        tests/deploy/container_test.sh --base-only                only make the cached base tarball
# env:   GRU_CI_CACHE      cache folder (default /var/tmp/gru-ci)
#        GRU_BASE_MIRROR   Debian mirror for debootstrap (default: this machine's apt configuration,
#                          the source of bookworm's main component in /etc/apt/sources.list.d/*.sources
#                          (deb822) or /etc/apt/sources.list; none there and no variable: fail)
#        GRU_IMAGE_MAX_MB  fail when the image is this many MB (10^6 bytes) or more (default 180:
#                          ~135 MB of Debian slim + OpenBLAS and friends, ~33 MB of shipped models)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
GRU_TEST=container_test
source "$HERE/podman_lib.sh"
pm_args "[--repo DIR] [--keep] | --base-only" "$@"
MAX_MB=${GRU_IMAGE_MAX_MB:-180}
pm_require

# --- The base image: debootstrap once, cache the tarball ---------------------------------------
# The mirror this machine's apt takes bookworm's main component from: deb822 stanzas in
# /etc/apt/sources.list.d/*.sources (enabled, Types deb, Suites bookworm), else one-line
# "deb [options] URI bookworm main" entries; empty when there is none. Never a built-in default.
apt_mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        awk 'function flush() { if (deb && suite && main && enabled && uri != "") { print uri; found = 1; exit } }
             function reset() { deb = suite = main = 0; enabled = 1; uri = "" }
             BEGIN { reset() }
             /^[ \t]*$/ { flush(); reset(); next }
             /^#/ { next }
             { key = tolower($1) }
             key == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
             key == "uris:" { uri = $2 }
             key == "suites:" { for (i = 2; i <= NF; i++) if ($i == "bookworm") suite = 1 }
             key == "components:" { for (i = 2; i <= NF; i++) if ($i == "main") main = 1 }
             key == "enabled:" { enabled = (tolower($2) != "no") }
             END { if (!found) flush() }' "$f"
    done | head -n 1 | grep . && return 0
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        awk '$1 == "deb" { sub(/^deb[ \t]+(\[[^]]*\][ \t]+)?/, "");
                          if ($2 == "bookworm") for (i = 3; i <= NF; i++) if ($i == "main") { print $1; exit } }' || true
}

make_base() {
    [ -s "$BASE_TAR" ] && return 0
    exec 9>"$CACHE/base.lock"
    flock 9 # another run may be making it
    if [ -s "$BASE_TAR" ]; then exec 9>&-; return 0; fi
    command -v debootstrap >/dev/null || skip "debootstrap is not installed and $BASE_TAR is missing"
    local mirror=${GRU_BASE_MIRROR:-$(apt_mirror)}
    [ -n "$mirror" ] || die "no Debian mirror: this machine's apt configuration (/etc/apt/sources.list.d/*.sources, /etc/apt/sources.list) has no 'bookworm main' source; set GRU_BASE_MIRROR=<mirror URL>"
    local rootfs
    rootfs=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    say "debootstrap --variant=minbase bookworm from $mirror (once; cached in $BASE_TAR)"
    if ! debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$CACHE/debootstrap.log" 2>&1; then
        tail -n 30 "$CACHE/debootstrap.log"
        unmount_under "$rootfs"
        rm -rf --one-file-system "$rootfs"
        die "debootstrap failed (log: $CACHE/debootstrap.log)"
    fi
    unmount_under "$rootfs"
    # Slim it as debian:bookworm-slim is made (debuerreotype --slimify): no docs, man pages or
    # translations, now or from packages installed later; apt keeps no caches or lists.
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
EOF
    cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
    find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$rootfs"/usr/share/{groff,info,linda,lintian,locale,man}/*
    # The same apt sources as this machine (deb822), as the official image has.
    rm -f "$rootfs/etc/apt/sources.list"
    if [ -z "${GRU_BASE_MIRROR:-}" ] && [ -r /etc/apt/sources.list.d/debian.sources ]; then
        cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/debian.sources"
    else
        printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            "$mirror" >"$rootfs/etc/apt/sources.list.d/debian.sources"
    fi
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/*
    rm -f "$rootfs/etc/resolv.conf" "$rootfs/etc/hostname"
    tar --numeric-owner -C "$rootfs" -cf "$BASE_TAR.part" .
    mv "$BASE_TAR.part" "$BASE_TAR"
    rm -rf --one-file-system "$rootfs"
    exec 9>&-
    say "base tarball: $(du -m "$BASE_TAR" | cut -f1) MB"
}

make_base
[ "$BASE_ONLY" = 1 ] && exit 0

# --- A private podman: our containers.conf, storage in a fresh folder ---------------------------
ls "$REPO"/models/*/config.json >/dev/null 2>&1 || skip "no model under $REPO/models yet (the image ships them)"
pm_private run

NAME=gru-ci-$$
IMAGE=localhost/gru-serve:ci-$$
pm_on_exit

say "import $BASE_TAR as $BASE_IMAGE"
pm_base

# --- Build ---------------------------------------------------------------------------------------
say "podman build (log: $WORK/build.log)"
tb=$(date +%s)
pm_build "$REPO" "$IMAGE"
say "built in $(($(date +%s) - tb)) s"
size=$(pm image inspect --format '{{.Size}}' "$IMAGE")
size_mb=$(awk -v b="$size" 'BEGIN {printf "%.1f", b / 1e6}')
say "image size: $size_mb MB ($size bytes; limit $MAX_MB MB)"
[ "$size" -lt $((MAX_MB * 1000000)) ] || die "the image is $size_mb MB, not under $MAX_MB MB"
[ "$(pm image inspect --format '{{.Config.StopSignal}}' "$IMAGE")" = SIGTERM ] || die "STOPSIGNAL is not SIGTERM"
[ -n "$(pm image inspect --format '{{.Config.Healthcheck}}' "$IMAGE")" ] || die "no HEALTHCHECK in the image"

# --- Run, as the Kubernetes manifests do: read-only root, no capabilities, no new privileges ----
# slirp4netns: the published port is a user-space forwarder on 127.0.0.1, so the test adds no
# bridge, no iptables rules and no ip_forward change to the host (podman's default CNI bridge
# would). --health-interval=disable: no systemd here to time the periodic check; this test runs
# it by hand with `podman healthcheck run`.
PORT=$(free_port)
say "podman run $NAME on 127.0.0.1:$PORT"
pm run -d --name "$NAME" -p "127.0.0.1:$PORT:8080" \
    --network=slirp4netns:port_handler=slirp4netns --health-interval=disable \
    --read-only --read-only-tmpfs=false --cap-drop=ALL --security-opt=no-new-privileges \
    -e GRU_SERVE_WORKERS=2 "$IMAGE" >"$WORK/run.out" 2>&1 || { cat "$WORK/run.out"; die "podman run failed"; }
URL=http://127.0.0.1:$PORT
ready=0
for _ in $(seq 1 300); do
    if curl -fsS -o /dev/null --max-time 2 "$URL/readyz" 2>/dev/null; then ready=1; break; fi
    [ "$(pm inspect --format '{{.State.Running}}' "$NAME")" = true ] || break
    sleep 0.2
done
if [ "$ready" != 1 ]; then
    pm logs "$NAME" 2>&1 | tail -n 30
    die "the server did not become ready (running: $(pm inspect --format '{{.State.Running}}' "$NAME"))"
fi
say "ready after $(($(date +%s) - T0)) s since the test's start"

# --- Real requests ------------------------------------------------------------------------------
# Through the published port: every route the deployment uses, sentiment with gates, errors.
# The burst from 32 clients goes to 127.0.0.1:8080 inside the container's network namespace
# (nsenter): slirp4netns' port forwarder resets connections beyond a few concurrent connects,
# which would test slirp4netns, not the image.
cat >"$WORK/requests.py" <<'EOF'
import concurrent.futures, json, sys, urllib.error, urllib.request

mode, url = sys.argv[1], sys.argv[2]
TEXTS = {"word": "the food was cold but the staff were lovely", "char": "菜很好吃，送餐也很快"}


def call(method, path, body=None, ctype="application/json"):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def check(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)


def metrics():
    st, hdr, body = call("GET", "/metrics")
    check(st == 200 and hdr.get("Content-Type", "").startswith("text/plain"), f"GET /metrics -> {st}")
    m = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            m[key] = float(value)
    return m


def total(m, prefix, cond=""):
    return sum(v for k, v in m.items() if k.startswith(prefix + "{") and cond in k)


if mode == "api":
    for path in ("/healthz", "/readyz"):
        st, _, _ = call("GET", path)
        check(st == 200, f"GET {path} -> {st}")
    st, _, body = call("GET", "/v1/models")
    check(st == 200, f"GET /v1/models -> {st}")
    models = json.loads(body)["models"]
    check(models, "no models loaded")
    print("  models:", ", ".join(m["name"] for m in models))
    for m in models:
        text = TEXTS.get((m.get("tokenizer") or {}).get("kind"), TEXTS["word"])
        st, hdr, body = call("POST", "/v1/sentiment", {"text": text, "model": m["name"], "gates": "summary"})
        check(st == 200, f"POST /v1/sentiment {m['name']} -> {st} {body[:200]!r}")
        doc = json.loads(body)
        check(doc["label"] in m["labels"], f"label {doc['label']!r} not in {m['labels']}")
        n = len(doc["tokens"])
        check(n > 0 and doc["gates"], "no tokens or no gates")
        for g in doc["gates"]:
            check(len(g["reset"]) == n and len(g["update"]) == n, "gates do not have one value per token")
        check({"x-queue-time", "x-inference-time"} <= {k.lower() for k in hdr}, "no x-queue-time / x-inference-time")
        print(f"  {m['name']}: {text!r} -> {doc['label']} {doc['score']:.3f}, {n} tokens, "
              f"update gate {[round(z, 2) for z in doc['gates'][0]['update']]}")
    st, _, body = call("POST", "/v1/sentiment", {"texts": [TEXTS["word"], "great", "awful"], "gates": "full"})
    check(st == 200 and len(json.loads(body)["results"]) == 3, f"batch request -> {st}")
    st, _, body = call("POST", "/v1/sentiment", b"{not json")
    check(st == 400 and "error" in json.loads(body), f"malformed JSON -> {st}")
    st, _, body = call("GET", "/nope")
    check(st == 404 and "error" in json.loads(body), f"unknown route -> {st}")
    m = metrics()
    check(m.get("gru_ready") == 1, "gru_ready is not 1")
    check(total(m, "gru_requests_total", 'status="200"') >= 4, "/metrics does not count the answers")
    print(f"  /metrics: {total(m, 'gru_requests_total'):.0f} requests counted, gru_ready 1")
else:  # burst
    N, C = 2000, 32
    before = total(metrics(), "gru_requests_total", 'status="200"')
    with concurrent.futures.ThreadPoolExecutor(C) as pool:
        codes = list(pool.map(lambda i: call("POST", "/v1/sentiment", {"text": f"{TEXTS['word']} {i}"})[0],
                              range(N)))
    check(codes.count(200) == N, f"burst: {N - codes.count(200)} of {N} not 200: {sorted(set(codes))}")
    m = metrics()
    got = total(m, "gru_requests_total", 'status="200"') - before
    check(got >= N, f"gru_requests_total with status 200 rose by {got}, want {N}")
    batches = total(m, "gru_batches_total")
    print(f"  burst: {N} requests from {C} clients, all 200; {total(m, 'gru_texts_total'):.0f} texts in "
          f"{batches:.0f} batches; RSS {m['process_resident_memory_bytes'] / 2**20:.1f} MiB")
EOF
say "requests on 127.0.0.1:$PORT: /healthz /readyz /v1/models /v1/sentiment (gates) /metrics, 400, 404"
python3 "$WORK/requests.py" api "$URL"
say "a burst inside the container's network namespace"
pid=$(pm inspect --format '{{.State.Pid}}' "$NAME")
in_netns "$pid" python3 "$WORK/requests.py" burst http://127.0.0.1:8080

# --- Non-root, healthcheck ----------------------------------------------------------------------
uid_exec=$(pm exec "$NAME" id -u)
uid_srv=$(pm exec "$NAME" awk '/^Uid:/ {print $2}' /proc/1/status)
say "uid: server (pid 1) $uid_srv, exec $uid_exec, image USER $(pm image inspect --format '{{.Config.User}}' "$IMAGE")"
[ "$uid_srv" != 0 ] && [ "$uid_exec" != 0 ] || die "the server runs as root"
pm top "$NAME" user pid args | sed 's/^/  /'
pm healthcheck run "$NAME" >/dev/null || die "podman healthcheck run: unhealthy"
say "podman healthcheck run: healthy"

# --- SIGTERM: drain and exit 0 ------------------------------------------------------------------
ts=$(date +%s.%N)
pm stop -t 30 "$NAME" >/dev/null 2>"$WORK/stop.err" || { cat "$WORK/stop.err"; die "podman stop failed"; }
stop_s=$(awk -v a="$ts" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}')
code=$(pm inspect --format '{{.State.ExitCode}}' "$NAME")
pm logs "$NAME" >"$WORK/server.log" 2>&1 || true
say "podman stop (SIGTERM): exit code $code after $stop_s s; last log lines:"
tail -n 3 "$WORK/server.log" | sed 's/^/  /'
[ "$code" = 0 ] || die "exit code $code after SIGTERM, want 0"
grep -q 'draining' "$WORK/server.log" || die "no 'draining' line in the server's log"

say "PASS: image $size_mb MB, $(($(date +%s) - T0)) s"
