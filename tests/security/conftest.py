"""The shop every attack is made against: one per test module, real processes and TLS throughout."""

import pytest_asyncio

from tests.support.mesh import run_mesh


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shop(tmp_path_factory):
    """gateway → web → catalog, pricing: one instance each, every sidecar with its certificate."""
    async with run_mesh(tmp_path_factory.mktemp("shop")) as mesh:
        for service in ("catalog", "pricing", "web"):
            await mesh.add(service)
        await mesh.add_gateway("web")
        await mesh.converged()
        yield mesh
