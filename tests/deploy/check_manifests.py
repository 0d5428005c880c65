#!/usr/bin/env python3
"""check_manifests.py - deploy/ and the Dockerfile agree with each other and with gru-serve.

Checks (no cluster needed):
  - deploy/k8s/*.yaml and deploy/docker-compose.yml are valid YAML (PyYAML: python3-yaml);
  - the Deployment has readiness /readyz, liveness /healthz and a startup probe on the container's
    port, requests and limits, runAsNonRoot with the image's uid, readOnlyRootFilesystem, no
    privilege escalation, every capability dropped, a preStop sleep and a
    terminationGracePeriodSeconds that covers preStop + the drain timeout, Prometheus
    annotations; Service, HorizontalPodAutoscaler (CPU) and PodDisruptionBudget select it;
  - no drift: every GRU_SERVE_* variable and --flag used anywhere is one that `gru-serve --help`
    prints, the ports agree (Dockerfile EXPOSE and GRU_SERVE_PORT, containerPort, probes,
    annotations, Service, compose, the HEALTHCHECK script), the probed paths are routes of the
    API (api/openapi.json), the drain timeout is the one the server uses (its env value or the
    --help default), the Dockerfile is multi-stage on ARG BASE=debian:bookworm-slim with
    STOPSIGNAL SIGTERM, a numeric non-root USER, EXPOSE and a HEALTHCHECK on /healthz.
Then --self-test style mutations (always run) make sure each kind of drift is caught.

usage: check_manifests.py --serve PATH/TO/gru-serve [--root REPO]
Exit 0: all good; 1: problems (listed); 77: PyYAML missing (tools/install-deps.sh test).
"""
import argparse
import copy
import json
import math
import os
import re
import shlex
import subprocess
import sys

try:
    import yaml
except ImportError:
    print("SKIP: PyYAML is not installed (apt-get install python3-yaml; tools/install-deps.sh test)")
    sys.exit(77)

ENV_PREFIX = "GRU_SERVE_"
HEALTHCHECK_SCRIPT = "deploy/healthcheck.sh"


# ------------------------------------------------------------------------------------------------
# Reading the sources of truth


def parse_help(text):
    """gru-serve --help -> {flag name: {"env": VAR, "default": str, "aliases": [..]}}."""
    flags, cur = {}, None
    for line in text.splitlines():
        m = re.match(r"^  --([a-z0-9-]+)(\[=[^\]]*\]| N| VALUE)?\s*$", line)
        if m:
            cur = flags.setdefault(m.group(1), {"env": None, "default": None, "aliases": []})
            continue
        m = re.match(r"^\s+default: (.*?)(?: \[[^\]]*\])?\s+env: (\S+)\s*$", line)
        if m and cur is not None:
            cur["default"] = "" if m.group(1) == "(none)" else m.group(1)
            cur["env"] = m.group(2)
            continue
        m = re.match(r"^\s+also: --([a-z0-9-]+)\s*$", line)
        if m and cur is not None:
            cur["aliases"].append(m.group(1))
    return flags


def parse_dockerfile(text):
    """A Dockerfile -> list of (INSTRUCTION, argument string), continuation lines joined."""
    out, buf = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def dockerfile_facts(instrs):
    f = {"args": {}, "froms": [], "env": {}, "expose": [], "user": None, "stopsignal": None,
         "healthcheck": None, "entrypoint": None, "copies": [], "runs_by_stage": []}
    for word, rest in instrs:
        if word == "ARG" and not f["froms"]:
            name, _, default = rest.partition("=")
            f["args"][name.strip()] = default.strip() or None
        elif word == "FROM":
            f["froms"].append(rest)
            f["runs_by_stage"].append([])
        elif word == "RUN":
            f["runs_by_stage"][-1].append(rest)
        elif word == "ENV":
            for tok in shlex.split(rest):
                k, eq, v = tok.partition("=")
                if eq:
                    f["env"][k] = v
        elif word == "EXPOSE":
            f["expose"] += [int(p.split("/")[0]) for p in rest.split()]
        elif word == "USER":
            f["user"] = rest
        elif word == "STOPSIGNAL":
            f["stopsignal"] = rest
        elif word == "HEALTHCHECK":
            f["healthcheck"] = rest
        elif word == "ENTRYPOINT":
            f["entrypoint"] = rest
        elif word == "COPY":
            f["copies"].append(rest)
    return f


def k8s_quantity_cpu(q):
    q = str(q)
    return float(q[:-1]) / 1000 if q.endswith("m") else float(q)


def k8s_quantity_bytes(q):
    q = str(q)
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9}
    for u, mul in units.items():
        if q.endswith(u):
            return float(q[: -len(u)]) * mul
    return float(q)


def duration_s(d):
    """Compose durations: 15s, 1m30s, 500ms."""
    total, s = 0.0, str(d)
    for num, unit in re.findall(r"([\d.]+)(ms|h|m|s)", s):
        total += float(num) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
    return total


def load(root, serve):
    ctx = {"root": root}
    ctx["help_text"] = subprocess.run([serve, "--help"], check=True, capture_output=True, text=True).stdout
    ctx["flags"] = parse_help(ctx["help_text"])
    with open(os.path.join(root, "Dockerfile")) as f:
        ctx["dockerfile"] = dockerfile_facts(parse_dockerfile(f.read()))
    with open(os.path.join(root, HEALTHCHECK_SCRIPT)) as f:
        ctx["healthcheck_script"] = f.read()
    with open(os.path.join(root, "api", "openapi.json")) as f:
        ctx["routes"] = set(json.load(f)["paths"])
    ctx["k8s"] = {}
    kdir = os.path.join(root, "deploy", "k8s")
    for name in sorted(os.listdir(kdir)):
        if name.endswith((".yaml", ".yml")):
            with open(os.path.join(kdir, name)) as f:
                ctx["k8s"][name] = [d for d in yaml.safe_load_all(f) if d is not None]
    with open(os.path.join(root, "deploy", "docker-compose.yml")) as f:
        ctx["compose"] = yaml.safe_load(f)
    with open(os.path.join(root, "tests", "deploy", "container_test.sh")) as f:
        ctx["container_test"] = f.read()
    return ctx


# ------------------------------------------------------------------------------------------------
# The checks. Each appends a message to `bad` for every problem found.


class Checker:
    def __init__(self, ctx):
        self.ctx, self.bad, self.n = ctx, [], 0

    def ok(self, cond, msg):
        self.n += 1
        if not cond:
            self.bad.append(msg)
        return cond

    # --- helpers --------------------------------------------------------------------------------
    def env_names(self):
        return {v["env"]: k for k, v in self.ctx["flags"].items() if v["env"]}

    def flag_names(self):
        names = set(self.ctx["flags"])
        for v in self.ctx["flags"].values():
            names.update(v["aliases"])
        return names

    def check_env(self, where, names):
        known = self.env_names()
        for n in names:
            if n.startswith(ENV_PREFIX):
                self.ok(n in known, f"{where}: {n} is not a variable `gru-serve --help` knows")

    def check_flags(self, where, argv):
        names = self.flag_names()
        for a in argv or []:
            if isinstance(a, str) and a.startswith("--"):
                name = a[2:].split("=", 1)[0]
                base = name[3:] if name.startswith("no-") else name
                self.ok(name in names or base in names, f"{where}: {a} is not a flag of gru-serve")

    def setting(self, flag, env):
        """The value the server will use for a flag, given the environment `env`."""
        var = self.ctx["flags"][flag]["env"]
        return env.get(var, self.ctx["flags"][flag]["default"])

    def image_env(self):
        return dict(self.ctx["dockerfile"]["env"])

    def image_port(self):
        return int(self.setting("port", self.image_env()))

    # --- gru-serve --help itself ----------------------------------------------------------------
    def check_help(self):
        flags = self.ctx["flags"]
        for f in ("host", "port", "drain-timeout-ms", "workers", "models-dir"):
            self.ok(f in flags and flags[f]["env"], f"`gru-serve --help` does not list --{f} with its variable")
        for f, v in flags.items():
            self.ok(v["env"] == ENV_PREFIX + f.upper().replace("-", "_"),
                    f"--{f}: variable {v['env']} does not follow GRU_SERVE_<FLAG>")

    # --- Dockerfile -----------------------------------------------------------------------------
    def check_dockerfile(self):
        d = self.ctx["dockerfile"]
        self.ok(d["args"].get("BASE") == "debian:bookworm-slim", "Dockerfile: no ARG BASE=debian:bookworm-slim before FROM")
        self.ok(len(d["froms"]) >= 2, "Dockerfile: not multi-stage")
        if d["froms"]:
            self.ok(d["froms"][0].split()[0] in ("${BASE}", "$BASE") and " AS " in d["froms"][0].upper(),
                    "Dockerfile: the build stage is not FROM ${BASE} AS <name>")
            self.ok(d["froms"][-1].split()[0] in ("${BASE}", "$BASE"), "Dockerfile: the runtime stage is not FROM ${BASE}")
        runtime_runs = " ".join(d["runs_by_stage"][-1]) if d["runs_by_stage"] else ""
        for banned in ("-dev", "build-essential", "gcc", "cmake"):
            self.ok(banned not in runtime_runs, f"Dockerfile: the runtime stage installs {banned}")
        for lib in ("libjansson4", "libmicrohttpd12", "libuv1", "libopenblas0"):
            self.ok(lib in runtime_runs, f"Dockerfile: the runtime stage does not install {lib}")
        self.check_env("Dockerfile ENV", d["env"])
        env = self.image_env()
        self.ok(self.setting("host", env) == "0.0.0.0", "Dockerfile: GRU_SERVE_HOST is not 0.0.0.0")
        port = self.image_port()
        self.ok(d["expose"] == [port], f"Dockerfile: EXPOSE {d['expose']} is not the port the server uses ({port})")
        self.ok(d["stopsignal"] == "SIGTERM", "Dockerfile: STOPSIGNAL is not SIGTERM")
        user = (d["user"] or "").split(":")[0]
        self.ok(user.isdigit() and int(user) != 0,
                f"Dockerfile: USER {d['user']!r} is not a numeric non-root uid (runAsNonRoot needs a number)")
        hc = d["healthcheck"] or ""
        self.ok("CMD" in hc, "Dockerfile: no HEALTHCHECK CMD")
        self.ok("/usr/local/bin/gru-healthcheck" in hc and any(
            c.split()[0] == HEALTHCHECK_SCRIPT and c.split()[-1] == "/usr/local/bin/gru-healthcheck" for c in d["copies"]),
            f"Dockerfile: HEALTHCHECK does not run {HEALTHCHECK_SCRIPT} copied to /usr/local/bin/gru-healthcheck")
        script = self.ctx["healthcheck_script"]
        self.ok("/healthz" in script and "/healthz" in self.ctx["routes"], f"{HEALTHCHECK_SCRIPT}: does not GET /healthz")
        self.ok(self.ctx["flags"]["port"]["env"] in script, f"{HEALTHCHECK_SCRIPT}: does not read the port variable")
        self.ok("gru-serve" in (d["entrypoint"] or ""), "Dockerfile: ENTRYPOINT is not gru-serve")

    # --- Kubernetes -----------------------------------------------------------------------------
    def k8s(self, kind):
        return [(f, d) for f, docs in self.ctx["k8s"].items() for d in docs if d.get("kind") == kind]

    def check_k8s(self):
        for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"):
            self.ok(len(self.k8s(kind)) == 1, f"deploy/k8s: want exactly one {kind}, found {len(self.k8s(kind))}")
        deps = self.k8s("Deployment")
        if not deps:
            return
        fname, dep = deps[0]
        where = f"deploy/k8s/{fname}"
        spec = dep.get("spec", {})
        tmpl = spec.get("template", {})
        pod = tmpl.get("spec", {})
        labels = tmpl.get("metadata", {}).get("labels", {}) or {}
        sel = (spec.get("selector") or {}).get("matchLabels", {}) or {}
        self.ok(sel and all(labels.get(k) == v for k, v in sel.items()), f"{where}: selector does not match the pod labels")
        cs = pod.get("containers") or []
        if not self.ok(len(cs) == 1, f"{where}: want one container"):
            return
        c = cs[0]
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        self.check_env(f"{where} env", env)
        self.check_flags(f"{where} args", (c.get("args") or []) + (c.get("command") or []))
        env_values = {k: v for k, v in env.items() if v is not None}
        merged = {**self.image_env(), **env_values}
        port = int(self.setting("port", merged))
        ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
        self.ok(list(ports.values()) == [port], f"{where}: containerPort {list(ports.values())} is not the server's port {port}")
        self.ok(self.setting("host", merged) == "0.0.0.0", f"{where}: the server would not listen on 0.0.0.0")

        def probe_port_ok(probe):
            p = (probe.get("httpGet") or {}).get("port")
            return p == port or (isinstance(p, str) and ports.get(p) == port)

        for kind, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"), ("startupProbe", None)):
            probe = c.get(kind)
            if not self.ok(isinstance(probe, dict) and "httpGet" in probe, f"{where}: no {kind} with httpGet"):
                continue
            got = probe["httpGet"].get("path")
            if path:
                self.ok(got == path, f"{where}: {kind} path is {got}, want {path}")
            else:
                self.ok(got in ("/readyz", "/healthz"), f"{where}: {kind} path {got} is not /readyz or /healthz")
            self.ok(got in self.ctx["routes"], f"{where}: {kind} path {got} is not a route of api/openapi.json")
            self.ok(probe_port_ok(probe), f"{where}: {kind} port is not the container's port {port}")

        # Security
        psc, csc = pod.get("securityContext") or {}, c.get("securityContext") or {}
        self.ok(psc.get("runAsNonRoot") is True or csc.get("runAsNonRoot") is True, f"{where}: runAsNonRoot is not true")
        uid = csc.get("runAsUser", psc.get("runAsUser"))
        image_uid = (self.ctx["dockerfile"]["user"] or "").split(":")[0]
        if uid is not None:
            self.ok(str(uid) == image_uid and uid != 0, f"{where}: runAsUser {uid} is not the image's USER {image_uid}")
        self.ok(csc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem is not true")
        self.ok(csc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation is not false")
        self.ok(csc.get("privileged") is not True, f"{where}: privileged")
        self.ok("ALL" in ((csc.get("capabilities") or {}).get("drop") or []), f"{where}: capabilities do not drop ALL")

        # Resources, and workers sized to the CPU limit (0 would mean one per node CPU).
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        for r in ("cpu", "memory"):
            self.ok(r in req and r in lim, f"{where}: no {r} request and limit")
        if all(r in req and r in lim for r in ("cpu", "memory")):
            self.ok(k8s_quantity_cpu(req["cpu"]) <= k8s_quantity_cpu(lim["cpu"]), f"{where}: cpu request > limit")
            self.ok(k8s_quantity_bytes(req["memory"]) <= k8s_quantity_bytes(lim["memory"]), f"{where}: memory request > limit")
            self.ok(k8s_quantity_bytes(lim["memory"]) >= 128 * 2**20, f"{where}: memory limit under 128Mi")
            workers = int(self.setting("workers", merged))
            self.ok(0 < workers <= math.ceil(k8s_quantity_cpu(lim["cpu"])),
                    f"{where}: GRU_SERVE_WORKERS={workers}: set it to the CPU limit (0 means one per node CPU)")

        # Shutdown: preStop sleep, then SIGTERM and the drain, all inside the grace period.
        drain_s = int(self.setting("drain-timeout-ms", merged)) / 1000
        pre = ((c.get("lifecycle") or {}).get("preStop") or {})
        sleep_s = None
        if "exec" in pre:
            cmd = pre["exec"].get("command") or []
            if len(cmd) == 2 and os.path.basename(cmd[0]) == "sleep":
                sleep_s = float(cmd[1])
        elif "sleep" in pre:
            sleep_s = float(pre["sleep"].get("seconds", 0))
        if self.ok(sleep_s is not None and sleep_s > 0, f"{where}: no preStop sleep"):
            tgps = pod.get("terminationGracePeriodSeconds", 30)
            want = sleep_s + drain_s
            self.ok(want + 2 <= tgps <= want + 30,
                    f"{where}: terminationGracePeriodSeconds {tgps} does not match preStop {sleep_s:g} s "
                    f"+ drain timeout {drain_s:g} s (+2..30 s)")

        ann = tmpl.get("metadata", {}).get("annotations") or {}
        self.ok(ann.get("prometheus.io/scrape") == "true", f"{where}: no prometheus.io/scrape: \"true\"")
        self.ok(str(ann.get("prometheus.io/port")) == str(port), f"{where}: prometheus.io/port is not {port}")
        self.ok(ann.get("prometheus.io/path") == "/metrics" and "/metrics" in self.ctx["routes"],
                f"{where}: prometheus.io/path is not /metrics")

        # Service, HPA, PDB point at this Deployment.
        name = dep["metadata"]["name"]
        for f, svc in self.k8s("Service"):
            s = svc.get("spec", {})
            ssel = s.get("selector") or {}
            self.ok(ssel and all(labels.get(k) == v for k, v in ssel.items()), f"deploy/k8s/{f}: selector misses the pods")
            for p in s.get("ports", []):
                tp = p.get("targetPort")
                self.ok(tp == port or ports.get(tp) == port, f"deploy/k8s/{f}: targetPort {tp} is not the container's port")
        for f, hpa in self.k8s("HorizontalPodAutoscaler"):
            h = hpa.get("spec", {})
            self.ok(hpa.get("apiVersion") == "autoscaling/v2", f"deploy/k8s/{f}: not autoscaling/v2")
            ref = h.get("scaleTargetRef") or {}
            self.ok(ref.get("kind") == "Deployment" and ref.get("name") == name, f"deploy/k8s/{f}: does not scale {name}")
            cpu = [m for m in h.get("metrics", []) if m.get("type") == "Resource" and m["resource"].get("name") == "cpu"]
            self.ok(cpu and cpu[0]["resource"]["target"].get("type") == "Utilization", f"deploy/k8s/{f}: no CPU utilization target")
            self.ok(2 <= h.get("minReplicas", 1) <= h.get("maxReplicas", 0), f"deploy/k8s/{f}: want 2 <= minReplicas <= maxReplicas")
            for f2, pdb in self.k8s("PodDisruptionBudget"):
                ma = (pdb.get("spec") or {}).get("minAvailable")
                if isinstance(ma, int):
                    self.ok(ma < h.get("minReplicas", 1), f"deploy/k8s/{f2}: minAvailable {ma} would block node drains at minReplicas")
        for f, pdb in self.k8s("PodDisruptionBudget"):
            self.ok(pdb.get("apiVersion") == "policy/v1", f"deploy/k8s/{f}: not policy/v1")
            psel = ((pdb.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
            self.ok(psel and all(labels.get(k) == v for k, v in psel.items()), f"deploy/k8s/{f}: selector misses the pods")
        for f, kus in self.k8s("Kustomization"):
            want = sorted(n for n in self.ctx["k8s"] if n != f)
            self.ok(sorted(kus.get("resources") or []) == want, f"deploy/k8s/{f}: resources are not {want}")

    # --- compose --------------------------------------------------------------------------------
    def check_compose(self):
        where = "deploy/docker-compose.yml"
        services = (self.ctx["compose"] or {}).get("services") or {}
        if not self.ok("gru-serve" in services, f"{where}: no service gru-serve"):
            return
        s = services["gru-serve"]
        env = s.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
        self.check_env(f"{where} environment", env)
        cmd = s.get("command") or []
        self.check_flags(f"{where} command", shlex.split(cmd) if isinstance(cmd, str) else cmd)
        merged = {**self.image_env(), **{k: str(v) for k, v in env.items() if v is not None and "${" not in str(v)}}
        port = int(self.setting("port", merged))
        targets = [str(p).rsplit(":", 1)[-1].split("/")[0] for p in s.get("ports", [])]
        self.ok(targets == [str(port)], f"{where}: ports {s.get('ports')} do not publish the server's port {port}")
        build = s.get("build") or {}
        ctxdir = os.path.normpath(os.path.join(self.ctx["root"], "deploy", build.get("context", ".")))
        self.ok(os.path.isfile(os.path.join(ctxdir, build.get("dockerfile", "Dockerfile"))), f"{where}: build context has no Dockerfile")
        self.ok("BASE" in (build.get("args") or {}), f"{where}: build.args has no BASE")
        self.ok(s.get("stop_signal", "SIGTERM") == "SIGTERM", f"{where}: stop_signal is not SIGTERM")
        drain_s = int(self.setting("drain-timeout-ms", merged)) / 1000
        self.ok(duration_s(s.get("stop_grace_period", "10s")) >= drain_s + 2,
                f"{where}: stop_grace_period {s.get('stop_grace_period', '10s')} is under the drain timeout {drain_s:g} s + 2 s")
        test = (s.get("healthcheck") or {}).get("test") or []
        self.ok("/usr/local/bin/gru-healthcheck" in " ".join(test), f"{where}: healthcheck does not run gru-healthcheck")
        self.ok(s.get("read_only") is True, f"{where}: read_only is not true")
        self.ok("ALL" in (s.get("cap_drop") or []), f"{where}: cap_drop is not [ALL]")
        workers = int(self.setting("workers", merged))
        self.ok(0 < workers <= math.ceil(float(s.get("cpus", 0))), f"{where}: GRU_SERVE_WORKERS={workers} is not the cpus limit")

    # --- the container test ---------------------------------------------------------------------
    def check_container_test(self):
        t = self.ctx["container_test"]
        where = "tests/deploy/container_test.sh"
        self.check_env(where, set(re.findall(r"\b(GRU_SERVE_[A-Z_]+)", t)))
        port = self.image_port()
        self.ok(f':{port}"' in t and f"127.0.0.1:{port}" in t, f"{where}: does not publish and probe the image's port {port}")
        m = re.search(r"podman stop -t (\d+)|pm stop -t (\d+)", t)
        drain_s = int(self.setting("drain-timeout-ms", self.image_env())) / 1000
        self.ok(m and int(m.group(1) or m.group(2)) >= drain_s + 2, f"{where}: podman stop -t is under the drain timeout + 2 s")

    def run(self):
        self.check_help()
        self.check_dockerfile()
        self.check_k8s()
        self.check_compose()
        self.check_container_test()
        return self.bad


# ------------------------------------------------------------------------------------------------
# Mutations: each must be caught, or the checker has gone blind.


def deployment(ctx):
    for docs in ctx["k8s"].values():
        for d in docs:
            if d.get("kind") == "Deployment":
                return d
    raise KeyError("Deployment")


def container(ctx):
    return deployment(ctx)["spec"]["template"]["spec"]["containers"][0]


def set_env(c, name, value):
    for e in c["env"]:
        if e["name"] == name:
            e["value"] = value
            return
    c["env"].append({"name": name, "value": value})


MUTATIONS = [
    ("readiness on /ready", lambda x: container(x)["readinessProbe"]["httpGet"].update(path="/ready")),
    ("liveness on another port", lambda x: container(x)["livenessProbe"]["httpGet"].update(port=9090)),
    ("env name typo", lambda x: set_env(container(x), "GRU_SERVE_WORKER", "2")),
    ("unknown flag in args", lambda x: container(x).update(args=["--max-batchsize", "8"])),
    ("drain timeout beyond the grace period", lambda x: set_env(container(x), "GRU_SERVE_DRAIN_TIMEOUT_MS", "60000")),
    ("port env without containerPort", lambda x: set_env(container(x), "GRU_SERVE_PORT", "9000")),
    ("workers 0", lambda x: set_env(container(x), "GRU_SERVE_WORKERS", "0")),
    ("writable root", lambda x: container(x)["securityContext"].update(readOnlyRootFilesystem=False)),
    ("capabilities kept", lambda x: container(x)["securityContext"].update(capabilities={})),
    ("runAsUser drift", lambda x: deployment(x)["spec"]["template"]["spec"]["securityContext"].update(runAsUser=1000)),
    ("no limits", lambda x: container(x)["resources"].pop("limits")),
    ("scrape port drift", lambda x: deployment(x)["spec"]["template"]["metadata"]["annotations"].update(
        {"prometheus.io/port": "9102"})),
    ("Dockerfile EXPOSE drift", lambda x: x["dockerfile"].update(expose=[80])),
    ("Dockerfile root user", lambda x: x["dockerfile"].update(user="root")),
    ("Dockerfile env typo", lambda x: x["dockerfile"]["env"].update(GRU_SERVE_HOSTNAME="0.0.0.0")),
    ("server renames its variable", lambda x: x["flags"]["drain-timeout-ms"].update(env="GRU_SERVE_DRAIN_MS")),
    ("compose short stop grace", lambda x: x["compose"]["services"]["gru-serve"].update(stop_grace_period="5s")),
    ("compose port drift", lambda x: x["compose"]["services"]["gru-serve"].update(ports=["127.0.0.1:8080:80"])),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--serve", required=True, help="the gru-serve binary (its --help is the truth)")
    ap.add_argument("--root", default=os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")))
    args = ap.parse_args()
    ctx = load(args.root, args.serve)
    if not ctx["flags"]:
        print("FAIL: could not read any flag from `gru-serve --help`")
        return 1
    checker = Checker(ctx)
    bad = checker.run()
    for b in bad:
        print("FAIL:", b)
    print(f"checked {checker.n} facts across Dockerfile, deploy/k8s ({', '.join(ctx['k8s'])}), "
          f"deploy/docker-compose.yml and `gru-serve --help` ({len(ctx['flags'])} settings)")
    blind = []
    for name, mutate in MUTATIONS:
        x = copy.deepcopy(ctx)
        mutate(x)
        if not Checker(x).run():
            blind.append(name)
    for name in blind:
        print("FAIL: the checker misses this drift:", name)
    print(f"{len(MUTATIONS) - len(blind)} of {len(MUTATIONS)} injected drifts caught")
    return 1 if bad or blind else 0


if __name__ == "__main__":
    sys.exit(main())
