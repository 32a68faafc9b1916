"""Plain NumPy reference: the book's arithmetic, the oracle for tests and the benchmark baseline.

This package imports nothing from the rest of fastdl and uses nothing but NumPy, written the way
*Deep Learning from Scratch* (``common/functions.py``, ``common/layers.py``, ``common/optimizer.py``)
writes it, so that a seeded run prints the book's numbers. It is deliberately not fast.

One deliberate difference: where the book creates float64 state by default (batch norm's running
statistics as ``np.zeros(D)``), the reference creates it in the dtype of the layer's parameters so
float32 runs can be compared with float32 runs. For float64, the arithmetic is the book's.

The activations the book lacks (``Tanh``, ``LeakyRelu``, ``PRelu``, ``Elu``, ``Selu``, ``Gelu`` and
``GeluTanh``, ``Silu``, ``Mish``; Hands-On ML ch. 11) follow PyTorch's definitions; exact GELU takes ``erf``
from SciPy where it is installed (NumPy has none).

Layout mirrors the package: :mod:`fastdl.reference.layers`, :mod:`fastdl.reference.optim` and
:mod:`fastdl.reference.functions`; everything is also importable from here.
"""

from ._activations import Elu, Gelu, GeluTanh, LeakyRelu, Mish, PRelu, Selu, Silu, Tanh
from ._functions import cross_entropy_error, relu, sigmoid, softmax
from ._layers import Affine, AlphaDropout, BatchNormalization, Dropout, IdentityWithLoss, Relu, Sigmoid, SoftmaxWithLoss
from ._optim import SGD, AdaGrad, Adam, AdaMax, AdamW, Momentum, Nadam, Nesterov, RMSprop, clip_gradients

__all__ = [
    "Elu",
    "Gelu",
    "GeluTanh",
    "LeakyRelu",
    "Mish",
    "PRelu",
    "Selu",
    "Silu",
    "Tanh",
    "SGD",
    "AdaGrad",
    "AdaMax",
    "Adam",
    "AdamW",
    "Affine",
    "AlphaDropout",
    "BatchNormalization",
    "Dropout",
    "IdentityWithLoss",
    "Momentum",
    "Nadam",
    "Nesterov",
    "RMSprop",
    "Relu",
    "Sigmoid",
    "SoftmaxWithLoss",
    "cross_entropy_error",
    "relu",
    "sigmoid",
    "softmax",
    "clip_gradients",
]
