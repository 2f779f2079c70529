"""The stacking scheme shared by every layer driver: layers x directions.

Plain Python (no NumPy, no compiled code), so the NumPy twins in
:mod:`rnnfast.reference`, the compiled modules in :mod:`rnnfast.modules` and
the torch plug-in :mod:`rnnfast.torch` stack layers the same way:

- layer ``k`` has ``D`` directions (``D = 2`` when bidirectional), suffixed
  ``""`` and ``"_reverse"``; the reverse direction runs backwards in time;
- a parameter is named ``{name}_l{k}{sfx}`` (``weight_ih_l1_reverse``), as
  torch names them; its shape follows from the cell's gate count
  (:func:`parameter_shape`);
- the initial and final states of layer ``k``, direction ``d`` are at index
  ``k * D + d`` of the ``(num_layers * D, N, width)`` state arrays;
- a layer's output is its directions' outputs concatenated on the last axis
  (direction ``d`` owns columns ``d * P:(d + 1) * P``), and is the next
  layer's input;
- dropout applies to the output of every layer but the last.

The drivers hand :func:`stack_forward` and :func:`stack_backward` what
differs between them (the array library, what a direction runs, what is
kept for backward) as callbacks.
"""

SUFFIXES = ("", "_reverse")


def suffixes(bidirectional):
    """The direction suffixes of a layer: ``("",)`` or ``("", "_reverse")``."""
    return SUFFIXES if bidirectional else SUFFIXES[:1]


def parameter_name(name, k, sfx):
    """Layer ``k``'s parameter ``name`` in direction ``sfx``: ``weight_ih_l1_reverse``."""
    return f"{name}_l{k}{sfx}"


def parameter_shapes(gates, input_size, hidden_size, num_layers, bidirectional, bias,
                     proj_size=0):
    """Every parameter's shape, in torch's order (per layer, per direction).

    ``weight_ih (G, n_in)``, ``weight_hh (G, P)``, ``bias_ih``/``bias_hh``
    ``(G,)`` with ``bias``, ``weight_hr (P, H)`` with a projection, where
    ``G = gates * H``, ``P = proj_size or H``, and ``n_in`` is
    ``input_size`` for layer 0, ``D * P`` above it.
    """
    names = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if bias else ()) + (
        ("weight_hr",) if proj_size else ())
    return {parameter_name(name, k, sfx): parameter_shape(
                parameter_name(name, k, sfx), gates, input_size, hidden_size, proj_size,
                bidirectional)
            for k in range(num_layers) for sfx in suffixes(bidirectional) for name in names}


def parameter_shape(name, gates, input_size, hidden_size, proj_size, bidirectional):
    """The shape of the parameter called ``name`` (``bias_hh_l2_reverse``, ...)."""
    kind, layer = name.split("_l")
    G, P = gates * hidden_size, proj_size or hidden_size
    n_in = input_size if layer.split("_")[0] == "0" else P * (1 + bool(bidirectional))
    return {"weight_ih": (G, n_in), "weight_hh": (G, P), "bias_ih": (G,), "bias_hh": (G,),
            "weight_hr": (P, hidden_size)}[kind]


def stack_forward(x, initial, num_layers, num_directions, run_direction, join_layer):
    """Run every layer, every direction; return ``(output, finals)``.

    Parameters
    ----------
    x
        The first layer's input.
    initial : sequence
        One ``(num_layers * D, ...)`` initial state per cell state (``h``,
        or ``h`` and ``c``).
    run_direction : callable
        ``run_direction(layer_input, k, d, sfx, states)`` runs direction ``d``
        of layer ``k`` from ``states`` (index ``k * D + d`` of each initial
        state; ``d == 1`` runs backwards in time) and returns ``(output,
        final states)``.
    join_layer : callable
        ``join_layer(k, outputs)`` makes layer ``k``'s output from its
        directions' outputs (concatenated; dropout below the last layer):
        the next layer's input.

    Returns
    -------
    output
        The last layer's joined output.
    finals : list of list
        Per cell state, the final states in index order ``k * D + d``.
    """
    D = num_directions
    finals = [[] for _ in initial]
    layer_input = x
    for k in range(num_layers):
        outputs = []
        for d in range(D):
            out, last = run_direction(layer_input, k, d, SUFFIXES[d],
                                      tuple(s[k * D + d] for s in initial))
            outputs.append(out)
            for f, value in zip(finals, last, strict=True):
                f.append(value)
        layer_input = join_layer(k, outputs)
    return layer_input, finals


def stack_backward(g, d_initial, num_layers, num_directions, width, unjoin_layer,
                   back_direction):
    """Gradients through every layer, the last first: ``(d_input, grads)``.

    Parameters
    ----------
    g
        The gradient of the last layer's output (directions on the last axis).
    d_initial : list of arrays
        Filled here: per cell state, the gradient of the initial state at
        index ``k * D + d``.
    width : int
        Each direction's output width ``P`` (its columns of ``g``).
    unjoin_layer : callable
        ``unjoin_layer(k, g)``: the gradient of layer ``k``'s joined output
        before its dropout (``g`` times the mask, or ``g``).
    back_direction : callable
        ``back_direction(g_d, k, d, sfx, i)`` with ``g_d`` the direction's
        columns of the layer's output gradient and ``i = k * D + d`` its
        index in the state arrays returns ``(d_layer_input, d_states,
        grads)``: ``grads`` keyed by parameter names without the layer
        suffix.

    Returns
    -------
    d_input
        The gradient of the first layer's input (directions summed).
    grads : dict
        Keyed ``{name}_l{k}{sfx}``.
    """
    D, P = num_directions, width
    grads = {}
    for k in range(num_layers - 1, -1, -1):
        g = unjoin_layer(k, g)
        d_input = None
        for d in range(D):
            dx, d_states, layer_grads = back_direction(g[..., d * P:(d + 1) * P], k, d,
                                                       SUFFIXES[d], k * D + d)
            for ds, value in zip(d_initial, d_states, strict=True):
                ds[k * D + d] = value
            for name, value in layer_grads.items():
                grads[parameter_name(name, k, SUFFIXES[d])] = value
            d_input = dx if d_input is None else d_input + dx
        g = d_input
    return g, grads
