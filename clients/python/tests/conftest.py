"""The package's tests run against the real binary (VAURIEN_BIN, default
build/vaurien) and reuse the end-to-end tests' servers."""
import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.dirname(HERE))
# pytester's subprocesses import the package from here too
os.environ["PYTHONPATH"] = os.pathsep.join(
    [os.path.dirname(HERE)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
os.environ.setdefault("VAURIEN_BIN", os.path.join(ROOT, "build", "vaurien"))

_spec = importlib.util.spec_from_file_location(
    "vaurien_e2e_support", os.path.join(ROOT, "tests", "e2e", "conftest.py"))
support = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(support)

redis_server = support.redis_server
backend = support.backend

pytest_plugins = ["pytester", "vaurien.pytest_plugin"]
