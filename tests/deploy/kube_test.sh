#!/usr/bin/env bash
# tests/deploy/kube_test.sh - run deploy/k8s/deployment.yaml for real with `podman kube play`
# (podman 4.3) on the image built from ./Dockerfile: the Deployment's pod spec with its security
# context, env, resources and probes. ctest: container_kube (LABELS container).
#
# Checks: the pod runs; the container has what the manifest asks (uid/gid 10001 and not root,
# a read-only root filesystem, no capabilities, no-new-privileges, every env value, the memory
# limit); every probe of the manifest (startup, readiness, liveness: httpGet path on the named
# port) answers 200 inside the pod's network namespace, as the kubelet would ask it; one
# POST /v1/sentiment; `podman pod stop` (SIGTERM, terminationGracePeriodSeconds) drains and
# exits 0; `podman kube down` removes it. What podman cannot show (Service, HPA, PDB, rolling
# updates, the kubelet's probe timing, preStop) needs a cluster: deploy/README.md.
#
# Needs root, podman (tools/install-deps.sh container) and python3-yaml (tools/install-deps.sh
# test); exits 77 (skipped) without them. Builds the image itself (a few minutes) in a private
# podman storage, removed at the end, on the cached Debian base of container_test.sh.
#
# usage: tests/deploy/kube_test.sh [--repo DIR] [--keep]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
GRU_TEST=kube_test
source "$HERE/podman_lib.sh"
pm_args "[--repo DIR] [--keep]" "$@"
pm_require
python3 -c 'import yaml' 2>/dev/null || skip "PyYAML is not installed (tools/install-deps.sh test installs python3-yaml)"
MANIFEST=$REPO/deploy/k8s/deployment.yaml
[ -r "$MANIFEST" ] || die "no $MANIFEST"

pm_private kube
pm_on_exit

# The manifest as played: the Deployment unchanged but for replicas: 1 (one pod is enough to
# run the spec, and podman 4.3 plays one pod per Deployment anyway), and the facts to check.
python3 - "$MANIFEST" "$WORK" <<'EOF'
import json, sys, yaml

manifest, work = sys.argv[1:]
docs = [d for d in yaml.safe_load_all(open(manifest)) if d]
dep = next(d for d in docs if d.get("kind") == "Deployment")
dep["spec"]["replicas"] = 1
pod = dep["spec"]["template"]["spec"]
(c,) = pod["containers"]
ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
probes = {}
for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
    if kind in c:
        g = c[kind]["httpGet"]
        probes[kind] = {"path": g["path"], "port": ports.get(g["port"], g["port"])}
facts = {
    "deployment": dep["metadata"]["name"],
    "container": c["name"],
    "image": c["image"],
    "env": {e["name"]: e["value"] for e in c.get("env", []) if "value" in e},
    "port": c["ports"][0]["containerPort"],
    "probes": probes,
    "pod_security": pod.get("securityContext", {}),
    "security": c.get("securityContext", {}),
    "memory_limit": c.get("resources", {}).get("limits", {}).get("memory"),
    "grace": pod.get("terminationGracePeriodSeconds", 30),
}
yaml.safe_dump(dep, open(f"{work}/play.yaml", "w"), sort_keys=False)
json.dump(facts, open(f"{work}/facts.json", "w"))
EOF
fact() { python3 -c 'import json, sys; f = json.load(open(sys.argv[1])); print(eval(sys.argv[2], {"f": f}))' "$WORK/facts.json" "$1"; }
IMAGE=$(fact 'f["image"]')
say "deploy/k8s/deployment.yaml: image $IMAGE, probes $(fact '" ".join(k + " " + v["path"] for k, v in f["probes"].items())')"

say "import the Debian base; podman build (log: $WORK/build.log)"
pm_base
tb=$(date +%s)
pm_build "$REPO" "localhost/$IMAGE"
say "built localhost/$IMAGE in $(($(date +%s) - tb)) s"

# slirp4netns: no bridge, no iptables rules on the host; the probes and requests go to the
# pod's own 127.0.0.1 (nsenter), as the kubelet reaches the pod IP.
say "podman kube play (replicas 1)"
pm kube play --network slirp4netns "$WORK/play.yaml" >"$WORK/play.out" 2>&1 || { cat "$WORK/play.out"; die "podman kube play failed"; }
# No systemd here: podman cannot add timers for the healthcheck it makes of the livenessProbe.
grep -v 'unable to get systemd connection' "$WORK/play.out" | sed 's/^/  | /'
CTR=$(pm ps -a --format '{{.Names}}' | grep -- "-$(fact 'f["container"]')\$" || true)
[ "$(wc -w <<<"$CTR")" = 1 ] || { pm ps -a; die "want one container named *-$(fact 'f["container"]'), got '$CTR'"; }
POD=$(pm inspect --format '{{.Pod}}' "$CTR")
PID=$(pm inspect --format '{{.State.Pid}}' "$CTR")
say "pod ${POD:0:12}, container $CTR, pid $PID"
# podman 4.3 turns the livenessProbe into a curl healthcheck (on port 0 for a named port, and the
# image has no curl): it proves nothing, so the probes' URLs are asked below as the kubelet would.
say "podman's healthcheck from the livenessProbe (not used): $(pm inspect --format '{{.Config.Healthcheck.Test}}' "$CTR")"

# --- Probes, as the kubelet asks them ------------------------------------------------------------
PORT=$(fact 'f["port"]')
ready=0
for _ in $(seq 1 150); do
    if in_netns "$PID" curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$PORT$(fact 'f["probes"]["startupProbe"]["path"]')" 2>/dev/null; then ready=1; break; fi
    [ "$(pm inspect --format '{{.State.Running}}' "$CTR")" = true ] || break
    sleep 0.2
done
[ "$ready" = 1 ] || { pm logs "$CTR" 2>&1 | tail -n 20; die "the startup probe did not pass"; }
for kind in $(fact '" ".join(f["probes"])'); do
    path=$(fact "f['probes']['$kind']['path']") port=$(fact "f['probes']['$kind']['port']")
    code=$(in_netns "$PID" curl -sS -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port$path")
    [ "$code" = 200 ] || die "$kind: GET :$port$path -> $code"
    say "$kind: GET :$port$path -> 200"
done

# --- One request ---------------------------------------------------------------------------------
out=$(in_netns "$PID" curl -fsS --max-time 10 -H 'Content-Type: application/json' \
    -d '{"text": "the food was cold but the staff were lovely"}' "http://127.0.0.1:$PORT/v1/sentiment")
label=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["label"])' "$out")
[ -n "$label" ] || die "no label in $out"
say "POST /v1/sentiment -> $label"

# --- What the container got from the manifest ---------------------------------------------------
inspect() { pm inspect --format "$1" "$CTR"; }
status=$(pm exec "$CTR" cat /proc/1/status)
uid=$(awk '/^Uid:/ {print $2}' <<<"$status") gid=$(awk '/^Gid:/ {print $2}' <<<"$status")
capeff=$(awk '/^CapEff:/ {print $2}' <<<"$status") nnp=$(awk '/^NoNewPrivs:/ {print $2}' <<<"$status")
seccomp=$(awk '/^Seccomp:/ {print $2}' <<<"$status")
want_uid=$(fact 'f["pod_security"].get("runAsUser", "")') want_gid=$(fact 'f["pod_security"].get("runAsGroup", "")')
say "pid 1: uid $uid gid $gid, CapEff $capeff, NoNewPrivs $nnp, Seccomp $seccomp (2: filter)"
[ "$uid" != 0 ] || die "the server runs as root (runAsNonRoot)"
[ -z "$want_uid" ] || [ "$uid" = "$want_uid" ] || die "uid $uid, the manifest says $want_uid"
[ -z "$want_gid" ] || [ "$gid" = "$want_gid" ] || die "gid $gid, the manifest says $want_gid"
if [ "$(fact '"ALL" in f["security"].get("capabilities", {}).get("drop", [])')" = True ]; then
    [ "$capeff" = 0000000000000000 ] || die "capabilities $capeff, the manifest drops ALL"
fi
if [ "$(fact 'f["security"].get("allowPrivilegeEscalation", True)')" = False ]; then
    [ "$nnp" = 1 ] || die "NoNewPrivs $nnp, the manifest says allowPrivilegeEscalation: false"
fi
[ "$(fact 'f["pod_security"].get("seccompProfile", {}).get("type")')" != RuntimeDefault ] || [ "$seccomp" = 2 ] ||
    die "no seccomp filter, the manifest says RuntimeDefault"
if [ "$(fact 'f["security"].get("readOnlyRootFilesystem", False)')" = True ]; then
    [ "$(inspect '{{.HostConfig.ReadonlyRootfs}}')" = true ] || die "the root filesystem is writable"
    pm exec "$CTR" sh -c 'touch /opt/gru-serve/x' 2>/dev/null && die "wrote to the root filesystem"
fi
env=$(pm exec "$CTR" cat /proc/1/environ | tr '\0' '\n')
for kv in $(fact '" ".join(k + "=" + v for k, v in f["env"].items())'); do
    grep -qx -- "$kv" <<<"$env" || die "the server's environment has no $kv"
done
say "env: $(fact 'len(f["env"])') values as in the manifest; read-only root; security context as asked"
mem=$(inspect '{{.HostConfig.Memory}}')
say "memory limit $mem bytes (manifest: $(fact 'f["memory_limit"]'))"
[ "$mem" = "$(fact '{"Ki": 1024, "Mi": 2**20, "Gi": 2**30}[f["memory_limit"][-2:]] * int(f["memory_limit"][:-2])')" ] ||
    die "the memory limit is $mem bytes, not $(fact 'f["memory_limit"]')"

# --- SIGTERM with the manifest's grace period: drain, exit 0 --------------------------------------
grace=$(fact 'f["grace"]')
pm pod stop -t "$grace" "$POD" >/dev/null 2>"$WORK/stop.err" || { cat "$WORK/stop.err"; die "podman pod stop failed"; }
code=$(inspect '{{.State.ExitCode}}')
pm logs "$CTR" 2>&1 | tail -n 2 | sed 's/^/  | /'
[ "$code" = 0 ] || die "exit code $code after SIGTERM, want 0"
# (into a file first: `pm logs | grep -q` fails under pipefail when grep exits before the end)
pm logs "$CTR" >"$WORK/server.log" 2>&1 || die "podman logs failed"
grep -q draining "$WORK/server.log" || die "no 'draining' line in the server's log"
say "pod stop (SIGTERM, grace $grace s): exit 0, drained"
pm kube down "$WORK/play.yaml" >/dev/null 2>"$WORK/down.err" || { cat "$WORK/down.err"; die "podman kube down failed"; }
say "PASS: $(($(date +%s) - T0)) s"
