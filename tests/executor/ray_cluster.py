"""A real local Ray cluster for tests: a head and one worker node, started with `ray start --block` (so that
stopping the two processes this starts takes down everything they launched; no `ray stop`, which would
end every Ray process of the user on the machine)."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalRayCluster:
    def __init__(self, head_cpus: int = 1, worker_cpus: int = 1) -> None:
        # A short temp dir: Ray's unix sockets live under it and their paths have a length limit.
        self.temp_dir = tempfile.mkdtemp(prefix="dfray-")
        # Token authentication with a token of this cluster only (nothing is written to ~/.ray). Ray reads
        # the token once per process, so this process gets it before it imports ray.
        self.auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
        os.environ.update(self.auth)
        import ray

        self.address = f"{ray.util.get_node_ip_address()}:{_free_port()}"  # the address the head advertises
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}
        common = ["--block", "--disable-usage-stats", "--object-store-memory=150000000"]
        self.procs: list[subprocess.Popen] = []
        self.procs.append(self._start([RAY, "start", "--head", f"--port={self.address.split(':')[1]}",
                                       f"--num-cpus={head_cpus}", f"--temp-dir={self.temp_dir}",
                                       "--include-dashboard=false", *common]))
        self._wait_for_port()
        self.procs.append(self._start([RAY, "start", f"--address={self.address}", f"--num-cpus={worker_cpus}", *common]))
        self.cpus = head_cpus + worker_cpus

    def _start(self, cmd: list[str]) -> subprocess.Popen:
        log = open(Path(self.temp_dir) / f"start-{len(self.procs)}.log", "wb")
        return subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def _wait_for_port(self, timeout: float = 120.0) -> None:
        host, port = self.address.split(":")
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.procs[0].poll() is not None:
                raise RuntimeError(f"ray head exited: {self.log()}")
            with socket.socket() as s:
                if s.connect_ex((host, int(port))) == 0:
                    return
            time.sleep(0.5)
        raise TimeoutError(f"ray head did not listen on {self.address}: {self.log()}")

    def connect(self, timeout: float = 120.0) -> None:
        """ray.init in this process, once both nodes have joined."""
        import ray

        ray.init(address=self.address, logging_level="WARNING")
        end = time.monotonic() + timeout
        while ray.cluster_resources().get("CPU", 0) < self.cpus:
            if time.monotonic() > end:
                raise TimeoutError(f"the worker node did not join: {ray.cluster_resources()}; {self.log()}")
            time.sleep(0.5)

    def log(self) -> str:
        return " | ".join(p.read_text(errors="replace")[-2000:] for p in sorted(Path(self.temp_dir).glob("start-*.log")))

    def stop(self) -> None:
        import ray

        ray.shutdown()
        for k in self.auth:
            os.environ.pop(k, None)
        for p in reversed(self.procs):  # the worker first, then the head
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(10)
        shutil.rmtree(self.temp_dir, ignore_errors=True)
