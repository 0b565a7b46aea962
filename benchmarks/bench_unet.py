"""UNet and sampler speed per 64x64 frame: HueShift's default network against the original's.

The original prototype's network is reproduced by size: ~103M parameters, 384 channels
with self-attention at every resolution including 64x64, sampled with 1000 DDPM steps.
Its per-frame time is extrapolated from timed forward passes (1000 of them would take
hours here). Usage::

    python benchmarks/bench_unet.py [--device cpu|cuda] [--json out.json] [--skip-original]

On the CPU the network runs with NHWC (channels-last) weights, as ``load_model`` loads it there; the
16:9 forward pass is also timed in plain NCHW for comparison.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from common import machine  # benchmarks/common.py

from hueshift_core.model.checkpoint import load_model, resolve_model_path
from hueshift_core.model.diffusion import Sampler
from hueshift_core.model.sampling import SampleOptions, sample_ab
from hueshift_core.model.unet import ColorUNet, UNetConfig, count_parameters

ORIGINAL = UNetConfig(base_channels=384, channel_mults=(1, 1, 1, 1), num_res_blocks=2,
                      attention_levels=(0, 1, 2, 3), head_channels=64, groups=32)


def timed(fn, repeat: int, sync) -> float:
    fn()
    sync()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t)
    return best




def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", default=None)
    ap.add_argument("--skip-original", action="store_true")
    args = ap.parse_args()
    dev = torch.device(args.device)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    dtype = torch.float16 if dev.type == "cuda" else torch.float32
    torch.set_grad_enabled(False)
    results: dict = {"machine": machine(args.device),
                     "device": str(dev), "dtype": str(dtype)}

    model = load_model(resolve_model_path(None), dev, dtype)
    net = model.net
    results["default_parameters"] = count_parameters(net)
    for b in (1, 16):
        x = torch.randn(b, 2, 64, 64, device=dev, dtype=dtype)
        c = torch.randn(b, 1, 64, 64, device=dev, dtype=dtype)
        t = torch.full((b,), 500.0, device=dev)
        results[f"default_forward_b{b}_64x64_s"] = timed(lambda: net(x, t, c), args.repeat, sync)
    # the 16:9 working size at a guided batch of 8 keyframes, in the layout load_model chose and in plain NCHW
    x, c = torch.randn(16, 2, 64, 112, device=dev, dtype=dtype), torch.randn(16, 1, 64, 112, device=dev, dtype=dtype)
    t = torch.full((16,), 500.0, device=dev)
    layout = "nhwc" if net.stem.weight.is_contiguous(memory_format=torch.channels_last) else "nchw"
    results[f"default_forward_b16_64x112_{layout}_s"] = timed(lambda: net(x, t, c), args.repeat, sync)
    if layout == "nhwc":
        net.to(memory_format=torch.contiguous_format)
        results["default_forward_b16_64x112_nchw_s"] = timed(lambda: net(x, t, c), args.repeat, sync)
        net.to(memory_format=torch.channels_last)
    for b, hw in ((1, (64, 64)), (8, (64, 64)), (1, (64, 112)), (8, (64, 112))):
        l = torch.rand(b, 1, *hw) * 2 - 1
        # DDIM 25 without guidance (one pass a step: the network's cost, comparable across rounds), and the
        # library's default recipe (SampleOptions: sampler, steps, the model's own guidance scale)
        s = timed(lambda: sample_ab(model, l, steps=25, sampler=Sampler.DDIM, guidance=1.0,
                                    generator=torch.Generator().manual_seed(0)), max(1, args.repeat - 1), sync)
        results[f"default_ddim25_b{b}_{hw[0]}x{hw[1]}_s_per_frame"] = s / b
        d = SampleOptions()
        s = timed(lambda: sample_ab(model, l, steps=d.steps, sampler=d.sampler, guidance=d.guidance,
                                    guidance_interval=d.guidance_interval, generator=torch.Generator().manual_seed(0)),
                  max(1, args.repeat - 1), sync)
        results[f"default_recipe_{d.sampler.value}{d.steps}_b{b}_{hw[0]}x{hw[1]}_s_per_frame"] = s / b

    if not args.skip_original:
        orig = ColorUNet(ORIGINAL).eval().to(dev, dtype)
        results["original_parameters"] = count_parameters(orig)
        x = torch.randn(1, 2, 64, 64, device=dev, dtype=dtype)
        c = torch.randn(1, 1, 64, 64, device=dev, dtype=dtype)
        t = torch.full((1,), 500.0, device=dev)
        f = timed(lambda: orig(x, t, c), max(1, args.repeat - 1), sync)
        results["original_forward_b1_64x64_s"] = f
        results["original_ddpm1000_s_per_frame_extrapolated"] = f * 1000
        results["speedup_per_frame_vs_original"] = (f * 1000) / results["default_ddim25_b8_64x64_s_per_frame"]

    for k, v in results.items():
        print(f"{k:48s} {v:.4f}" if isinstance(v, float) else f"{k:48s} {v}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
