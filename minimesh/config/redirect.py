"""VirtualService `redirect` and `directResponse`: routes the proxy answers itself.

A redirect route never reaches an upstream: Envoy answers with
`redirectCode` (301 when unset) and a Location built from the request with
the parts the redirect names replaced — `uri` replaces the whole path
(Istio: "irrespective of the request URI being matched as an exact path or
prefix") and keeps the query, `prefixRewrite` only the prefix the route
matched (as rewrite.uri does), `authority` the host, `port` the port
(`derivePort`: FROM_PROTOCOL_DEFAULT drops it, so the scheme's own applies;
FROM_REQUEST_PORT keeps the request's), `scheme` the scheme. A directResponse route answers `status` with a fixed
body (`body.string`, or `body.bytes` in base64). Neither can be combined
with `route`, and Istio refuses a redirect beside a rewrite; timeouts,
retries and mirrors have nothing to act on there, so minimesh refuses them
beside either (Envoy ignores them).
"""

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from .fields import At, check_fields, enum, integer, mapping, require, string

REDIRECT_CODES = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class HTTPRedirect:
    uri: str | None = None
    authority: str | None = None
    port: int | None = None
    scheme: str | None = None
    redirect_code: int = 301
    prefix_rewrite: str | None = None
    derive_port: str | None = None  # FROM_PROTOCOL_DEFAULT | FROM_REQUEST_PORT


@dataclass(frozen=True)
class HTTPDirectResponse:
    status: int
    body: bytes | None = None


def parse_redirect(value: Any, at: At) -> HTTPRedirect:
    block = mapping(value, at)
    check_fields(block, at, ("uri", "authority", "port", "scheme", "redirectCode", "prefixRewrite", "derivePort"))
    if "uri" in block and "prefixRewrite" in block:
        raise (at / "prefixRewrite").error("set 'uri' or 'prefixRewrite', not both (Istio refuses both)")
    if "port" in block and "derivePort" in block:
        raise (at / "derivePort").error("set 'port' or 'derivePort', not both (Istio's schema refuses both)")
    scheme = string(block["scheme"], at / "scheme").lower() if "scheme" in block else None
    if scheme is not None and scheme not in ("http", "https"):
        raise (at / "scheme").error(f"scheme {scheme!r} is not http or https")
    uri = string(block["uri"], at / "uri") if "uri" in block else None
    if uri is not None and not uri.startswith("/"):
        raise (at / "uri").error(f"uri {uri!r} must start with '/'")
    return HTTPRedirect(
        uri=uri,
        authority=string(block["authority"], at / "authority") if "authority" in block else None,
        port=integer(block["port"], at / "port", 1, 65535) if "port" in block else None,
        scheme=scheme,
        redirect_code=_code(block, at),
        prefix_rewrite=string(block["prefixRewrite"], at / "prefixRewrite") if "prefixRewrite" in block else None,
        derive_port=(enum(block["derivePort"], at / "derivePort", ("FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT"))
                     if "derivePort" in block else None),
    )


def _code(block: dict, at: At) -> int:
    if "redirectCode" not in block:
        return 301  # Envoy's MOVED_PERMANENTLY
    code = integer(block["redirectCode"], at / "redirectCode")
    if code not in REDIRECT_CODES:
        raise (at / "redirectCode").error(f"redirectCode {code} is not one Envoy sends; use one of "
                                          f"{', '.join(map(str, REDIRECT_CODES))}")
    return code


def parse_direct_response(value: Any, at: At) -> HTTPDirectResponse:
    block = mapping(value, at)
    check_fields(block, at, ("status", "body"))
    status = integer(require(block, "status", at), at / "status", 200, 599)
    if "body" not in block:
        return HTTPDirectResponse(status)
    where = at / "body"
    body = mapping(block["body"], where)
    check_fields(body, where, ("string", "bytes"))
    if len(body) != 1:
        raise where.error("set exactly one of 'string' or 'bytes'")
    if "string" in body:
        return HTTPDirectResponse(status, string(body["string"], where / "string").encode())
    try:
        raw = base64.b64decode(string(body["bytes"], where / "bytes"), validate=True)
    except (binascii.Error, ValueError) as e:
        raise (where / "bytes").error("bytes must be base64 (as Kubernetes stores byte fields)") from e
    return HTTPDirectResponse(status, raw)
