"""The reference functions (the book's ``common/functions.py`` and the activations it lacks):
``fastdl.reference.functions`` mirrors ``fastdl.functional``."""

from ._activations import elu, gelu, leaky_relu, mish, selu, silu, softplus, tanh
from ._functions import cross_entropy_error, relu, sigmoid, softmax

__all__ = ["cross_entropy_error", "elu", "gelu", "leaky_relu", "mish", "relu", "selu", "sigmoid", "silu", "softmax",
           "softplus", "tanh"]
