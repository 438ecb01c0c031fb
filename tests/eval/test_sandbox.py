"""Hostile programs against `sftlab.eval.sandbox`: each must end within its limit, be marked failed, and
leave nothing behind (no process of the sandbox uid, no file outside the sandbox).

The fork bombs run only after `nproc_enforced` has shown, with a bounded spawner, that RLIMIT_NPROC holds
for the sandbox: this machine is shared and must not be brought down.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sftlab.eval.sandbox import SANDBOX_UIDS, RunResult, run_program

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux-only")

ROOT = os.geteuid() == 0
REPO = Path(__file__).resolve().parents[2]
FULL_ISOLATION = {"uid", "pidns", "netns", "mountns", "readonly_fs", "scratch_tmpfs", "procfs"}


def run(source: str, **kwargs) -> RunResult:
    return run_program(textwrap.dedent(source), **kwargs)


def live_processes(uid: int | None) -> list[int]:
    """Pids of non-zombie processes with real uid `uid` (any sandbox uid when None)."""
    uids = {uid} if uid is not None else set(SANDBOX_UIDS)
    pids = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields["Uid"].split()[0]) in uids and fields["State"].split()[0] != "Z":
            pids.append(int(entry))
    return pids


def processes_with(token: str) -> list[int]:
    """Pids whose command line contains `token`, wherever they run and whoever they run as."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if token.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                found.append(int(entry))
        except OSError:
            continue
    return found


def assert_nothing_left(result: RunResult) -> None:
    if result.uid is not None:
        assert live_processes(result.uid) == [], f"processes of sandbox uid {result.uid} survived"


def test_echo_runs_isolated_and_cleans_up():
    result = run(
        """
        import os
        print(input()[::-1], os.getpid(), os.getcwd(), sep="|")
        """,
        stdin="olleh\n",
    )
    assert result.status == "ok" and result.returncode == 0 and result.error is None
    echoed, pid, cwd = result.stdout.strip().split("|")
    assert echoed == "hello"
    if ROOT:
        assert set(result.isolation) >= FULL_ISOLATION, result.isolation
        assert result.uid in SANDBOX_UIDS
        assert pid == "2"  # pid 1 of the new PID namespace is the supervisor
    assert not os.path.exists(os.path.dirname(cwd)), "the temp dir must be deleted afterwards"
    assert_nothing_left(result)


def test_infinite_loop_times_out_within_the_limit():
    start = time.monotonic()
    result = run("while True: pass", timeout_s=1.5)
    elapsed = time.monotonic() - start
    assert result.status == "timeout" and result.timed_out and result.returncode is None
    assert 1.4 <= elapsed <= 1.5 + 2, elapsed
    assert_nothing_left(result)


def test_cpu_limit_stops_a_busy_loop_before_the_wall_clock():
    start = time.monotonic()
    result = run("while True: pass", timeout_s=20, cpu_s=1)
    assert result.status == "timeout" and result.returncode == -signal.SIGXCPU
    assert time.monotonic() - start < 6


@pytest.fixture(scope="module")
def nproc_enforced() -> int:
    """Prove RLIMIT_NPROC holds inside the sandbox with a spawner bounded at 20 sleeping children."""
    result = run(
        """
        import os, time
        n = 0
        try:
            for _ in range(20):
                if os.fork() == 0:
                    time.sleep(100)
                    os._exit(0)
                n += 1
        except OSError as e:
            print("fork failed after", n, type(e).__name__)
            raise SystemExit(3)
        print("forked", n)
        """,
        max_processes=8,
        timeout_s=5,
    )
    assert_nothing_left(result)
    if "fork failed" not in result.stdout:
        pytest.fail(f"RLIMIT_NPROC is not enforced in the sandbox: {result.stdout!r}")
    forked = int(result.stdout.split()[3])
    assert forked < 8 and result.status == "error" and result.returncode == 3
    return forked


def test_process_limit_is_enforced(nproc_enforced):
    assert 0 < nproc_enforced < 8


def test_fork_bomb_is_contained_and_leaves_no_process(nproc_enforced):
    peak, stop = [0], threading.Event()

    def watch():  # count sandbox processes while the bomb runs
        while not stop.is_set():
            peak[0] = max(peak[0], len(live_processes(None)))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        start = time.monotonic()
        result = run(
            """
            import os
            while True:
                try:
                    os.fork()
                except OSError:
                    pass
            """,
            max_processes=16,
            timeout_s=2,
        )
        elapsed = time.monotonic() - start
    finally:
        stop.set()
        watcher.join()
    assert result.status == "timeout" and elapsed <= 2 + 2, (result.status, elapsed)
    if ROOT:  # one uid per run, so the count is this bomb's alone (other tests do not run concurrently)
        assert 0 < peak[0] <= 16, peak[0]
    assert_nothing_left(result)


def test_bounded_fork_loop_fails(nproc_enforced):
    result = run("import os\nfor _ in range(10000):\n    os.fork()\n", max_processes=16, timeout_s=5)
    assert result.status == "error" and "BlockingIOError" in result.stderr
    assert_nothing_left(result)


def test_subprocess_spawner_is_contained(nproc_enforced):
    token = f"{secrets.randbelow(10**6) + 100}.{secrets.randbelow(10**6)}"  # a unique `sleep` argument
    result = run(
        f"""
        import subprocess, time
        children = []
        try:
            for _ in range(10000):
                children.append(subprocess.Popen(["sleep", "{token}"]))
        except OSError as e:
            print("spawned", len(children), type(e).__name__, flush=True)
        time.sleep(100)
        """,
        max_processes=8,
        timeout_s=1.5,
    )
    assert result.status == "timeout"
    assert result.stdout.startswith("spawned") and int(result.stdout.split()[1]) < 8
    assert processes_with(token) == [], "a spawned `sleep` survived the sandbox"
    assert_nothing_left(result)


def test_daemon_that_leaves_the_process_group_does_not_survive():
    token = f"{secrets.randbelow(10**6) + 100}.{secrets.randbelow(10**6)}"
    result = run(
        f"""
        import os
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execvp("sleep", ["sleep", "{token}"])
            os._exit(0)
        print("parent done")
        """
    )
    assert result.status == "ok" and result.stdout == "parent done\n"
    assert processes_with(token) == [], "the double-forked daemon survived the sandbox"
    assert_nothing_left(result)


@pytest.mark.parametrize(
    "source",
    ["x = bytearray(10**10)", "chunks = []\nwhile True:\n    chunks.append(bytearray(10**7))"],
    ids=["10GB-at-once", "grows-until-refused"],
)
def test_memory_bombs_fail_with_memory_status(source):
    result = run(source, memory_mb=256, timeout_s=10)
    assert result.status == "memory" and "MemoryError" in result.stderr
    assert_nothing_left(result)


def test_writes_outside_the_working_dir_fail_and_leave_no_file(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    outside.chmod(0o755)  # root-owned and world-readable, as most of the file system is
    name = f"sandbox-escape-{secrets.token_hex(4)}.txt"
    targets = [outside / name, REPO / name, Path("/tmp") / name, Path("/dev/shm") / name, Path.home() / name]
    result = run(
        f"""
        import json
        results = {{}}
        for path in {[str(t) for t in targets]!r}:
            try:
                with open(path, "w") as f:
                    f.write("escaped")
                results[path] = "written"
            except OSError as e:
                results[path] = type(e).__name__
        with open("inside.txt", "w") as f:  # its own working dir stays writable
            f.write("ok")
        results["inside"] = open("inside.txt").read()
        print(json.dumps(results))
        """
    )
    assert result.status == "ok", result.stderr
    outcome = json.loads(result.stdout)
    assert outcome.pop("inside") == "ok"
    assert "written" not in outcome.values(), outcome
    assert [t for t in targets if t.exists()] == []
    assert_nothing_left(result)


def test_no_network_even_to_a_loopback_server_of_the_test():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.3)
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=2):  # control: the server is reachable
            server.accept()[0].close()
        result = run(
            f"""
            import socket
            socket.create_connection(("127.0.0.1", {port}), timeout=2)
            print("connected")
            """
        )
        if ROOT:
            assert result.network_isolated
        if not result.network_isolated:
            pytest.skip(f"no network namespace available here (isolation={result.isolation})")
        assert result.status == "error" and "connected" not in result.stdout
        assert "OSError" in result.stderr or "unreachable" in result.stderr
        with pytest.raises(TimeoutError):
            server.accept()  # nothing ever reached the server


def test_printing_forever_hits_the_output_limit():
    start = time.monotonic()
    result = run("while True:\n    print('x' * 1000)", max_output_bytes=100_000, timeout_s=10)
    assert result.status == "output_limit" and len(result.stdout) <= 100_000
    assert time.monotonic() - start < 5
    assert_nothing_left(result)


def test_a_raising_program_is_an_error_with_its_traceback():
    result = run("raise ValueError('boom')")
    assert result.status == "error" and result.returncode == 1
    assert "ValueError: boom" in result.stderr


def test_environment_is_scrubbed(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("SFTLAB_SECRET", "hunter2")
    result = run("import json, os\nprint(json.dumps(dict(os.environ)))")
    env = json.loads(result.stdout)
    assert "HTTPS_PROXY" not in env and "SFTLAB_SECRET" not in env
    assert env["HOME"] == env["TMPDIR"]


def test_parallel_runs_get_distinct_uids():
    source = "import os, time\ntime.sleep(1)\nprint(os.getuid())"
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda _: run(source), range(3)))
    assert all(r.status == "ok" and r.stdout.strip() == str(r.uid) for r in results)
    if ROOT:
        assert len({r.uid for r in results}) == 3, "overlapping runs must never share a uid"


def test_a_broken_interpreter_is_a_sandbox_error_not_a_verdict():
    result = run("print('hi')", python="/bin/true")
    assert result.status == "sandbox_error" and result.error


def test_invalid_arguments_are_all_reported():
    with pytest.raises(ValueError) as excinfo:
        run_program("pass", timeout_s=0, memory_mb=-1, files={"../evil.py": ""}, python="/nonexistent")
    message = str(excinfo.value)
    for fragment in ("timeout_s=0", "memory_mb=-1", "../evil.py", "/nonexistent"):
        assert fragment in message
