"""The reference optimizers (the book's ``common/optimizer.py``): ``fastdl.reference.optim`` mirrors ``fastdl.optim``.

Every class defined in :mod:`fastdl.reference._optim` is re-exported, so a rule added there needs
no edit here.
"""

from . import _optim

__all__ = sorted(name for name, value in vars(_optim).items()
                 if isinstance(value, type) and value.__module__ == _optim.__name__ and not name.startswith("_"))
globals().update({name: getattr(_optim, name) for name in __all__})
clip_gradients = _optim.clip_gradients  # Keras' gradient clipping (the oracle of the optimizers' clip options)
__all__ += ["clip_gradients"]
