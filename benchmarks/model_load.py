"""Loading and running a ~100M-parameter conditioned UNet: dgraph beside diffusers, same folder, same run.

The UNet (Stable Diffusion's layout with narrower channels: 128/256/384/384, 92M parameters, float32)
is saved once as safetensors by dgraph. Each measurement then runs in a fresh Python process, so that
peak RSS belongs to one library's `from_pretrained` alone:

    load time   wall time of `from_pretrained(folder)` (imports done before the clock starts)
    load peak   the process's peak resident memory during loading minus its resident memory just
                before it (so the interpreter, torch and the library itself are not counted)
    +1st fwd    the same peak, through the first forward pass: both libraries map the safetensors
                file and read weights on first use, so this is where all the weights become resident
    forward     median wall time of a forward pass (1x4x32x32 latent, 77x768 text states), after one warm-up

Processes alternate between the libraries, `--repeats` times each; the medians are printed with the
ratios dgraph / diffusers (below 1 means dgraph is faster or smaller) and the peak RSS as a multiple
of the weights' size. The weights file stays in the page cache between runs, for both libraries alike.

    python benchmarks/model_load.py [--repeats 3] [--threads 1] [--forward-runs 3] [--folder DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = dict(sample_size=32, in_channels=4, out_channels=4, block_out_channels=[128, 256, 384, 384],
              layers_per_block=2, attention_head_dim=8, cross_attention_dim=768, norm_num_groups=32,
              down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
              up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"])


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reset_peak_rss() -> None:
    """Make the kernel's peak-RSS mark (VmHWM) start again from the current RSS, so that a transient peak
    of the imports before (CUDA libraries, lazy modules) is not charged to the load."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        pass


def peak_rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def make_folder(folder: Path) -> int:
    """Save a seeded random UNet of CONFIG into `folder` with dgraph; returns the number of parameters."""
    import torch

    from dgraph.models import UNet2DConditionModel

    torch.manual_seed(0)
    model = UNet2DConditionModel(**CONFIG)
    model.save_pretrained(folder)
    return model.num_parameters()


def child(library: str, folder: str, threads: int, forward_runs: int) -> None:
    """One measurement in this (fresh) process; prints one JSON line."""
    import torch

    torch.set_num_threads(threads)
    if library == "dgraph":
        from dgraph.models import UNet2DConditionModel
    else:
        from diffusers import UNet2DConditionModel
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.set_verbosity_error()

    def run(model, *args):
        return model(*args).sample  # both libraries return diffusers' output object

    reset_peak_rss()
    before = current_rss_bytes()
    start = time.perf_counter()
    model = UNet2DConditionModel.from_pretrained(folder)
    load_s = time.perf_counter() - start
    load_peak = peak_rss_bytes() - before

    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 4, 32, 32, generator=generator)
    text = torch.randn(1, 77, 768, generator=generator)
    times = []
    with torch.no_grad():
        run(model, sample, 500, text)  # warm-up; also pages in weights a lazy (memory-mapped) load left on disk
        first_forward_peak = peak_rss_bytes() - before
        for _ in range(forward_runs):
            start = time.perf_counter()
            out = run(model, sample, 500, text)
            times.append(time.perf_counter() - start)
    print(json.dumps({"library": library, "load_s": load_s, "load_peak_rss": load_peak,
                      "forward_peak_rss": first_forward_peak,
                      "forward_s": statistics.median(times), "checksum": float(out.double().abs().sum())}))


def measure(library: str, folder: Path, threads: int, forward_runs: int) -> dict:
    command = [sys.executable, __file__, "--child", library, "--folder", str(folder), "--threads", str(threads),
               "--forward-runs", str(forward_runs)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{library} run failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--forward-runs", type=int, default=3)
    parser.add_argument("--folder", type=Path, default=None, help="reuse (or create) the UNet folder here")
    parser.add_argument("--child", choices=["dgraph", "diffusers"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, str(args.folder), args.threads, args.forward_runs)
        return

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or Path(tmp) / "unet"
        if not (folder / "diffusion_pytorch_model.safetensors").is_file():
            parameters = make_folder(folder)
        else:
            parameters = None
        weights = (folder / "diffusion_pytorch_model.safetensors").stat().st_size
        runs: dict[str, list[dict]] = {"dgraph": [], "diffusers": []}
        for i in range(args.repeats):
            order = ("dgraph", "diffusers") if i % 2 == 0 else ("diffusers", "dgraph")
            for library in order:
                runs[library].append(measure(library, folder, args.threads, args.forward_runs))

    def median(library: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[library])

    size = f"{parameters / 1e6:.1f}M parameters, " if parameters else ""
    print(f"UNet2DConditionModel {CONFIG['block_out_channels']}: {size}weights file {weights / 2**20:.1f} MiB; "
          f"{args.repeats} fresh processes per library, {args.threads} thread(s); medians")
    print(f"{'':12s}{'load s':>9s}{'load peak MiB':>15s}{'x weights':>11s}{'+1st fwd MiB':>14s}{'x weights':>11s}"
          f"{'forward s':>11s}")
    for library in ("dgraph", "diffusers"):
        peak, with_forward = median(library, "load_peak_rss"), median(library, "forward_peak_rss")
        print(f"{library:12s}{median(library, 'load_s'):9.3f}{peak / 2**20:15.1f}{peak / weights:11.2f}"
              f"{with_forward / 2**20:14.1f}{with_forward / weights:11.2f}{median(library, 'forward_s'):11.3f}")

    def ratio(key: str) -> float:
        return median("dgraph", key) / median("diffusers", key)

    print(f"{'ratio':12s}{ratio('load_s'):9.2f}{ratio('load_peak_rss'):15.2f}{'':11s}{ratio('forward_peak_rss'):14.2f}"
          f"{'':11s}{ratio('forward_s'):11.2f}")
    checksums = {library: runs[library][0]["checksum"] for library in runs}
    print(f"output checksums (sum |x|): dgraph {checksums['dgraph']:.4f}, diffusers {checksums['diffusers']:.4f}")


if __name__ == "__main__":
    main()
