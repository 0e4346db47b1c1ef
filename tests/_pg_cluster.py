"""A throwaway PostgreSQL cluster that a test may stop and start: real outages.

``initdb`` a temporary folder, ``pg_ctl start`` it on a free port of 127.0.0.1 with its
socket in that folder, and always ``pg_ctl stop -m immediate`` and remove the folder
afterwards. PostgreSQL refuses to run as root, so as root the cluster runs as the
``postgres`` OS user (``runuser``). Every command is bounded in time. The machine's own
server is never touched.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

__all__ = ["PgCluster", "find_pg_bin"]

COMMAND_TIMEOUT = 60.0


def find_pg_bin() -> Path | None:
    """The folder of the newest ``initdb`` + ``pg_ctl`` found, or None."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
    )
    for folder in reversed(candidates):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    on_path = shutil.which("pg_ctl")
    if on_path and (Path(on_path).parent / "initdb").exists():
        return Path(on_path).parent
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """One temporary cluster. Use as a context manager: it is initialised and started on
    entry, and stopped (immediately) and deleted on exit, whatever happened."""

    def __init__(self, bin_dir: Path, template: Path | None = None) -> None:
        self.bin_dir = bin_dir
        self.template = template
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="pa-pgcluster-"))
        self.data = self.root / "data"
        self.sock = self.root / "sock"
        self.log = self.root / "server.log"
        self._user: str | None = None
        if os.geteuid() == 0:
            self._user = "postgres"
            entry = pwd.getpwnam(self._user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.running = False

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
            cwd=self.root,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({result.returncode}): {result.stderr.strip()}"
                f"\n{self.server_log()}"
            )
        return result

    def server_log(self) -> str:
        try:
            return self.log.read_text()[-2000:]
        except OSError:
            return ""

    def init(self) -> None:
        """A fresh data folder: a copy of ``template`` (an initdb'd folder) if given."""
        if self.template is not None:
            # cp -a keeps the owner and the 0700 mode PostgreSQL insists on.
            subprocess.run(
                ["cp", "-a", str(self.template), str(self.data)],
                check=True,
                timeout=COMMAND_TIMEOUT,
                capture_output=True,
            )
        else:
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-N")
        self.sock.mkdir()
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(self.sock, entry.pw_uid, entry.pw_gid)

    def start(self) -> None:
        """Start the server and wait (at most 30 s) until it accepts connections."""
        options = f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            "30",
            "start",
        )
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnect clients, clean shutdown; ``immediate``)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")
        self.running = False

    def destroy(self) -> None:
        """Stop the server at once if it runs, and delete its folder. Never raises."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(
                    "pg_ctl",
                    "-D",
                    str(self.data),
                    "-m",
                    "immediate",
                    "-w",
                    "-t",
                    "30",
                    "stop",
                    check=False,
                )
        except (OSError, subprocess.SubprocessError):
            pass
        finally:
            self.running = False
            shutil.rmtree(self.root, ignore_errors=True)

    def make_template(self) -> Path:
        """Initialise only (no server) and return the data folder, to copy for clusters."""
        try:
            self.init()
        except BaseException:
            self.destroy()
            raise
        return self.data

    def __enter__(self) -> PgCluster:
        try:
            self.init()
            self.start()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()
