"""A throwaway PostgreSQL cluster for the tests: the distribution's own server, never a mock.

``python -m tests.pg_cluster start DIR`` makes a cluster in ``DIR`` (``initdb``,
password authentication only, listening on 127.0.0.1 on a free port), starts it
and prints its URL; ``python -m tests.pg_cluster stop DIR`` stops it. ``.ci/run``
does this around the test run; without ``TEST_POSTGRES_DIR`` the suite's
fixture starts one of its own the same way (``tests/conftest.py``).

PostgreSQL refuses to run as root: as root, the server runs as the
``postgres`` user of the distribution's package.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Cluster", "find_binaries", "restart", "running", "start", "stop"]

#: the role the tests connect as (a password is required: the URL carries it)
ROLE = "orchestrator"
_CANDIDATES = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/local/bin")


@dataclass(frozen=True)
class Cluster:
    """A running cluster: where it lives, its port, its role's password."""

    directory: Path
    port: int
    password: str

    def url(self, database: str = "postgres", *, with_password: bool = True) -> str:
        """The libpq URL of ``database`` (without the password: it comes from elsewhere)."""
        secret = f":{self.password}" if with_password else ""
        return f"postgresql://{ROLE}{secret}@127.0.0.1:{self.port}/{database}"


def find_binaries() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``, or None when PostgreSQL is absent."""
    for folder in _CANDIDATES:
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


def _as_owner(argv: list[str]) -> list[str]:
    """``argv`` run as the unprivileged owner of the cluster (the server refuses root)."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(directory: Path) -> Cluster:
    """Create and start a cluster in ``directory`` (made if absent); return it."""
    binaries = find_binaries()
    if binaries is None:
        raise RuntimeError("PostgreSQL's server binaries (initdb, pg_ctl) are not installed")
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "data"
    password = secrets.token_urlsafe(18)
    pwfile = directory / "pwfile"
    pwfile.write_text(password + "\n")
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        for path in (directory, pwfile):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    pwfile.chmod(0o600)
    subprocess.run(
        _as_owner(
            [
                str(binaries / "initdb"),
                "-D",
                str(data),
                "-U",
                ROLE,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-sync",
            ]
        ),
        check=True,
        capture_output=True,
    )
    pwfile.unlink()
    port = _free_port()
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={directory}"
        " -c max_connections=200 -c fsync=on"
    )
    _pg_ctl(directory, "-o", options, "-w", "start")
    (directory / "port").write_text(str(port))
    (directory / "password").write_text(password)
    (directory / "password").chmod(0o600)
    return Cluster(directory=directory, port=port, password=password)


def running(directory: Path) -> Cluster:
    """The cluster :func:`start` made in ``directory`` (started by another process)."""
    return Cluster(
        directory=directory,
        port=int((directory / "port").read_text()),
        password=(directory / "password").read_text(),
    )


def restart(cluster: Cluster, *, mode: str = "fast") -> None:
    """Stop the server (``fast``: every connection is cut) and start it again."""
    _pg_ctl(cluster.directory, "-m", mode, "-w", "restart")


def stop(directory: Path) -> None:
    """Stop the cluster in ``directory`` (nothing if it is not running)."""
    binaries = find_binaries()
    if binaries is None:
        return
    with contextlib.suppress(subprocess.CalledProcessError):
        _pg_ctl(directory, "-m", "fast", "stop")


def _pg_ctl(directory: Path, *args: str) -> None:
    """``pg_ctl`` on the cluster in ``directory`` (its log in ``server.log``: a server that
    inherited our pipes would keep them open, and the call would never return)."""
    binaries = find_binaries()
    assert binaries is not None
    argv = [str(binaries / "pg_ctl"), "-D", str(directory / "data")]
    argv += ["-l", str(directory / "server.log"), *args]
    subprocess.run(_as_owner(argv), check=True, capture_output=True)


def main(argv: list[str]) -> int:
    """``start DIR`` (prints the URL) or ``stop DIR``."""
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print("usage: python -m tests.pg_cluster start|stop DIR", file=sys.stderr)
        return 2
    directory = Path(argv[1])
    if argv[0] == "start":
        print(start(directory).url())
    else:
        stop(directory)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
