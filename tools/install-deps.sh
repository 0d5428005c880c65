#!/bin/sh
# install-deps.sh - install the Debian packages gru-sentiment needs, only when some are missing.
#   tools/install-deps.sh run    build and run the service
#   tools/install-deps.sh test   build and run the tests (adds cmocka and the test tools)
#   tools/install-deps.sh container  podman and its helpers for the container test (.ci/run)
set -eu
run_pkgs="build-essential cmake pkg-config libopenblas-dev libjansson-dev libmicrohttpd-dev libuv1-dev"
# chromium and a CJK font: the browser test of the web page (tests/browser).
test_pkgs="$run_pkgs libcmocka-dev python3 python3-yaml curl chromium fonts-noto-cjk"
# podman and its helpers: the container test (tests/deploy/container_test.sh; .ci/run installs them).
container_pkgs="podman buildah debootstrap fuse-overlayfs slirp4netns uidmap runc"
case "${1:-run}" in
    run) pkgs=$run_pkgs ;;
    test) pkgs=$test_pkgs
        # Node.js and npm for the browser test, from Debian only when the commands are missing
        # (a machine may have them from elsewhere, e.g. NodeSource's nodejs, which bundles npm
        # and conflicts with Debian's npm package).
        command -v node >/dev/null 2>&1 || pkgs="$pkgs nodejs"
        command -v npm >/dev/null 2>&1 || pkgs="$pkgs npm" ;;
    container) pkgs=$container_pkgs ;;
    *) echo "usage: $0 run|test|container" >&2; exit 2 ;;
esac
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "install-deps: installing:$missing"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing
