"""Run one untrusted Python program in a throwaway process sandbox: the execution core of the code scorer.

Model-written code may loop, fork-bomb, allocate 10 GB, write anywhere, open sockets or print forever;
`run_program` returns within about `timeout_s` + 1 s and leaves no process and no file behind. Stdlib and
Linux only; knows nothing about scoring. `RunResult.isolation` names each layer that took effect, so a
degraded run (no root, a strict container) says so instead of pretending:

* ``uid`` (root only): run as a uid leased exclusively (flock) from `SANDBOX_UIDS`. Dropping root is what
  makes RLIMIT_NPROC bite (CAP_SYS_RESOURCE ignores it); exclusivity makes the count exact and "SIGKILL
  every process of that uid" safe. PR_SET_NO_NEW_PRIVS disarms setuid binaries.
* ``pidns``: pid 1 is a small supervisor; when it dies the kernel SIGKILLs and reaps all inside, children
  that setsid() out of the process group included. Group kill and uid sweep stay as backstops.
* ``netns``: a new network namespace with only a down loopback; connect() fails even to 127.0.0.1.
* ``mountns`` (+ ``readonly_fs``, ``scratch_tmpfs``, ``procfs``): all mounts bind-remounted read-only here
  only; the working dir, a fresh size-capped tmpfs owned by the sandbox uid, is the one writable place;
  /proc shows only the sandbox. An interpreter others cannot reach (pyenv under a 0700 /root) is bound
  back read-only under an empty tmpfs hiding the rest of that directory.
* rlimits, always: CPU seconds, address space, file size, processes, open files, no core dumps.

Without root a user namespace is tried first, so the other namespaces still work. Why a launcher and not
`preexec_fn`: the scorer calls this from threads, and `preexec_fn` runs Python between fork and exec in a
copy of a multi-threaded process, where a lock held by another thread can deadlock the child. `Popen`
(thread-safe) starts a fresh single-threaded ``python -I -S sandbox_launcher.py CONFIG`` instead (the
`sandbox_launcher` module: stdlib only, as ``-I -S`` cannot import sftlab); it unshares, forks the
supervisor, sets limits, drops privileges and execs ``python -I -B -X utf8 main.py`` with a scrubbed
environment (no proxies; HOME = TMPDIR = work dir). Tree: caller -> launcher -> pid 1 -> program. This
module is the caller side: argument checks, uid lease, scratch dir, waiting, output capture, verdict.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import pwd
import re
import select
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from subprocess import PIPE
from typing import Literal

from sftlab.eval import sandbox_launcher

RunStatus = Literal["ok", "error", "timeout", "memory", "output_limit", "sandbox_error"]

# Leased to sandboxed programs when running as root: below systemd's DynamicUser range (61184-65519),
# above login accounts. A uid named in /etc/passwd or owning any process is skipped, never shared.
SANDBOX_UIDS = range(59000, 59128)

# The launcher is run as a script (it cannot import sftlab), so the caller takes these from it.
_LAUNCHER, _PATH = os.path.abspath(sandbox_launcher.__file__), sandbox_launcher.PATH

_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class RunResult:
    """How one run ended: "ok" (exit 0), "error" (non-zero exit or a signal), "timeout" (wall or CPU limit),
    "memory" (MemoryError), "output_limit" (stdout + stderr over the cap) or "sandbox_error" (the sandbox
    could not start it; `error` says why). `returncode`: exit code or -signal, None when the sandbox killed
    or never started the program. `isolation`: layers in effect (module docstring); `uid`: the uid used."""

    status: RunStatus
    returncode: int | None
    stdout: str
    stderr: str
    wall_s: float
    isolation: tuple[str, ...] = ()
    uid: int | None = None
    error: str | None = None

    @property
    def timed_out(self) -> bool:
        return self.status == "timeout"

    @property
    def network_isolated(self) -> bool:
        return "netns" in self.isolation


def run_program(
    source: str,
    *,
    stdin: str = "",
    files: Mapping[str, str] | None = None,
    timeout_s: float = 6.0,
    memory_mb: int = 1024,
    cpu_s: int | None = None,
    max_file_mb: int = 16,
    max_processes: int = 64,
    max_output_bytes: int = 1 << 20,
    scratch_mb: int = 64,
    python: str = sys.executable,
) -> RunResult:
    """Run `source` as ``main.py`` with `stdin` in a fresh sandbox; `files` are put beside it. Thread-safe.

    `timeout_s`: wall clock from launch, start-up included; `cpu_s`: default ceil(timeout_s) + 1;
    `memory_mb`: address space; `max_file_mb`: any one file; `scratch_mb`: the whole working dir;
    `max_processes`: processes and threads together; `max_output_bytes`: stdout + stderr."""
    root, files = os.geteuid() == 0, dict(files or {})
    cpu = cpu_s if cpu_s is not None else math.ceil(timeout_s) + 1
    sizes = dict(timeout_s=timeout_s, cpu_s=cpu, memory_mb=memory_mb, max_file_mb=max_file_mb)
    sizes |= dict(max_processes=max_processes, max_output_bytes=max_output_bytes, scratch_mb=scratch_mb)
    problems = [f"{k} must be > 0, got {k}={v}" for k, v in sizes.items() if not v > 0]
    if bad_names := [name for name in files if not _FILE_NAME.fullmatch(name) or name == "main.py"]:
        problems.append(f"files may hold only plain file names other than main.py, got {bad_names}")
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        problems.append(f"python must be an executable interpreter, got python={python!r}")
    if not sys.platform.startswith("linux"):
        problems.append(f"the sandbox needs Linux namespaces, got platform={sys.platform!r}")
    if problems:
        raise ValueError("invalid sandbox arguments: " + "; ".join(problems))
    # Without root RLIMIT_NPROC counts all the caller's processes. CPU soft < hard: SIGXCPU, then SIGKILL.
    nproc = max_processes if root else max_processes + len(_processes(os.getuid()))
    limits = {"AS": memory_mb << 20, "FSIZE": max_file_mb << 20, "NOFILE": 256, "NPROC": nproc, "CORE": 0}
    limits = {name: [value, value] for name, value in limits.items()} | {"CPU": [cpu, cpu + 1]}
    lease = _leased_uid() if root else contextlib.nullcontext()
    base = tempfile.gettempdir()  # a 0700 $TMPDIR would lock the sandbox uid out of its working dir
    base = "/tmp" if root and _hidden_ancestor(base) else base
    scratch = tempfile.TemporaryDirectory(prefix="sftlab-sandbox-", dir=base, ignore_cleanup_errors=True)
    with lease as uid, scratch as tmp:
        src, work = f"{tmp}/src", f"{tmp}/work"
        os.mkdir(src, 0o700)
        os.mkdir(work, 0o700)
        paths = {f"{src}/{name}": text for name, text in files.items()}
        for path, text in {**paths, f"{src}/main.py": source, f"{tmp}/stdin": stdin}.items():
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        os.chmod(tmp, 0o711)  # the sandbox uid may pass through to work/, not list or read the rest
        if uid is not None:
            os.chown(work, uid, uid)
        # The interpreter's install prefixes (venv and real) must be reachable by the sandbox uid.
        prefixes = {os.path.dirname(os.path.dirname(f(python))) for f in (os.path.abspath, os.path.realpath)}
        hidden = [(_hidden_ancestor(p), p) for p in sorted(prefixes)] if uid is not None else []
        expose = [[ancestor, p] for ancestor, p in hidden if ancestor is not None]
        config = dict(python=python, src=src, work=work, uid=uid, limits=limits, scratch_mb=scratch_mb)
        config |= dict(caller_pid=os.getpid(), backstop_s=math.ceil(timeout_s) + 5, expose=expose)
        return _launch_and_wait(config, tmp, timeout_s, max_output_bytes, uid)


def _launch_and_wait(config: dict, tmp: str, timeout_s: float, cap: int, uid: int | None) -> RunResult:
    read_fd, write_fd = os.pipe()  # launcher/supervisor reports; closed by the program's exec
    argv = [config["python"], "-I", "-S", _LAUNCHER, json.dumps(config | {"status_fd": write_fd})]
    spawn = dict(
        stdout=PIPE, stderr=PIPE, cwd=tmp, env={"PATH": _PATH}, pass_fds=[write_fd], start_new_session=True
    )
    start = time.monotonic()
    try:
        with open(f"{tmp}/stdin", "rb") as stdin:
            proc = subprocess.Popen(argv, stdin=stdin, **spawn)  # type: ignore[call-overload]
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)

    def kill_stragglers() -> None:
        # Only called while the launcher is unreaped, so its process-group id cannot have been recycled.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if uid is not None and not _sweep(uid):
            raise RuntimeError(f"processes of sandbox uid {uid} survived SIGKILL; inspect /proc before reuse")

    pidfd = os.pidfd_open(proc.pid)
    try:
        out, err, reason = _collect(proc, pidfd, start + timeout_s, cap, kill_stragglers)
        if reason is not None:  # the launcher SIGKILLs the namespace's pid 1, which takes everything along
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            (poller := select.poll()).register(pidfd, select.POLLIN)
            poller.poll(1000)  # poll, not select: fds above 1024 are common in a busy evaluator
    finally:
        kill_stragglers()
        proc.wait()
        os.close(pidfd)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    wall_s = time.monotonic() - start
    with os.fdopen(read_fd, "rb") as reports:  # every writer is dead by now, so this reaches EOF
        report = {k: v for line in reports.read().splitlines() for k, v in json.loads(line).items()}
    stdout, stderr = (bytes(b[:cap]).decode("utf-8", "replace") for b in (out, err))
    status, returncode, error = _classify(report, reason, stderr)
    isolation = tuple(report.get("isolation", ()))
    return RunResult(status, returncode, stdout, stderr, wall_s, isolation, uid, error)


def _collect(proc, pidfd, deadline, cap, on_launcher_exit) -> tuple[bytearray, bytearray, str | None]:
    """Read stdout/stderr until both reach EOF and the launcher exited; stop early on deadline or cap."""
    out, err = bytearray(), bytearray()
    buffers = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    poller, waiting = select.poll(), {*buffers, pidfd}
    for fd in waiting:
        poller.register(fd, select.POLLIN)
    while waiting:
        if (remaining := deadline - time.monotonic()) <= 0:
            return out, err, "timeout"
        for fd, _ in poller.poll(remaining * 1000):
            chunk = b"" if fd == pidfd else os.read(fd, 1 << 16)
            if fd == pidfd:  # whatever still holds the pipes outlived the launcher: kill it
                on_launcher_exit()
            elif chunk:
                buffers[fd] += chunk
                if len(out) + len(err) > cap:
                    return out, err, "output_limit"
            if not chunk:
                poller.unregister(fd)
                waiting.discard(fd)
    return out, err, None


def _classify(report: dict, reason: str | None, stderr: str) -> tuple[RunStatus, int | None, str | None]:
    if "setup_error" in report:
        return "sandbox_error", None, report["setup_error"]
    if reason is not None:
        return reason, None, None  # type: ignore[return-value]
    if "wait_status" not in report:
        return "sandbox_error", None, "the sandbox supervisor died before the program finished"
    code = os.waitstatus_to_exitcode(report["wait_status"])
    if code in (0, -signal.SIGXCPU):
        return ("ok" if code == 0 else "timeout"), code, None
    memory = (stderr.strip().splitlines() or [""])[-1].startswith("MemoryError")
    return ("memory" if memory else "error"), code, None


def _hidden_ancestor(path: str) -> str | None:
    """The top-most directory on `path` that other users may not traverse (no o+x), or None."""
    parts = path.strip("/").split("/")
    for i in range(1, len(parts) + 1):
        with contextlib.suppress(OSError):
            if not os.stat(ancestor := "/" + "/".join(parts[:i])).st_mode & stat.S_IXOTH:
                return ancestor
    return None


def _process_status(pid: int | str) -> tuple[int, str] | None:
    """(real uid, state letter), None once gone. Read from status, not the owner of /proc/<pid>: a process
    that clears its dumpable flag makes that directory root-owned."""
    try:
        with open(f"/proc/{pid}/status") as f:
            found = re.search(r"^State:\s+(\S).*^Uid:\s+(\d+)", f.read(), re.M | re.S)
    except OSError:
        return None
    return (int(found.group(2)), found.group(1)) if found else None


def _processes(uid: int | None = None) -> list[tuple[int, int, str]]:
    """(pid, real uid, state) of every process, or only of `uid`'s."""
    found = ((int(e), _process_status(e)) for e in os.listdir("/proc") if e.isdigit())
    return [(pid, *status) for pid, status in found if status and uid in (None, status[0])]


def _sweep(uid: int) -> bool:
    """SIGKILL every live process of `uid` until none is left. A pidfd pins each process before its uid is
    re-checked, so a recycled pid is never hit."""
    for _ in range(200):
        live = [pid for pid, _, state in _processes(uid) if state != "Z"]
        if not live:
            return True
        for pid in live:
            with contextlib.suppress(OSError):
                pidfd = os.pidfd_open(pid)
                try:
                    if (_process_status(pid) or (None,))[0] == uid:
                        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                finally:
                    os.close(pidfd)
        time.sleep(0.005)
    return False


@contextlib.contextmanager
def _leased_uid(wait_s: float = 60.0) -> Iterator[int]:
    """Hold an flock on one free uid of `SANDBOX_UIDS` for the duration of a run, across processes."""
    lock_dir = os.path.join(tempfile.gettempdir(), "sftlab-sandbox-uids")
    os.makedirs(lock_dir, mode=0o700, exist_ok=True)
    st = os.lstat(lock_dir)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o077:
        got = f"uid={st.st_uid} mode={oct(st.st_mode)}"
        raise RuntimeError(f"{lock_dir} must be a root-owned 0700 directory, got {got}; remove it and retry")
    named = {entry.pw_uid for entry in pwd.getpwall()}
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        busy = named | {owner for _, owner, _ in _processes()}
        for uid in (uid for uid in SANDBOX_UIDS if uid not in busy):
            flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(f"{lock_dir}/{uid}.lock", flags, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                yield uid
            finally:
                os.close(fd)
            return
        time.sleep(0.05)
    raise RuntimeError(f"all {len(SANDBOX_UIDS)} sandbox uids stayed busy {wait_s} s; run fewer in parallel")
