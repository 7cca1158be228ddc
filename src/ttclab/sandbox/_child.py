"""The sandbox's child side: isolation set-up, limits, then the candidate program (stdlib only).

Run as ``python -s -P -B _child.py CONFIG_JSON`` by :mod:`ttclab.sandbox.runner`; never imported by
the parent except for its constants. Process tree (Linux, namespaces permitted)::

    supervisor  (host pid; new network + mount + IPC + UTS namespaces; private read-only mounts)
      └ init    (pid 1 of a new pid namespace; reaps; reports the worker's status; its exit kills the rest)
          └ worker  (limits, unprivileged uid, audit hook; runs the program or the test harness)

Without namespaces: ``supervisor`` (a child subreaper) forks the worker directly, and the audit
hook also refuses sockets, process execution, ``ctypes`` and ``setsid``. The supervisor reports on
the status pipe (JSON lines): first how it isolated, last the worker's wait status.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys

EXIT_MEMORY = 251        # the program raised MemoryError
EXIT_SETUP = 250         # the sandbox could not be set up; the reason is on the status pipe
UID_BASE = 1_800_000_000  # root drops to UID_BASE + supervisor pid: a uid of its own per run
REFUSED = "[sandbox]"    # marks the PermissionError of an operation the sandbox refuses

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC, MS_PRIVATE = 1024, 2048, 4096, 16384, 1 << 18
MS_RELATIME, MS_STRICTATIME = 1 << 21, 1 << 24
SYS_MOUNT_SETATTR, AT_FDCWD, AT_RECURSIVE, MOUNT_ATTR_RDONLY = 442, -100, 0x8000, 0x1
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 36, 38


class SetupError(Exception):
    """A namespace or mount step failed (the caller falls back)."""


# ----------------------------------------------------------------------------------------------
# Linux system calls through ctypes
# ----------------------------------------------------------------------------------------------

_LIBC = None


def _libc():
    global _LIBC
    if _LIBC is None:
        import ctypes

        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


def _check(ret: int, what: str) -> None:
    if ret != 0:
        import ctypes

        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)}")


def _mount(src, target, fstype, flags, data=None) -> None:
    enc = lambda s: None if s is None else os.fsencode(s)  # noqa: E731
    _check(_libc().mount(enc(src), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def _prctl(option: int, arg: int) -> None:
    import ctypes

    _libc().prctl(ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))


def _mount_flags(path: str) -> int:
    """The per-mount flags of ``path`` that a remount must keep (nosuid, nodev, noexec, atime)."""
    f = os.statvfs(path).f_flag
    out = 0
    for st, ms in ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
                   (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME), (os.ST_RELATIME, MS_RELATIME)):
        if f & st:
            out |= ms
    return out


def _all_read_only() -> None:
    """Make every mount of this (private) mount namespace read-only."""
    import ctypes

    attr = (ctypes.c_uint64 * 4)(MOUNT_ATTR_RDONLY, 0, 0, 0)
    ret = _libc().syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(AT_FDCWD), b"/",
                          ctypes.c_uint(AT_RECURSIVE), ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)))
    if ret == 0:
        return
    # Kernels before 5.12: remount each mount point, keeping its locked flags.
    with open("/proc/self/mountinfo") as fh:
        points = [line.split()[4].encode().decode("unicode_escape") for line in fh]
    for point in sorted(set(points), key=len):
        try:
            _mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | _mount_flags(point))
        except (SetupError, OSError):
            if point == "/":
                raise


def _hide(root: str, keep: list[str], mounted: list[str]) -> None:
    """Cover ``root`` with an empty tmpfs, then bind the ``keep`` paths below it back in place."""
    fds = [(p, os.open(p, os.O_PATH)) for p in keep]
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    mounted.append(root)
    for path, fd in fds:
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(path, mode=0o755, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            open(path, "a").close()
        _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        os.close(fd)


def _outermost(paths: list[str]) -> list[str]:
    out: list[str] = []
    for p in sorted(set(paths), key=len):
        if not any(p == q or p.startswith(q.rstrip("/") + "/") for q in out):
            out.append(p)
    return out


def _isolate(cfg: dict, uid: int | None) -> dict:
    """New namespaces and a read-only view of the file system (raises SetupError)."""
    real_uid, real_gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    if os.geteuid() != 0:
        flags |= CLONE_NEWUSER
    _check(_libc().unshare(flags), "unshare")
    if flags & CLONE_NEWUSER:  # identity mapping: we stay ourselves, with capabilities in the namespace
        for name, text in (("setgroups", "deny"), ("uid_map", f"{real_uid} {real_uid} 1"),
                           ("gid_map", f"{real_gid} {real_gid} 1")):
            with open(f"/proc/self/{name}", "w") as fh:
                fh.write(text)
    info = {"isolation": "netns", "filesystem": "audit-hook"}
    mounted: list[str] = []
    try:
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        workdir = cfg["workdir"]
        needed = [workdir, sys.base_prefix, sys.prefix, sys.exec_prefix, os.path.dirname(os.path.abspath(__file__))]
        needed += [p for p in sys.path if p and os.path.isdir(p)]
        needed = [os.path.realpath(p) for p in needed]
        for root in _outermost([os.path.realpath(h) for h in cfg["hide"] if os.path.isdir(h)]):
            keep = _outermost([p for p in needed if p.startswith(root.rstrip("/") + "/")])
            if root in needed:
                continue
            _hide(root, keep, mounted)
        _all_read_only()
        mode = "mode=700" + (f",uid={uid},gid={uid}" if uid is not None else "")
        _mount("tmpfs", workdir, "tmpfs", MS_NOSUID | MS_NODEV, f"size={int(cfg['max_disk_mb'])}m,{mode}")
        info["filesystem"] = "readonly-mounts"
    except (SetupError, OSError) as exc:
        info["note"] = f"read-only mounts unavailable ({exc}); Python-level write guard only"
        _undo(mounted)
    return info


def _undo(mounted: list[str]) -> None:
    """Detach the tmpfs covers of a set-up that failed half-way (the host view comes back)."""
    MNT_DETACH = 2
    for point in reversed(mounted):
        _libc().umount2(os.fsencode(point), MNT_DETACH)
    try:
        _mount(None, "/", None, MS_REMOUNT | MS_BIND | _mount_flags("/"))  # writable again if it was made ro
    except (SetupError, OSError):
        pass


# ----------------------------------------------------------------------------------------------
# Worker: limits, privileges, audit hook
# ----------------------------------------------------------------------------------------------

def _tasks_of(uid: int) -> int:
    """How many tasks (threads) the user ``uid`` runs now (RLIMIT_NPROC counts them)."""
    n = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as fh:
                status = fh.read()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("Uid", "").split()[:1] == [str(uid)]:
            n += int(fields.get("Threads", "1").strip() or 1)
    return n


def _set_limits(cfg: dict, own_uid: bool, user_ns: bool) -> list[str]:
    import resource

    notes = []
    mb = 1024 * 1024
    nproc = int(cfg["max_processes"])
    if not own_uid and not user_ns and os.getuid() != 0 and os.path.isdir("/proc"):
        nproc += _tasks_of(os.getuid())  # the limit counts all of this user's processes
    wanted = [("RLIMIT_CPU", int(cfg["cpu_s"]), int(cfg["cpu_s"]) + 1), ("RLIMIT_AS", int(cfg["memory_mb"]) * mb, None),
              ("RLIMIT_NPROC", nproc, None), ("RLIMIT_FSIZE", int(cfg["max_file_mb"]) * mb, None),
              ("RLIMIT_CORE", 0, None), ("RLIMIT_NOFILE", 256, None)]
    for name, soft, hard in wanted:
        which = getattr(resource, name, None)
        if which is None:
            notes.append(f"{name} unavailable")
            continue
        try:
            _, cur_hard = resource.getrlimit(which)
            hard = soft if hard is None else hard
            if cur_hard != resource.RLIM_INFINITY:
                soft, hard = min(soft, cur_hard), min(hard, cur_hard)
            resource.setrlimit(which, (soft, hard))
        except (ValueError, OSError) as exc:
            notes.append(f"{name}: {exc}")
    return notes


def _install_guard(workdir: str, strict: bool, no_fork: bool) -> None:
    """An audit hook: no writes outside ``workdir``; with ``strict`` (no namespaces: the hook is the
    only barrier) also no sockets, no process execution, no ctypes, no signals to processes outside
    the sandbox's process group; with ``no_fork`` (root without a uid of its own, where the process
    limit does not bind) no fork."""
    import socket  # noqa: F401 - imported before the hook so its module import is not audited

    base = os.path.realpath(workdir)
    realpath, fspath = os.path.realpath, os.fspath
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    allowed_files = {"/dev/null", "/dev/stdout", "/dev/stderr"}
    path_events = {"os.remove": (0,), "os.rename": (0, 1), "os.mkdir": (0,), "os.rmdir": (0,), "os.symlink": (1,),
                   "os.link": (1,), "os.chmod": (0,), "os.chown": (0,), "os.truncate": (0,), "os.utime": (0,),
                   "os.chflags": (0,), "os.setxattr": (0,), "os.removexattr": (0,), "os.mkfifo": (0,),
                   "os.mknod": (0,), "shutil.rmtree": (0,)}
    # Forking keeps the hook; executing another program does not, so it is refused.
    strict_prefixes = ("socket.", "subprocess.", "os.exec", "os.posix_spawn", "os.spawn", "os.system", "pty.", "ctypes.")

    def inside(path) -> bool:
        try:
            p = realpath(fspath(path))
        except (TypeError, ValueError):
            return True  # a file descriptor: already open
        return p == base or p.startswith(base + "/") or p in allowed_files

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
                     (mode is None and isinstance(flags, int) and flags & write_flags)
            if writes and path is not None and not isinstance(path, int) and not inside(path):
                raise PermissionError(f"{REFUSED} writing outside the working directory is refused: {path}")
        elif event in path_events:
            for i in path_events[event]:
                if i < len(args) and args[i] is not None and not isinstance(args[i], int) and not inside(args[i]):
                    raise PermissionError(f"{REFUSED} {event} outside the working directory is refused: {args[i]}")
        elif strict and event in ("os.kill", "os.killpg"):
            target = args[0]
            own = os.getpgrp()
            try:
                ok = target == 0 or target == os.getpid() or (event == "os.killpg" and target == own) or \
                    (event == "os.kill" and target > 0 and os.getpgid(target) == own)
            except OSError:
                ok = False
            if not ok:
                raise PermissionError(f"{REFUSED} signalling processes outside the sandbox is refused ({target})")
        elif no_fork and event in ("os.fork", "os.forkpty"):
            raise PermissionError(f"{REFUSED} {event} is refused: no process limit applies here")
        elif strict and event.startswith(strict_prefixes):
            if event == "socket.__new__" and len(args) > 1 and args[1] == getattr(socket, "AF_UNIX", -1):
                return
            if event.startswith("socket."):
                raise PermissionError(f"{REFUSED} network access is refused ({event})")
            raise PermissionError(f"{REFUSED} {event} is refused in this sandbox")

    sys.addaudithook(hook)
    if strict:  # a new session would escape the process group that is killed on timeout
        import posix

        def refused(*_a, **_k):
            raise PermissionError(f"{REFUSED} leaving the process group is refused")
        for mod in (os, posix):
            for name in ("setsid", "setpgid", "setpgrp"):
                if hasattr(mod, name):
                    setattr(mod, name, refused)


def _drop_privileges(uid: int | None) -> None:
    if uid is None:
        return
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def _load_harness():
    """The test harness module beside this file (loaded by path: the package is not imported here)."""
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_harness.py")
    spec = importlib.util.spec_from_file_location("ttclab_sandbox_harness", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _worker(cfg: dict, info: dict, status_fd: int, harness=None) -> None:
    """Runs in the worker process; never returns."""
    code = 1
    try:
        workdir = cfg["workdir"]
        os.chdir(workdir)
        info["notes"] = _set_limits(cfg, own_uid=info.get("uid") is not None, user_ns=info.get("user_ns", False))
        try:
            _prctl(PR_SET_NO_NEW_PRIVS, 1)
        except Exception:  # noqa: BLE001 - not Linux
            pass
        _drop_privileges(info.get("uid"))
        files = cfg["files"]
        strict = info["isolation"] != "netns"
        _install_guard(workdir, strict=strict, no_fork=strict and os.getuid() == 0)
        if info["notes"]:
            _report(status_fd, {"notes": info["notes"]})
        os.close(status_fd)
        for stream in (sys.stdout, sys.stderr):
            if isinstance(stream, io.TextIOWrapper):
                stream.reconfigure(encoding="utf-8", errors="backslashreplace")
        if cfg["mode"] == "tests":
            code = harness.run_harness(files["program.py"], json.loads(files["tests.json"]), int(cfg["result_fd"]))
        else:
            code = _run_script(files["main.py"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, (int, type(None))):
            print(exc.code, file=sys.stderr)
    except MemoryError:
        code = EXIT_MEMORY
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:  # noqa: BLE001
                pass
    os._exit(code & 0xFF if isinstance(code, int) else 1)


def _run_script(source: str) -> int:
    import builtins
    import traceback

    glb = {"__name__": "__main__", "__file__": "main.py", "__builtins__": builtins}
    try:
        exec(compile(source, "main.py", "exec"), glb)
    except SystemExit:
        raise
    except MemoryError:
        sys.stderr.write("MemoryError\n")
        return EXIT_MEMORY
    except BaseException:  # noqa: BLE001 - the program's own error, reported like Python does
        traceback.print_exc()
        return 1
    return 0


# ----------------------------------------------------------------------------------------------
# Supervisor and init
# ----------------------------------------------------------------------------------------------

def _report(fd: int, payload: dict) -> None:
    try:
        os.write(fd, (json.dumps(payload) + "\n").encode())
    except OSError:
        pass


def _wait_for(pid: int) -> int:
    """Reap children until ``pid`` exits; its wait status."""
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue
        if got == pid:
            return status


def _kill_children() -> None:
    """Kill and reap every remaining child (orphans are ours as a subreaper)."""
    for _ in range(50):
        kids = []
        for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as fh:
                        stat = fh.read()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
                    kids.append(int(entry))
        for k in kids:
            try:
                os.kill(k, signal.SIGKILL)
            except OSError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            return
        if not kids:
            return


def _write_files(cfg: dict, uid: int | None) -> None:
    for name, text in cfg["files"].items():
        path = os.path.join(cfg["workdir"], name)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        if uid is not None:
            os.chown(path, uid, uid)
    if uid is not None:
        os.chown(cfg["workdir"], uid, uid)


def main() -> None:
    cfg = json.loads(sys.argv[1])
    status_fd = int(cfg["status_fd"])
    harness = _load_harness() if cfg["mode"] == "tests" else None  # before privileges and mounts change

    for name in ("program.py", "tests.json", "main.py"):
        path = os.path.join(cfg["workdir"], name)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                cfg.setdefault("files", {})[name] = fh.read()
    root = os.geteuid() == 0
    uid = UID_BASE + os.getpid() if root else None
    info: dict = {"isolation": "audit-hook", "filesystem": "audit-hook"}
    want_ns = cfg["isolation"] in ("auto", "netns") and sys.platform.startswith("linux")
    if want_ns:
        try:
            info.update(_isolate(cfg, uid))
            info["user_ns"] = not root
        except (SetupError, OSError) as exc:
            if cfg["isolation"] == "netns":
                _report(status_fd, {"setup_error": f"network namespace unavailable: {exc}"})
                os._exit(EXIT_SETUP)
            info["note"] = f"namespaces unavailable ({exc}); audit hook only"
    if uid is not None and info["filesystem"] != "readonly-mounts" and not _traversable(sys.base_prefix):
        uid = None  # the interpreter is not readable by other users here: stay root (no process limit)
        info["note"] = (info.get("note", "") + "; ").lstrip("; ") + "kept uid 0: the interpreter is not readable by other users"
    info["uid"] = uid
    try:
        _write_files(cfg, uid)
    except OSError as exc:
        _report(status_fd, {"setup_error": f"cannot write the program into the working directory: {exc}"})
        os._exit(EXIT_SETUP)
    _report(status_fd, {"info": {k: v for k, v in info.items() if k != "user_ns"}})
    if info["isolation"] == "netns":
        init = os.fork()
        if init == 0:
            _init(cfg, info, status_fd, harness)
        status = _wait_for(init)
        _report(status_fd, {"exit": status})  # init killed before it could report: its status stands in
        os._exit(0)
    try:
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
    except Exception:  # noqa: BLE001 - not Linux
        pass
    worker = os.fork()
    if worker == 0:
        _worker(cfg, info, status_fd, harness)
    status = _wait_for(worker)
    _kill_children()
    _report(status_fd, {"exit": status})
    os._exit(0)


def _init(cfg: dict, info: dict, status_fd: int, harness=None) -> None:
    """pid 1 of the sandbox's pid namespace: fork the worker, reap, report, exit (which kills the rest)."""
    try:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        try:
            _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY)
        except (SetupError, OSError):
            pass
        worker = os.fork()
        if worker == 0:
            _worker(cfg, info, status_fd, harness)
        status = _wait_for(worker)
        _report(status_fd, {"exit": status})
    finally:
        os._exit(0)


def _traversable(path: str) -> bool:
    """Whether every directory on the way to ``path`` can be entered by any user."""
    import stat

    p = os.path.realpath(path)
    while True:
        try:
            if not os.stat(p).st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
        if p == "/":
            return True
        p = os.path.dirname(p)


if __name__ == "__main__":
    main()
