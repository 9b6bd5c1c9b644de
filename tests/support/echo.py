"""An echo app behind a real sidecar, for tests that must see what the mesh handed on.

    catalog = await add_echo(mesh, "catalog", "v2")   # an Instance, in mesh.instances
    # every answer: {"service", "version", "method", "path", "headers"} as the app received them
    catalog.seen                                        # the same, for every request it got (mirror copies too)

The app runs in the test's own loop (no subprocess of its own); its sidecar
is a real `minimesh sidecar` from run_mesh's builders, with its join token.
"""

from __future__ import annotations

from aiohttp import web

from tests.support.mesh import Instance, Mesh, start_sidecar
from tests.support.shop import serve_routes


def echo_handler(service: str, version: str, seen: list):
    async def echo(request: web.Request) -> web.Response:
        headers: dict[str, str] = {}
        for key, value in request.headers.items():  # a header sent twice reads "first,second"
            headers[key.lower()] = f"{headers[key.lower()]},{value}" if key.lower() in headers else value
        answer = {"service": service, "version": version, "method": request.method, "path": request.path_qs,
                  "headers": headers}
        seen.append(answer)
        return web.json_response(answer)
    return echo


async def add_echo(mesh: Mesh, service: str, version: str = "v1") -> Instance:
    """An echo app of `service`/`version` beside its own sidecar; stopped with the mesh."""
    seen: list[dict] = []
    runner, port = await serve_routes(web.route("*", "/{tail:.*}", echo_handler(service, version, seen)))
    name = f"{service}-{version}-echo-{len(mesh.instances)}"
    sidecar = await start_sidecar(mesh.control_url, service, port, version, name, log_dir=mesh.log_dir)
    instance = Instance(service, version, name, None, sidecar)
    instance.runner = runner  # cleaned up by the test module's fixture (mesh.close stops only processes)
    instance.seen = seen
    mesh.instances.append(instance)
    return instance
