"""Shared by the pull benchmarks: writes an OCI layout at OUT holding one image, tagged v1,
of three gzip layers of random bytes (MB in all, FILES files per layer, owned in turn by
uid/gid 0, 1000 and 2000 when OWNERS is 1).

Usage: python3 bench/layout.py OUT MB [FILES] [OWNERS]"""
import gzip, hashlib, io, json, os, sys, tarfile

out, mb = sys.argv[1], int(sys.argv[2])
files = int(sys.argv[3]) if len(sys.argv) > 3 else 4
owners = len(sys.argv) > 4 and sys.argv[4] == "1"
os.makedirs(f"{out}/blobs/sha256", exist_ok=True)


def blob(data, mt):
    d = hashlib.sha256(data).hexdigest()
    open(f"{out}/blobs/sha256/{d}", "wb").write(data)
    return {"mediaType": mt, "digest": f"sha256:{d}", "size": len(data)}


layers, diffs = [], []
for i in range(3):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for j in range(files):
            data = os.urandom(mb * 1024 * 1024 // (3 * files))
            ti = tarfile.TarInfo(f"layer{i}/file{j}")
            ti.size = len(data)
            if owners:
                ti.uid = ti.gid = 1000 * (j % 3)
            t.addfile(ti, io.BytesIO(data))
    raw = buf.getvalue()
    diffs.append("sha256:" + hashlib.sha256(raw).hexdigest())
    layers.append(blob(gzip.compress(raw, 1), "application/vnd.oci.image.layer.v1.tar+gzip"))
cfg = blob(json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                       "rootfs": {"type": "layers", "diff_ids": diffs}}).encode(),
           "application/vnd.oci.image.config.v1+json")
man = blob(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": cfg, "layers": layers}).encode(), "application/vnd.oci.image.manifest.v1+json")
man["annotations"] = {"org.opencontainers.image.ref.name": "v1"}
json.dump({"schemaVersion": 2, "manifests": [man]}, open(f"{out}/index.json", "w"))
open(f"{out}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
