#!/usr/bin/env python3
"""check_k8s.py — the checks behind deploy/check-k8s that no stock tool does.

    check_k8s.py policy     RENDERED.yaml...         what the issue asks of every workload
    check_k8s.py secret     SECRET_TEMPLATE RENDERED.yaml...
    check_k8s.py config     --wbctl W --work DIR RENDERED.yaml...
    check_k8s.py containerfile --repo R --file F     parse + lint the Containerfile
    check_k8s.py build      --repo R --file F --cache DIR   build natively as the image does

Each prints one line per thing it checked and one per problem, and exits 1 when
it found a problem (2 for a usage error). Run by deploy/check-k8s with the
venv's python (PyYAML); not meant to be run by hand, but it can be.
"""
import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys

import yaml

NAMESPACED_KINDS = {
    "ConfigMap", "Secret", "Service", "ServiceAccount", "Deployment", "StatefulSet",
    "DaemonSet", "Job", "CronJob", "PodDisruptionBudget", "HorizontalPodAutoscaler",
    "NetworkPolicy", "Role", "RoleBinding", "Pod",
    "ServiceMonitor", "PodMonitor",
}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
CONFIG_KEY = "wbcache.yaml"
WB_PROGRAMS = {"wb-flusher", "wb-refresher", "wbctl"}


class Report:
    """Collects problems; prints as it goes so CI logs read top to bottom."""

    def __init__(self, step):
        self.step = step
        self.problems = 0

    def ok(self, msg):
        print(f"  ok    {msg}")

    def bad(self, msg):
        self.problems += 1
        print(f"  FAIL  {msg}")

    def note(self, msg):
        print(f"  note  {msg}")

    def finish(self):
        if self.problems:
            print(f"check-k8s: {self.step}: {self.problems} problem(s)")
            return 1
        return 0


def load_docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def obj_id(d):
    return f"{d.get('kind')}/{d.get('metadata', {}).get('name')}"


def pod_spec_of(d):
    """The pod spec of a workload, or None."""
    kind = d.get("kind")
    spec = d.get("spec") or {}
    if kind == "CronJob":
        return (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get("spec")
    if kind in WORKLOAD_KINDS:
        return (spec.get("template") or {}).get("spec")
    if kind == "Pod":
        return spec
    return None


def pod_labels_of(d):
    kind = d.get("kind")
    spec = d.get("spec") or {}
    if kind == "CronJob":
        tmpl = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
    else:
        tmpl = spec.get("template") or {}
    return (tmpl.get("metadata") or {}).get("labels") or {}


def selector_matches(selector, labels):
    if not selector:
        return False  # no selector selects no pods here (a Service with manual endpoints)
    ml = selector.get("matchLabels")
    if ml is None and "matchExpressions" not in selector:
        ml = selector  # a Service's plain selector map
    for k, v in (ml or {}).items():
        if labels.get(k) != v:
            return False
    for expr in (selector or {}).get("matchExpressions") or []:
        key, op, vals = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in vals:
            return False
        if op == "NotIn" and labels.get(key) in vals:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def program_of(container):
    cmd = list(container.get("command") or []) + list(container.get("args") or [])
    if not cmd:
        return None, []
    return os.path.basename(str(cmd[0])), [str(c) for c in cmd]


def named_port(container, port):
    """Resolve a probe/Service port (name or number) to a container port number."""
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return p.get("containerPort")
    return None


def effective(container, pod, field):
    """A securityContext field: container level wins over pod level."""
    c = (container.get("securityContext") or {}).get(field)
    return c if c is not None else (pod.get("securityContext") or {}).get(field)


PG_CA_SECRET = "wbcache-pg-ca"
PG_CA_PATH = "/etc/wbcache-pg-ca"
REDIS_TLS_SIDECAR = "redis-tls"
REDIS_TLS_SECRET = "wbcache-redis-tls"
REDIS_TLS_PATH = "/etc/wbcache-redis-tls"


def check_redis_tls_sidecar(rep, wid, pod):
    """The redis-tls component's sidecar: native (started before the wbcache
    container), its certificates mounted read-only, and the wbcache
    container's redis.host/port (WB_REDIS_HOST/PORT, env beating envFrom)
    pointing at the port it listens on."""
    sidecars = [c for c in pod.get("initContainers") or [] if c.get("name") == REDIS_TLS_SIDECAR]
    if not sidecars:
        return
    sc = sidecars[0]
    port = ((sc.get("startupProbe") or {}).get("tcpSocket") or {}).get("port")
    main = (pod.get("containers") or [{}])[0]
    env = {e["name"]: str(e["value"]) for e in main.get("env") or [] if "value" in e}
    vols = {v["name"]: v for v in pod.get("volumes") or []}
    mounts = [m for m in sc.get("volumeMounts") or []
              if (vols.get(m.get("name"), {}).get("secret") or {}).get("secretName") == REDIS_TLS_SECRET]
    problems = []
    if sc.get("restartPolicy") != "Always":
        problems.append("the sidecar must be native (restartPolicy: Always) so it runs before "
                        "the wbcache container starts")
    if port is None:
        problems.append("the sidecar has no startupProbe tcpSocket on its port")
    if env.get("WB_REDIS_HOST") != "127.0.0.1" or env.get("WB_REDIS_PORT") != str(port):
        problems.append(f"container {main.get('name')} does not point redis.host/port at the redis-tls "
                        f"sidecar (WB_REDIS_HOST={env.get('WB_REDIS_HOST')}, "
                        f"WB_REDIS_PORT={env.get('WB_REDIS_PORT')}; the sidecar listens on 127.0.0.1:{port})")
    if not mounts or any(m.get("mountPath") != REDIS_TLS_PATH or m.get("readOnly") is not True for m in mounts):
        problems.append(f"the Secret {REDIS_TLS_SECRET} must be mounted read-only at {REDIS_TLS_PATH} "
                        f"in the sidecar")
    if problems:
        for p in problems:
            rep.bad(f"{wid}: redis-tls: {p}")
    else:
        rep.ok(f"{wid}: redis-tls sidecar on 127.0.0.1:{port}, the wbcache container points at it, "
               f"certificates from {REDIS_TLS_SECRET}")


# ---------------------------------------------------------------- monitors
# The Prometheus operator's CRDs have no schema in kubernetes-validate (it
# only warns), so the fields this project uses are checked here instead.
MONITOR_SPEC_FIELDS = {
    "ServiceMonitor": ({"selector", "endpoints", "namespaceSelector", "jobLabel"}, "endpoints"),
    "PodMonitor": ({"selector", "podMetricsEndpoints", "namespaceSelector", "jobLabel"},
                   "podMetricsEndpoints"),
}
MONITOR_ENDPOINT_FIELDS = {"port", "path", "interval", "scrapeTimeout", "scheme", "honorLabels",
                           "relabelings", "metricRelabelings"}


def check_monitor(rep, name, d, docs):
    """One ServiceMonitor/PodMonitor: known fields, and it selects the scraped
    Services (or pods) of the render on a named port and their metrics path."""
    oid = f"{name}: {obj_id(d)}"
    fields, ep_key = MONITOR_SPEC_FIELDS[d["kind"]]
    spec = d.get("spec") or {}
    problems = 0
    if d.get("apiVersion") != "monitoring.coreos.com/v1":
        rep.bad(f"{oid}: apiVersion {d.get('apiVersion')}, expected monitoring.coreos.com/v1")
        problems += 1
    unknown = set(spec) - fields
    if unknown:
        rep.bad(f"{oid}: unknown spec fields {sorted(unknown)}")
        problems += 1
    sel = spec.get("selector") or {}
    if not sel.get("matchLabels") and not sel.get("matchExpressions"):
        rep.bad(f"{oid}: empty selector (it would select everything)")
        return
    ns = d.get("metadata", {}).get("namespace")
    if d["kind"] == "ServiceMonitor":
        targets = [s for s in docs if s.get("kind") == "Service"
                   and s.get("metadata", {}).get("namespace") == ns
                   and selector_matches(sel, s.get("metadata", {}).get("labels") or {})]
    else:
        targets = [w for w in docs if w.get("kind") in WORKLOAD_KINDS
                   and w.get("metadata", {}).get("namespace") == ns
                   and selector_matches(sel, pod_labels_of(w))]
    if not targets:
        rep.bad(f"{oid}: selects no {'Service' if d['kind'] == 'ServiceMonitor' else 'pods'} in namespace {ns}")
        return
    for ep in spec.get(ep_key) or [{}]:
        unknown = set(ep) - MONITOR_ENDPOINT_FIELDS
        if unknown:
            rep.bad(f"{oid}: unknown endpoint fields {sorted(unknown)}")
            problems += 1
        for t in targets:
            if d["kind"] == "ServiceMonitor":
                ports = [p.get("name") for p in (t.get("spec") or {}).get("ports") or []]
                path = (t.get("metadata", {}).get("annotations") or {}).get("prometheus.io/path", "/metrics")
            else:
                ports = [p.get("name") for c in (pod_spec_of(t) or {}).get("containers") or []
                         for p in c.get("ports") or []]
                path = "/metrics"
            if ep.get("port") not in ports:
                rep.bad(f"{oid}: port {ep.get('port')!r} is not a named port of {obj_id(t)} {ports}")
                problems += 1
            if ep.get("path", "/metrics") != path:
                rep.bad(f"{oid}: path {ep.get('path')} but {obj_id(t)} serves metrics on {path}")
                problems += 1
    if not problems:
        rep.ok(f"{oid}: scrapes {', '.join(obj_id(t) for t in targets)} on its metrics port and path")


def check_monitors(rep, name, docs):
    monitors = [d for d in docs if d.get("kind") in MONITOR_SPEC_FIELDS]
    if not monitors:
        return
    for d in monitors:
        check_monitor(rep, name, d, docs)
    # Every Service meant to be scraped is covered by a monitor.
    for s in docs:
        ann = s.get("metadata", {}).get("annotations") or {}
        if s.get("kind") != "Service" or ann.get("prometheus.io/scrape") != "true":
            continue
        labels = s.get("metadata", {}).get("labels") or {}
        if not any(m["kind"] == "ServiceMonitor" and selector_matches((m.get("spec") or {}).get("selector"), labels)
                   for m in monitors):
            rep.bad(f"{name}: {obj_id(s)} is annotated for scraping but no ServiceMonitor selects it")


# ---------------------------------------------------------------- policy
def cmd_policy(args):
    rep = Report("policy")
    for path in args.rendered:
        docs = load_docs(path)
        name = os.path.basename(path)
        print(f"check-k8s: policy: {name} ({len(docs)} objects)")
        namespaces = {d.get("metadata", {}).get("namespace") for d in docs if d.get("kind") in NAMESPACED_KINDS}
        if None in namespaces or len(namespaces) != 1:
            missing = [obj_id(d) for d in docs
                       if d.get("kind") in NAMESPACED_KINDS and not d.get("metadata", {}).get("namespace")]
            rep.bad(f"{name}: objects must all be in one namespace set by the overlay; "
                    f"namespaces {sorted(n for n in namespaces if n)}, without one: {missing}")
        else:
            rep.ok(f"{name}: every namespaced object is in namespace {namespaces.pop()}")
        check_monitors(rep, name, docs)
        for d in docs:
            if d.get("kind") == "Secret":
                rep.bad(f"{name}: {obj_id(d)}: a Secret must not be part of an overlay "
                        f"(the operator creates it: deploy/README-k8s.md)")
            if d.get("kind") == "ConfigMap":
                for key in (d.get("data") or {}):
                    if re.search(r"PASSWORD|SECRET|TOKEN|DSN", key, re.I) and key != CONFIG_KEY:
                        rep.bad(f"{name}: {obj_id(d)}: key {key} looks like a secret; secrets come from "
                                f"the Secret wbcache-secrets through secretKeyRef")
        # The metrics/health port is for the monitoring namespace only: no ingress
        # rule may admit every source (the kubelet's probes need none).
        for d in docs:
            if d.get("kind") != "NetworkPolicy":
                continue
            open_rules = [r for r in (d.get("spec") or {}).get("ingress") or [] if not r.get("from")]
            if open_rules:
                rep.bad(f"{name}: {obj_id(d)}: an ingress rule without `from` admits every source; "
                        f"name the monitoring namespace")
            else:
                rep.ok(f"{name}: {obj_id(d)}: ingress only from named sources")
        wb_images = set()
        workloads = [d for d in docs if pod_spec_of(d) is not None]
        for d in workloads:
            pod = pod_spec_of(d)
            wid = f"{name}: {obj_id(d)}"
            if pod.get("automountServiceAccountToken") is not False:
                rep.bad(f"{wid}: automountServiceAccountToken must be false (the pods never call the API)")
            for c in (pod.get("initContainers") or []) + (pod.get("containers") or []):
                cid = f"{wid} container {c.get('name')}"
                image = str(c.get("image", ""))
                tag = image.rsplit("/", 1)[-1]
                if ":" not in tag and "@" not in image:
                    rep.bad(f"{cid}: image {image!r} has no tag (an overlay's `images:` must set it)")
                elif tag.endswith(":latest"):
                    rep.bad(f"{cid}: image {image!r} uses the latest tag")
                prog, _ = program_of(c)
                if prog in WB_PROGRAMS:
                    wb_images.add(image)
                problems = []
                if effective(c, pod, "runAsNonRoot") is not True:
                    problems.append("runAsNonRoot: true")
                sc = c.get("securityContext") or {}
                if sc.get("readOnlyRootFilesystem") is not True:
                    problems.append("readOnlyRootFilesystem: true")
                if sc.get("allowPrivilegeEscalation") is not False:
                    problems.append("allowPrivilegeEscalation: false")
                if sc.get("privileged") is True:
                    problems.append("privileged must not be true")
                if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                    problems.append("capabilities.drop: [ALL]")
                if (effective(c, pod, "seccompProfile") or {}).get("type") != "RuntimeDefault":
                    problems.append("seccompProfile.type: RuntimeDefault")
                uid = effective(c, pod, "runAsUser")
                if not isinstance(uid, int) or uid == 0:
                    problems.append("a numeric non-root runAsUser (the kubelet cannot verify a user name)")
                if problems:
                    rep.bad(f"{cid}: securityContext lacks " + ", ".join(problems))
                res = c.get("resources") or {}
                missing = [f"{k}.{r}" for k in ("requests", "limits") for r in ("cpu", "memory")
                           if r not in (res.get(k) or {})]
                if missing:
                    rep.bad(f"{cid}: resources lack {', '.join(missing)}")
                if d.get("kind") in ("Deployment", "StatefulSet", "DaemonSet") and prog in ("wb-flusher", "wb-refresher"):
                    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                        hg = (c.get(probe) or {}).get("httpGet")
                        if not hg:
                            rep.bad(f"{cid}: no {probe} (httpGet {path})")
                            continue
                        if hg.get("path") != path:
                            rep.bad(f"{cid}: {probe} must GET {path}, not {hg.get('path')}")
                        if named_port(c, hg.get("port")) is None:
                            rep.bad(f"{cid}: {probe} port {hg.get('port')!r} is not a declared containerPort")
                if not [p for p in problems] and not missing:
                    rep.ok(f"{cid}: securityContext and resources complete")
            # Every daemon (and replay) reaches PostgreSQL: the optional CA volume
            # for sslmode=verify-full must be there (deploy/README-k8s.md).
            if any(program_of(c)[0] in ("wb-flusher", "wb-refresher") for c in pod.get("containers") or []):
                ca = [v for v in pod.get("volumes") or []
                      if (v.get("secret") or {}).get("secretName") == PG_CA_SECRET]
                mounts = [m for c in pod.get("containers") or [] for m in c.get("volumeMounts") or []
                          if ca and m.get("name") == ca[0].get("name")]
                if not ca or ca[0]["secret"].get("optional") is not True:
                    rep.bad(f"{wid}: no optional volume from the Secret {PG_CA_SECRET} (the PostgreSQL CA)")
                elif not mounts or any(m.get("mountPath") != PG_CA_PATH or m.get("readOnly") is not True
                                       for m in mounts):
                    rep.bad(f"{wid}: the {PG_CA_SECRET} volume must be mounted read-only at {PG_CA_PATH}")
                else:
                    rep.ok(f"{wid}: the PostgreSQL CA Secret {PG_CA_SECRET} is mounted read-only at {PG_CA_PATH}")
            check_redis_tls_sidecar(rep, wid, pod)
            if d.get("kind") == "Deployment":
                labels = pod_labels_of(d)
                if not [p for p in docs if p.get("kind") == "PodDisruptionBudget"
                        and selector_matches((p.get("spec") or {}).get("selector"), labels)]:
                    rep.bad(f"{wid}: no PodDisruptionBudget selects its pods")
                svcs = [s for s in docs if s.get("kind") == "Service"
                        and selector_matches((s.get("spec") or {}).get("selector") or {}, labels)]
                scraped = [s for s in svcs
                           if (s.get("metadata", {}).get("annotations") or {}).get("prometheus.io/scrape") == "true"]
                if not scraped:
                    rep.bad(f"{wid}: no Service with prometheus.io/scrape: \"true\" selects its pods")
                for s in scraped:
                    ann = s["metadata"]["annotations"]
                    c0 = (pod.get("containers") or [{}])[0]
                    ports = [named_port(c0, p.get("targetPort", p.get("port"))) for p in s["spec"].get("ports") or []]
                    if str(ann.get("prometheus.io/port")) not in [str(p) for p in ports]:
                        rep.bad(f"{name}: {obj_id(s)}: prometheus.io/port {ann.get('prometheus.io/port')} "
                                f"is not a port of {obj_id(d)} (targets {ports})")
                    elif ann.get("prometheus.io/path") != "/metrics":
                        rep.bad(f"{name}: {obj_id(s)}: prometheus.io/path must be /metrics")
                    else:
                        rep.ok(f"{name}: {obj_id(s)} scrapes {obj_id(d)} on port {ann['prometheus.io/port']}/metrics")
        if len(wb_images) > 1:
            rep.bad(f"{name}: wbcache containers run different images {sorted(wb_images)}; "
                    f"a replay must run the live flushers' build")
        elif wb_images:
            rep.ok(f"{name}: every wbcache container runs {wb_images.pop()}")
    return rep.finish()


# ---------------------------------------------------------------- secret template
def cmd_secret(args):
    rep = Report("secret template")
    print(f"check-k8s: secret template: {args.template}")
    docs = load_docs(args.template)
    secrets = [d for d in docs if d.get("kind") == "Secret"]
    if len(secrets) != 1:
        rep.bad(f"{args.template}: want exactly one Secret, found {len(secrets)}")
        return rep.finish()
    sec = secrets[0]
    name = sec["metadata"]["name"]
    if sec.get("data"):
        rep.bad(f"{args.template}: use stringData with placeholders, not data")
    values = sec.get("stringData") or {}
    for k, v in values.items():
        if re.search(r"password|secret|token", k, re.I) and not re.fullmatch(r"<[^<>]+>", str(v)):
            rep.bad(f"{args.template}: {k} must be a <placeholder>, never a value")
        if "dsn" in k and re.search(r"password\s*=|://[^/@]*:[^/@]*@", str(v)):
            rep.bad(f"{args.template}: {k} must not carry a password (pg-password holds it)")
    referenced = set()
    for path in args.rendered:
        for d in load_docs(path):
            pod = pod_spec_of(d)
            if not pod:
                continue
            for c in pod.get("containers") or []:
                for e in c.get("env") or []:
                    ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                    if ref and ref.get("name") == name:
                        referenced.add(ref["key"])
                        if ref["key"] not in values:
                            rep.bad(f"{os.path.basename(path)}: {obj_id(d)} uses key {ref['key']} of Secret "
                                    f"{name}, which the template does not document")
    for k in sorted(set(values) - referenced):
        rep.bad(f"{args.template}: key {k} is used by no workload")
    if not rep.problems:
        rep.ok(f"Secret {name}: keys {sorted(values)} are the ones the workloads reference, values are placeholders")
    return rep.finish()


# ---------------------------------------------------------------- config
def placeholder(secret_key):
    if "dsn" in secret_key:
        return "host=placeholder.invalid port=5432 dbname=wbcache user=wbcache"
    return f"placeholder-{secret_key}"


def container_env(c, configmaps, with_optional):
    """The environment Kubernetes would give the container (secrets as placeholders)."""
    env, missing = {}, []
    for ef in c.get("envFrom") or []:
        prefix = ef.get("prefix", "")
        if "configMapRef" in ef:
            ref = ef["configMapRef"]
            cm = configmaps.get(ref.get("name"))
            if cm is None:
                if not ref.get("optional"):
                    missing.append(f"envFrom ConfigMap {ref.get('name')} is not in the overlay")
                continue
            for k, v in (cm.get("data") or {}).items():
                env[prefix + k] = str(v)
        elif "secretRef" in ef:
            missing.append(f"envFrom Secret {ef['secretRef'].get('name')}: its keys are unknown here; "
                           f"use env with secretKeyRef")
    for e in c.get("env") or []:
        n = e["name"]
        if "value" in e:
            # Kubernetes expands $(VAR) from variables defined before this one.
            env[n] = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                            lambda m: env.get(m.group(1), m.group(0)), str(e["value"]))
            continue
        vf = e.get("valueFrom") or {}
        if "secretKeyRef" in vf:
            ref = vf["secretKeyRef"]
            if ref.get("optional") and not with_optional:
                continue
            env[n] = placeholder(ref.get("key", ""))
        elif "configMapKeyRef" in vf:
            ref = vf["configMapKeyRef"]
            cm = configmaps.get(ref.get("name"))
            val = None if cm is None else (cm.get("data") or {}).get(ref.get("key"))
            if val is None:
                if not ref.get("optional"):
                    missing.append(f"env {n}: ConfigMap {ref.get('name')} key {ref.get('key')} is not in the overlay")
                continue
            env[n] = str(val)
        else:
            env[n] = "placeholder-fieldref"
    return env, missing


def config_path_of(c, prog_cmd):
    """The config file the program will read: -c FILE, else $WBCACHE_CONFIG."""
    for i, a in enumerate(prog_cmd):
        if a in ("-c", "--config") and i + 1 < len(prog_cmd):
            return prog_cmd[i + 1], "-c"
        if a.startswith("--config="):
            return a.split("=", 1)[1], "--config"
    for e in c.get("env") or []:
        if e.get("name") == "WBCACHE_CONFIG" and "value" in e:
            return e["value"], "WBCACHE_CONFIG"
    return None, None


def mounted_file(c, pod, path, configmaps):
    """(ConfigMap name, key) behind a path in the container, or (None, reason)."""
    vols = {v["name"]: v for v in pod.get("volumes") or []}
    for m in c.get("volumeMounts") or []:
        vol = vols.get(m.get("name")) or {}
        cmref = vol.get("configMap")
        if not cmref:
            continue
        mp = m["mountPath"].rstrip("/")
        cm = configmaps.get(cmref.get("name"))
        keys = {i["path"]: i["key"] for i in cmref.get("items") or []} or \
               {k: k for k in ((cm or {}).get("data") or {})}
        if m.get("subPath"):
            if path == mp and m["subPath"] in keys:
                return cmref["name"], keys[m["subPath"]]
        elif path.startswith(mp + "/") and path[len(mp) + 1:] in keys:
            return cmref["name"], keys[path[len(mp) + 1:]]
    mounts = [m["mountPath"] for m in c.get("volumeMounts") or []
              if (vols.get(m.get("name")) or {}).get("configMap")]
    return None, f"{path} is not a file of a mounted ConfigMap (ConfigMap mounts: {mounts})"


def run_wbctl(wbctl, env, cfg_file, verb):
    base = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    base.update(env)
    return subprocess.run([wbctl, "-c", cfg_file, "config", verb], env=base,
                          capture_output=True, text=True, timeout=60)


def parse_listen(s):
    host, _, port = str(s).rpartition(":")
    return host.strip("[]"), int(port) if port.isdigit() else None


def cmd_config(args):
    rep = Report("config")
    os.makedirs(args.work, exist_ok=True)
    for path in args.rendered:
        docs = load_docs(path)
        name = os.path.splitext(os.path.basename(path))[0]
        print(f"check-k8s: config: {name}")
        configmaps = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "ConfigMap"}
        config_cms = {n for n, d in configmaps.items() if CONFIG_KEY in (d.get("data") or {})}
        if not config_cms:
            rep.bad(f"{name}: no ConfigMap carries {CONFIG_KEY}")
        # The raw file must carry no secret: those come from the Secret via env.
        for cm in sorted(config_cms):
            raw = configmaps[cm]["data"][CONFIG_KEY]
            try:
                conf = yaml.safe_load(raw) or {}
            except yaml.YAMLError as e:
                conf = {}
                rep.note(f"{name}: ConfigMap {cm}: PyYAML cannot read it ({e}); wbctl will say why")
            leaks = []
            for sect, key in (("redis", "password"), ("postgres", "password")):
                if str(((conf.get(sect) or {}) if isinstance(conf, dict) else {}).get(key) or ""):
                    leaks.append(f"{sect}.{key}")
            dsn = str(((conf.get("postgres") or {}) if isinstance(conf, dict) else {}).get("dsn") or "")
            if re.search(r"password\s*=|://[^/@]*:[^/@]*@", dsn):
                leaks.append("postgres.dsn (has a password)")
            props = ((conf.get("kafka") or {}) if isinstance(conf, dict) else {}).get("properties") or {}
            leaks += [f"kafka.properties.{k}" for k in props
                      if re.search(r"password|secret|sasl\.username", str(k), re.I)]
            if leaks:
                rep.bad(f"{name}: ConfigMap {cm} holds secrets: {', '.join(leaks)} — set them in the "
                        f"Secret wbcache-secrets (WBCACHE_* environment variables), not in the config")
        used = set()
        effective_by_role, roles_seen = {}, set()
        topics_jobs = []
        hpas = [d for d in docs if d.get("kind") == "HorizontalPodAutoscaler"]
        for d in docs:
            pod = pod_spec_of(d)
            if pod is None:
                continue
            for c in pod.get("containers") or []:
                cid = f"{name}: {obj_id(d)} container {c['name']}"
                env_all, missing = container_env(c, configmaps, True)
                if "create-topics.sh" in " ".join(map(str, (c.get("command") or []) + (c.get("args") or []))):
                    topics_jobs.append((d, c, env_all))
                prog, cmd = program_of(c)
                if prog not in WB_PROGRAMS:
                    continue
                for m in missing:
                    rep.bad(f"{cid}: {m}")
                role = prog + (" replay" if "replay" in cmd else "")
                roles_seen.add(role)
                cfg_path, how = config_path_of(c, cmd)
                if not cfg_path:
                    rep.bad(f"{cid}: runs {prog} but neither -c nor WBCACHE_CONFIG names its config")
                    continue
                cm_name, key = mounted_file(c, pod, cfg_path, configmaps)
                if cm_name is None:
                    rep.bad(f"{cid}: {how}: {key}")
                    continue
                used.add(cm_name)
                cfg_file = os.path.join(args.work, f"{name}--{cm_name}--{key}")
                with open(cfg_file, "w", encoding="utf-8") as f:
                    f.write(configmaps[cm_name]["data"][key])
                env_req, _ = container_env(c, configmaps, False)
                shown = None
                for label, env in (("with every secret", env_all), ("without the optional secrets", env_req)):
                    r = run_wbctl(args.wbctl, env, cfg_file, "check")
                    if r.returncode != 0:
                        msg = (r.stderr or r.stdout).strip().replace(cfg_file, f"ConfigMap {cm_name}/{key}")
                        rep.bad(f"{cid}: wbctl config check {label} failed:\n        " +
                                msg.replace("\n", "\n        "))
                        break
                else:
                    rep.ok(f"{cid}: ConfigMap {cm_name}/{key} loads with wbctl config check "
                           f"({len(env_all)} env vars, secrets as placeholders; also without optional secrets)")
                    r = run_wbctl(args.wbctl, env_all, cfg_file, "show")
                    if r.returncode == 0:
                        shown = yaml.safe_load(r.stdout)
                    else:
                        rep.bad(f"{cid}: wbctl config show failed: {r.stderr.strip()}")
                if not shown:
                    continue
                consistency(rep, cid, d, pod, c, prog, cmd, shown, docs, hpas)
                effective_by_role.setdefault(role, shown)
        for cm in sorted(config_cms - used):
            rep.bad(f"{name}: ConfigMap {cm} carries {CONFIG_KEY} but no wbcache container reads it")
        flusher = effective_by_role.get("wb-flusher")
        if not topics_jobs:
            rep.bad(f"{name}: no Job runs create-topics.sh: nothing creates the topics the daemons use")
        for d, c, env in topics_jobs:
            cid = f"{name}: {obj_id(d)}"
            if not flusher:
                if "wb-flusher" in roles_seen:
                    rep.note(f"{cid}: not compared with the daemons' topics: the flusher's config did not load")
                else:
                    rep.bad(f"{cid}: no wb-flusher in the overlay to compare the topics with")
                continue
            k = flusher["kafka"]
            want = {"WB_KAFKA_BROKERS": k["brokers"], "WB_KAFKA_PARTITIONS": str(k["partitions"]),
                    "WB_TOPIC_CHANGES": k["topics"]["changes"], "WB_TOPIC_REFRESH": k["topics"]["refresh"],
                    "WB_TOPIC_DLQ": k["topics"]["dead_letter"]}
            diff = [f"{v}={env.get(v)!r} but the config has {want[v]!r}" for v in want if env.get(v) != want[v]]
            # The admin tools must speak to Kafka the way the daemons do.
            props = k.get("properties") or {}
            proto = str(props.get("security.protocol", "PLAINTEXT")).upper()
            if env.get("WB_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").upper() != proto:
                diff.append(f"WB_KAFKA_SECURITY_PROTOCOL={env.get('WB_KAFKA_SECURITY_PROTOCOL')!r} but the config's "
                            f"kafka.properties security.protocol is {proto!r}")
            if proto.startswith("SASL") and env.get("WB_KAFKA_SASL_MECHANISM") != props.get("sasl.mechanisms"):
                diff.append(f"WB_KAFKA_SASL_MECHANISM={env.get('WB_KAFKA_SASL_MECHANISM')!r} but the config's "
                            f"kafka.properties sasl.mechanisms is {props.get('sasl.mechanisms')!r}")
            try:
                rf, isr = int(env["WB_TOPIC_REPLICATION_FACTOR"]), int(env["WB_TOPIC_MIN_INSYNC_REPLICAS"])
                if not 1 <= isr <= rf:
                    diff.append(f"min.insync.replicas {isr} must be between 1 and the replication factor {rf}")
                retention = int(env["WB_CHANGES_RETENTION_MS"])
                tomb = int(flusher["flusher"]["tombstone_retention_ms"])
                if tomb and tomb < retention:
                    diff.append(f"flusher.tombstone_retention_ms {tomb} is shorter than the changes topic's "
                                f"retention.ms {retention}: a late older event could resurrect a purged row")
            except (KeyError, ValueError) as e:
                diff.append(f"topic settings missing or not integers: {e}")
            if diff:
                for x in diff:
                    rep.bad(f"{cid}: {x}")
            else:
                rep.ok(f"{cid}: creates {k['topics']['changes']}, {k['topics']['refresh']}, "
                       f"{k['topics']['dead_letter']} with {k['partitions']} partitions, RF {rf}, "
                       f"min.insync.replicas {isr}, over {proto} — as the daemons' config expects")
    return rep.finish()


def consistency(rep, cid, d, pod, c, prog, cmd, shown, docs, hpas):
    """What the effective config implies for the manifest around it."""
    section = "refresher" if prog == "wb-refresher" else "flusher"
    deadline_ms = int(shown[section]["shutdown_deadline_ms"])
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if prog in ("wb-flusher", "wb-refresher"):
        if grace * 1000 <= deadline_ms:
            rep.bad(f"{cid}: terminationGracePeriodSeconds {grace} is not longer than "
                    f"{section}.shutdown_deadline_ms {deadline_ms}: the kubelet would kill it mid-drain")
        else:
            rep.ok(f"{cid}: terminationGracePeriodSeconds {grace} > {section}.shutdown_deadline_ms {deadline_ms} ms")
    if d.get("kind") != "Deployment" or prog not in ("wb-flusher", "wb-refresher") or "replay" in cmd:
        return
    host, port = parse_listen(shown[section]["http_listen"])
    probe_port = named_port(c, ((c.get("readinessProbe") or {}).get("httpGet") or {}).get("port"))
    if host in ("127.0.0.1", "localhost", "::1"):
        rep.bad(f"{cid}: {section}.http_listen {host}:{port} is loopback; the kubelet and Prometheus "
                f"reach the pod's IP (use 0.0.0.0:{port})")
    elif probe_port is not None and port != probe_port:
        rep.bad(f"{cid}: {section}.http_listen port {port} is not the probed containerPort {probe_port}")
    else:
        rep.ok(f"{cid}: {section}.http_listen {host}:{port} is the probed and scraped port")
    partitions = int(shown["kafka"]["partitions"])
    replicas = (d.get("spec") or {}).get("replicas", 1)
    if replicas > partitions:
        rep.bad(f"{cid}: replicas {replicas} > kafka.partitions {partitions}: the extra consumers sit idle")
    for h in hpas:
        ref = (h.get("spec") or {}).get("scaleTargetRef") or {}
        if ref.get("kind") == "Deployment" and ref.get("name") == d["metadata"]["name"]:
            mx, mn = h["spec"].get("maxReplicas"), h["spec"].get("minReplicas", 1)
            if mx > partitions:
                rep.bad(f"{cid}: HorizontalPodAutoscaler {h['metadata']['name']} maxReplicas {mx} > "
                        f"kafka.partitions {partitions} (at most the topic's partition count)")
            elif mn > mx:
                rep.bad(f"{cid}: HorizontalPodAutoscaler minReplicas {mn} > maxReplicas {mx}")
            else:
                rep.ok(f"{cid}: autoscaled {mn}..{mx} replicas, at most kafka.partitions {partitions}")


# ---------------------------------------------------------------- Containerfile
INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
                "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "MAINTAINER"}
ALLOWED_BASE_PACKAGES = {"libc6", "libgcc-s1"}  # in every debian:*-slim image
# Needed at run time, not libraries: ca-certificates (TLS to Kafka/PostgreSQL),
# stunnel4 (the TLS sidecar to Redis, deploy/k8s/components/redis-tls).
EXTRA_RUNTIME_PACKAGES = {"ca-certificates", "stunnel4"}


def parse_containerfile(path):
    """[(lineno, INSTRUCTION, rest)] with continuation lines joined, comments dropped."""
    out, buf, start = [], "", 0
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for i, line in enumerate(lines, 1):
        s = line.strip()
        if not buf and (not s or s.startswith("#")):
            continue
        if buf and s.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped by the builder too
        if not buf:
            start = i
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        buf += s
        word, _, rest = buf.partition(" ")
        out.append((start, word, rest.strip()))
        buf = ""
    if buf:
        out.append((start, "<unterminated>", buf))
    return out


def split_stages(instrs):
    stages = []
    for ln, word, rest in instrs:
        if word.upper() == "FROM":
            toks = [t for t in rest.split() if not t.startswith("--")]
            stage = {"line": ln, "image": toks[0] if toks else "", "name": None, "instrs": []}
            if len(toks) >= 3 and toks[1].upper() == "AS":
                stage["name"] = toks[2]
            stages.append(stage)
        elif stages:
            stages[-1]["instrs"].append((ln, word.upper(), rest))
    return stages


def apt_packages(run):
    """Package names of the apt-get install commands in one RUN."""
    pkgs = []
    for part in re.split(r"&&|;|\|\|", run):
        toks = shlex.split(part)
        if len(toks) >= 2 and toks[0] == "apt-get" and "install" in toks:
            pkgs += [t for t in toks[toks.index("install") + 1:] if not t.startswith("-")]
    return pkgs


def lint_containerfile(repo, path, rep):
    rel = os.path.relpath(path, repo)
    instrs = parse_containerfile(path)
    for ln, word, rest in instrs:
        if word.upper() not in INSTRUCTIONS:
            rep.bad(f"{rel}:{ln}: unknown instruction {word!r}")
        elif word != word.upper():
            rep.bad(f"{rel}:{ln}: write instructions in upper case ({word})")
    stages = split_stages(instrs)
    rep.ok(f"{rel}: parsed {len(instrs)} instructions in {len(stages)} stages "
           f"({', '.join(s['name'] or s['image'] for s in stages)})")
    if len(stages) < 2:
        rep.bad(f"{rel}: want a multi-stage build (a build stage with the -dev packages, a runtime stage)")
        return None
    names = {s["name"] for s in stages if s["name"]}
    for s in stages:
        img = s["image"]
        if img in names:
            continue
        if "$" in img:
            rep.bad(f"{rel}:{s['line']}: FROM {img}: use a literal image so it can be checked")
        elif ":" not in img.rsplit("/", 1)[-1] and "@" not in img:
            rep.bad(f"{rel}:{s['line']}: FROM {img} has no tag")
        elif img.endswith(":latest"):
            rep.bad(f"{rel}:{s['line']}: FROM {img}: pin a release, not latest")
        else:
            rep.ok(f"{rel}:{s['line']}: FROM {img} is pinned to a tag")
    for s in stages:
        for ln, word, rest in s["instrs"]:
            if word == "ADD" and re.search(r"https?://", rest):
                rep.bad(f"{rel}:{ln}: ADD from a URL; fetch with the package manager instead")
            if word == "RUN" and "apt-get" in rest:
                problems = []
                if "apt-get install" in rest:
                    if "apt-get update" not in rest:
                        problems.append("apt-get update in the same RUN")
                    if "--no-install-recommends" not in rest:
                        problems.append("--no-install-recommends")
                    if not re.search(r"(^|\s)(-y|--yes|--assume-yes)(\s|$)", rest):
                        problems.append("-y")
                if "apt-get update" in rest and not re.search(r"rm -rf /var/lib/apt/lists/\*", rest):
                    problems.append("rm -rf /var/lib/apt/lists/* at the end of the same RUN")
                if re.search(r"apt-get (dist-)?upgrade", rest):
                    problems.append("no apt-get upgrade (rebuild on a newer base image instead)")
                if problems:
                    rep.bad(f"{rel}:{ln}: RUN apt-get: needs " + ", ".join(problems))
                else:
                    rep.ok(f"{rel}:{ln}: apt-get install is non-interactive, without recommends, lists cleaned")
    final = stages[-1]
    users = [(ln, rest) for ln, word, rest in final["instrs"] if word == "USER"]
    if not users:
        rep.bad(f"{rel}: the final stage has no USER: the image would run as root")
    else:
        ln, user = users[-1]
        u = user.split(":")[0]
        if u in ("root", "0"):
            rep.bad(f"{rel}:{ln}: the final stage runs as USER {user}, i.e. root")
        elif not u.isdigit():
            rep.bad(f"{rel}:{ln}: USER {user}: use a numeric uid so Kubernetes can verify runAsNonRoot")
        else:
            rep.ok(f"{rel}:{ln}: the final stage runs as non-root uid {u}")
    return stages


def plan_of(repo, stages, rep, rel):
    """What the build stage does and what the runtime stage takes, for the native build."""
    final = stages[-1]
    froms = {}
    for ln, word, rest in final["instrs"]:
        if word == "COPY" and "--from=" in rest:
            m = re.search(r"--from=(\S+)", rest)
            froms.setdefault(m.group(1), []).append((ln, rest))
    if len(froms) != 1:
        rep.bad(f"{rel}: the final stage should copy from exactly one build stage, copies from {sorted(froms)}")
        return None
    bname = next(iter(froms))
    build = next((s for s in stages if s["name"] == bname), None)
    if build is None:
        rep.bad(f"{rel}: COPY --from={bname} names no stage")
        return None
    plan = {"build_packages": [], "runtime_packages": [], "context": [], "workdir": "/",
            "build_args": None, "binaries": [], "env": {}, "runtime_files": {}}
    workdir = "/"
    for ln, word, rest in build["instrs"]:
        if word == "WORKDIR":
            workdir = os.path.join(workdir, rest)
        elif word == "RUN":
            plan["build_packages"] += apt_packages(rest)
            if "deploy/build.sh" in rest:
                if plan["build_args"] is not None:
                    rep.bad(f"{rel}:{ln}: deploy/build.sh runs twice")
                m = re.search(r"(?:^|\s)(?:\./)?deploy/build\.sh((?:\s+[^\s&;|]+)*)", rest)
                plan["build_args"] = shlex.split(m.group(1)) if m else []
            elif re.search(r"\b(cmake|make|gcc|cc)\b", rest) and "apt-get" not in rest:
                rep.bad(f"{rel}:{ln}: the build stage compiles outside deploy/build.sh; keep every build "
                        f"step in deploy/build.sh so CI runs the same")
        elif word == "COPY" and "--from=" not in rest:
            toks = [t for t in shlex.split(rest) if not t.startswith("--")]
            srcs, dest = toks[:-1], toks[-1]
            for src in srcs:
                if not os.path.exists(os.path.join(repo, src)):
                    rep.bad(f"{rel}:{ln}: COPY {src}: no such file in the repository")
                plan["context"].append((src, os.path.join(workdir, dest) if not dest.startswith("/") else dest,
                                        dest.endswith("/") or len(srcs) > 1))
    if plan["build_args"] is None:
        rep.bad(f"{rel}: the build stage does not run deploy/build.sh")
        return None
    if not plan["build_args"]:
        rep.bad(f"{rel}: deploy/build.sh needs the install prefix as its argument")
        return None
    prefix = plan["build_args"][0]
    for ln, word, rest in final["instrs"]:
        if word == "RUN":
            plan["runtime_packages"] += apt_packages(rest)
        elif word == "ENV":
            m = re.match(r"(\S+?)[= ](.*)", rest)
            if m:
                plan["env"][m.group(1)] = m.group(2).strip().strip('"')
        elif word == "COPY" and "--from=" in rest:
            toks = [t for t in shlex.split(rest) if not t.startswith("--")]
            for src in toks[:-1]:
                if not src.startswith(prefix.rstrip("/") + "/"):
                    rep.bad(f"{rel}:{ln}: COPY --from={bname} {src} is outside the install prefix {prefix}")
                else:
                    plan["binaries"].append(os.path.relpath(src, prefix))
        elif word == "COPY":
            toks = [t for t in shlex.split(rest) if not t.startswith("--")]
            for src in toks[:-1]:
                if not os.path.exists(os.path.join(repo, src)):
                    rep.bad(f"{rel}:{ln}: COPY {src}: no such file in the repository")
                dest = toks[-1]
                plan["runtime_files"][os.path.join(dest, os.path.basename(src)) if dest.endswith("/") else dest] = src
    for prog in ("wb-flusher", "wb-refresher", "wbctl"):
        if not [b for b in plan["binaries"] if os.path.basename(b) == prog]:
            rep.bad(f"{rel}: the runtime stage does not copy {prog}")
    if not rep.problems:
        rep.ok(f"{rel}: build stage runs deploy/build.sh {' '.join(plan['build_args'])}; runtime stage copies "
               f"{', '.join(plan['binaries'])}")
    return plan


def cmd_containerfile(args):
    rep = Report("containerfile")
    print(f"check-k8s: containerfile: {os.path.relpath(args.file, args.repo)}")
    stages = lint_containerfile(args.repo, args.file, rep)
    if stages:
        plan_of(args.repo, stages, rep, os.path.relpath(args.file, args.repo))
    return rep.finish()


def dpkg_installed(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
    return r.returncode == 0 and "install ok installed" in r.stdout


def package_of_soname(soname):
    r = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True)
    paths = [ln.split("=>")[-1].strip() for ln in r.stdout.splitlines()
             if ln.split() and ln.split()[0] == soname and "=>" in ln]
    for p in paths:
        cands = {p, os.path.realpath(p)}
        for c in list(cands):
            if c.startswith("/usr/lib/"):
                cands.add(c[4:])
            elif c.startswith("/lib/"):
                cands.add("/usr" + c)
        for c in cands:
            q = subprocess.run(["dpkg-query", "-S", c], capture_output=True, text=True)
            if q.returncode == 0:
                return q.stdout.split(":")[0].strip()
    return None


def cmd_build(args):
    rep = Report("native build")
    rel = os.path.relpath(args.file, args.repo)
    print(f"check-k8s: native build: the image's build steps, run here from the files {rel} copies")
    stages = split_stages(parse_containerfile(args.file))
    plan = plan_of(args.repo, stages, rep, rel) if len(stages) >= 2 else None
    if not plan:
        rep.bad(f"{rel}: cannot derive the build from it (see the containerfile step)")
        return rep.finish()
    with open("/etc/os-release", encoding="utf-8") as f:
        codename = dict(ln.rstrip("\n").split("=", 1) for ln in f if "=" in ln).get("VERSION_CODENAME", "")
    bases = {s["image"] for s in stages if ":" in s["image"]}
    if not all(codename and codename in b for b in bases):
        rep.note(f"this machine is Debian {codename or '?'}, the image bases are {sorted(bases)}: "
                 f"the native build may differ from the image's")
    missing = [p for p in plan["build_packages"] if not dpkg_installed(p)]
    if missing:
        if os.geteuid() != 0:
            rep.bad(f"the build stage's packages are not installed here: {missing} (run as root to install)")
            return rep.finish()
        print(f"  ...   apt-get install {' '.join(missing)}")
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        r = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + missing)
        if r.returncode != 0:
            rep.bad(f"apt-get install {missing} failed")
            return rep.finish()
    rep.ok(f"the build stage's packages are installed here: {' '.join(plan['build_packages'])}")
    # The build context: exactly what the build stage COPYs, laid out as in the image.
    ctx = os.path.join(args.cache, "context")
    if os.path.isdir(ctx):
        shutil.rmtree(ctx)
    for src, dest, into_dir in plan["context"]:
        root_dest = os.path.join(ctx, dest.lstrip("/"))
        s = os.path.join(args.repo, src)
        if os.path.isdir(s):
            shutil.copytree(s, root_dest, symlinks=False, dirs_exist_ok=True)
        else:
            target = os.path.join(root_dest, os.path.basename(src)) if into_dir else root_dest
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(s, target)
    build_sh = None
    for src, dest, into_dir in plan["context"]:
        if src.endswith("deploy/build.sh"):
            build_sh = os.path.join(ctx, dest.lstrip("/"), "build.sh" if into_dir else "")
    if not build_sh or not os.path.exists(build_sh):
        rep.bad(f"{rel}: the build stage does not COPY deploy/build.sh")
        return rep.finish()
    prefix = os.path.join(args.cache, "prefix")
    if os.path.isdir(prefix):
        shutil.rmtree(prefix)
    # A fresh build directory every run: the context is copied with its files' times, so a
    # build directory kept from another checkout (or an older commit) could look up to date.
    build_dir = os.path.join(args.cache, "build")
    if os.path.isdir(build_dir):
        shutil.rmtree(build_dir)
    env = dict(os.environ, WB_JOBS=os.environ.get("WB_JOBS", str(os.cpu_count() or 2)))
    print(f"  ...   {os.path.relpath(build_sh, ctx)} {prefix} {build_dir}   (in the image: "
          f"deploy/build.sh {' '.join(plan['build_args'])})")
    r = subprocess.run(["sh", build_sh, prefix, build_dir], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        rep.bad("deploy/build.sh failed on the files the Containerfile copies:\n" +
                "\n".join((r.stdout + r.stderr).splitlines()[-40:]))
        return rep.finish()
    rep.ok(f"deploy/build.sh built and installed from the Containerfile's build context only")
    needed = {}
    for b in plan["binaries"]:
        p = os.path.join(prefix, b)
        if not os.access(p, os.X_OK):
            rep.bad(f"{rel}: the runtime stage copies {b}, which deploy/build.sh does not install")
            continue
        od = subprocess.run(["objdump", "-p", p], capture_output=True, text=True)
        for ln in od.stdout.splitlines():
            if ln.strip().startswith("NEEDED"):
                needed.setdefault(ln.split()[1], set()).add(os.path.basename(b))
    runtime = set(plan["runtime_packages"])
    pkgs_needed = set()
    for so, users in sorted(needed.items()):
        pkg = package_of_soname(so)
        if pkg is None:
            rep.bad(f"{so} (needed by {', '.join(sorted(users))}): no Debian package found for it")
            continue
        pkgs_needed.add(pkg)
        if pkg not in runtime and pkg not in ALLOWED_BASE_PACKAGES:
            rep.bad(f"{so} (needed by {', '.join(sorted(users))}) comes from {pkg}, which the runtime stage "
                    f"does not install")
    extra = runtime - pkgs_needed - EXTRA_RUNTIME_PACKAGES
    if extra:
        rep.bad(f"the runtime stage installs {sorted(extra)}, which no binary needs")
    if not rep.problems:
        rep.ok(f"the runtime stage's packages are exactly the binaries' libraries: "
               f"{' '.join(sorted(pkgs_needed - ALLOWED_BASE_PACKAGES))} (+ {' '.join(sorted(EXTRA_RUNTIME_PACKAGES))})")
    cfg = plan["env"].get("WBCACHE_CONFIG")
    src = plan["runtime_files"].get(cfg) if cfg else None
    wbctl = os.path.join(prefix, next((b for b in plan["binaries"] if b.endswith("wbctl")), "bin/wbctl"))
    if src:
        r = subprocess.run([wbctl, "config", "check"], env={"PATH": "/usr/bin:/bin", "WBCACHE_CONFIG":
                           os.path.join(args.repo, src)}, capture_output=True, text=True)
        if r.returncode != 0:
            rep.bad(f"the image's default config ({src} at {cfg}) does not load: {r.stderr.strip()}")
        else:
            rep.ok(f"the built wbctl loads the image's default config ({src} at {cfg})")
    else:
        rep.note("the image sets no WBCACHE_CONFIG file to try")
    with open(os.path.join(args.cache, "wbctl.path"), "w", encoding="utf-8") as f:
        f.write(wbctl + "\n")
    return rep.finish()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("policy")
    p.add_argument("rendered", nargs="+")
    p = sub.add_parser("secret")
    p.add_argument("template")
    p.add_argument("rendered", nargs="+")
    p = sub.add_parser("config")
    p.add_argument("--wbctl", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("rendered", nargs="+")
    for n in ("containerfile", "build"):
        p = sub.add_parser(n)
        p.add_argument("--repo", required=True)
        p.add_argument("--file", required=True)
        if n == "build":
            p.add_argument("--cache", required=True)
    args = ap.parse_args()
    return {"policy": cmd_policy, "secret": cmd_secret, "config": cmd_config,
            "containerfile": cmd_containerfile, "build": cmd_build}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
