# tests/deploy/podman_lib.sh - sourced by the podman tests (tests/deploy/container_test.sh,
# tests/deploy/kube_test.sh, tests/fresh/fresh_test.sh): a private podman (this folder's
# containers.conf, storage in a fresh folder under the cache, removed at the end), the cached
# Debian 12 base, the image build, the common options and messages. The caller sets GRU_TEST
# (its name in messages) and REPO (the default checkout) before sourcing it.
# shellcheck shell=bash

GRU_DEPLOY_TESTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${GRU_CI_CACHE:-/var/tmp/gru-ci}
T0=$(date +%s)
say() { printf '[%s %4ds] %s\n' "$GRU_TEST" "$(($(date +%s) - T0))" "$*"; }
die() { say "FAIL: $*"; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }

# pm_args USAGE ARGS...: --repo DIR (REPO), --keep (KEEP=1: leave the storage for a look), and
# --base-only (BASE_ONLY=1) when USAGE offers it.
pm_usage() { echo "usage: $0 $1" >&2; exit 2; }
pm_args() {
    local usage=$1
    shift
    KEEP=0 BASE_ONLY=0
    while [ $# -gt 0 ]; do
        case $1 in
            --repo) REPO=$(cd "$2" && pwd); shift 2 ;;
            --keep) KEEP=1; shift ;;
            --base-only) [[ $usage == *--base-only* ]] || pm_usage "$usage"; BASE_ONLY=1; shift ;;
            *) pm_usage "$usage" ;;
        esac
    done
}
BASE_TAR=$CACHE/debian-bookworm-slim.tar
BASE_IMAGE=localhost/debian:bookworm-slim

# Skips (77) unless podman is installed and this is root; then the folder of this run's storage.
pm_require() {
    command -v podman >/dev/null || skip "podman is not installed (tools/install-deps.sh container installs it)"
    [ "$(id -u)" -eq 0 ] || skip "needs root (podman with the overlay driver, debootstrap)"
    local tool
    for tool in curl python3 flock nsenter; do command -v $tool >/dev/null || die "$tool is not installed"; done
    mkdir -p "$CACHE"
}

unmount_under() { # every mount point below $1, deepest first
    findmnt -rno TARGET | awk -v p="$1/" 'index($0, p) == 1' | sort -r | while read -r m; do umount -l "$m" || true; done
}

# pm_private PREFIX: a fresh $WORK under the cache holding podman's storage; pm runs podman on it.
pm_private() {
    WORK=$(mktemp -d "$CACHE/$1.XXXXXX")
    cat >"$WORK/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$WORK/storage"
runroot = "$WORK/run"
EOF
    export CONTAINERS_CONF=$GRU_DEPLOY_TESTS/containers.conf
    export CONTAINERS_STORAGE_CONF=$WORK/storage.conf
}
pm() { podman --tmpdir "$WORK/tmp" "$@"; }

# pm_on_exit: at exit, run the caller's on_exit_hook (when defined), then remove all of $WORK
# (or, with --keep, say how to look at it); INT and TERM exit 130 through it.
pm_on_exit() {
    trap pm_exit EXIT
    trap 'exit 130' INT TERM
}
pm_exit() {
    local rc=$?
    if declare -F on_exit_hook >/dev/null; then on_exit_hook || true; fi
    if [ "$KEEP" = 1 ]; then
        say "kept: storage $WORK (CONTAINERS_CONF=$CONTAINERS_CONF CONTAINERS_STORAGE_CONF=$CONTAINERS_STORAGE_CONF podman --tmpdir $WORK/tmp ...)"
        exit $rc
    fi
    pm_cleanup
    say "removed its containers, images and $WORK (kept $BASE_TAR)"
    exit $rc
}

# pm_cleanup: every container and image of this storage, then the storage itself.
pm_cleanup() {
    [ -n "${WORK:-}" ] && [ -d "$WORK" ] || return 0
    pm pod rm -f -a -t 0 >/dev/null 2>&1 || true
    pm rm -f -a -t 0 >/dev/null 2>&1 || true
    pm rmi -f -a >/dev/null 2>&1 || true
    pm system reset -f >/dev/null 2>&1 || true # intermediate stages, build cache, network state
    unmount_under "$WORK"
    rm -rf --one-file-system "$WORK"
}

# pm_base: make the cached base tarball (container_test.sh --base-only), import it as $BASE_IMAGE.
pm_base() {
    [ -s "$BASE_TAR" ] || GRU_CI_CACHE=$CACHE bash "$GRU_DEPLOY_TESTS/container_test.sh" --base-only ||
        die "could not make the Debian 12 base ($BASE_TAR)"
    pm import -q --change 'CMD ["bash"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        "$BASE_TAR" "$BASE_IMAGE" >/dev/null
}

# pm_build REPO IMAGE: ./Dockerfile on the local base (log: $WORK/build.log).
pm_build() {
    if ! pm build --isolation=chroot --network=host --format docker --pull=never \
        --build-arg BASE=$BASE_IMAGE -t "$2" -f "$1/Dockerfile" "$1" >"$WORK/build.log" 2>&1; then
        tail -n 40 "$WORK/build.log"
        die "podman build failed"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# in_netns PID CMD...: run a host command in the network namespace of process PID (a container's
# 127.0.0.1, without publishing a port).
in_netns() {
    local pid=$1
    shift
    nsenter --net="/proc/$pid/ns/net" "$@"
}
