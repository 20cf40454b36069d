"""A tiny JSON-over-HTTP helper on urllib (standard library only)."""
import json
import os
import urllib.error
import urllib.request

from .errors import APIError, VaurienError


def request(base, method, path, body=None, timeout=10, content_type=True, token=None):
    """Returns (status, decoded JSON or None). Raises APIError for 4xx/5xx
    with the server's message, VaurienError when it cannot be reached."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base.rstrip("/") + path, data=data, method=method)
    req.add_header("User-Agent", "vaurien-python")
    token = token or os.environ.get("VAURIEN_API_TOKEN")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    if data is not None and content_type:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read().decode()
            return r.status, (json.loads(text) if text.strip() else None)
    except urllib.error.HTTPError as e:
        text = e.read().decode(errors="replace")
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        message = text.strip()
        if isinstance(parsed, dict):
            if "error" in parsed:
                message = parsed["error"]
            elif parsed.get("errors"):
                message = parsed["errors"][0].get("description", message)
        raise APIError(e.code, message, parsed) from None
    except (urllib.error.URLError, OSError) as e:
        raise VaurienError("cannot reach %s: %s" % (base, e)) from None
