"""The sandbox's launcher, supervisor and program child, run as ``python -I -S sandbox_launcher.py CONFIG``.

`sftlab.eval.sandbox.run_program` (the caller side) starts this file with `Popen`; that module's docstring
describes the isolation layers and why a fresh launcher beats `preexec_fn`. Under ``-I -S`` neither sftlab
nor site-packages can be imported, so this file must stay stdlib-only and self-contained; the caller reads
the constants they share (`PATH`) by importing it as a module, which runs nothing. CONFIG is the JSON built
by `run_program`. Tree: caller -> launcher -> pid 1 (supervisor) -> program. Knows nothing about scoring.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import resource
import shutil
import signal
import sys
from typing import Any

# The program's (and the launcher's) whole environment PATH; shared with the caller.
PATH = "/usr/local/bin:/usr/bin:/bin"

_CLONE_NEWNS, _CLONE_NEWUSER, _CLONE_NEWPID, _CLONE_NEWNET = 0x20000, 0x10000000, 0x20000000, 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REMOUNT, _MS_BIND, _MS_REC = 1, 2, 4, 8, 32, 4096, 16384
_MS_PRIVATE, _PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS = 1 << 18, 1, 38
# Per-mount flags a bind remount must repeat (dropping a locked one fails inside a user namespace).
_MS_KEEP = dict(nosuid=2, nodev=4, noexec=8, noatime=1024, nodiratime=2048, relatime=1 << 21)


def _report(fd: int, **fields: Any) -> None:
    with contextlib.suppress(OSError):
        os.write(fd, (json.dumps(fields) + "\n").encode())


def _mount(libc, src: str | None, target: str, fs: str | None, flags: int, data: str | None = None) -> int:
    src_b, fs_b, data_b = (None if v is None else v.encode() for v in (src, fs, data))
    return libc.mount(src_b, target.encode(), fs_b, ctypes.c_ulong(flags), data_b)


def _launch(config: dict) -> None:
    """Launcher: unshare namespaces, fork the supervisor, turn SIGTERM into killing it; never returns."""
    libc, fd = ctypes.CDLL(None, use_errno=True), config["status_fd"]
    os.set_inheritable(fd, False)  # the program's exec closes it; launcher and supervisor keep reporting
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # the caller died: die too, and the namespace with us
    if os.getppid() != config["caller_pid"]:
        os._exit(1)
    layers = []
    try:
        if os.geteuid() != 0 and libc.unshare(_CLONE_NEWUSER) == 0:  # lets a non-root caller make the rest
            uid, gid = os.getuid(), os.getgid()
            maps = {"setgroups": "deny", "uid_map": f"{uid} {uid} 1", "gid_map": f"{gid} {gid} 1"}
            for name, text in maps.items():
                with open(f"/proc/self/{name}", "w") as f:
                    f.write(text)
            layers.append("userns")
        for name, flag in (("pidns", _CLONE_NEWPID), ("netns", _CLONE_NEWNET), ("mountns", _CLONE_NEWNS)):
            if (os.geteuid() == 0 or layers) and libc.unshare(flag) == 0:
                layers.append(name)
    except BaseException as exc:
        _report(fd, setup_error=f"namespace setup failed: {type(exc).__name__}: {exc}")
        os._exit(1)
    supervisor = os.fork()
    if supervisor == 0:
        _supervise(libc, config, layers)
    handle = os.pidfd_open(supervisor)  # race-free even if the supervisor was already reaped

    def kill_supervisor(*_: Any) -> None:
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(handle, signal.SIGKILL)

    signal.signal(signal.SIGTERM, kill_supervisor)
    signal.signal(signal.SIGALRM, kill_supervisor)
    signal.alarm(config["backstop_s"])  # in case the caller hangs without dying
    os.waitpid(supervisor, 0)
    os._exit(0)


def _supervise(libc, config: dict, layers: list[str]) -> None:
    """Supervisor, pid 1 of the new PID namespace: mounts, then fork+exec the program, reap until it exits."""
    fd, uid = config["status_fd"], config["uid"]
    try:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if "mountns" in layers:
            layers += _private_mounts(libc, config, "pidns" in layers)
        for name in os.listdir(config["src"]):
            shutil.copyfile(os.path.join(config["src"], name), target := os.path.join(config["work"], name))
            if uid is not None:
                os.chown(target, uid, uid)
        _report(fd, isolation=layers + ["uid"] * (uid is not None))
        program = os.fork()
        if program == 0:
            _exec_program(libc, config)
        while (reaped := os.waitpid(-1, 0))[0] != program:  # as pid 1, also reap orphans
            pass
        _report(fd, wait_status=reaped[1])
    except BaseException as exc:
        _report(fd, setup_error=f"supervisor failed: {type(exc).__name__}: {exc}")
    os._exit(0)


def _private_mounts(libc, config: dict, pidns: bool) -> list[str]:
    # MS_PRIVATE first: under shared propagation our mounts would show up on the host. No private, no mounts.
    if _mount(libc, "none", "/", None, _MS_REC | _MS_PRIVATE) != 0:
        return []
    keep = [(hidden, path, os.open(path, os.O_PATH | os.O_CLOEXEC)) for hidden, path in config["expose"]]
    for hidden in dict.fromkeys(hidden for hidden, _, _ in keep):
        if _mount(libc, "tmpfs", hidden, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=64k,mode=0755") != 0:
            raise OSError(ctypes.get_errno(), f"cannot cover {hidden} to expose the interpreter")
    for _, path, handle in keep:
        os.makedirs(path, mode=0o755, exist_ok=True)
        if _mount(libc, f"/proc/self/fd/{handle}", path, None, _MS_BIND | _MS_REC) != 0:
            raise OSError(ctypes.get_errno(), f"cannot bind the interpreter prefix {path}")
    readonly = True
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split(" ") for line in f.read().splitlines()]
    for fields in mounts:  # MS_BIND|MS_REMOUNT changes only this namespace's mount, never the superblock
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        flags = _MS_REMOUNT | _MS_BIND | _MS_RDONLY | sum(_MS_KEEP.get(o, 0) for o in fields[5].split(","))
        readonly &= _mount(libc, None, point, None, flags) == 0
    owner = "" if config["uid"] is None else f",uid={config['uid']},gid={config['uid']}"
    options = f"size={config['scratch_mb']}m,nr_inodes=4096,mode=0700{owner}"
    scratch = _mount(libc, "tmpfs", config["work"], "tmpfs", _MS_NOSUID | _MS_NODEV, options) == 0
    procfs = pidns and _mount(libc, "proc", "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC) == 0
    return [
        name
        for name, ok in {"readonly_fs": readonly, "scratch_tmpfs": scratch, "procfs": procfs}.items()
        if ok
    ]


def _exec_program(libc, config: dict) -> None:
    """Program child: limits, drop privileges (setgroups, setgid, setuid), no_new_privs, exec."""
    work, uid, python = config["work"], config["uid"], config["python"]
    try:
        os.chdir(work)
        for name, value in config["limits"].items():
            resource.setrlimit(getattr(resource, f"RLIMIT_{name}"), tuple(value))
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        env = {"PATH": PATH, "HOME": work, "TMPDIR": work, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        os.execve(python, [python, "-I", "-B", "-X", "utf8", "main.py"], env)
    except BaseException as exc:
        _report(config["status_fd"], setup_error=f"cannot start {python}: {type(exc).__name__}: {exc}")
    os._exit(127)


if __name__ == "__main__":
    _launch(json.loads(sys.argv[1]))
