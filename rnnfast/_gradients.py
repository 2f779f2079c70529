"""What a gradient dict holds besides the parameters' gradients (shared by the optimizers'
clipping and the MPI averaging)."""

__all__ = ["NOT_PARAMETERS", "parameter_keys"]

# Entries of a gradient dict that are not parameter gradients: the inputs'
# and initial states' (as modules' backward, rnn_loss and RNNModel name them).
NOT_PARAMETERS = frozenset({"input", "hx", "cx", "dx", "dh0", "dc0", "dxt", "dh_prev"})


def parameter_keys(grads):
    """The keys of ``grads`` that name parameter gradients, in the dict's order."""
    return [k for k in grads if k not in NOT_PARAMETERS]
