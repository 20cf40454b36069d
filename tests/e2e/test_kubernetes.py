"""deploy/kubernetes/ (issue 18): every manifest lints (yamllint, kubectl
create --dry-run=client, each field checked against the Kubernetes API's
types), says what Vaurien does (the config path it mounts, -watch, probes
on /version, Prometheus on /metrics, all on the API's port), and each
ConfigMap's config.json is loaded by the real binary, run as the image
runs it."""
import glob
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import yaml

from conftest import BIN, ROOT
from test_container import Image

MANIFESTS = sorted(glob.glob(os.path.join(ROOT, "deploy", "kubernetes", "*.yaml")))
API_PORT = 8474


def docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def all_docs():
    return [(os.path.basename(p), d) for p in MANIFESTS for d in docs(p)]


def test_there_are_manifests():
    names = [os.path.basename(p) for p in MANIFESTS]
    assert names == ["shared.yaml", "sidecar.yaml"]
    kinds = sorted({d["kind"] for _, d in all_docs()})
    assert kinds == ["ConfigMap", "Deployment", "Service"]


def test_yamllint():
    r = subprocess.run(["yamllint", "--strict", "-f", "parsable"] + MANIFESTS,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


# kubectl create --dry-run=client still asks the API server which kinds
# exist (discovery) before it prints anything: offline, a local discovery server answers with
# the real lists of the groups the manifests use, no more.
DISCOVERY = {
    "/api": {"kind": "APIVersions", "versions": ["v1"],
             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                             "serverAddress": "127.0.0.1"}]},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
         "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}}]},
    "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        {"name": "configmaps", "singularName": "configmap", "namespaced": True,
         "kind": "ConfigMap", "verbs": ["create", "delete", "get", "list", "patch",
                                        "update", "watch"], "shortNames": ["cm"]},
        {"name": "services", "singularName": "service", "namespaced": True,
         "kind": "Service", "verbs": ["create", "delete", "get", "list", "patch",
                                      "update", "watch"], "shortNames": ["svc"]}]},
    "/apis/apps/v1": {"kind": "APIResourceList", "apiVersion": "v1",
                      "groupVersion": "apps/v1", "resources": [
                          {"name": "deployments", "singularName": "deployment",
                           "namespaced": True, "kind": "Deployment",
                           "verbs": ["create", "delete", "get", "list", "patch",
                                     "update", "watch"], "shortNames": ["deploy"]}]},
}


class Discovery(BaseHTTPRequestHandler):
    def do_GET(self):
        doc = DISCOVERY.get(self.path.split("?")[0])
        body = json.dumps(doc if doc is not None else
                          {"kind": "Status", "status": "Failure", "code": 404}).encode()
        self.send_response(200 if doc is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def kubectl(tmp_path):
    exe = shutil.which("kubectl")
    if exe is None:
        pytest.skip("no kubectl: scripts/install-deps installs Debian's kubernetes-client "
                    "where no other kubectl is")
    srv = HTTPServer(("127.0.0.1", 0), Discovery)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "offline", "cluster": {
            "server": "http://127.0.0.1:%d" % srv.server_address[1]}}],
        "contexts": [{"name": "offline", "context": {"cluster": "offline", "namespace": "default"}}],
        "current-context": "offline", "users": []}))
    env = dict(os.environ, KUBECONFIG=str(cfg), HOME=str(tmp_path))

    def run(path):
        # --validate=false: kubectl's schema check needs the server's
        # OpenAPI document, which only a cluster has (the fields are
        # checked below against the API's types instead)
        return subprocess.run([exe, "create", "--dry-run=client", "--validate=false",
                               "-o", "yaml", "-f", path], capture_output=True, text=True,
                              timeout=60, env=env)
    yield run
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("path", MANIFESTS, ids=os.path.basename)
def test_kubectl_create_dry_run(kubectl, path):
    r = kubectl(path)
    assert r.returncode == 0, r.stderr
    out = [d for d in yaml.safe_load_all(r.stdout) if d is not None]
    if len(out) == 1 and out[0].get("kind") == "List":
        out = out[0]["items"]
    assert [(d["kind"], d["metadata"]["name"]) for d in out] == [
        (d["kind"], d["metadata"]["name"]) for d in docs(path)]


def test_kubectl_refuses_what_is_not_a_manifest(kubectl, tmp_path):
    # the same setup fails on a kind it does not know and on broken YAML
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: apps/v1\nkind: Deploymnet\nmetadata:\n  name: x\n")
    r = kubectl(str(bad))
    assert r.returncode != 0 and "Deploymnet" in r.stderr
    bad.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: [name: x\n")
    assert kubectl(str(bad)).returncode != 0


# ---- fields, against the Kubernetes API's types (the Python client's models,
# generated from the API's OpenAPI document)

TYPES = {("v1", "ConfigMap"): "V1ConfigMap", ("v1", "Service"): "V1Service",
         ("apps/v1", "Deployment"): "V1Deployment"}


def field_errors(value, type_name, where):
    """What in value does not fit type_name (a model's name or one of its
    type strings: 'str', 'int', 'list[X]', 'dict(str, X)', 'object')."""
    import kubernetes.client.models as models
    m = re.fullmatch(r"list\[(.+)\]", type_name)
    if m:
        if not isinstance(value, list):
            return ["%s: expected a list" % where]
        return [e for i, v in enumerate(value)
                for e in field_errors(v, m.group(1), "%s[%d]" % (where, i))]
    m = re.fullmatch(r"dict\(str, (.+)\)", type_name)
    if m:
        if not isinstance(value, dict):
            return ["%s: expected a map" % where]
        return [e for k, v in value.items()
                for e in field_errors(v, m.group(1), "%s.%s" % (where, k))]
    scalar = {"str": str, "int": int, "bool": bool, "float": (int, float)}
    if type_name in scalar:
        ok = isinstance(value, scalar[type_name]) and not (
            type_name == "int" and isinstance(value, bool))
        return [] if ok else ["%s: expected %s, got %r" % (where, type_name, value)]
    if type_name in ("object", "datetime", "date"):
        return []
    cls = getattr(models, type_name)
    if not isinstance(value, dict):
        return ["%s: expected an object (%s)" % (where, type_name)]
    by_key = {cls.attribute_map[a]: t for a, t in cls.openapi_types.items()}
    errors = []
    for key, v in value.items():
        if key not in by_key:
            errors.append("%s: unknown field %r in %s" % (where, key, type_name))
        else:
            errors += field_errors(v, by_key[key], "%s.%s" % (where, key))
    return errors


def test_every_field_is_one_of_the_kubernetes_api():
    pytest.importorskip("kubernetes", reason="python3-kubernetes (scripts/install-deps)")
    for name, d in all_docs():
        errors = field_errors(d, TYPES[(d["apiVersion"], d["kind"])],
                              "%s %s" % (name, d["metadata"]["name"]))
        assert errors == [], errors
    # and the check catches a misspelled field
    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
           "spec": {"template": {"spec": {"containers": [
               {"name": "c", "readinessProbes": {}}]}}}}
    assert field_errors(bad, "V1Deployment", "x") == [
        "x.spec.template.spec.containers[0]: unknown field 'readinessProbes' in V1Container"]


# ---- what the manifests ask of Vaurien

def vaurien_pods():
    """(file, Deployment, its vaurien container, the ConfigMaps by name)"""
    found = []
    for path in MANIFESTS:
        ds = docs(path)
        cms = {d["metadata"]["name"]: d for d in ds if d["kind"] == "ConfigMap"}
        for d in ds:
            if d["kind"] != "Deployment":
                continue
            for c in d["spec"]["template"]["spec"]["containers"]:
                if c["name"] == "vaurien":
                    found.append((os.path.basename(path), d, c, cms))
    return found


def config_of(dep, c, cms):
    """The -config path the container is given and the ConfigMap key that
    the kubelet puts there."""
    config = [a.split("=", 1)[1] for a in c["args"] if a.startswith("-config=")]
    assert len(config) == 1
    folder, key = os.path.split(config[0])
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    mounts = [m for m in c["volumeMounts"] if m["mountPath"] == folder]
    assert len(mounts) == 1, "no volume mounted at %s" % folder
    # the whole folder: a subPath mount would never see the ConfigMap change
    assert "subPath" not in mounts[0]
    cm = cms[volumes[mounts[0]["name"]]["configMap"]["name"]]
    return config[0], cm["data"][key]


def test_the_manifests_say_what_vaurien_does():
    img = Image()
    pods = vaurien_pods()
    assert sorted(name for name, _, _, _ in pods) == ["shared.yaml", "sidecar.yaml"]
    for name, dep, c, cms in pods:
        assert "-watch" in c["args"], name
        config_of(dep, c, cms)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports["api"] == API_PORT
        for probe in ("readinessProbe", "livenessProbe"):
            get = c[probe]["httpGet"]
            assert get["path"] == "/version" and ports.get(get["port"], get["port"]) == API_PORT
        notes = dep["spec"]["template"]["metadata"]["annotations"]
        assert notes == {"prometheus.io/scrape": "true", "prometheus.io/port": str(API_PORT),
                         "prometheus.io/path": "/metrics"}
        # runAsNonRoot needs the image's user to be a number
        assert c["securityContext"]["runAsNonRoot"] is True
        assert re.fullmatch(r"\d+(:\d+)?", img.user) and img.uid != 0
    # the Service sends its ports to the container's
    for path in MANIFESTS:
        for d in docs(path):
            if d["kind"] != "Service":
                continue
            deps = [x for x in docs(path) if x["kind"] == "Deployment"]
            labels = deps[0]["spec"]["template"]["metadata"]["labels"]
            assert all(labels.get(k) == v for k, v in d["spec"]["selector"].items())
            named = {p["name"] for c in deps[0]["spec"]["template"]["spec"]["containers"]
                     for p in c.get("ports", [])}
            assert {p["targetPort"] for p in d["spec"]["ports"]} <= named


def test_the_configmaps_load_in_vaurien():
    """Each ConfigMap's config.json, run by the real binary with the image's
    entrypoint and the container's args (the config path made local), in a
    network namespace of its own (the proxies bind 0.0.0.0)."""
    from test_container import can_unshare, run_in_netns
    why = can_unshare()
    if why is not None:
        pytest.skip("needs a network namespace (unshare --net): %s" % why)
    img = Image()
    work = tempfile.mkdtemp(prefix="vaurien-k8s-")
    try:
        runs, expected = [], []
        for i, (name, dep, c, cms) in enumerate(vaurien_pods()):
            path, text = config_of(dep, c, cms)
            local = os.path.join(work, "%d-%s" % (i, os.path.basename(path)))
            args = [a.replace(path, local) for a in c["args"]]
            runs.append({"argv": [BIN] + img.entrypoint[1:] + args, "config": local,
                         "config_text": text, "log": os.path.join(work, "%d.log" % i)})
            expected.append(sorted(p["name"] for p in json.loads(text)))
        report = run_in_netns({"uid": os.getuid(), "api_port": API_PORT, "runs": runs})
        for run, names in zip(report, expected):
            assert run["version"][0] == 200, run["log"]
            assert sorted(json.loads(run["proxies"][1])) == names, run["log"]
            assert run["metrics"] == 200
            assert "-watch: reloading -config" in run["log"]
            assert run["rc"] == 0, run["log"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
