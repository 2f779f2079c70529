# Compiled optimizer updates: one pass over each parameter instead of a dozen
# NumPy calls (which dominate the time of a step on small models).  The
# floating-point operations and their order follow torch.optim's single-tensor
# implementations, so float64 results agree with PyTorch to the last bits.

from cython cimport floating
from libc.math cimport sqrt


def adam(floating[::1] param, const floating[::1] grad, floating[::1] exp_avg,
         floating[::1] exp_avg_sq, double lr, double beta1, double beta2, double eps,
         double weight_decay, long step):
    """One Adam step in place (``torch.optim.Adam``, L2 weight decay, no amsgrad)::

        g = grad + weight_decay * param
        exp_avg = lerp(exp_avg, g, 1 - beta1)
        exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g
        param -= lr / (1 - beta1^step) * exp_avg / (sqrt(exp_avg_sq) / sqrt(1 - beta2^step) + eps)

    All four arrays are 1-D views of the same length (``ValueError`` otherwise,
    before anything is written).
    """
    cdef Py_ssize_t i, n = param.shape[0]
    if grad.shape[0] != n or exp_avg.shape[0] != n or exp_avg_sq.shape[0] != n:
        raise ValueError(f"adam: param, grad, exp_avg and exp_avg_sq must have one length; "
                         f"got {n}, {grad.shape[0]}, {exp_avg.shape[0]}, {exp_avg_sq.shape[0]}")
    cdef floating w = 1 - beta1, c2 = 1 - beta2, wd = weight_decay
    cdef floating neg_step = -(lr / (1 - beta1 ** step))
    cdef floating bc2_sqrt = sqrt(1 - beta2 ** step)
    cdef floating e = eps, g, m, v, b2 = beta2
    cdef bint small_weight = w < 0.5
    with nogil:
        for i in range(n):
            g = grad[i]
            if wd != 0:
                g = g + wd * param[i]
            m = exp_avg[i]
            if small_weight:
                m = m + w * (g - m)
            else:
                m = g - (g - m) * (1 - w)
            exp_avg[i] = m
            v = exp_avg_sq[i] * b2 + c2 * g * g
            exp_avg_sq[i] = v
            param[i] = param[i] + neg_step * m / (sqrt(v) / bc2_sqrt + e)
