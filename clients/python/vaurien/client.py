"""Clients of the control API: the original Vaurien's (Client) and
Toxiproxy's (Server, Proxy, Toxic)."""
import contextlib

from . import _http
from .errors import APIError
from .journal import clear_events, fetch_events


class Client:
    """The original Vaurien test client, for a proxy started with --http.

        client = Client()                       # localhost:8080
        with client.with_behavior('error'):
            ...                                 # the backend misbehaves here
    """

    def __init__(self, host="localhost", port=8080, scheme="http", timeout=10, token=None):
        self.base = "%s://%s:%s" % (scheme, host, port)
        self.timeout = timeout
        self.token = token  # or $VAURIEN_API_TOKEN

    def _call(self, method, path, body=None):
        # the original client sent no Content-Type; the server accepts both
        return _http.request(self.base, method, path, body, self.timeout,
                             content_type=False, token=self.token)[1]

    def get_behavior(self):
        """The current behavior's name (or mix, "5:error,10:delay")."""
        return self._call("GET", "/behavior")["behavior"]

    def get_behavior_options(self):
        """{behavior name: {option: value}} for the behaviors in effect."""
        return self._call("GET", "/behavior").get("options", {})

    def set_behavior(self, name=None, **options):
        """Sets the behavior (a name or a mix) and its options, or a
        schedule of phases (schedule=[{"for": "5s", "behavior": "error"},
        ...]). Every behavior takes match (a dict), after, count, every,
        window and ttl. An unknown behavior raises ValueError, as the
        original did."""
        body = dict(options)
        if name is not None:
            body["name"] = name
        elif "schedule" not in body:
            raise ValueError("a behavior name or a schedule is needed")
        try:
            self._call("PUT", "/behavior", body)
        except APIError as e:
            errors = (e.body or {}).get("errors") or [{}]
            if e.status == 400 and errors[0].get("name") == "name":
                raise ValueError(errors[0].get("description", e.message)) from None
            raise

    def load_behavior(self, name, script):
        """Loads (or replaces) a custom behavior written in Lua (its source
        as a string); returns its description (name, help, options). A
        script that does not load raises ValueError with Lua's message."""
        try:
            return _http.request(self.base, "POST", "/behaviors",
                                 {"name": name, "script": script}, self.timeout,
                                 token=self.token)[1]
        except APIError as e:
            if e.status in (400, 409):
                raise ValueError(e.message) from None
            raise

    def events(self, **filters):
        """The fault journal's events (proxy=, behavior=, kind=, since=),
        oldest first (see vaurien.journal)."""
        return fetch_events(self.base, token=self.token, timeout=self.timeout, **filters)

    def clear_events(self):
        clear_events(self.base, token=self.token, timeout=self.timeout)

    def list_behaviors(self):
        return self._call("GET", "/behaviors")["behaviors"]

    def get_backend(self):
        return self._call("GET", "/backend")["backend"]

    def set_backend(self, backend):
        self._call("PUT", "/backend", {"backend": backend})

    @contextlib.contextmanager
    def with_behavior(self, name=None, **options):
        """Applies a behavior for the block, then restores the previous
        behavior and its options, also when the block raises."""
        state = self._call("GET", "/behavior")
        self.set_behavior(name, **options)
        try:
            yield self
        finally:
            if "schedule" in state:  # it starts again from its first phase
                self._call("PUT", "/behavior", {"schedule": state["schedule"],
                                                "options": state.get("options", {})})
            else:
                self._call("PUT", "/behavior", {"name": state["behavior"],
                                                "options": state.get("options", {})})


class Toxic:
    """A toxic on a proxy."""

    def __init__(self, proxy, data):
        self.proxy = proxy
        self._set(data)

    def _set(self, data):
        self.name = data["name"]
        self.type = data["type"]
        self.stream = data["stream"]
        self.toxicity = data["toxicity"]
        self.attributes = data["attributes"]

    def _path(self):
        return "/proxies/%s/toxics/%s" % (_http_quote(self.proxy.name), _http_quote(self.name))

    def update(self, toxicity=None, **attributes):
        body = {"attributes": attributes}
        if toxicity is not None:
            body["toxicity"] = toxicity
        self._set(self.proxy.server._call("PATCH", self._path(), body))
        return self

    def remove(self):
        self.proxy.server._call("DELETE", self._path())

    def __repr__(self):
        return "<Toxic %s %s %s %r>" % (self.name, self.type, self.stream, self.attributes)


def _http_quote(text):
    import urllib.parse
    return urllib.parse.quote(text, safe="")


class Proxy:
    """A proxy of a Vaurien (or Toxiproxy) server."""

    def __init__(self, server, data):
        self.server = server
        self._set(data)

    def _set(self, data):
        self.name = data["name"]
        self.listen = data["listen"]
        self.upstream = data["upstream"]
        self.enabled = data["enabled"]
        self.protocol = data.get("protocol", "tcp")

    @property
    def host(self):
        return self.listen.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self):
        return int(self.listen.rsplit(":", 1)[1])

    def _path(self):
        return "/proxies/" + _http_quote(self.name)

    def refresh(self):
        self._set(self.server._call("GET", self._path()))
        return self

    def update(self, **fields):
        self._set(self.server._call("POST", self._path(), fields))
        return self

    def enable(self):
        return self.update(enabled=True)

    def disable(self):
        return self.update(enabled=False)

    @contextlib.contextmanager
    def disabled(self):
        """The proxy refuses connections (and closes open ones) for the block."""
        self.disable()
        try:
            yield self
        finally:
            self.enable()

    def delete(self):
        self.server._call("DELETE", self._path())

    def events(self, **filters):
        """This proxy's events in the fault journal, oldest first."""
        return self.server.events(proxy=self.name, **filters)

    def toxics(self):
        return [Toxic(self, t) for t in self.server._call("GET", self._path() + "/toxics")]

    def add_toxic(self, type, name=None, stream="downstream", toxicity=1.0, **attributes):
        body = {"type": type, "stream": stream, "toxicity": toxicity, "attributes": attributes}
        if name is not None:
            body["name"] = name
        return Toxic(self, self.server._call("POST", self._path() + "/toxics", body))

    @contextlib.contextmanager
    def toxic(self, type, name=None, stream="downstream", toxicity=1.0, **attributes):
        """A toxic for the block, removed on exit (also on exceptions)."""
        t = self.add_toxic(type, name=name, stream=stream, toxicity=toxicity, **attributes)
        try:
            yield t
        finally:
            try:
                t.remove()
            except APIError as e:
                if e.status != 404:
                    raise

    def __repr__(self):
        return "<Proxy %s %s -> %s%s>" % (self.name, self.listen, self.upstream,
                                          "" if self.enabled else " (disabled)")


class Server:
    """Toxiproxy's API, on `vaurien server` (or on Toxiproxy itself)."""

    def __init__(self, url="http://localhost:8474", timeout=10, token=None):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.token = token  # or $VAURIEN_API_TOKEN

    def _call(self, method, path, body=None):
        return _http.request(self.url, method, path, body, self.timeout, token=self.token)[1]

    def version(self):
        return self._call("GET", "/version")["version"]

    def proxies(self):
        return {name: Proxy(self, p) for name, p in self._call("GET", "/proxies").items()}

    def get_proxy(self, name):
        return Proxy(self, self._call("GET", "/proxies/" + _http_quote(name)))

    def create_proxy(self, name, listen="127.0.0.1:0", upstream=None, protocol=None,
                     enabled=True, toxics=None):
        body = {"name": name, "listen": listen, "upstream": upstream, "enabled": enabled}
        if protocol is not None:
            body["protocol"] = protocol
        if toxics:
            body["toxics"] = toxics
        return Proxy(self, self._call("POST", "/proxies", body))

    def load_behavior(self, name, script):
        """Loads a custom behavior written in Lua (its source as a string),
        or replaces the one of that name; returns its description
        (name, help, options). A script that does not load raises
        APIError (400) with Lua's message."""
        return self._call("POST", "/behaviors", {"name": name, "script": script})

    def events(self, **filters):
        """The fault journal's events (proxy=, behavior=, kind=, since=),
        oldest first (see vaurien.journal)."""
        return fetch_events(self.url, token=self.token, timeout=self.timeout, **filters)

    def clear_events(self):
        clear_events(self.url, token=self.token, timeout=self.timeout)

    def populate(self, proxies):
        return [Proxy(self, p) for p in self._call("POST", "/populate", proxies)["proxies"]]

    def reset(self):
        self._call("POST", "/reset")
