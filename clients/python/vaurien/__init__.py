"""Vaurien for tests: start a chaos proxy, make its backend misbehave for a
block of a test, and have everything back to normal after it.

    from vaurien import Client, start_proxy, stop_proxy

    pid = start_proxy(port=8080, backend_port=6379, protocol="redis")
    with Client().with_behavior("error"):
        ...  # redis commands through localhost:8000 fail with -ERR here
    stop_proxy(pid)
"""
from ._process import ProxyProcess, find_binary, start_proxy, start_server, stop_proxy
from .client import Client, Proxy, Server, Toxic
from .errors import APIError, StartError, VaurienError
from .journal import assert_faults

__all__ = ["APIError", "Client", "assert_faults", "Proxy", "ProxyProcess", "Server", "StartError", "Toxic",
           "VaurienError", "find_binary", "start_proxy", "start_server", "stop_proxy"]
__version__ = "2.0.0"
