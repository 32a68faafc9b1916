"""Time fastdl's column of a fixed set of bench cases with whichever fastdl ``PYTHONPATH`` gives; print JSON.

For old-vs-new comparisons of two checkouts on one machine, alternate them::

    for r in 1 2 3; do PYTHONPATH=/path/to/old python bench/compare_versions.py > old_$r.json
                       PYTHONPATH=/path/to/new python bench/compare_versions.py > new_$r.json; done

and compare the medians per case. It uses only ``fastdl.benchmark.make_case``/``measure``, which both the old
single-module benchmark and today's package provide. Not collected by pytest (no ``test_`` prefix).
"""

import json

import fastdl
from fastdl import benchmark as B

OPS = [("relu-forward", "100x100"), ("relu-backward", "100x100"), ("relu-forward", "256x1024"),
       ("sigmoid-forward", "256x1024"), ("sigmoid-backward", "256x1024"),
       ("batchnorm-forward", "100x100"), ("batchnorm-fwd-bwd", "256x1024"), ("batchnorm-fwd-bwd", "1024x4096"),
       ("affine-forward", "100x100"), ("affine-backward", "256x1024"), ("dropout-forward", "256x1024"),
       ("softmax-loss-forward", "100x100"), ("softmax-loss-backward", "256x1024"),
       ("sgd-update", "10K"), ("momentum-update", "1M"), ("adam-update", "10K"), ("adam-update", "1M"),
       ("rmsprop-update", "1M"), ("train-step", "784-100x5-10-b100"), ("train-step-bn", "784-100x5-10-b100")]


def main() -> None:
    out = {}
    for op, size in OPS:
        for dtype in ("float32", "float64"):
            case = B.make_case(op, size, dtype, "fastdl")
            out[f"{op} {size} {dtype}"] = B.measure(case.fn, warmup=3, min_time=0.25)
    print(json.dumps({"src": fastdl.__file__, "times": out}))


if __name__ == "__main__":
    main()
