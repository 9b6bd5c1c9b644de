"""The one small error tree of the mesh.

A layer that cannot do its job raises a `MeshError`. Each error knows the HTTP
status it becomes and the Envoy-style response flag that names it, so one place
at the listener edge (`proxy/edge.py`) can turn any of them into a response
carrying `x-minimesh-error` — the way linkerd2-proxy has a single `rescue`.
"""


class MeshError(Exception):
    """A request the mesh itself answered instead of the upstream app."""

    status = 502
    flag = "DC"
    layer = "proxy"  # which layer of the journey gave up, for x-minimesh-error
    body: str | None = None  # the response body Envoy gives, where it has a fixed one
    headers: dict = {}  # extra response headers (e.g. WWW-Authenticate)

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class NoRoute(MeshError):
    status, flag = 404, "NR"
    layer = "route"


class NoHealthyUpstream(MeshError):
    status, flag = 503, "UH"
    layer = "balancer"


class NoCluster(MeshError):
    """The route names a service or subset the mesh has no cluster for (Envoy: 503, NC)."""

    status, flag = 503, "NC"
    layer = "route"


class UpstreamConnectFailure(MeshError):
    status, flag = 503, "UF"
    layer = "connect"


class UpstreamReset(MeshError):
    status, flag = 503, "UC"
    layer = "connect"


class UpstreamTimeout(MeshError):
    status, flag = 504, "UT"
    layer = "timeout"


class EgressBlocked(MeshError):
    """REGISTRY_ONLY: a host outside the sidecar's registry (Istio's BlackHoleCluster, 502)."""

    status, flag = 502, "BH"
    layer = "egress"


class Overflow(MeshError):
    status, flag = 503, "UO"
    layer = "breaker"


class FaultAbort(MeshError):
    """An abort the route's `fault` block asked for: its own status, flag FI."""

    flag = "FI"
    layer = "fault"

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


class AccessDenied(MeshError):
    """An AuthorizationPolicy said no: Envoy's RBAC filter answers 403 with this very body."""

    status, flag = 403, "RBAC"
    layer = "authz"
    body = "RBAC: access denied"


class JwtRejected(MeshError):
    """A token a RequestAuthentication could not verify: 401, and Envoy's jwt_authn wording.

    Envoy sets no response flag for it (the access log shows the code and
    `jwt_authn_access_denied{...}` as the response details), so neither do we.
    """

    status, flag = 401, ""
    layer = "jwt"
    headers = {"www-authenticate": 'Bearer realm="minimesh", error="invalid_token"'}

    def __init__(self, reason: str):
        super().__init__(reason)
        self.body = reason  # "Jwt is expired", "Jwt verification fails", ...


class BadRequest(MeshError):
    status, flag = 400, "DPE"
    layer = "listener"


class HeadersTooLarge(MeshError):
    status, flag = 431, "DPE"
    layer = "listener"


class BadUpstreamResponse(MeshError):
    """The upstream's answer was not valid HTTP, or its headers were over the limits."""

    status, flag = 502, "UPE"
    layer = "connect"


class LoopDetected(MeshError):
    """The request would come back into this sidecar (RFC 5842 §7.2: 508 Loop Detected)."""

    status, flag = 508, "LD"
    layer = "loop guard"


class InternalError(MeshError):
    """Something the proxy did not expect: answered, logged, and never shown as a traceback."""

    status, flag = 500, "IE"
    layer = "proxy"


class ConfigError(Exception):
    """A manifest minimesh will not accept: names the file, line and field."""

    def __init__(self, message: str, *, source: str = "", line: int | None = None, field: str = ""):
        self.message = message
        self.source = source
        self.line = line
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.source or "<manifest>"
        if self.line is not None:
            where += f":{self.line}"
        what = f"{self.field}: " if self.field else ""
        return f"{where}: {what}{self.message}"


class UserError(Exception):
    """Something the person at the keyboard can fix; the CLI prints it as one line."""
