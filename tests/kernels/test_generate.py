"""The compiled generation loop against its NumPy twin (no torch).

``_kernels.generate`` and ``reference.generate_steps`` consume the same
uniforms and must pick exactly the same characters (both dtypes, one and
several streams, every option and its edge values); their final states agree
to rounding.  The rule of one draw (``reference.pick_index``) is pinned on
hand-worked examples.
"""

import numpy as np
import pytest

from rnnfast import _kernels
from rnnfast import reference as ref

# measured largest final-state difference, kernel vs twin of the same dtype, after 60
# steps (H 13): float32 2.4e-7, float64 4.2e-16
STATE_TOL = {np.float32: 2e-6, np.float64: 1e-13}

DTYPES = [np.float32, np.float64]


def parameters(V, H, dtype, seed=0):
    rng = np.random.default_rng(seed)
    # Whh of spectral radius about 0.8: a contracting recurrence, where rounding does not grow
    p = {"Whx": rng.standard_normal((H, V)), "Whh": 0.8 / np.sqrt(H) * rng.standard_normal((H, H)),
         "Wyh": rng.standard_normal((V, H)), "bh": 0.1 * rng.standard_normal((H, 1)),
         "by": 0.5 * rng.standard_normal((V, 1))}
    return {k: v.astype(dtype) for k, v in p.items()}


def kernel(h, last, uniforms, p, temperature=1.0, top_k=None, top_p=None):
    """The kernel as the wrapper calls it; returns (chosen, h, last), inputs untouched."""
    h, last = h.copy(), np.array(last, dtype=np.intp)
    for a in (uniforms, *p.values()):
        a.flags.writeable = False           # the kernel only reads them
    chosen = _kernels.generate(h, last, uniforms, np.ascontiguousarray(p["Whx"].T), p["Whh"],
                               p["Wyh"], p["bh"].ravel(), p["by"].ravel(), temperature,
                               top_k or 0, 1.0 if top_p is None else top_p)
    return chosen, h, last


def both(V, H, B, n, dtype, seed=0, last=None, **options):
    """Kernel and twin from the same start and uniforms; checks they agree; returns chosen."""
    p = parameters(V, H, dtype, seed)
    rng = np.random.default_rng(seed + 1)
    h = (0.5 * rng.standard_normal((B, H))).astype(dtype)
    last = rng.integers(V, size=B) if last is None else np.asarray(last)
    uniforms = rng.random((n, B))
    chosen, h_k, last_k = kernel(h, last, uniforms, p, **options)
    expected, h_r, last_r = ref.generate_steps(h, last, uniforms, **p, **options)
    assert chosen.dtype == np.intp and chosen.shape == (n, B)
    np.testing.assert_array_equal(chosen, expected)
    np.testing.assert_array_equal(last_k, last_r)
    np.testing.assert_allclose(h_k, h_r, rtol=0, atol=STATE_TOL[dtype])
    assert h_k.dtype == dtype
    return chosen


OPTIONS = [dict(), dict(temperature=0.0), dict(temperature=1e-300), dict(temperature=0.5),
           dict(temperature=50.0), dict(top_k=1), dict(top_k=3), dict(top_k=7),
           dict(top_k=100), dict(top_p=1e-12), dict(top_p=0.3), dict(top_p=0.9),
           dict(top_p=1.0), dict(temperature=0.7, top_k=4, top_p=0.8)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(
    f"{k}{v}" for k, v in o.items()) or "default")
def test_kernel_picks_the_twins_characters(dtype, B, options):
    chosen = both(7, 13, B, 60, dtype, **options)
    assert 0 <= chosen.min() and chosen.max() < 7
    if options in (dict(), dict(temperature=50.0)):
        assert len(np.unique(chosen)) > 3         # it draws, not a fixed path


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 1, 1), (1, 5, 2), (65, 64, 1), (65, 129, 2),
                                   (3, 256, 1), (300, 8, 2)],
                         ids=lambda s: "V{}-H{}-B{}".format(*s))
def test_odd_sizes(dtype, shape):
    V, H, B = shape
    both(V, H, B, 25, dtype)
    both(V, H, B, 25, dtype, top_k=2, top_p=0.7, temperature=0.8)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1])
def test_zero_and_one_step(dtype, n):
    chosen = both(5, 6, 2, n, dtype)
    assert chosen.shape == (n, 2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_edge_values_of_the_options_are_greedy_or_off(dtype):
    V, H, B, n = 9, 11, 6, 80
    greedy = both(V, H, B, n, dtype, temperature=0.0)
    np.testing.assert_array_equal(both(V, H, B, n, dtype, top_k=1), greedy)
    np.testing.assert_array_equal(both(V, H, B, n, dtype, top_p=1e-12), greedy)
    np.testing.assert_array_equal(both(V, H, B, n, dtype, temperature=1e-300),
                                  greedy)
    assert len(np.unique(greedy[0])) > 2          # the streams start apart
    drawn = both(V, H, B, n, dtype)
    assert (drawn != greedy).any()
    for off in (dict(top_k=V), dict(top_k=V + 4), dict(top_p=1.0), dict(top_k=V, top_p=1.0)):
        np.testing.assert_array_equal(both(V, H, B, n, dtype, **off), drawn)
    # restricting does change the draws
    assert (both(V, H, B, n, dtype, top_k=2) != drawn).any()
    assert (both(V, H, B, n, dtype, top_p=0.5) != drawn).any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_ties_go_to_the_lower_index(dtype):
    V, H, B, n = 6, 5, 2, 60
    p = parameters(V, H, dtype)
    p["Wyh"][:] = 0                               # logits = by exactly, every step
    p["by"][:, 0] = [0.5, 1, 1, 0, 1, 0.5]        # three-way tie at the top
    h = np.zeros((B, H), dtype)
    uniforms = np.random.default_rng(3).random((n, B))
    # weights e^-.5, 1, 1, e^-1, 1, e^-.5 (sum 4.58): top_p 0.2 keeps one, 0.3 two, 0.5 three
    for options, allowed in ((dict(temperature=0.0), {1}), (dict(top_k=1), {1}),
                             (dict(top_k=2), {1, 2}), (dict(top_k=4), {0, 1, 2, 4}),
                             (dict(top_p=0.2), {1}), (dict(top_p=0.3), {1, 2}),
                             (dict(top_p=0.5), {1, 2, 4}), (dict(), set(range(V)))):
        chosen, _, _ = kernel(h, [1, 4], uniforms, p, **options)
        expected, _, _ = ref.generate_steps(h, [1, 4], uniforms, **p, **options)
        np.testing.assert_array_equal(chosen, expected)
        assert set(chosen.ravel()) == allowed, options


@pytest.mark.parametrize("dtype", DTYPES)
def test_no_input_yet_draws_the_first_character_uniformly(dtype):
    V, H, B, n = 5, 4, 3, 30
    chosen = both(V, H, B, n, dtype, last=[-1] * B, temperature=0.0, top_k=1)
    rng = np.random.default_rng(1)
    rng.standard_normal((B, H))
    uniforms = rng.random((n, B))
    np.testing.assert_array_equal(chosen[0], np.floor(uniforms[0] * V).astype(np.intp))


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_state_carries_across_calls(dtype):
    V, H, B = 7, 10, 2
    p = parameters(V, H, dtype)
    rng = np.random.default_rng(5)
    h0 = rng.standard_normal((B, H)).astype(dtype)
    uniforms = rng.random((50, B))
    whole, h_whole, last_whole = kernel(h0, [2, 3], uniforms, p, top_p=0.9)
    h, last = h0.copy(), np.array([2, 3], dtype=np.intp)
    parts = []
    for lo, hi in ((0, 1), (1, 17), (17, 17), (17, 50)):
        parts.append(_kernels.generate(h, last, uniforms[lo:hi], np.ascontiguousarray(p["Whx"].T),
                                       p["Whh"], p["Wyh"], p["bh"].ravel(), p["by"].ravel(),
                                       1.0, 0, 0.9))
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    np.testing.assert_array_equal(h, h_whole)
    np.testing.assert_array_equal(last, last_whole)


def test_the_kernel_leaves_its_inputs_alone():
    p = parameters(6, 8, np.float64)
    before = {k: v.copy() for k, v in p.items()}
    h = np.random.default_rng(0).standard_normal((2, 8))
    uniforms = np.random.default_rng(1).random((10, 2))
    u_before, h_before = uniforms.copy(), h.copy()
    kernel(h, [0, 1], uniforms, p)
    for k in p:
        np.testing.assert_array_equal(p[k], before[k])
    np.testing.assert_array_equal(uniforms, u_before)
    np.testing.assert_array_equal(h, h_before)


# -- the rule of one draw, worked by hand ----------------------------------------------------

def test_pick_index_is_the_inverse_cdf_in_index_order():
    logits = np.log([1.0, 1.0, 2.0])              # probabilities 1/4, 1/4, 1/2
    assert [ref.pick_index(logits, u) for u in (0.0, 0.2, 0.3, 0.45, 0.55, 0.99)] == \
        [0, 0, 1, 1, 2, 2]
    assert ref.pick_index(logits, 0.3, temperature=0) == 2
    assert ref.pick_index(np.zeros(4), 0.7) == 2               # uniform: floor(4 u)
    # temperature 2: weights sqrt(1, 1, 2)
    w = np.sqrt([1.0, 1.0, 2.0])
    u = (w[0] + 0.5 * w[1]) / w.sum()
    assert ref.pick_index(logits, u, temperature=2.0) == 1


def test_pick_index_top_k_and_top_p_by_hand():
    logits = np.log([0.1, 0.4, 0.2, 0.3])
    # top 2: indices 1 and 3, weights 0.4, 0.3 -> index order cumulative 0.4, 0.7
    assert ref.pick_index(logits, 0.5, top_k=2) == 1
    assert ref.pick_index(logits, 0.6, top_k=2) == 3
    assert ref.pick_index(logits, 0.99, top_k=1) == 1
    # top_p 0.6: 0.4 then 0.4 + 0.3 = 0.7 >= 0.6 -> {1, 3}; 0.35 -> {1}; 0.71 -> {1, 3, 2}
    assert ref.pick_index(logits, 0.6, top_p=0.6) == 3
    assert ref.pick_index(logits, 0.99, top_p=0.35) == 1
    assert ref.pick_index(logits, 0.0, top_p=0.71) == 1
    assert ref.pick_index(logits, 0.45, top_p=0.71) == 2       # cumulative .4 .6 .9 of .9
    assert ref.pick_index(logits, 0.05, top_p=1.0) == 0
    # equal logits: top_k keeps the lower indices
    assert {ref.pick_index(np.zeros(5), u, top_k=2) for u in np.linspace(0, 0.99, 20)} == {0, 1}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("last", [[-1], [2]], ids=["no-input", "input"])
def test_a_uniform_on_a_boundary_goes_to_the_next_character(dtype, last):
    # four equal weights: running sums 1, 2, 3, 4 against u * 4; "exceeds" is strict
    p = parameters(4, 3, dtype)
    p["Wyh"][:] = 0
    p["by"][:] = 0
    uniforms = np.array([[0.0], [0.25], [0.5], [0.75], [0.999]])
    chosen, _, _ = kernel(np.zeros((1, 3), dtype), last, uniforms, p)
    np.testing.assert_array_equal(chosen[:, 0], [0, 1, 2, 3, 3])
    expected, _, _ = ref.generate_steps(np.zeros((1, 3), dtype), last, uniforms, **p)
    np.testing.assert_array_equal(chosen, expected)
