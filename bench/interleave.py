"""Shared by the benchmarks: run each tool's command N times, interleaved, after two
warm-up rounds; write every timing to a CSV; return the medians in ms."""
import statistics
import subprocess
import time


def interleave(tools, n, csv, before=None):
    """`before`, if given, is called (untimed) before each command."""
    res, rows = {}, []
    for i in range(n + 2):
        for name, cmd in tools.items():
            if before:
                before()
            t0 = time.perf_counter()
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            dt = (time.perf_counter() - t0) * 1000
            if p.returncode != 0:
                print(f"{name}: failed: {p.stderr.decode(errors='replace').strip()[-200:]}")
                continue
            if i >= 2:
                res.setdefault(name, []).append(dt)
                rows.append(f"{name},{i-2},{dt:.2f}")
    with open(csv, "w") as f:
        f.write("tool,run,ms\n" + "\n".join(rows) + "\n")
    return {k: statistics.median(v) for k, v in res.items()}
