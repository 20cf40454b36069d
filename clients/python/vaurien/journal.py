"""The fault journal (GET /events): which requests got which faults.

    events = proxy.events()                       # every event, oldest first
    errors = assert_faults(proxy, behavior="error", count=3)
    assert_faults(client, behavior="delay", at=[2, 7])   # request indexes

An event is a dict: seq, time_ns, mono_ns, kind ("fault", "toxic", "open",
"close", "connect_failed"), proxy, conn, client, index (the request's on
its connection, from 1), direction, request (the protocol's view: "SET k1",
"GET /path"), behavior, toxic, options, outcome, code (the error code sent),
held_ms, bytes.
"""
import fnmatch
from urllib.parse import quote, urlencode

from . import _http


def fetch_events(base, token=None, timeout=10, **filters):
    """Every event of the API at base that matches filters (proxy, since,
    behavior, kind), following the pages."""
    since = int(filters.pop("since", 0) or 0)
    query = {k: v for k, v in filters.items() if v is not None}
    out = []
    for _ in range(100000):  # pages of at most 10,000 events
        q = dict(query, since=since, limit=10000)
        body = _http.request(base, "GET", "/events?" + urlencode(q, quote_via=quote),
                             timeout=timeout, token=token)[1]
        out.extend(body["events"])
        if not body["events"] or body["next"] >= body["last"]:
            return out
        since = body["next"]
    return out


def clear_events(base, token=None, timeout=10):
    _http.request(base, "DELETE", "/events", timeout=timeout, token=token)


def _events_of(source, proxy):
    if isinstance(source, list):
        return source
    return source.events(kind="fault") if proxy is None else source.events(
        kind="fault", proxy=proxy)


def describe(events):
    """One line per event, for assertion messages and test reports."""
    lines = []
    for e in events:
        what = e.get("behavior", "")
        if e.get("toxic"):
            what += " (toxic %s)" % e["toxic"]
        lines.append("#%s %s conn %s req %s %s: %s -> %s" % (
            e.get("seq"), e.get("proxy"), e.get("conn"), e.get("index", "-"),
            repr(e.get("request", "")), what or e.get("kind"), e.get("outcome", "")))
    return "\n".join(lines)


def assert_faults(source, behavior=None, count=None, at=None, request=None, proxy=None,
                  code=None):
    """Asserts what faults were injected and returns the matching events.

    source: a Client, Server, Proxy, ProxyProcess, or a list of events.
    behavior: the behavior or toxic name; request: a pattern of the
    protocol's view ("SET user:*", "GET /api/*"); code: the error code sent.
    count: how many must match; at: their request indexes, in order.
    """
    events = [e for e in _events_of(source, proxy) if e.get("kind") in ("fault", "toxic")]
    picked = [e for e in events
              if (behavior is None or behavior in (e.get("behavior"), e.get("toxic")))
              and (request is None or fnmatch.fnmatchcase(e.get("request", ""), request))
              and (proxy is None or e.get("proxy") == proxy)
              and (code is None or e.get("code") == code)]
    if count is not None and len(picked) != count:
        raise AssertionError("expected %d faults%s, the journal has %d:\n%s" % (
            count, "" if behavior is None else " of " + behavior, len(picked),
            describe(picked) or "(none)"))
    if at is not None and [e.get("index") for e in picked] != list(at):
        raise AssertionError("expected faults at requests %s, the journal has them at "
                             "%s:\n%s" % (list(at), [e.get("index") for e in picked],
                                          describe(picked) or "(none)"))
    return picked
