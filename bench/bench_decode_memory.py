"""Peak memory of decoding one upload, per image mode: what a single search or upload request costs.

    python bench/bench_decode_memory.py                 # writes bench/results/decode_memory.json
    python bench/bench_decode_memory.py --side 6320     # the 16-bit PNG of the review (default)

The files are made first (by the parent); each case then runs in a fresh subprocess that reads its file, then
``search.imaging.decode_image`` runs once and the process reports its peak RSS above the level
before decoding (Pillow's own buffers are not seen by tracemalloc) and the
peak of Python/numpy allocations (``tracemalloc``). The peak RSS is Linux's ``VmHWM`` (not
``getrusage``, whose ``ru_maxrss`` a child inherits from the parent across ``execve``).
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
CASES = ("I;16 png", "I tiff", "F tiff", "RGB png", "CMYK jpeg", "LA png")


def make_bytes(case: str, side: int) -> bytes:
    """A smooth (so small on disk) image of ``side``×``side`` pixels in the case's mode and format."""
    import numpy as np
    from PIL import Image

    ramp = np.add.outer(np.arange(side, dtype=np.uint32), np.arange(side, dtype=np.uint32))
    out = io.BytesIO()
    if case == "I;16 png":
        Image.fromarray((ramp * 65535 // ramp.max()).astype(np.uint16)).save(out, "PNG")
    elif case == "I tiff":
        Image.fromarray((ramp * 4000).astype(np.int32)).save(out, "TIFF", compression="tiff_adobe_deflate")
    elif case == "F tiff":
        Image.fromarray((ramp / ramp.max()).astype(np.float32)).save(out, "TIFF", compression="tiff_adobe_deflate")
    else:
        grey = Image.fromarray((ramp * 255 // ramp.max()).astype(np.uint8), "L")
        if case == "RGB png":
            grey.convert("RGB").save(out, "PNG")
        elif case == "CMYK jpeg":
            grey.convert("CMYK").save(out, "JPEG", quality=90)
        elif case == "LA png":
            grey.convert("LA").save(out, "PNG")
    return out.getvalue()


def _peak_rss_bytes() -> int:
    """This process's peak resident set size so far (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status (this benchmark needs Linux)")


def measure(case: str, path: Path, side: int) -> dict:
    """Run in the child: decode once, report peak RSS and tracemalloc peak above the pre-decode level."""
    import tracemalloc

    sys.path.insert(0, str(ROOT))
    from search.imaging import decode_image

    data = path.read_bytes()
    before = _peak_rss_bytes()
    tracemalloc.start()
    decoded = decode_image(data, max_pixels=side * side)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    after = _peak_rss_bytes()
    return {
        "case": case,
        "side": side,
        "file_bytes": len(data),
        "mode_out": decoded.image.mode,
        "peak_rss_above_start_mb": round((after - before) / 1e6, 1),
        "tracemalloc_peak_mb": round(traced_peak / 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--side", type=int, default=6320)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "decode_memory.json")
    parser.add_argument("--label", default="after", help="name of this run in the results file (e.g. before/after)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.file, args.side)))
        return
    rows = []
    workdir = Path(tempfile.mkdtemp(prefix="geosim-decode-bench-"))
    for case in CASES:
        path = workdir / case.replace(" ", ".").replace(";", "")
        path.write_bytes(make_bytes(case, args.side))
        result = subprocess.run(
            [sys.executable, __file__, "--child", case, "--file", str(path), "--side", str(args.side)],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        path.unlink()
        row = json.loads(result.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row))
    existing = json.loads(args.out.read_text()) if args.out.exists() else {}
    existing[args.label] = {
        "command": f"python bench/bench_decode_memory.py --side {args.side} --label {args.label}",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cases": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(existing, indent=2) + "\n")


if __name__ == "__main__":
    main()
