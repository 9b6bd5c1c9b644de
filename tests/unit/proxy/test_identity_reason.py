"""A renewal failure says why, even when the error has no text of its own (issue 18, defect 10)."""

import aiohttp
import pytest

from minimesh.proxy.identity import reason


@pytest.mark.parametrize("error, shown", [
    (aiohttp.ServerDisconnectedError(""), "ServerDisconnectedError"),
    (TimeoutError(), "TimeoutError"),
    (ConnectionRefusedError(111, "Connection refused"), "ConnectionRefusedError: [Errno 111] Connection refused"),
])
def test_reason_is_never_empty(error, shown):
    assert reason(error) == shown
