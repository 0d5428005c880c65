"""bench_util.py - what the bench/ scripts share: a free loopback port, waiting for a server,
and the memory and CPU of a server process (with the workers it forked). Standard library."""
import os
import re
import socket
import subprocess
import time
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_http(url, seconds=60):
    """True once url answers 200 (polled), False after seconds."""
    end = time.time() + seconds
    while time.time() < end:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return True
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.02)
    return False


def family(pid):
    """pid and its children (uvicorn forks workers)."""
    pids = [pid]
    try:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], stdout=subprocess.PIPE, text=True).stdout
        pids += [int(p) for p in out.split()]
    except Exception:  # noqa: BLE001 - ps missing: the process alone
        pass
    return pids


def _proc_sum(pid, name, value):
    """Sum of value(text of /proc/P/name) over pid and its children (gone ones count 0)."""
    total = 0
    for p in family(pid):
        try:
            with open("/proc/%d/%s" % (p, name)) as f:
                total += value(f.read())
        except (OSError, IndexError, ValueError, AttributeError):
            pass
    return total


def rss_kib(pid):
    """Resident set of pid and its children, KiB."""
    return _proc_sum(pid, "status", lambda t: int(re.search(r"VmRSS:\s+(\d+)", t).group(1)))


def cpu_seconds(pid):
    """User + system CPU seconds of pid and its children so far."""
    def ticks(t):
        fields = t.rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime
    return _proc_sum(pid, "stat", ticks) / os.sysconf("SC_CLK_TCK")
