#!/bin/sh
# install-deps.sh - the one list of the Debian 12 packages gru-sentiment needs on a machine; it
# installs those of a group that are missing (apt-get, with sudo when not root). The Makefile,
# .ci/run and the docs use it; nothing else names packages for the machine (the Dockerfile's
# stages keep their own minimal lists for the image).
#   tools/install-deps.sh run        build and run the service and the CLI tools (make run)
#   tools/install-deps.sh test       + every test of make test, make asan, make fuzz
#   tools/install-deps.sh container  podman and its helpers: the container and fresh-system tests
#   tools/install-deps.sh train      retrain the models, run bench/ (PyTorch, wrk)
#   tools/install-deps.sh --list GROUP   print the group's packages, install nothing
# tests/fresh (ctest label fresh, CI) runs README's two commands in a clean Debian 12 container:
# a package missing here fails it.
set -eu
# Compiler, CMake and the libraries the service links.
run_pkgs="build-essential cmake pkg-config libopenblas-dev libjansson-dev libmicrohttpd-dev libuv1-dev"
# cmocka: the unit tests; python3 + numpy: the end-to-end harness and its tiny models
# (tests/e2e/tiny_model.py), the fuzz seeds; python3-yaml: the manifest check
# (tests/deploy/check_manifests.py); curl: the container tests; valgrind: valgrind_e2e;
# clang + libclang-rt-14-dev: make fuzz (libFuzzer); chromium + a CJK font: the browser test.
test_pkgs="$run_pkgs libcmocka-dev python3 python3-numpy python3-yaml curl valgrind clang libclang-rt-14-dev chromium fonts-noto-cjk"
# podman and its helpers (tests/deploy/container_test.sh, tests/deploy/kube_test.sh,
# tests/fresh/fresh_test.sh), which also use curl and python3; catatonit: the pause process of
# the pods podman kube play makes.
container_pkgs="podman buildah catatonit debootstrap fuse-overlayfs slirp4netns uidmap runc curl python3"
# tools/train.py and tools/gen_reference.py (PyTorch; call /usr/bin/python3), bench/ (wrk; the
# FastAPI + uvicorn peer of bench/peers_bench.py, ../shared/peers).
train_pkgs="python3 python3-numpy python3-torch wrk python3-fastapi python3-uvicorn"

list=0
if [ "${1:-}" = --list ]; then list=1; shift; fi
case "${1:-run}" in
    run) pkgs=$run_pkgs ;;
    test) pkgs=$test_pkgs
        # Node.js and npm for the browser test, from Debian only when the commands are missing
        # (a machine may have them from elsewhere, e.g. NodeSource's nodejs, which bundles npm
        # and conflicts with Debian's npm package). Debian 12's nodejs is 18: playwright-core
        # wants 20 or newer, so there the browser test skips with a message.
        command -v node >/dev/null 2>&1 || pkgs="$pkgs nodejs"
        command -v npm >/dev/null 2>&1 || pkgs="$pkgs npm" ;;
    container) pkgs=$container_pkgs ;;
    train) pkgs=$train_pkgs ;;
    *) echo "usage: $0 [--list] run|test|container|train" >&2; exit 2 ;;
esac
if [ $list = 1 ]; then echo "$pkgs"; exit 0; fi
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
