"""Dump torch.randn / torch.rand outputs for rng's parity test (torch_small.json).

Run with any CPU torch:  python3 gen_torch_small.py torch_small.json
Each case seeds torch's default CPU generator once (torch.manual_seed) and then
makes a sequence of calls on it, so the file also covers what one call leaves
behind for the next (the cached second Box-Muller value of the small-tensor
path). numel < 16 takes torch's scalar float64 path; larger calls take the
vectorised float32 kernel, and are also recorded with
ATEN_CPU_CAPABILITY=default (the scalar float32 kernel) in a child process.
Values are written as exact float32 decimals.
"""
import json
import os
import subprocess
import sys

CASES = [
    {"seed": 7, "calls": [["randn", 1]]},
    {"seed": 7, "calls": [["randn", 2]]},
    {"seed": 0, "calls": [["randn", 3]]},
    {"seed": 42, "calls": [["randn", 5]]},
    {"seed": 42, "calls": [["randn", 15]]},
    {"seed": 4294967338, "calls": [["randn", 9]]},
    {"seed": 123, "calls": [["randn", 3], ["randn", 3], ["randn", 1]]},
    {"seed": 123, "calls": [["randn", 3], ["randn", 32], ["randn", 3]]},
    {"seed": 5, "calls": [["randn", 7], ["rand", 4], ["randn", 2], ["randn", 20]]},
    {"seed": 99, "calls": [["randn", 100], ["randn", 17], ["rand", 33]]},
    {"seed": 2024, "calls": [["randn", 0], ["randn", 16], ["randn", 1000]]},
]


def run_cases():
    import torch
    out = []
    for case in CASES:
        torch.manual_seed(case["seed"])
        vals = []
        for kind, n in case["calls"]:
            t = (torch.randn if kind == "randn" else torch.rand)(n, dtype=torch.float32)
            vals.append([float(v) for v in t.tolist()])
        out.append({"seed": case["seed"], "calls": case["calls"], "values": vals})
    return {"torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cases": out}


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "--child":
        json.dump(run_cases(), sys.stdout)
        return
    doc = run_cases()
    env = dict(os.environ, ATEN_CPU_CAPABILITY="default")
    child = subprocess.run([sys.executable, __file__, "--child"], env=env,
                           check=True, capture_output=True, text=True)
    doc = {"generator": "gen_torch_small.py", "default_build": doc,
           "scalar_kernel": json.loads(child.stdout)}
    with open(sys.argv[1], "w") as f:
        json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
