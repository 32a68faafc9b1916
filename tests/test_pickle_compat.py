"""Pickles made by an older fastdl still load: layers and networks whose activation record names retired kernels."""

import base64
import pickle
import zlib

import numpy as np

from fastdl import activations
from fastdl import reference as R

# ``{"relu": Relu after one forward, "net": MultiLayerNetExtend(4, [3], 2, use_batchnorm=True) after one
# gradient step, "x", "t", "loss": its loss}`` pickled (protocol 4) by fastdl at 132f45d, before the mask-free
# ReLU: the pickled activation record names the retired mask kernels ``relu_forward``/``relu_backward``, and the
# Relu holds the book's ``mask``. zlib, then base64.
_OLD = (
    "eNrVV3tUVMcZ3zePlVckMbVijdEGoqJoogaNgzxCjqsbjQ9aD3q9u3uXubh7F+/eXRajokYQ6thIGE0ak5OequEYq6mvWkW9tpUk"
    "UAxU02ia2gpFScAUjBU0VOncxy4GwZzT/3r37Mydb+b75vc95pvvrjds/0O0Rn7W4kRk4BmXD6MoJ+0VHK5kF13E8F6MDC9L5Eqc"
    "tAHLqyjaLmD0iLqKDFg/LbAejiyNnB0a3cfA0W4GQy0yyhIx1KMwp4cvpHkHRsNVMSsZnmNc3u+KGyIBooJrKzEKt9H2lfIAxqIo"
    "eTZEIdNGL+1nJMRu2rsSowiecTI8w9kZjB5X9wmRkilVP6iXOAUPb4cSSAPLsUQ9HSRMYbSLpb1EYhIxis/LOEJYLBoUrVBC+xNS"
    "mKdAQZ6ETAU0T7ulN0lXt89FY/Somw4kTho/KpA0Y5SVto4qoL2ScJ8NRVKFkMCinIXEJEMkeyeHLBScs0lzUfJcaE9kpFaynLy3"
    "iSpw0SyHy+Aw9BjncxcUJVN2D88kk70FluZ5uoiIpnjGTgAKvI/4UNJbXkk05RzKkkoiqwRnaG14M34ZJ1q05GcoxTAZGR1CUQEj"
    "MelsKbi8TJnXI+0abLVa5/SSR24sGgHbyjMMWq1Gg8krQaZwwmlI55x+P+fMATiJNfQcQzxgVj1GBsSlQ+dJasyVXGZlhKyAwHCO"
    "vhCLcHm8XkqOMxRl56UBwwm8R1ItkuUKfALlZVcz2GJAZo9P6BvrUCxkHQ6Gk8eUi/UKeBm26OkQXY4SipgJW7Qosi88pVgZWsiw"
    "eVCgHIydLiIr3TYHjbM16kNQpTxIjCNRQ9GuAkhTDgKQoMHlyCwR+4ZR0tBGC3bIkdjBZShanaN4Ze9scEUVp3oFpqMwKSokqyCT"
    "YjmMYlR8UkhThEQww9GSvXQ5KRhOgJMkX8PJQU8bLHri6fTyjBXXNOba52/dBIElgdfbfnge1NltJ4Wx18DiZqZtwdI7oCJh2XbT"
    "E7dAys7nynpHXBPnr2u6V1x8FYxxveCOcFaLLuOGQPoHh8TT2e2VTfg8OP7ir/YnDD0Bau68UmUSOoEcF1IYPQhCXyJDeFwzyKOw"
    "5kweiNWiU/BP8rzf9LSt+Z/g+NEY43nuOAg7cmJDTcpFkDUs7tTvPH8GPbkzLpzZdBMsP5w1R7OqRlTxDCRUp+CJHRCHKY92u+nv"
    "V6MT9O9ldqONEej/1Qg+ZApmaLPd43IxdjVrml/iHSRhODJZ+YwnEZEobLbTyXIM2UuHTMp73+nR5mBII3LkIUTawABwjHIKIIB+"
    "ualCmzAv4lPQWbJux5lF7WJq6m+ul7gMZ5xJni2r2lqAaxs/3L+3HXw+MfeLRrFVPFUjjvAl6tKiUqNuxGd1i8t8e6L3uqvA9N0/"
    "uLHr1kfiR5uXFmeU3gbRGnfOuo3doOGLnqkL/vJHMKVtW0XjlEugbtfdqlPwuhi4PGlXzsFeMSupYUFK5mfiv6xlU2fpz4Ks2pbs"
    "rA9ugjEr7r33zcybilljPTybx3K0iwpQXkiT46FogHSOnIeG/bGJzNEVcX5x3KLaroQ728QZT9V2d0QcE5ckHGhPHlohfovf/kWL"
    "sAzsKP1m3a7nz4DD/3nu9Mlh5aA3/r01z5QfAj0HDyQ9pr0Mpo/UV0d3HwV3igttz8w9Dka+erl698cfqmHvsH2vx39yUunnz1T6"
    "9Sdl1kiSTrwCZaddLpwIaQiD2GG6JMASXkKWSddJupQ7rCR3yA5/JDQk99nqfrezUQ5hDNcigxSNGG5C4W6Pm6RPkvKywfV66TlH"
    "rmIfx7FcHuVmaO4h+A88u2eWcdwaMPPSoowdpe+Kxyf8ddbwHTsV1c1BIX6af4iM6tG5x2oiakHcovlV/l+/C/4+zt4QR9epMtR0"
    "HvQr0R9FyrlSTelGpKcCHLYOFMaqowMXakqtXNpdcXJn/m+Lyq6Jb3z41oTmhA4wR9g7927+VXAs9Vz1vK3dYuqr3WdWZTaLbv7J"
    "r4TMNnDo3z9b05hZDZYz/H6h5jpojs9rE9d+Ko5/4qI5Lv8WGJXT4v/x4W9FaqKQOyf2Kjh0tsb0U2criDQ7qxp+flHWgODVy7l4"
    "UP0NRUz6kRVdYI/fURdb3wS0uTmGhNtdiv4mh+qwQdknTN1qCNSdBesLvpydO2KKqNtY/0bV+HNqynEoXh6Uu2X54os/2lcPriQl"
    "Z+6PweAyjH3rhPGSwj2EEnhSZHzH+nCfldSEnkIOJ1pDjxyG8X3VIOX0cXJ+IgFpUCIPhkEzHNuv2oFP9S9xYJJFA58mVc1g/kwt"
    "z4iRag3yV35KeoQAphMMauIjmf01ddvXoQdWQj/EDwuQ/gm3nXlSs+IfQ9JuRH29NCtKl9Z/fkvzjPiTzcYQvcFin3nIYA6Nsxtb"
    "2l+c3TcfvtE4raJGm7aw9vODV3ArWN54+0/UuB7ZynCnCuSdh11xc0+8WfvxVxeA2otd5QtbLVvzxbNKD14rH75yZFhNsJevOLh7"
    "8PttyYGWEcs/OQ/UXlm/L5EYyx/clWQZXV+W8aFIORspRX3fV4NHLmpRzEKPUyAFbw4rwLmEdt/3gLQEw3HI5CWZjGSCSiI7I/yl"
    "zmn3tjfq0nApQYa0RQP6R9V+/ibngeKK2g6Qero+MW3aK6D3/NXPhMIvge4I3D1+9CcgZvGzee1fd4BLne/XvRlvA2mBF9amtjaB"
    "9TFe45aUv4GuC2M6Z4/uADkbmJ7fH1PTk1YYaM8SuXBl7ytcYcZABW9i0Lfafn1/uryXQa7180cSYv5Y0lg3SycmOviBQao1psBL"
    "StFEuM2iIUoftmhJ2y6/d0ktQw4jKSJJoSiwbmJwKwqjnLxnNcNJXx+U/HGCrT4b/L+/z/NHB42U/6jUDCPNAwHjS/4vzZ3QSQ=="
)


def test_a_relu_and_a_net_pickled_before_the_mask_free_relu_load_and_give_the_same_numbers():
    old = pickle.loads(zlib.decompress(base64.b64decode(_OLD)))
    relu, net = old["relu"], old["net"]
    assert relu._act is activations.get("relu")  # the registered record replaced the pickled one
    assert relu.out is None and relu.mask is None and "mask" not in vars(relu)  # the old mask went: forward again
    x = np.array([[-1.0, 0.0, -0.0, 2.0, np.nan, np.inf, -np.inf]])
    ref = R.Relu()
    np.testing.assert_array_equal(relu.forward(x), ref.forward(x))
    np.testing.assert_array_equal(relu.mask, ref.mask)
    dout = np.arange(7.0).reshape(1, 7)
    np.testing.assert_array_equal(relu.backward(dout), ref.backward(dout.copy()))
    assert net.loss(old["x"], old["t"]) == old["loss"]  # the numbers of the fastdl that pickled it
    grads = net.gradient(old["x"], old["t"])
    assert set(grads) == set(net.params) and all(np.isfinite(g).all() for g in grads.values())
