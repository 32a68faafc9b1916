"""Every interleaving of two calls on one layer, replayed deterministically (for tests/test_reliability.py).

The traced call (forward or backward, 50 or 3 rows) runs under ``sys.settrace``; before its k-th line
in fastdl/layers.py the other call runs, as another thread could, for every k and several starting
states, on BatchNormalization, Affine and SoftmaxWithLoss. Every result must be the reference's to
the bit for its batch, or a clear refusal. Run as a script in a subprocess (a wrong-sized buffer in
a kernel may crash it). Prints the number of replays.
"""

import sys

import numpy as np

import fastdl.layers as L

LAYERS = L.__file__
D, C = 8, 8
rng = np.random.default_rng(0)
X = {n: rng.standard_normal((n, D)) for n in (50, 3)}
T = {n: rng.integers(0, C, n) for n in X}
G, B = rng.standard_normal(D), rng.standard_normal(D)
W = rng.standard_normal((D, C))
STARTS = [(), (("f", 50),), (("f", 50), ("b", 50), ("f", 50)), (("f", 3), ("f", 50)), (("f", 50), ("f", 3))]
OPS = [(w, n) for w in "fb" for n in X]


def make(kind):
    if kind == "bn":
        return L.BatchNormalization(G.copy(), B.copy())
    if kind == "affine":
        return L.Affine(W.copy(), np.zeros(C))
    return L.SoftmaxWithLoss()


def op(kind, layer, what, n):
    x = X[n]
    if what == "f":
        return (lambda: layer.forward(x, T[n])) if kind == "loss" else (lambda: layer.forward(x))
    return (lambda: layer.backward()) if kind == "loss" else (lambda: layer.backward(x))


def outcome(f):
    """The call's result, or None when it was refused clearly."""
    try:
        return f()
    except ValueError as e:
        assert " must be " in str(e), f"unclear message: {e}"
    except RuntimeError as e:  # backward before any forward
        assert " first; " in str(e), str(e)
    return None


def reference(kind):
    ref = {}
    for n in X:
        layer = make(kind)
        ref["f", n] = op(kind, layer, "f", n)()
        ref["b", n] = op(kind, layer, "b", n)()
    return ref


def check(kind, ref, what, r):
    if r is None:
        return
    if kind == "loss" and what == "f":  # a loss value tells which batch made it
        assert any(r == ref["f", n] for n in X), r
        return
    n = r.shape[0]
    np.testing.assert_array_equal(r, ref[what, n], err_msg=f"{kind} {what} with {n} rows")


def replay(kind, ref, start, traced, injected, k) -> bool:
    """One replay: ``injected`` runs before the k-th line of ``traced``; False when it never came to run."""
    layer = make(kind)
    for w, n in start:
        outcome(op(kind, layer, w, n))
    count, res = [0], []
    inj = op(kind, layer, *injected)

    def local(frame, event, arg):
        if event == "line":
            if count[0] == k:
                res.append(outcome(inj))
            count[0] += 1
        return local

    def tracer(frame, event, arg):
        return local if frame.f_code.co_filename == LAYERS else None

    sys.settrace(tracer)
    try:
        r = outcome(op(kind, layer, *traced))
    finally:
        sys.settrace(None)
    check(kind, ref, traced[0], r)
    if res:
        check(kind, ref, injected[0], res[0])
    for w, n in OPS:  # whatever state is left: every later call is right or refused
        check(kind, ref, w, outcome(op(kind, layer, w, n)))
    return bool(res)


def main() -> None:
    runs = 0
    for kind in ("bn", "affine", "loss"):
        ref = reference(kind)
        for start in STARTS:
            for traced in OPS:
                for injected in OPS:
                    k = 0
                    while replay(kind, ref, start, traced, injected, k):
                        runs += 1
                        k += 1
    print("runs", runs)


if __name__ == "__main__":
    main()
