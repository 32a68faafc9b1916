"""Threaded stress run for tests/test_reliability.py (run as a script in a subprocess: a crash fails the test).

Two threads share one BatchNormalization, Affine, Dropout, SoftmaxWithLoss, a net's fused gradient()
and a net's layer path: first a tight loop through the batch-norm layer with 2048 and 4 rows (the
race of issue 12: a buffer sized for the other thread's batch reached a kernel), then every step
with alternating 256- and 4-row batches, the threads out of phase. A clear ValueError is allowed
(which forward a backward pairs with is ill-defined under threads); anything else fails.
"""


import threading

import numpy as np

from fastdl import layers as L
from fastdl.nets import MultiLayerNetExtend

D, C, TIGHT, CALLS = 64, 10, 1500, 40
rng = np.random.default_rng(0)
bn = L.BatchNormalization(np.ones(D), np.zeros(D))
aff = L.Affine(rng.standard_normal((D, D)), np.zeros(D))
drop = L.Dropout(0.3)
loss = L.SoftmaxWithLoss()
fused = MultiLayerNetExtend(D, [16, 16], C, use_batchnorm=True)          # the fused gradient()
layered = MultiLayerNetExtend(D, [16], C, use_batchnorm=True, use_dropout=True)  # the layer path
assert fused._fused is not None and layered._fused is None
steps = (
    lambda x, t: bn.forward(x), lambda x, t: bn.backward(x),
    lambda x, t: bn.forward(x, False),
    lambda x, t: aff.forward(x), lambda x, t: aff.backward(x),
    lambda x, t: drop.forward(x), lambda x, t: drop.backward(x),
    lambda x, t: loss.forward(x[:, :C], t), lambda x, t: loss.backward(),
    lambda x, t: fused.gradient(x, t), lambda x, t: layered.gradient(x, t),
)
rejected, errors = [], []
start = threading.Barrier(2)

def work(sizes, seed):
    r = np.random.default_rng(seed)
    batches = [(r.standard_normal((n, D)), r.integers(0, C, n)) for n in sizes]
    tight = r.standard_normal((2048 if sizes[0] > 4 else 4, D))
    start.wait()
    for _ in range(TIGHT):  # the race the issue reported: one BN layer, one batch size per thread
        x = tight
        for step in steps[:2]:
            try:
                step(x, None)
            except ValueError as e:
                rejected.append(str(e))
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
    for i in range(CALLS):
        x, t = batches[i % 2]
        for step in steps:
            try:
                step(x, t)
            except ValueError as e:  # allowed: a clear refusal, never a wrong-sized buffer
                rejected.append(str(e))
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

threads = [threading.Thread(target=work, args=((256, 4), 1)), threading.Thread(target=work, args=((4, 256), 2))]
for th in threads:
    th.start()
for th in threads:
    th.join()
unclear = [m for m in rejected if " must be " not in m]
print("rejected", len(rejected), "errors", errors[:3], "unclear", unclear[:3])
raise SystemExit(1 if errors or unclear else 0)
