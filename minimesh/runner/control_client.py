"""A small synchronous client for the control plane's /v1 API (what the CLI uses).

It ignores HTTP_PROXY on purpose: the control plane is on 127.0.0.1 (or a
compose network), and a learner's shell proxy must not sit in between.

The control plane speaks HTTPS and wants a client certificate: the client
presents the admin's, found in MINIMESH_HOME/credentials (pki/operator.py),
so no command needs a new flag. `tls_for(url)` is the one place that
decides it, for this client and the CLI's aiohttp callers alike.
"""

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request

from minimesh.errors import UserError
from minimesh.pki.operator import NoCredentials, operator_context
from minimesh.runner.state import resolve_home

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def tls_for(url: str, home=None, role: str = "admin") -> ssl.SSLContext | None:
    """The TLS context to call `url` with: the operator's certificate for https://, None for http://."""
    if not url.startswith("https://"):
        return None
    try:
        return operator_context(role, resolve_home(home))
    except NoCredentials as e:
        raise UserError(f"{e.args[0]} (to reach {url})") from e


def opener_for(url: str, home=None, role: str = "admin") -> urllib.request.OpenerDirector:
    """A urllib opener for `url` that ignores proxies and presents the operator's certificate."""
    ctx = tls_for(url, home, role)
    if ctx is None:
        return _opener
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))


class ControlClient:
    def __init__(self, url: str, timeout: float = 5.0, home=None):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.home = home
        self._opener: urllib.request.OpenerDirector | None = None

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        """Send one request; return (status, JSON body). Unreachable → UserError."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
        if self._opener is None:
            self._opener = opener_for(self.url, self.home)
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                return resp.status, _json(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, _json(e.read())
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise UserError(f"cannot reach the control plane at {self.url} ({_reason(reason)}); "
                            "is the stack running? try `minimesh status`") from e

    def status(self) -> dict:
        return self._ok("GET", "/v1/status")

    def config(self, kind: str | None = None) -> dict:
        query = "?" + urllib.parse.urlencode({"kind": kind}) if kind else ""
        return self._ok("GET", "/v1/config" + query)

    def apply(self, manifests: list[dict], source: str) -> dict:
        return self._ok("POST", "/v1/config", {"manifests": manifests, "source": source})

    def delete(self, kind: str, name: str, namespace: str | None = None) -> dict:
        path = f"/v1/config/{urllib.parse.quote(kind)}/{urllib.parse.quote(name)}"
        if namespace is not None:
            path += "?" + urllib.parse.urlencode({"namespace": namespace})
        return self._ok("DELETE", path)

    def _ok(self, method: str, path: str, body: dict | None = None) -> dict:
        status, answer = self.request(method, path, body)
        if status != 200:
            raise UserError(answer.get("error") or f"control plane answered {status} to {method} {path}")
        return answer


def _json(raw: bytes) -> dict:
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {"error": raw.decode("utf-8", "replace").strip()[:200]}
    return value if isinstance(value, dict) else {"value": value}


def _reason(reason) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason)
