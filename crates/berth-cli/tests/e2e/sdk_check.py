"""Drives berth's daemon with the Python Docker SDK (docker-py), as its users do."""
import sys
import time

import docker

c = docker.DockerClient(base_url=sys.argv[1], version="auto")
prefix = sys.argv[2]
print("api", c.version()["ApiVersion"])
print("run", c.containers.run("bb:1", ["sh", "-c", "echo from-sdk"], remove=True).decode().strip())
ct = c.containers.run("bb:1", ["sh", "-c", "echo started; trap 'exit 0' TERM; while true; do sleep 0.1; done"],
                      detach=True, name=prefix + "c", environment={"X": "1"})
for _ in range(100):
    if b"started" in ct.logs():
        break
    time.sleep(0.05)
print("logs", ct.logs().decode().strip())
r = ct.exec_run(["sh", "-c", "echo in-exec $X; exit 3"])
print("exec", r.exit_code, r.output.decode().strip())
ct.reload()
print("status", ct.status)
v = c.volumes.create(prefix + "vol")
print("volume", v.name in [x.name for x in c.volumes.list()])
n = c.networks.create(prefix + "net")
n.connect(ct)
n.reload()
print("network", [x.name for x in n.containers] == [prefix + "c"])
n.disconnect(ct)
ct.stop(timeout=5)
print("wait", ct.wait()["StatusCode"])
ct.remove()
n.remove()
v.remove()
print("left", [x.name for x in c.containers.list(all=True) if x.name.startswith(prefix)])
