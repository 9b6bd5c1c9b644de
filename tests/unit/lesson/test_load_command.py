"""`minimesh load`'s decisions, without locust: the command line it builds and where the CSV goes."""

import time
from pathlib import Path

import pytest

from minimesh.lesson.load import LoadOptions, csv_prefix_for, has_shape, locust_command, shape_ignores_run_time

SHAPED = "from locust import LoadTestShape\nclass Steps(LoadTestShape):\n    def tick(self):\n        return None\n"
PLAIN = "from locust import HttpUser\nclass Shopper(HttpUser):\n    pass\n"


@pytest.mark.parametrize("source, shaped", [(SHAPED, True), (PLAIN, False),
                                            ("import locust\nclass S(locust.LoadTestShape): pass\n", True)])
def test_a_shape_is_recognised(source, shaped):
    assert has_shape(source) is shaped


@pytest.mark.parametrize("opts, shaped, crowd", [
    (LoadOptions(), False, ["-u", "20", "-r", "5.0"]),          # defaults for a plain lesson
    (LoadOptions(), True, []),                                   # a shape keeps its own curve
    (LoadOptions(users=50), True, ["-u", "50", "-r", "5.0"]),    # unless the instructor says otherwise
    (LoadOptions(users=3, spawn_rate=1), False, ["-u", "3", "-r", "1"]),
])
def test_the_locust_command_line(opts, shaped, crowd):
    cmd = locust_command(Path("l/locustfile.py"), "http://127.0.0.1:8080", opts, Path("/h/load/x"), shaped)
    assert cmd[1:6] == ["-m", "locust", "-f", "l/locustfile.py", "--headless"]
    assert [a for a in cmd if a in ("-u", "-r")] == [a for a in crowd if a in ("-u", "-r")]
    for flag, value in zip(crowd[::2], crowd[1::2]):
        assert cmd[cmd.index(flag) + 1] == value
    assert cmd[cmd.index("--host") + 1] == "http://127.0.0.1:8080"
    assert cmd[cmd.index("--csv") + 1] == "/h/load/x"
    assert cmd[cmd.index("-t") + 1] == "1m"


def test_extra_arguments_go_to_locust_last():
    cmd = locust_command(Path("f.py"), "http://g", LoadOptions(locust_args=("--tags", "checkout")), Path("p"))
    assert cmd[-2:] == ["--tags", "checkout"]


def test_each_run_gets_its_own_csv_prefix_under_home():
    now = time.mktime((2026, 3, 1, 9, 30, 5, 0, 0, -1))
    assert csv_prefix_for(Path("/h"), "02-retries", now) == Path("/h/load/02-retries-20260301-093005")


@pytest.mark.parametrize("source, ignores", [
    (SHAPED, True),
    (SHAPED.replace("return None", "return None if self.get_run_time() > self.runner.environment"
                                   ".parsed_options.run_time else (1, 1)"), False),
    (PLAIN, False),
])
def test_a_shape_that_would_ignore_run_time_is_noticed(source, ignores):
    assert shape_ignores_run_time(source) is ignores
