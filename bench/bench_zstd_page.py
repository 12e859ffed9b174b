"""zstd per message inside Pyodide: ``compression.zstd`` (the backend now) against the old emulation.

    flock /tmp/dist.lock python bench/bench_zstd_page.py [--count 2000] [--runs 3] [--old-rev 4fbbf78^]

Runs in Pyodide 314 on node (V8, the engine of Chromium) from ``dist/pyodide``, in one process:

* **new** — ``darkswap_wasm.compression.zstd_backend`` on Pyodide's own ``compression.zstd``;
* **old** — ``compression/zstd_js.py`` on ``@bokuweb/zstd-wasm`` 0.0.27 through ``js_glue/zstd.js``,
  both taken from git (``--old-rev``, the last revision that had them) and the package from the
  build cache (``.cache/build_dist/npm``), laid out as build_dist used to.

Both drive a ``StreamEncoder``/``StreamDecoder`` pair over the same orders from
``bench/messages.py`` (one flush per message, level 3, window 2**19), then over batches of 10;
every payload is checked after the round trip. Natively, the same loop on this interpreter's
backend (``backports.zstd`` below 3.14) is printed for scale. Per message: microseconds, best of
``--runs``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from messages import MessageGenerator  # noqa: E402

from darkswap_wasm.compression import COMPRESSED, StreamDecoder, StreamEncoder  # noqa: E402
from darkswap_wasm.compression.zstd_backend import ZstdBackend  # noqa: E402

PKG = ROOT / ".cache" / "build_dist" / "npm" / "bokuweb-zstd-wasm-0.0.27.tgz"
# the rewrites build_dist applied to the package's web build (extensionless imports)
REWRITES = {
    "module.js": [("./zstd", "./zstd.js")],
    "errors/index.js": [("../module", "../module.js")],
}

# Runs in Pyodide and natively: (compress us, decompress us) per message, best of runs.
LOOP = r'''
import time
from darkswap_wasm.compression import COMPRESSED, StreamDecoder, StreamEncoder


def per_message(backend, payloads, runs):
    best_c = best_d = float("inf")
    for _ in range(runs):
        enc = StreamEncoder(backend.compressor(3, 19, None))
        dec = StreamDecoder(backend.decompressor(23, None))
        t0 = time.perf_counter()
        frames = [enc.encode(p) for p in payloads]
        t1 = time.perf_counter()
        out = []
        for kind, body in frames:
            if kind == COMPRESSED:
                out.append(dec.decode(body, 1 << 22))
            else:
                dec.append_stored(body)
                out.append(body)
        t2 = time.perf_counter()
        assert out == payloads, "round trip failed"
        best_c = min(best_c, (t1 - t0) / len(payloads) * 1e6)
        best_d = min(best_d, (t2 - t1) / len(payloads) * 1e6)
    wire = sum(len(b) for _, b in frames)
    return {"compress_us": round(best_c, 2), "decompress_us": round(best_d, 2), "wire": wire,
            "payload": sum(map(len, payloads))}
'''

NODE_JS = r"""
const [distPyodide, oldGlue, wasmPath, pyDir] = process.argv.slice(1);
const { readFile } = await import("node:fs/promises");
const { loadPyodide } = await import(distPyodide + "/pyodide.mjs");
const pyodide = await loadPyodide({ indexURL: distPyodide + "/" });
await pyodide.loadPackage(["darkswap-wasm"], { messageCallback: () => {} });
const { zstdReady } = await import(oldGlue);
const zstd = await zstdReady({ wasmBinary: await readFile(wasmPath) });
pyodide.globals.set("old_zstd", zstd);
pyodide.FS.mkdirTree("/bench");
for (const f of ["zstd_js_old.py", "messages.py", "loop.py", "run.py"])
  pyodide.FS.writeFile("/bench/" + f, await readFile(pyDir + "/" + f));
const out = await pyodide.runPythonAsync("exec(open('/bench/run.py').read()); RESULT");
console.log("RESULT " + out);
"""

RUN_PY = r"""
import json, sys
sys.path.insert(0, "/bench")
from loop import per_message
from messages import MessageGenerator
from zstd_js_old import ZstdJsBackend
from darkswap_wasm.compression.zstd_backend import ZstdBackend
count, runs = {count}, {runs}
orders = MessageGenerator(seed=3).kind("order", count)
batches = [b"".join(orders[i:i + 10]) for i in range(0, count, 10)]
new, old = ZstdBackend(), ZstdJsBackend(old_zstd)
res = {{"python": sys.version.split()[0], "new_repr": repr(new), "old_repr": repr(old)}}
for label, backend in (("new", new), ("old", old)):
    res[label + "_1"] = per_message(backend, orders, runs)
    res[label + "_10"] = per_message(backend, batches, runs)
RESULT = json.dumps(res)
"""


def git_show(rev: str, path: str) -> str:
    return subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=2000, help="orders (batches of 10: count / 10)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--old-rev", default="4fbbf78^", help="a revision with compression/zstd_js.py and js_glue/zstd.js")
    ap.add_argument("--dist", default=str(ROOT / "dist" / "pyodide"))
    args = ap.parse_args()
    node = shutil.which("node")
    if node is None:
        sys.exit("bench_zstd_page: node is not on PATH")
    dist = Path(args.dist).resolve()
    if not (dist / "pyodide.mjs").is_file():
        sys.exit(f"bench_zstd_page: {dist}/pyodide.mjs missing: python scripts/build_dist.py --out dist")
    if not PKG.is_file():
        sys.exit(f"bench_zstd_page: {PKG} missing (npm pack @bokuweb/zstd-wasm@0.0.27 into it)")

    with tempfile.TemporaryDirectory(prefix="bench_zstd_") as tmp:
        t = Path(tmp)
        vendor = t / "vendor" / "@bokuweb" / "zstd-wasm"
        with tarfile.open(PKG) as tf:
            for m in tf.getmembers():
                if m.isfile() and m.name.startswith("package/dist/web/") and not m.name.endswith((".map", ".ts")):
                    rel = m.name[len("package/dist/web/") :]
                    dest = vendor / rel
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    data = tf.extractfile(m).read()
                    for spec, repl in REWRITES.get(rel, ()):
                        text = data.decode()
                        assert text.count(f"'{spec}'") == 1, (rel, spec)
                        data = text.replace(f"'{spec}'", f"'{repl}'").encode()
                    dest.write_bytes(data)
        (t / "js_glue").mkdir()
        (t / "js_glue" / "zstd.js").write_text(git_show(args.old_rev, "js_glue/zstd.js"))
        (t / "package.json").write_text('{"type": "module"}')
        old_py = git_show(args.old_rev, "darkswap_wasm/compression/zstd_js.py")
        old_py = re.sub(r"^from \.\.errors import", "from darkswap_wasm.errors import", old_py, flags=re.M)
        old_py = re.sub(r"^from \.backend import", "from darkswap_wasm.compression.backend import", old_py, flags=re.M)
        py = t / "py"
        py.mkdir()
        (py / "zstd_js_old.py").write_text(old_py)
        shutil.copy(ROOT / "bench" / "messages.py", py / "messages.py")
        (py / "loop.py").write_text(LOOP)
        (py / "run.py").write_text(RUN_PY.format(count=args.count, runs=args.runs))
        t0 = time.perf_counter()
        proc = subprocess.run(
            [node, "--input-type=module", "-e", NODE_JS, str(dist), (t / "js_glue" / "zstd.js").as_uri(),
             str(vendor / "zstd.wasm"), str(py)],
            capture_output=True, text=True, timeout=1800,
        )
        if proc.returncode != 0:
            sys.exit(f"bench_zstd_page: node failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
        res = json.loads(line[len("RESULT ") :])
        elapsed = time.perf_counter() - t0

    ns: dict = {}
    exec(compile(LOOP, "loop", "exec"), ns)  # our own source, shared with Pyodide
    orders = MessageGenerator(seed=3).kind("order", args.count)
    batches = [b"".join(orders[i : i + 10]) for i in range(0, args.count, 10)]
    native = ZstdBackend()
    nat1 = ns["per_message"](native, orders, args.runs)
    nat10 = ns["per_message"](native, batches, args.runs)
    assert COMPRESSED and StreamDecoder and StreamEncoder  # the loop's imports, natively

    node_version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"# {os.cpu_count()} CPUs, {platform.machine()}, {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"# node {node_version}, Pyodide Python {res['python']}; {elapsed:.1f} s in node")
    print(f"# new: {res['new_repr']}")
    print(f"# old: {res['old_repr']}")
    print(f"# native: {native!r}, Python {platform.python_version()}")
    print()
    print(
        f"| per message (best of {args.runs}) | old compress | new compress | old / new "
        "| old decompress | new decompress | old / new | wire old / new |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, key, n in (("1 order per flush", "_1", args.count), ("10 orders per flush", "_10", args.count // 10)):
        o, w = res["old" + key], res["new" + key]
        oc, wc, od, wd = o["compress_us"], w["compress_us"], o["decompress_us"], w["decompress_us"]
        print(
            f"| {label} ({n}) | {oc:.1f} us | {wc:.1f} us | **{oc / wc:.0f}x** "
            f"| {od:.1f} us | {wd:.1f} us | **{od / wd:.0f}x** | {o['wire'] / w['wire']:.3f} |"
        )
    print()
    print(
        f"native (same loop, {native.module}): 1 per flush {nat1['compress_us']:.1f} / "
        f"{nat1['decompress_us']:.1f} us, 10 per flush {nat10['compress_us']:.1f} / "
        f"{nat10['decompress_us']:.1f} us (compress / decompress)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
