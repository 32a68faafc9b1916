"""The reference layers (the book's ``common/layers.py`` and the activations it lacks):
``fastdl.reference.layers`` mirrors ``fastdl.layers``."""

from ._activations import Elu, Gelu, LeakyRelu, Mish, PRelu, Selu, Silu, Tanh
from ._layers import Affine, AlphaDropout, BatchNormalization, Dropout, IdentityWithLoss, Relu, Sigmoid, SoftmaxWithLoss

__all__ = ["Affine", "AlphaDropout", "BatchNormalization", "Dropout", "Elu", "Gelu", "IdentityWithLoss", "LeakyRelu",
           "Mish", "PRelu", "Relu", "Selu", "Sigmoid", "Silu", "SoftmaxWithLoss", "Tanh"]
