#!/usr/bin/env python3
"""Fuzz rnnfast's public API with Hypothesis: hostile inputs, crashes, wrong answers.

Usage (with the Python of an environment where rnnfast is *installed*, started
from a directory outside the source tree so that the installed package, not the
uncompiled source folder, is imported)::

    python tools/fuzz_api.py --minutes 5
    python tools/fuzz_api.py --minutes 1 --targets forward,rnn --report out.json

Targets: forward (rnn_forward + rnn_backward + ForwardCache), cell
(rnn_cell_forward + rnn_cell_backward), loss (rnn_loss), model (RNNModel
forward/predict/loss_and_grads), model_io (RNNModel.save/load), rnn
(rnnfast.RNN forward/backward/load_state_dict), optim (SGD, Adam, Adagrad,
clip_grad_norm, clip_grad_value) and cli (python -m rnnfast demo/train/sample).

How it works
------------
The parent process runs the targets one at a time, round-robin, each in a
child process (``--worker``) for a slice of the time, until the time is up.
A child runs Hypothesis rounds on its target.  Every example builds its
inputs by executing Python source lines, so the lines *are* the reproducer;
it then calls the API and checks:

* exceptions: only ValueError, TypeError, KeyError and MemoryError are
  acceptable (plus IndexError when indexing a ForwardCache, FileNotFoundError
  from RNNModel.load, SystemExit from the command line), and only for
  invalid input; a valid input must not raise at all, and an invalid one
  must not be accepted silently;
* results of valid calls against ``rnnfast.reference`` (or, for the parts the
  reference lacks -- rnn_loss, RNNModel, rnnfast.RNN, the optimizers --
  NumPy oracles written here on top of it): float64 results within
  ``1e-9 x`` the largest magnitude, float32 within ``1e-5 x``, widened by
  100 times the reference's own disagreement with a higher-precision run of
  itself (longdouble, or float64 for float32 results), so that chaotic or
  ill-conditioned examples are not reported.  NaN and +-Inf must appear
  where the reference has them (at positions where both reference
  precisions agree), and nowhere else;
* inputs are never mutated (byte-for-byte comparison of every argument);
* crashes and hangs: before every API call the child writes the example's
  source to a file, and faulthandler is on (with a watchdog for hangs); when
  the child dies the parent reports that example and re-runs it alone to
  confirm.

Each failure has a signature (target, kind, exception type and the raising
line inside rnnfast, or the output that differs).  Hypothesis shrinks every
failure; the shortest reproducer seen for each signature is kept, and a
signature found once is muted in later rounds so the search moves on.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import faulthandler
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import types
import warnings

import numpy as np

ALLOWED = (ValueError, TypeError, KeyError, MemoryError)
RTOL64 = 1e-9
RTOL32 = 1e-5
COND_SLACK = 100.0
EXPLICIT_MAX = 24          # arrays up to this size get explicit values (better shrinking)
HANG_SECONDS = 60          # one API call taking longer than this is reported as a hang
SHRINK_GRACE = 20          # seconds a child may keep shrinking after its slice
EXAMPLES_PER_ROUND = 150
ROUND_EXAMPLES = {"cli": 25, "model_io": 60, "rnn": 80}
TARGETS = ("forward", "cell", "loss", "model", "model_io", "rnn", "optim", "cli")
HEADER = ["import collections, json, os, tempfile, types", "import numpy as np", "import rnnfast"]

NAMES = ("Whx", "Whh", "Wyh", "bh", "by")
SPECIALS = (math.nan, math.inf, -math.inf, 0.0, -0.0, 1e308, -1e308, 5e-324, 1e-310, 65504.0,
            3.4e38, 1e20, -1e20)
HUGE = (1e300, -1e300, 1e200, -1e200, 1.7e308, -1.7e308)
REGIMES = ("moderate", "moderate", "moderate", "special", "huge", "tiny")
OK_DTYPES = ("float64", "float32", "float16", ">f8", ">f4", "int8", "int64", "uint8", "uint64",
             "bool", "longdouble")
BAD_DTYPES = ("complex128", "complex64", "object", "<U8", "datetime64[D]")
LAYOUTS = ("c", "c", "c", "c", "f", "neg", "strided", "readonly", "unaligned", "broadcast",
           "list", "matrix")


# =============================================================================
# worker side: recording failures
# =============================================================================

class W:
    """State of a worker process."""
    target = None
    examples = 0
    failures = {}
    muted = set()
    muted_hits = collections.Counter()
    current_path = None
    crash_file = None
    stop_at = 0.0
    tmpdir = None
    ctx = None


class FuzzFailure(Exception):
    """Raised (as a per-signature subclass) so Hypothesis shrinks each failure separately."""


class Muted(Exception):
    """A failure whose signature is already known: end the example quietly."""


_FAILURE_TYPES = {}


def _failure_type(sig):
    t = _FAILURE_TYPES.get(sig)
    if t is None:
        t = _FAILURE_TYPES[sig] = type(f"Failure{len(_FAILURE_TYPES)}", (FuzzFailure,), {})
    return t


def _short(exc, n=300):
    s = f"{exc}"
    return s if len(s) <= n else s[:n] + "..."


def fail(ctx, kind, detail, message, exc=None, note=None):
    """Record a failure of the current example and end it."""
    sig = " | ".join([ctx.target, kind] + [str(d) for d in detail])
    if sig in W.muted:
        W.muted_hits[sig] += 1
        raise Muted()
    code = ctx.source()
    if exc is not None:
        code += f"\n# -> {type(exc).__name__}: {_short(exc)}"
    else:
        code += f"\n# -> {message}"
    if note:
        code += "\n" + note
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-2500:] \
        if exc is not None else ""
    rec = W.failures.get(sig)
    if rec is None:
        rec = W.failures[sig] = {"sig": sig, "target": ctx.target, "kind": kind,
                                 "message": message, "code": code, "traceback": tb, "count": 0}
    rec["count"] += 1
    if len(code) < len(rec["code"]):
        rec.update(code=code, message=message, traceback=tb)
    raise _failure_type(sig)(message)


def origin(exc):
    """Where ``exc`` was raised: the innermost frame inside rnnfast, else the innermost."""
    frames = traceback.extract_tb(exc.__traceback__)
    pick = None
    for fr in frames:
        if f"{os.sep}rnnfast{os.sep}" in fr.filename:
            pick = fr
    if pick is None and frames:
        pick = frames[-1]
    return f"{os.path.basename(pick.filename)}:{pick.lineno} in {pick.name}" if pick else "?"


class Ctx:
    """One example: Python source lines executed in a namespace (the reproducer)."""

    def __init__(self, target):
        W.ctx = self
        self.target = target
        self.lines = list(HEADER)
        self.ns = {"np": np, "rnnfast": rnnfast, "collections": collections, "types": types,
                   "os": os, "json": json, "tempfile": tempfile}

    def run(self, code):
        self.lines.append(code)
        exec(compile(code, "<fuzz>", "exec"), self.ns)

    def attempt(self, code):
        """Run an API call; return the exception it raised, or None."""
        self.lines.append(code)
        with open(W.current_path, "w") as f:
            f.write(self.source() + "\n")
        faulthandler.dump_traceback_later(HANG_SECONDS, exit=True, file=W.crash_file)
        try:
            exec(compile(code, "<fuzz>", "exec"), self.ns)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - SystemExit too: it is judged
            return exc
        finally:
            faulthandler.cancel_dump_traceback_later()
        return None

    def __getitem__(self, name):
        return self.ns[name]

    def source(self):
        return "\n".join(self.lines)


def judge(ctx, exc, valid, expected=None, allowed=ALLOWED, what=""):
    """Judge the outcome of one call.

    ``valid`` True: must not raise; False: must raise an allowed exception (of
    type ``expected`` when given); None: either, but only allowed exceptions.
    """
    if exc is None:
        if valid is False:
            fail(ctx, "accepted-invalid", [what],
                 f"invalid input ({what}) accepted without an exception")
        return
    if isinstance(exc, MemoryError):
        return
    if not isinstance(exc, allowed):
        fail(ctx, "exception", [type(exc).__name__, origin(exc)],
             f"{type(exc).__name__} (not an allowed exception): {_short(exc)}", exc)
    if valid is True:
        fail(ctx, "rejected-valid", [type(exc).__name__, origin(exc)],
             f"valid input rejected with {type(exc).__name__}: {_short(exc)}", exc)
    if expected is not None and not isinstance(exc, expected):
        names = expected.__name__ if isinstance(expected, type) else \
            "/".join(e.__name__ for e in expected)
        fail(ctx, "contract", [what, type(exc).__name__, f"expected {names}"],
             f"{what}: raised {type(exc).__name__}, documented {names}: {_short(exc)}", exc)


# -- snapshots (mutation checks) -----------------------------------------------

def snapshot(obj, depth=0):
    if isinstance(obj, np.ndarray):
        return ("nd", type(obj).__name__, obj.shape, obj.dtype.str, obj.tobytes())
    if isinstance(obj, (dict, types.MappingProxyType)):
        return ("map", [(repr(k), snapshot(v, depth + 1)) for k, v in obj.items()])
    if isinstance(obj, (list, tuple)) and depth < 6:
        return ("seq", type(obj).__name__, [snapshot(v, depth + 1) for v in obj])
    if isinstance(obj, (int, float, complex, str, bytes, type(None), bool)):
        return ("val", repr(obj))
    return ("obj", type(obj).__name__, id(obj))


def check_unmutated(ctx, before, objs):
    for name, obj in objs.items():
        if snapshot(obj) != before[name]:
            fail(ctx, "mutated-input", [name], f"the call changed its argument {name}")


def snap_all(objs):
    return {name: snapshot(obj) for name, obj in objs.items()}


# =============================================================================
# worker side: generating inputs
# =============================================================================

def _strategies():
    global st, given, settings, HealthCheck, Phase, Verbosity, hseed
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings  # noqa: F401
    from hypothesis import seed as hseed  # noqa: F401
    from hypothesis import strategies as st  # noqa: F401


def elements(regime):
    moderate = st.floats(-2.0, 2.0, allow_nan=False, allow_infinity=False)
    if regime == "moderate":
        return moderate
    if regime == "special":
        return st.one_of(moderate, moderate, st.sampled_from(SPECIALS))
    if regime == "huge":
        return st.one_of(st.sampled_from(HUGE),
                         st.floats(-1e300, 1e300, allow_nan=False, allow_infinity=False), moderate)
    return st.one_of(st.just(0.0), st.floats(-1e-300, 1e-300, allow_nan=False,
                                              allow_infinity=False))


SCALES = {"moderate": (0.1, 0.5, 1.0), "special": (0.1, 1.0), "huge": (1e150, 1e300),
          "tiny": (1e-300, 1e-310)}


def array_spec(shape, regime, dtype, layouts=LAYOUTS):
    shape = tuple(int(s) for s in shape)
    size = math.prod(shape)

    if dtype == "object":
        layouts = tuple(lay for lay in layouts if lay != "list") or ("c",)

    @st.composite
    def spec(draw):
        s = {"shape": shape, "dtype": dtype, "layout": draw(st.sampled_from(layouts))}
        if size <= EXPLICIT_MAX:
            s["vals"] = draw(st.lists(elements(regime), min_size=size, max_size=size))
        else:
            s["seed"] = draw(st.integers(0, 999))
            s["scale"] = draw(st.sampled_from(SCALES[regime]))
            s["overlay"] = draw(st.lists(st.tuples(st.integers(0, size - 1),
                                                   st.sampled_from(SPECIALS)), max_size=2)) \
                if regime == "special" else []
        return s
    return spec()


def flit(v):
    if math.isnan(v):
        return "np.nan"
    if math.isinf(v):
        return "np.inf" if v > 0 else "-np.inf"
    return repr(float(v))


def literal(vals, dtype):
    dt = np.dtype(dtype)
    k = dt.kind
    if k in "fO":
        items = [flit(v) for v in vals]
    elif k in "iu":
        info = np.iinfo(dt)
        items = []
        for v in vals:
            v = 2 * v if math.isfinite(v) else 0.0
            i = int(v) if abs(v) < 1e30 else (int(info.max) if v > 0 else int(info.min))
            items.append(str(min(max(i, int(info.min)), int(info.max))))
    elif k == "b":
        items = ["True" if v > 0 else "False" for v in vals]
    elif k == "c":
        items = [f"complex({flit(v)}, 0.5)" for v in vals]
    elif k == "U":
        items = [repr(repr(float(v))[:8]) for v in vals]
    else:  # datetime
        items = [repr(f"2020-01-{1 + i % 28:02d}") for i in range(len(vals))]
    return "[" + ", ".join(items) + "]"


def apply_layout(ctx, name, layout, shape, dt):
    nd, size = len(shape), math.prod(shape)
    if layout == "f" and nd >= 2:
        ctx.run(f"{name} = np.asfortranarray({name})")
    elif layout == "neg" and nd >= 1:
        ctx.run(f"{name} = np.flip(np.flip({name}).copy())")
    elif layout == "strided" and nd >= 1:
        ctx.run(f"{name} = np.repeat({name}, 2, axis=-1)[..., ::2]")
    elif layout == "readonly":
        ctx.run(f"{name}.flags.writeable = False")
    elif layout == "unaligned" and nd >= 1 and size > 0 and dt.kind not in "OUM" \
            and dt.itemsize > 1:
        ctx.run(f"{name} = np.frombuffer(bytearray(b'\\x00' + {name}.tobytes()), "
                f"dtype={name}.dtype, offset=1).reshape({name}.shape)")
    elif layout == "broadcast" and nd >= 1 and shape[0] >= 1:
        ctx.run(f"{name} = np.broadcast_to({name}[:1], {name}.shape)")
    elif layout == "list":
        ctx.run(f"{name} = {name}.tolist()")
    elif layout == "matrix" and nd == 2:
        ctx.run(f"{name} = np.asmatrix({name})")


def emit_array(ctx, name, spec):
    shape, dtype = spec["shape"], spec["dtype"]
    dt = np.dtype(dtype)
    if "vals" in spec:
        ctx.run(f"{name} = np.array({literal(spec['vals'], dtype)}, dtype={dtype!r})"
                f".reshape({shape!r})")
    else:
        rng = f"np.random.default_rng({spec['seed']})"
        if dt.kind in "iu":
            expr = f"{rng}.integers({0 if dt.kind == 'u' else -3}, 4, size={shape!r}).astype({dtype!r})"
        elif dt.kind == "b":
            expr = f"{rng}.integers(0, 2, size={shape!r}).astype(bool)"
        elif dt.kind == "M":
            expr = f"np.zeros({shape!r}, dtype={dtype!r})"
        else:
            expr = f"({rng}.standard_normal({shape!r}) * {spec['scale']!r}).astype({dtype!r})"
        ctx.run(f"{name} = {expr}")
        if dt.kind == "f":
            for i, v in spec.get("overlay", ()):
                ctx.run(f"{name}.flat[{i}] = {flit(v)}")
    apply_layout(ctx, name, spec["layout"], shape, dt)


def pick_dtype(draw, mode):
    if mode == "f64":
        return "float64"
    if mode == "f32":
        return "float32"
    if mode == "mixed":
        return draw(st.sampled_from(("float64", "float32")))
    return draw(st.sampled_from(OK_DTYPES))


def dims_strategy(keys=("n_x", "n_h", "n_y", "m", "T")):
    @st.composite
    def dims(draw):
        d = {k: draw(st.integers(1, 3)) for k in keys}
        r = draw(st.integers(0, 9))
        if r == 0:      # one larger dimension (blocked products, BLAS paths)
            k = draw(st.sampled_from(keys))
            d[k] = draw(st.sampled_from((5, 8, 31, 32, 33, 64, 65)))
        elif r == 1 and "m" in d:    # m == 1: hand-written products up to n_h = 64
            d["m"] = 1
            d["n_h"] = draw(st.sampled_from((31, 32, 33, 63, 64, 65)))
        return d
    return dims()


# =============================================================================
# reference helpers
# =============================================================================

def conv(v, dt):
    return np.asarray(v, dtype=dt)


def params_as(P, dt):
    return {k: conv(P[k], dt) for k in NAMES}


def is_f32(v):
    return np.asarray(v).dtype == np.dtype(np.float32) if not isinstance(v, np.ndarray) \
        else v.dtype == np.dtype(np.float32)


def expected_dtypes(values):
    """Documented result dtype: float32 when every input is float32, float64 otherwise."""
    dts = [v.dtype if isinstance(v, np.ndarray) else np.asarray(v).dtype for v in values]
    if all(d == np.dtype(np.float32) for d in dts):
        return (np.dtype(np.float32),)
    if all(d.kind == "f" and d.itemsize == 4 for d in dts):   # byte-swapped float32 too
        return (np.dtype(np.float32), np.dtype(np.float64))
    return (np.dtype(np.float64),)


def _cls(z):
    return np.where(np.isnan(z), 3, np.where(np.isposinf(z), 1, np.where(np.isneginf(z), 2, 0)))


def call_scale(*arrays):
    """Largest finite magnitude among the reference results of one call."""
    m = 0.0
    for a in arrays:
        a = np.asarray(a, dtype=np.float64)
        f = a[np.isfinite(a)]
        if f.size:
            m = max(m, float(np.abs(f).max()))
    return m


def compare(ctx, what, got, ref, alt, rtol, regime="", check_code=None, tag="", floor=0.0):
    """rnnfast's ``got`` against the reference ``ref``; ``alt`` estimates ref's own error."""
    with np.errstate(all="ignore"):
        g = np.asarray(got, dtype=np.float64)
        r = np.asarray(ref, dtype=np.float64)
        a = np.asarray(alt, dtype=np.float64)
        if g.shape != r.shape:
            fail(ctx, "wrong-shape", [what], f"{what}: shape {g.shape}, reference {r.shape}",
                 note=check_code)
        cg, cr, ca = _cls(g), _cls(r), _cls(a)
        robust = cr == ca
        bad = robust & (cg != cr)
        if bad.any():
            i = tuple(int(j) for j in np.argwhere(bad)[0])
            kind = "nan-lost" if cr[i] == 3 else ("nan-spurious" if cg[i] == 3 else "inf-mismatch")
            if "(mutate_h)" in what:
                kind, regime = "aliasing", "rnn_backward sees in-place edits of the h returned by rnn_forward"
                what = ""
            fail(ctx, kind, ([what, regime] if what else [regime]) + ([tag] if tag else []),
                 f"{what}{list(i)}: rnnfast {g[i]!r}, reference {r[i]!r}", note=check_code)
        fin = robust & (cr == 0) & (cg == 0)
        if fin.any():
            err = np.abs(g - r)[fin]
            scale = max(np.abs(r[fin]).max(), floor)
            cond = np.abs(r - a)[fin].max()
            tol = rtol * scale + COND_SLACK * cond + 1e-300
            if not err.max() <= tol:
                i = tuple(int(j) for j in np.argwhere(fin)[int(np.argmax(err))])
                fail(ctx, *(("aliasing", ["rnn_backward sees in-place edits of the h returned by rnn_forward"])
                            if "(mutate_h)" in what else ("wrong-value", [what, str(np.asarray(got).dtype)] + ([tag] if tag else []))),
                     f"{what}{list(i)}: rnnfast {g[i]!r}, reference {r[i]!r} (max error "
                     f"{err.max():.3g} > tolerance {tol:.3g}; largest |reference| {scale:.3g})",
                     note=check_code)


def ref_pair(out_dtype, f64, ld, f32):
    """(reference, its error estimate, rtol) for a result of ``out_dtype``."""
    if np.dtype(out_dtype) == np.float32:
        return f64(), f32(), RTOL32
    return f64(), ld(), RTOL64


# =============================================================================
# target: forward / cell  (rnn_forward, rnn_backward, rnn_cell_forward, rnn_cell_backward)
# =============================================================================

FWD_DEFECTS = ("none",) * 10 + ("shape", "ndim", "zero", "bad_dtype", "container",
                                "param_missing", "param_container")
CONTAINERS = (("None", TypeError), ("1.5", ValueError), ("[[1.0, 2.0], [3.0]]", TypeError),
              ("'abc'", TypeError), ("{}", TypeError))


def shapes_for(d, cell):
    x = (d["n_x"], d["m"]) if cell else (d["n_x"], d["m"], d["T"])
    return {"x": x, "h0": (d["n_h"], d["m"]), "Whx": (d["n_h"], d["n_x"]),
            "Whh": (d["n_h"], d["n_h"]), "Wyh": (d["n_y"], d["n_h"]),
            "bh": (d["n_h"], 1), "by": (d["n_y"], 1)}


def fwd_case(cell, defects=FWD_DEFECTS):
    @st.composite
    def case(draw):
        d = draw(dims_strategy())
        defect = draw(st.sampled_from(defects))
        c = {"dims": d, "defect": defect, "detail": "", "expected": None, "overrides": {},
             "pcontainer": draw(st.sampled_from(("dict", "dict", "dict", "ordered", "proxy",
                                                 "extra"))),
             "missing": None}
        if defect == "zero":
            k = draw(st.sampled_from(("n_x", "n_h", "n_y", "m") + (() if cell else ("T",))))
            d[k] = 0
            c["expected"], c["detail"] = ValueError, k
        shapes = shapes_for(d, cell)
        arrays = list(shapes)
        if defect == "shape":
            name = draw(st.sampled_from(arrays))
            ax = draw(st.integers(0, len(shapes[name]) - 1))
            if name == "x" and ax == 2:
                ax = 0                      # x's T_x is free: not a defect
            s = list(shapes[name])
            s[ax] = s[ax] + 1 if (s[ax] == 0 or draw(st.booleans())) else s[ax] - 1
            shapes[name] = tuple(s)
            c["expected"], c["detail"] = ValueError, f"{name} axis {ax}"
        elif defect == "ndim":
            name = draw(st.sampled_from(arrays))
            how = draw(st.sampled_from(("add", "drop")))
            shapes[name] = shapes[name] + (1,) if how == "add" else shapes[name][:-1]
            c["expected"], c["detail"] = ValueError, f"{name} {how} axis"
        regime = draw(st.sampled_from(REGIMES))
        mode = draw(st.sampled_from(("f64", "f64", "f32", "mixed", "odd")))
        dtypes = {n: pick_dtype(draw, mode) for n in arrays}
        if defect == "bad_dtype":
            name = draw(st.sampled_from(arrays))
            dtypes[name] = draw(st.sampled_from(BAD_DTYPES))
            c["expected"], c["detail"] = TypeError, f"{name} {dtypes[name]}"
        c["specs"] = {n: draw(array_spec(shapes[n], regime, dtypes[n])) for n in arrays}
        if defect == "container":
            name = draw(st.sampled_from(arrays))
            expr, exp = draw(st.sampled_from(CONTAINERS))
            c["overrides"][name] = expr
            c["expected"], c["detail"] = exp, f"{name} = {expr}"
        elif defect == "param_missing":
            c["missing"] = draw(st.sampled_from(NAMES))
            c["expected"], c["detail"] = KeyError, c["missing"]
        elif defect == "param_container":
            c["pcontainer"] = draw(st.sampled_from(("list", "tuple", "none", "str")))
            c["expected"], c["detail"] = TypeError, c["pcontainer"]
        c.update(regime=regime, mode=mode, shapes=shapes, valid=defect == "none")
        return c
    return case()


def emit_params(ctx, pcontainer, missing=None, name="parameters"):
    keys = [k for k in NAMES if k != missing]
    body = ", ".join(f"{k!r}: {k}" for k in keys)
    code = {"dict": "{" + body + "}",
            "ordered": "collections.OrderedDict({" + body + "})",
            "proxy": "types.MappingProxyType({" + body + "})",
            "extra": "{" + body + ", 'Wya': 'not a parameter', 'by ': None}",
            "list": "[" + ", ".join(keys) + "]",
            "tuple": "(" + ", ".join(keys) + ",)",
            "none": "None",
            "str": "'Whx Whh Wyh bh by'"}[pcontainer]
    ctx.run(f"{name} = {code}")


def build_case(ctx, c):
    for n in c["specs"]:
        if n in c["overrides"]:
            ctx.run(f"{n} = {c['overrides'][n]}")
        else:
            emit_array(ctx, n, c["specs"][n])
    emit_params(ctx, c["pcontainer"], c["missing"])


CHECK_FWD = """# check against the NumPy reference:
P64 = {k: np.asarray(parameters[k], dtype=np.float64) for k in ('Whx', 'Whh', 'Wyh', 'bh', 'by')}
ref = rnnfast.reference.%s(np.asarray(x, dtype=np.float64), np.asarray(h0, dtype=np.float64), P64)
print('h:', h, 'reference:', ref[0], sep='\\n'); print('y:', y, 'reference:', ref[1], sep='\\n')"""


def forward_refs(ctx, cell):
    x, h0, P = ctx["x"], ctx["h0"], ctx["parameters"]
    fn = reference.rnn_cell_forward if cell else reference.rnn_forward
    memo = {}

    def run(dt):
        if dt not in memo:
            with np.errstate(all="ignore"):
                memo[dt] = fn(conv(x, dt), conv(h0, dt), params_as(P, dt))
        return memo[dt]
    return {"f64": lambda: run(np.float64), "ld": lambda: run(np.longdouble),
            "f32": lambda: run(np.float32)}


def t_forward(data, cell=False):
    c = data.draw(fwd_case(cell), label="case")
    ctx = Ctx("cell" if cell else "forward")
    build_case(ctx, c)
    objs = {"x": ctx["x"], "h0": ctx["h0"], "parameters": ctx["parameters"]}
    before = snap_all(objs)
    fn = "rnn_cell_forward" if cell else "rnn_forward"
    exc = ctx.attempt(f"h, y, {'cache' if cell else 'caches'} = rnnfast.{fn}(x, h0, parameters)")
    check_unmutated(ctx, before, objs)
    judge(ctx, exc, c["valid"], c["expected"], what=f"{c['defect']} {c['detail']}".strip())
    if exc is not None:
        return
    refs = forward_refs(ctx, cell)
    check_code = CHECK_FWD % fn
    h, y = ctx["h"], ctx["y"]
    P = ctx["parameters"]
    exp = expected_dtypes([ctx["x"], ctx["h0"]] + [P[k] for k in NAMES])
    for name, a in (("h", h), ("y_pred", y)):
        if type(a) is not np.ndarray or a.dtype not in exp:
            fail(ctx, "dtype", [name, getattr(a, "dtype", type(a).__name__)],
                 f"{name} is {type(a).__name__} of dtype {getattr(a, 'dtype', None)}; "
                 f"documented {[str(e) for e in exp]}")
    ref, alt, rtol = ref_pair(h.dtype, refs["f64"], refs["ld"], refs["f32"])
    compare(ctx, "h", h, ref[0], alt[0], rtol, c["regime"], check_code)
    compare(ctx, "y_pred", y, ref[1], alt[1], rtol, c["regime"], check_code)
    if cell:
        cache = ctx["cache"]
        if not (isinstance(cache, tuple) and len(cache) == 4 and cache[1] is ctx["h0"]
                and cache[2] is ctx["x"] and cache[3] is P):
            fail(ctx, "cache-format", ["cell"], "cell cache is not (h_next, h_prev, xt, parameters)")
        cell_backward_stage(data, ctx, c, refs)
    else:
        check_forward_cache(data, ctx, c, refs, ref, alt, rtol)
        backward_stage(data, ctx, c, refs)


def check_forward_cache(data, ctx, c, refs, ref, alt, rtol):
    T = c["dims"]["T"]
    caches = ctx["caches"]
    if not (isinstance(caches, tuple) and len(caches) == 2 and caches[1] is ctx["x"]):
        fail(ctx, "cache-format", ["caches"], "caches is not the (steps, x) pair with x itself")
    exc = ctx.attempt("n_steps = len(caches[0])")
    judge(ctx, exc, True)
    if ctx["n_steps"] != T:
        fail(ctx, "forwardcache", ["len"], f"len(caches[0]) = {ctx['n_steps']}, T_x = {T}")
    t = data.draw(st.integers(-T, T - 1), label="cache step")
    exc = ctx.attempt(f"step = caches[0][{t}]")
    judge(ctx, exc, True)
    step = ctx["step"]
    if not (isinstance(step, tuple) and len(step) == 4 and step[3] is ctx["parameters"]):
        fail(ctx, "forwardcache", ["item format"], "caches[0][t] is not (h_next, h_prev, xt, parameters)")
    tt = t % T
    compare(ctx, "caches[0][t][0]", step[0], ref[0][:, :, tt], alt[0][:, :, tt], rtol, c["regime"])
    hp_ref = conv(ctx["h0"], np.float64) if tt == 0 else ref[0][:, :, tt - 1]
    hp_alt = conv(ctx["h0"], np.float64) if tt == 0 else alt[0][:, :, tt - 1]
    compare(ctx, "caches[0][t][1]", step[1], hp_ref, hp_alt, rtol, c["regime"])
    xt = conv(ctx["x"], np.float64)[:, :, tt]
    if not np.array_equal(conv(step[2], np.float64), xt, equal_nan=True):
        fail(ctx, "forwardcache", ["xt"], "caches[0][t][2] differs from x[:, :, t]")
    bad = data.draw(st.sampled_from((T, -T - 1, 10**20)), label="bad step")
    exc = ctx.attempt(f"caches[0][{bad}]")
    if not isinstance(exc, IndexError):
        judge(ctx, exc, False, IndexError, allowed=(IndexError,), what="ForwardCache index out of range")


BWD_VARIANTS = ("fast", "fast", "fast", "ref", "ref32", "hybrid", "list_caches", "seed_from_fc",
                "malformed", "malformed", "dh_defect", "twice", "mutate_h", "other_forward")
MALFORMED = (
    ("caches[0]", ValueError), ("(caches[0],)", ValueError),
    ("(caches[0], caches[1], None)", ValueError), ("None", ValueError),
    ("(None, caches[1])", ValueError), ("([], caches[1])", ValueError),
    ("(list(caches[0])[:-1], caches[1])", ValueError),
    ("(list(caches[0]) + [caches[0][0]], caches[1])", ValueError),
    ("([(1, 2, 3)] * len(caches[0]), caches[1])", ValueError),
    ("([None] * len(caches[0]), caches[1])", ValueError),
    ("('abcd'[:len(caches[0])], caches[1])", ValueError),
    ("([(s[0][:, :0], s[1], s[2], s[3]) for s in caches[0]], caches[1])", ValueError),
    ("([(s[0], s[1], s[2], {}) for s in caches[0]], caches[1])", KeyError),
    ("(list(caches[0]), None)", TypeError),
    ("([(s[0].astype(complex), s[1], s[2], s[3]) for s in caches[0]], caches[1])", TypeError),
    ("({0: caches[0][0]}, caches[1])", ValueError),
    ("([(s[0], s[1], s[2], list(s[3].values())) for s in caches[0]], caches[1])", TypeError),
)
REF_CACHE = ("ref_h, ref_y, ref_caches = rnnfast.reference.rnn_forward("
             "np.asarray(x, dtype=np.{dt}), np.asarray(h0, dtype=np.{dt}), "
             "{{k: np.asarray(parameters[k], dtype=np.{dt}) for k in ('Whx', 'Whh', 'Wyh', 'bh', 'by')}})")


def seed_cache_as(caches, dt):
    steps, x = caches
    return ([(conv(a, dt), conv(b, dt), conv(c, dt), params_as(p, dt)) for a, b, c, p in steps],
            conv(x, dt))


def check_grads(ctx, g, keys, shapes, exp_dtypes, label):
    if not isinstance(g, dict) or list(g) != list(keys):
        fail(ctx, "result-format", [label], f"{label} returned keys "
             f"{list(g) if isinstance(g, dict) else type(g).__name__}, expected {list(keys)}")
    for k, s in zip(keys, shapes):
        a = g[k]
        if type(a) is not np.ndarray or a.shape != s:
            fail(ctx, "result-format", [label, k], f"{label}[{k!r}] is "
                 f"{type(a).__name__} {getattr(a, 'shape', None)}, expected shape {s}")
        if exp_dtypes is not None and a.dtype not in exp_dtypes:
            fail(ctx, "dtype", [label, k, str(a.dtype)],
                 f"{label}[{k!r}] has dtype {a.dtype}; documented {[str(e) for e in exp_dtypes]}")


BWD_KEYS = ("dx", "dh0", "dWhx", "dWhh", "dbh")


def backward_stage(data, ctx, c, refs):
    d = c["dims"]
    n_x, n_h, m, T = d["n_x"], d["n_h"], d["m"], d["T"]
    variant = data.draw(st.sampled_from(BWD_VARIANTS), label="backward variant")
    regime = data.draw(st.sampled_from(REGIMES), label="dh regime")
    dt = data.draw(st.sampled_from(("float64", "float64", "float32", "float16", "int64", "bool",
                                    ">f8")), label="dh dtype")
    shape, valid, expected, override, what = (n_h, m, T), True, None, None, variant
    if variant == "dh_defect":
        kind = data.draw(st.sampled_from(("shape", "ndim", "bad_dtype", "container")))
        valid, what = False, f"dh {kind}"
        if kind == "shape":
            ax = data.draw(st.integers(0, 2))
            shape = tuple(s + 1 if i == ax else s for i, s in enumerate(shape))
            expected = ValueError
        elif kind == "ndim":
            shape = shape[:-1] if data.draw(st.booleans()) else shape + (1,)
            expected = ValueError
        elif kind == "bad_dtype":
            dt, expected = data.draw(st.sampled_from(BAD_DTYPES)), TypeError
        else:
            override, expected = data.draw(st.sampled_from(CONTAINERS))
    if override is None:
        emit_array(ctx, "dh", data.draw(array_spec(shape, regime, dt), label="dh"))
    else:
        ctx.run(f"dh = {override}")
    caches_expr = "caches"
    if variant in ("ref", "ref32"):
        ctx.run(REF_CACHE.format(dt="float64" if variant == "ref" else "float32"))
        caches_expr = "ref_caches"
    elif variant == "hybrid":
        xs = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
        emit_array(ctx, "x_other", data.draw(array_spec(xs, "moderate", "float64")))
        caches_expr = "(caches[0], x_other)"
    elif variant == "list_caches":
        caches_expr = "list(caches)"
    elif variant == "seed_from_fc":
        caches_expr = "(list(caches[0]), caches[1])"
    elif variant == "malformed":
        caches_expr, expected = data.draw(st.sampled_from(MALFORMED), label="malformed caches")
        valid, what = False, f"caches = {caches_expr}"
    elif variant == "mutate_h":
        ctx.run("h *= 0.5  # the caller edits the returned h in place (the reference's h is a copy)")
    elif variant == "other_forward":
        # caches of another forward pass (maybe of other sizes): dh fits this one
        d2 = dict(d)
        if data.draw(st.booleans()):
            k = data.draw(st.sampled_from(("n_x", "n_h", "m", "T")))
            d2[k] = d2[k] + 1
        sh = shapes_for(d2, False)
        for n in sh:
            emit_array(ctx, n + "_b", data.draw(array_spec(sh[n], "moderate", "float64", ("c",))))
        ctx.run("parameters_b = {" + ", ".join(f"{k!r}: {k}_b" for k in NAMES) + "}")
        ctx.run("h_b, y_b, caches_b = rnnfast.rnn_forward(x_b, h0_b, parameters_b)")
        caches_expr = "caches_b"
        if (d2["n_h"], d2["m"], d2["T"]) != (n_h, m, T):
            valid, expected, what = False, ValueError, "dh of another forward's shape"
    watch = {"dh": ctx["dh"], "h (forward result)": ctx["h"]}
    if variant in ("ref", "ref32"):
        watch["ref_caches"] = ctx["ref_caches"]
    if variant == "mutate_h":
        watch.pop("h (forward result)")
    before = snap_all(watch)
    exc = ctx.attempt(f"g = rnnfast.rnn_backward(dh, {caches_expr})")
    check_unmutated(ctx, before, watch)
    judge(ctx, exc, valid, expected, what=what)
    if exc is not None:
        return
    g = ctx["g"]
    dh = ctx["dh"]
    # documented dtype: float32 only when dh and the cache's arrays are float32
    if variant in ("ref", "ref32"):
        model32 = variant == "ref32"
        fc = ctx["ref_caches"]
        base_refs = {
            "f64": lambda: reference.rnn_backward(conv(dh, np.float64), seed_cache_as(fc, np.float64)),
            "ld": lambda: reference.rnn_backward(conv(dh, np.longdouble), seed_cache_as(fc, np.longdouble)),
            "f32": lambda: reference.rnn_backward(conv(dh, np.float32), seed_cache_as(fc, np.float32)),
        }
    elif variant == "other_forward":
        model32 = False
        fb = forward_refs_named(ctx, "x_b", "h0_b", "parameters_b")
        base_refs = bwd_refs(dh, fb)
        n_x = d2["n_x"]
    else:
        model32 = ctx["h"].dtype == np.float32
        base_refs = bwd_refs(dh, refs)
        if model32:
            # rnnfast's cache holds float32 states: the reference on the reference's float32
            # states, with the float64-state run as the error estimate, at float32 tolerance
            f32c, f64c = (lambda: refs["f32"]()[2]), (lambda: refs["f64"]()[2])
            base_refs = {"f64": lambda: reference.rnn_backward(conv(dh, np.float64), f32c()),
                         "ld": lambda: reference.rnn_backward(conv(dh, np.float64), f64c()),
                         "f32": lambda: reference.rnn_backward(conv(dh, np.float32), f32c())}
    exp = (np.dtype(np.float32),) if model32 and is_f32(dh) else (np.dtype(np.float64),)
    if model32 and isinstance(dh, np.ndarray) and dh.dtype.kind == "f" and dh.dtype.itemsize == 4:
        exp = (np.dtype(np.float32), np.dtype(np.float64))
    check_grads(ctx, g, BWD_KEYS, ((n_x, m, T), (n_h, m), (n_h, n_x), (n_h, n_h), (n_h, 1)),
                exp, "rnn_backward")
    with np.errstate(all="ignore"):
        ref, alt, rtol = ref_pair(g["dx"].dtype, base_refs["f64"], base_refs["ld"], base_refs["f32"])
        if model32 and variant not in ("ref", "ref32", "other_forward"):
            rtol = RTOL32
            if g["dx"].dtype != np.float32:
                alt = base_refs["ld"]()
    tag = f" ({variant})" if variant in ("mutate_h", "ref", "ref32", "seed_from_fc", "hybrid") else ""
    code = CHECK_BWD + ("\n# note: h was edited in place after the forward pass" if variant == "mutate_h" else "")
    fl = call_scale(*ref.values())
    for k in BWD_KEYS:
        compare(ctx, f"g[{k!r}]{tag}", g[k], ref[k], alt[k], rtol, c["regime"] + "/" + regime, code, floor=fl)
    if variant == "twice":
        exc = ctx.attempt("g2 = rnnfast.rnn_backward(dh, caches)")
        judge(ctx, exc, True)
        for k in BWD_KEYS:
            if not np.array_equal(g[k], ctx["g2"][k], equal_nan=True):
                fail(ctx, "not-repeatable", [k], f"a second rnn_backward on the same caches gives another {k}")


def forward_refs_named(ctx, xn, hn, pn):
    x, h0, P = ctx[xn], ctx[hn], ctx[pn]
    memo = {}

    def run(dt):
        if dt not in memo:
            with np.errstate(all="ignore"):
                memo[dt] = reference.rnn_forward(conv(x, dt), conv(h0, dt), params_as(P, dt))
        return memo[dt]
    return {"f64": lambda: run(np.float64), "ld": lambda: run(np.longdouble),
            "f32": lambda: run(np.float32)}


def bwd_refs(dh, frefs):
    return {k: (lambda k=k, dt=dt: reference.rnn_backward(conv(dh, dt), frefs[k]()[2]))
            for k, dt in (("f64", np.float64), ("ld", np.longdouble), ("f32", np.float32))}


CHECK_BWD = """# check against the NumPy reference:
P64 = {k: np.asarray(parameters[k], dtype=np.float64) for k in ('Whx', 'Whh', 'Wyh', 'bh', 'by')}
_, _, ref_c = rnnfast.reference.rnn_forward(np.asarray(x, dtype=np.float64), np.asarray(h0, dtype=np.float64), P64)
ref = rnnfast.reference.rnn_backward(np.asarray(dh, dtype=np.float64), ref_c)
for k in ref: print(k, np.max(np.abs(g[k] - ref[k])), np.max(np.abs(ref[k])))"""

CELL_BWD_VARIANTS = ("fast", "fast", "ref", "custom", "list", "malformed", "dh_defect")
CELL_MALFORMED = (("cache[:3]", ValueError), ("cache + (None,)", ValueError), ("None", ValueError),
                  ("(cache[0], cache[1], cache[2], {})", KeyError),
                  ("(np.zeros((cache[0].shape[0] + 1, cache[0].shape[1])), cache[1], cache[2], cache[3])", ValueError),
                  ("dict(enumerate(cache))", ValueError), ("'abcd'", ValueError),
                  ("(cache[0], None, cache[2], cache[3])", TypeError),
                  ("(cache[0].astype(complex), cache[1], cache[2], cache[3])", TypeError))


def cell_backward_stage(data, ctx, c, refs):
    d = c["dims"]
    n_x, n_h, m = d["n_x"], d["n_h"], d["m"]
    variant = data.draw(st.sampled_from(CELL_BWD_VARIANTS), label="cell backward variant")
    regime = data.draw(st.sampled_from(REGIMES))
    dt = data.draw(st.sampled_from(("float64", "float64", "float32", "float16", "int64", ">f4")))
    shape, valid, expected, override, what = (n_h, m), True, None, None, variant
    if variant == "dh_defect":
        kind = data.draw(st.sampled_from(("shape", "ndim", "bad_dtype", "container")))
        valid, what = False, f"dh_next {kind}"
        if kind == "shape":
            shape, expected = (n_h + 1, m) if data.draw(st.booleans()) else (n_h, m + 1), ValueError
        elif kind == "ndim":
            shape, expected = (shape + (1,)) if data.draw(st.booleans()) else shape[:1], ValueError
        elif kind == "bad_dtype":
            dt, expected = data.draw(st.sampled_from(BAD_DTYPES)), TypeError
        else:
            override, expected = data.draw(st.sampled_from(CONTAINERS))
    if override is None:
        emit_array(ctx, "dh", data.draw(array_spec(shape, regime, dt)))
    else:
        ctx.run(f"dh = {override}")
    cexpr = "cache"
    if variant == "ref":
        ctx.run("ref_h, ref_y, ref_cache = rnnfast.reference.rnn_cell_forward("
                "np.asarray(x, dtype=np.float64), np.asarray(h0, dtype=np.float64), "
                "{k: np.asarray(parameters[k], dtype=np.float64) for k in ('Whx', 'Whh', 'Wyh', 'bh', 'by')})")
        cexpr = "ref_cache"
    elif variant == "custom":
        hdt = data.draw(st.sampled_from(("float64", "float32", "int8", "bool", "float16")))
        emit_array(ctx, "h_next", data.draw(array_spec((n_h, m), data.draw(st.sampled_from(REGIMES)), hdt)))
        cexpr = "(h_next, h0, x, parameters)"
    elif variant == "list":
        cexpr = "list(cache)"
    elif variant == "malformed":
        cexpr, expected = data.draw(st.sampled_from(CELL_MALFORMED))
        valid, what = False, f"cache = {cexpr}"
    ctx.run(f"cell_cache = {cexpr}")
    watch = {"dh_next": ctx["dh"], "cache": ctx["cell_cache"]}
    before = snap_all(watch)
    exc = ctx.attempt("g = rnnfast.rnn_cell_backward(dh, cell_cache)")
    check_unmutated(ctx, before, watch)
    judge(ctx, exc, valid, expected, what=what)
    if exc is not None:
        return
    g, dh = ctx["g"], ctx["dh"]
    hn, hp, xt, P = ctx["cell_cache"]
    ins = [xt, hp] + [P[k] for k in NAMES]
    all32 = all(is_f32(v) for v in ins + [dh, hn])
    exp = (np.dtype(np.float32),) if all32 else None
    if not all32 and not all(np.asarray(v).dtype.kind == "f" and np.asarray(v).dtype.itemsize == 4
                             for v in ins + [dh, hn]):
        exp = (np.dtype(np.float64),)
    check_grads(ctx, g, ("dxt", "dh_prev", "dWhx", "dWhh", "dbh"),
                ((n_x, m), (n_h, m), (n_h, n_x), (n_h, n_h), (n_h, 1)), exp, "rnn_cell_backward")

    def r(dt):
        with np.errstate(all="ignore"):
            return reference.rnn_cell_backward(conv(dh, dt), (conv(hn, dt), conv(hp, dt),
                                                              conv(xt, dt), params_as(P, dt)))
    ref, alt, rtol = ref_pair(g["dxt"].dtype, lambda: r(np.float64), lambda: r(np.longdouble),
                              lambda: r(np.float32))
    code = ("# check against the NumPy reference:\nf64 = lambda a: np.asarray(a, dtype=np.float64)\n"
            "hn, hp, xt, P = cell_cache\nref = rnnfast.reference.rnn_cell_backward(f64(dh), "
            "(f64(hn), f64(hp), f64(xt), {k: f64(P[k]) for k in ('Whx', 'Whh', 'Wyh', 'bh', 'by')}))\n"
            "for k in ref: print(k, g[k], ref[k], sep='\\n')")
    fl = call_scale(*ref.values())
    for k in ("dxt", "dh_prev", "dWhx", "dWhh", "dbh"):
        compare(ctx, f"g[{k!r}]", g[k], ref[k], alt[k], rtol, c["regime"] + "/" + regime, code, floor=fl)


# =============================================================================
# target: loss (rnn_loss) -- oracle built on the reference
# =============================================================================

def loss_oracle(x, h0, y, P, dt):
    """(loss, grads) of mean softmax cross-entropy, from reference.rnn_forward/rnn_backward."""
    with np.errstate(all="ignore"):
        x, h0, P = conv(x, dt), conv(h0, dt), params_as(P, dt)
        y = np.asarray(y).astype(np.intp)
        n_x, m, T = x.shape
        _, _, caches = reference.rnn_forward(x, h0, P)
        H = np.stack([caches[0][t][0] for t in range(T)], axis=2).astype(dt)    # (n_h, m, T)
        logits = np.einsum("yh,hmt->ymt", P["Wyh"], H) + P["by"][:, :, None]
        top = logits.max(axis=0, keepdims=True)
        e = np.exp(logits - top)
        tot = e.sum(axis=0, keepdims=True)
        tgt = np.take_along_axis(logits, y[None], axis=0)
        loss = ((top - tgt) + np.log(tot)).mean()     # not (top + log) - tgt: keeps log 2 next to 1e300
        p = e / tot
        onehot = np.zeros_like(p)
        np.put_along_axis(onehot, y[None], 1, axis=0)
        dl = (p - onehot) / (m * T)
        dWyh = np.einsum("ymt,hmt->yh", dl, H)
        dby = dl.sum(axis=(1, 2))[:, None]
        dh = np.einsum("yh,ymt->hmt", P["Wyh"], dl)
        g = reference.rnn_backward(dh, caches)
    return loss, {"dWhx": g["dWhx"], "dWhh": g["dWhh"], "dWyh": dWyh, "dbh": g["dbh"],
                  "dby": dby, "dx": g["dx"], "dh0": g["dh0"]}, logits, H


LOSS_KEYS = ("dWhx", "dWhh", "dWyh", "dbh", "dby", "dx", "dh0")


def emit_labels(ctx, name, data, shape, n_classes, dtype="int64"):
    size = math.prod(shape)
    if size <= 64:
        vals = data.draw(st.lists(st.integers(0, max(n_classes - 1, 0)), min_size=size, max_size=size))
        ctx.run(f"{name} = np.array({vals!r}, dtype={dtype!r}).reshape({shape!r})")
    else:
        s = data.draw(st.integers(0, 999))
        ctx.run(f"{name} = np.random.default_rng({s}).integers(0, {max(n_classes, 1)}, "
                f"size={shape!r}).astype({dtype!r})")


LABEL_DEFECTS = ("none",) * 6 + ("high", "negative", "huge", "float", "bool", "transposed",
                                 "flat", "none_value")


def t_loss(data):
    c = data.draw(fwd_case(False, FWD_DEFECTS[:12] + ("zero", "bad_dtype", "param_missing")), label="case")
    ctx = Ctx("loss")
    build_case(ctx, c)
    d = c["dims"]
    m, T, n_y = d["m"], d["T"], d["n_y"]
    defect = data.draw(st.sampled_from(LABEL_DEFECTS), label="label defect")
    ldt = data.draw(st.sampled_from(("int64", "int32", "uint8", "intp", "int8")))
    emit_labels(ctx, "y", data, (m, T), n_y, ldt)
    valid, expected, what = c["valid"], c["expected"], f"{c['defect']} {c['detail']}".strip()
    if defect != "none" and c["valid"]:
        valid, what = False, f"labels {defect}"
        if defect == "high":
            ctx.run(f"y = y.astype(np.int64); y.flat[0] = {n_y}")
            expected = ValueError
        elif defect == "negative":
            ctx.run("y = y.astype(np.int64); y.flat[-1] = -1")
            expected = ValueError
        elif defect == "huge":
            ctx.run("y = y.astype(np.uint64); y.flat[0] = 2**64 - 1")
            expected = ValueError
        elif defect == "float":
            ctx.run("y = y.astype(np.float64)")
            expected = TypeError
        elif defect == "bool":
            ctx.run("y = y > 0")
            expected = TypeError
        elif defect == "transposed":
            if m == T:
                valid, what = True, "valid"
            else:
                ctx.run("y = np.ascontiguousarray(y.T)")
                expected = ValueError
        elif defect == "flat":
            ctx.run("y = y.reshape(-1)")
            expected = ValueError
        else:
            ctx.run("y = None")
            expected = TypeError
    if data.draw(st.booleans()) and valid:
        ctx.run("y = y.tolist()" if data.draw(st.booleans()) else "y = np.asfortranarray(y)")
    objs = {"x": ctx["x"], "h0": ctx["h0"], "parameters": ctx["parameters"], "y": ctx["y"]}
    before = snap_all(objs)
    exc = ctx.attempt("loss, g = rnnfast.rnn_loss(x, h0, y, parameters)")
    check_unmutated(ctx, before, objs)
    judge(ctx, exc, valid, expected, what=what)
    if exc is not None:
        return
    P = ctx["parameters"]
    x, h0, y, loss, g = ctx["x"], ctx["h0"], ctx["y"], ctx["loss"], ctx["g"]
    exp = expected_dtypes([x, h0] + [P[k] for k in NAMES])
    n_x, n_h = d["n_x"], d["n_h"]
    check_grads(ctx, g, LOSS_KEYS, ((n_h, n_x), (n_h, n_h), (n_y, n_h), (n_h, 1), (n_y, 1),
                                    (n_x, m, T), (n_h, m)), exp, "rnn_loss")
    if not isinstance(loss, float):
        fail(ctx, "result-format", ["loss type"], f"loss is {type(loss).__name__}, not float")
    memo = {}

    def orc(dt):
        if dt not in memo:
            memo[dt] = loss_oracle(x, h0, y, P, dt)
        return memo[dt]
    ref, alt, rtol = ref_pair(g["dWhx"].dtype, lambda: orc(np.float64), lambda: orc(np.longdouble),
                              lambda: orc(np.float32))
    code = ("# reference: mean over m*T of logsumexp(Wyh h_t + by) - (Wyh h_t + by)[y], with h from "
            "rnnfast.reference.rnn_forward, gradients through rnnfast.reference.rnn_backward")
    compare(ctx, "loss", loss, ref[0], alt[0], rtol, c["regime"], code)
    fl = call_scale(*ref[1].values())
    for k in LOSS_KEYS:
        compare(ctx, f"g[{k!r}]", g[k], ref[1][k], alt[1][k], rtol, c["regime"], code, floor=fl)


# =============================================================================
# target: model (RNNModel forward / predict / loss_and_grads)
# =============================================================================

CTOR_HOSTILE = (("0", False), ("-1", False), ("1.5", False), ("True", False), ("'3'", False),
                ("None", False), ("np.int64(2)", True), ("np.uint8(3)", True))
DTYPE_HOSTILE = (("'float16'", False), ("'int32'", False), ("'garbage'", False), ("None", True),
                 ("np.float64", True), ("'f4'", True), ("complex", False))
SEED_HOSTILE = (("-1", False), ("'a'", False), ("1.5", False), ("None", True), ("2**70", True))


def t_model(data):
    ctx = Ctx("model")
    d = data.draw(dims_strategy(("n_x", "n_h", "n_y", "m", "T")), label="dims")
    n_x, n_h, n_y, m, T = (d[k] for k in ("n_x", "n_h", "n_y", "m", "T"))
    dtype = data.draw(st.sampled_from(("np.float32", "np.float64")))
    args = {"input_size": str(n_x), "hidden_size": str(n_h), "output_size": str(n_y),
            "dtype": dtype, "seed": str(data.draw(st.integers(0, 5)))}
    valid = True
    if data.draw(st.integers(0, 7)) == 0:
        k = data.draw(st.sampled_from(tuple(args)))
        pool = DTYPE_HOSTILE if k == "dtype" else SEED_HOSTILE if k == "seed" else CTOR_HOSTILE
        args[k], valid = data.draw(st.sampled_from(pool))
    ctor = ("model = rnnfast.RNNModel(" + ", ".join(args[k] for k in ("input_size", "hidden_size", "output_size"))
            + f", dtype={args['dtype']}, seed={args['seed']})")
    exc = ctx.attempt(ctor)
    judge(ctx, exc, valid, what="RNNModel constructor " + ctor)
    if exc is not None:
        return
    model = ctx["model"]
    n_x, n_h, n_y = model.input_size, model.hidden_size, model.output_size
    if math.prod((n_x, n_h, n_y)) > 10**6:
        return
    regime = data.draw(st.sampled_from(REGIMES))
    if data.draw(st.booleans()):
        k = data.draw(st.sampled_from(NAMES))
        emit_array(ctx, "w", data.draw(array_spec(model.parameters[k].shape, regime, "float64")))
        ctx.run(f"model.parameters[{k!r}][...] = w")
    xkind = data.draw(st.sampled_from(("float", "float", "index", "index", "defect")))
    valid, expected, what = True, None, "valid"
    if xkind == "float":
        emit_array(ctx, "X", data.draw(array_spec((m, T, n_x), regime,
                                                  pick_dtype(data.draw, "odd"))))
    elif xkind == "index":
        emit_labels(ctx, "X", data, (m, T), n_x, data.draw(st.sampled_from(("int64", "uint8", "int32"))))
    else:
        kind = data.draw(st.sampled_from(("idx_high", "idx_neg", "width", "ndim1", "ndim4", "bool2d",
                                          "bad_dtype", "zero_T", "None")))
        valid, what = False, f"X {kind}"
        expected = {"idx_high": ValueError, "idx_neg": ValueError, "width": ValueError,
                    "ndim1": ValueError, "ndim4": ValueError, "bool2d": ValueError,
                    "bad_dtype": TypeError, "zero_T": ValueError, "None": TypeError}[kind]
        if kind in ("idx_high", "idx_neg"):
            emit_labels(ctx, "X", data, (m, T), n_x)
            ctx.run(f"X.flat[0] = {n_x if kind == 'idx_high' else -1}")
        elif kind == "width":
            emit_array(ctx, "X", data.draw(array_spec((m, T, n_x + 1), regime, "float64")))
        elif kind == "ndim1":
            emit_labels(ctx, "X", data, (T,), n_x)
        elif kind == "ndim4":
            emit_array(ctx, "X", data.draw(array_spec((m, T, n_x, 1), regime, "float64")))
        elif kind == "bool2d":
            ctx.run(f"X = np.ones(({m}, {T}), dtype=bool)")
        elif kind == "bad_dtype":
            emit_array(ctx, "X", data.draw(array_spec((m, T, n_x), regime, data.draw(st.sampled_from(BAD_DTYPES)))))
        elif kind == "zero_T":
            ctx.run(f"X = np.zeros(({m}, 0), dtype=np.int64)")
        else:
            ctx.run("X = None")
    hkind = data.draw(st.sampled_from(("none", "none", "given", "bad")))
    if hkind == "none":
        ctx.run("h0 = None")
    elif hkind == "given":
        emit_array(ctx, "h0", data.draw(array_spec((m, n_h), regime, pick_dtype(data.draw, "odd"))))
    else:
        emit_array(ctx, "h0", data.draw(array_spec((n_h, m + 1), regime, "float64")))
        if valid:
            valid, expected, what = False, ValueError, "h0 shape"
    method = data.draw(st.sampled_from(("forward", "forward_state", "call", "predict", "loss",
                                        "loss_state")))
    if method.startswith("loss"):
        emit_labels(ctx, "Y", data, (m, T), n_y)
        if data.draw(st.integers(0, 4)) == 0 and valid:
            ctx.run(f"Y.flat[0] = {n_y}")
            valid, expected, what = False, ValueError, "Y out of range"
    call = {"forward": "out = model.forward(X, h0)",
            "forward_state": "out, state = model.forward(X, h0, return_state=True)",
            "call": "out = model(X, h0)",
            "predict": "out = model.predict(X, h0)",
            "loss": "loss, g = model.loss_and_grads(X, Y, h0)",
            "loss_state": "loss, g, state = model.loss_and_grads(X, Y, h0, return_state=True)"}[method]
    objs = {"X": ctx["X"], "h0": ctx["h0"], "parameters": model.parameters}
    if method.startswith("loss"):
        objs["Y"] = ctx["Y"]
    before = snap_all(objs)
    exc = ctx.attempt(call)
    check_unmutated(ctx, before, objs)
    judge(ctx, exc, valid, expected, what=what)
    if exc is not None:
        return
    X, h0, P, mdt = ctx["X"], ctx["h0"], model.parameters, model.dtype
    index = np.asarray(X).dtype.kind in "iu" and np.asarray(X).ndim == 2
    if index and not all(np.isfinite(np.asarray(P["Whx"], np.float64)).ravel()):
        return      # a one-hot product and a column lookup legitimately differ on Inf/NaN weights

    def orc(dt):
        Xa = np.asarray(X)
        xf = np.eye(n_x, dtype=dt)[Xa].transpose(2, 0, 1) if index else conv(Xa, dt).transpose(2, 0, 1)
        hf = np.zeros((n_h, m), dt) if h0 is None else conv(h0, dt).T
        yy = ctx["Y"] if method.startswith("loss") else np.zeros((m, T), np.intp)
        return loss_oracle(xf, hf, yy, P, dt)
    memo = {}

    def o(dt):
        if dt not in memo:
            memo[dt] = orc(dt)
        return memo[dt]
    ref, alt, rtol = ref_pair(mdt, lambda: o(np.float64), lambda: o(np.longdouble), lambda: o(np.float32))
    code = "# reference: rnnfast.reference on x = X.transpose(2, 0, 1) (one-hot for indices), h0.T"
    if method in ("forward", "forward_state", "call"):
        out = ctx["out"]
        if type(out) is not np.ndarray or out.shape != (m, T, n_y) or out.dtype != mdt:
            fail(ctx, "result-format", [method], f"logits {type(out).__name__} "
                 f"{getattr(out, 'shape', None)} {getattr(out, 'dtype', None)}")
        compare(ctx, "logits", out, ref[2].transpose(1, 2, 0), alt[2].transpose(1, 2, 0), rtol, regime, code)
    if method == "predict":
        out = ctx["out"]
        exc = ctx.attempt("logits = model.forward(X, h0)")
        judge(ctx, exc, True)
        if not np.array_equal(out, np.argmax(ctx["logits"], axis=-1)):
            fail(ctx, "wrong-value", ["predict"], "predict differs from argmax of forward")
    if method.endswith("state"):
        state = ctx["state"]
        compare(ctx, "state", state, ref[3][:, :, -1].T, alt[3][:, :, -1].T, rtol, regime, code)
    if method.startswith("loss"):
        g = ctx["g"]
        keys = ("dWhx", "dWhh", "dWyh", "dbh", "dby", "dh0") + (() if index else ("dx",))
        shapes = ((n_h, n_x), (n_h, n_h), (n_y, n_h), (n_h, 1), (n_y, 1), (m, n_h)) + \
            (() if index else ((m, T, n_x),))
        check_grads(ctx, g, keys, shapes, (mdt,), "loss_and_grads")
        compare(ctx, "loss", ctx["loss"], ref[0], alt[0], rtol, regime, code)
        for k in keys:
            r, a = ref[1][k], alt[1][k]
            if k == "dh0":
                r, a = r.T, a.T
            if k == "dx":
                r, a = r.transpose(1, 2, 0), a.transpose(1, 2, 0)
            got = g[k]
            if k == "dWhx" and index:
                unused = np.setdiff1d(np.arange(n_x), np.asarray(X).ravel())
                r, a, got = np.array(r, np.float64), np.array(a, np.float64), np.array(got, np.float64)
                r[:, unused] = a[:, unused] = got[:, unused] = 0
            compare(ctx, f"g[{k!r}]", got, r, a, rtol, regime, code, floor=call_scale(*ref[1].values()))


# =============================================================================
# target: model_io (RNNModel.save / RNNModel.load)
# =============================================================================

def json_values():
    scalars = (st.none() | st.booleans() | st.integers(-10**6, 10**6)
               | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=4))
    return st.recursive(scalars, lambda ch: st.lists(ch, max_size=3)
                        | st.dictionaries(st.text(max_size=3), ch, max_size=3), max_leaves=5)


LOAD_ALLOWED = (ValueError, FileNotFoundError, MemoryError)
META_VARIANTS = (
    ("json.dumps({'format': 'rnnfast.RNNModel/1', 'dtype': 'float32', 'metadata': {}})", True),
    ("json.dumps({'format': 'rnnfast.RNNModel/1', 'dtype': 'float64', 'metadata': {'vocab': 'ab'}})", True),
    ("json.dumps({'format': 'rnnfast.RNNModel/1', 'dtype': None})", None),
    ("json.dumps({'format': 'rnnfast.RNNModel/1', 'dtype': 'float16'})", False),
    ("json.dumps({'format': 'rnnfast.RNNModel/1', 'dtype': 'int8'})", False),
    ("json.dumps({'format': 'rnnfast.RNNModel/1', 'dtype': 'complex128'})", False),
    ("json.dumps({'format': 'rnnfast.RNNModel/1', 'dtype': 'no such dtype'})", False),
    ("json.dumps({'format': 'rnnfast.RNNModel/1', 'dtype': [1, 2]})", False),
    ("json.dumps({'format': 'rnnfast.RNNModel/1', 'dtype': 5})", False),
    ("json.dumps({'format': 'rnnfast.RNNModel/1', 'metadata': [1, 2]})", None),
    ("json.dumps({'format': 'rnnfast.RNNModel/1', 'metadata': 'text'})", None),
    ("json.dumps({'format': 'other'})", False),
    ("json.dumps([1, 2, 3])", False),
    ("'not json'", False),
    ("'[' * 100000", False),
    ("np.array([1.0, 2.0])", False),
)
ARRAY_VARIANTS = (
    ("valid", True), ("whx_1d", False), ("whx_3d", False), ("whx_empty", False), ("bh_shape", False),
    ("complex", False), ("int", False), ("bool", False), ("str", False), ("missing_by", False),
    ("float16", True), ("extra", True), ("object", False), ("whx_0d", False),
)


def t_model_io(data):
    ctx = Ctx("model_io")
    ctx.run("d = tempfile.mkdtemp()")
    W_dirs.append(ctx["d"])
    ctx.run("path = os.path.join(d, 'model.npz')")
    variant = data.draw(st.sampled_from(("roundtrip", "roundtrip", "corrupt", "corrupt", "crafted",
                                         "crafted", "crafted", "paths")))
    n_x, n_h, n_y = (data.draw(st.integers(1, 4)) for _ in range(3))
    dt = data.draw(st.sampled_from(("np.float32", "np.float64")))
    ctx.run(f"model = rnnfast.RNNModel({n_x}, {n_h}, {n_y}, dtype={dt}, seed=0)")
    if variant in ("roundtrip", "corrupt"):
        if data.draw(st.booleans()):
            k = data.draw(st.sampled_from(NAMES))
            emit_array(ctx, "w", data.draw(array_spec(ctx["model"].parameters[k].shape,
                                                      data.draw(st.sampled_from(REGIMES)), "float64")))
            ctx.run(f"model.parameters[{k!r}][...] = w")
        md_valid = True
        if data.draw(st.integers(0, 5)) == 0:
            md, md_valid = data.draw(st.sampled_from((("{'s': {1, 2}}", False), ("{'a': np.float32(1)}", False),
                                                      ("{'b': b'x'}", False), ("{'n': float('nan')}", True),
                                                      ("[1, 2]", True), ("{1: 'int key'}", True))))
        else:
            md = repr(data.draw(st.dictionaries(st.text(max_size=4), json_values(), max_size=3)))
        ctx.run(f"model.metadata = {md}")
        exc = ctx.attempt("model.save(path)")
        judge(ctx, exc, md_valid, allowed=ALLOWED, what="save with metadata " + md)
        if exc is not None:
            return
        if variant == "corrupt":
            size = os.path.getsize(ctx["path"])
            how = data.draw(st.sampled_from(("truncate", "flip", "flip", "random", "empty", "zero_run")))
            k = data.draw(st.integers(0, max(size - 1, 0)))
            if how == "truncate":
                ctx.run(f"open(path, 'r+b').truncate({k})")
            elif how == "flip":
                b = data.draw(st.integers(1, 255))
                ctx.run(f"raw = bytearray(open(path, 'rb').read()); raw[{k}] ^= {b}; open(path, 'wb').write(raw)")
            elif how == "random":
                s = data.draw(st.integers(0, 99))
                ctx.run(f"open(path, 'wb').write(np.random.default_rng({s}).bytes({k}))")
            elif how == "empty":
                ctx.run("open(path, 'wb').close()")
            else:
                ctx.run(f"raw = bytearray(open(path, 'rb').read()); raw[{k}:{k} + 64] = bytes(len(raw[{k}:{k} + 64])); "
                        "open(path, 'wb').write(raw)")
            exc = ctx.attempt("loaded = rnnfast.RNNModel.load(path)")
            judge(ctx, exc, None, allowed=LOAD_ALLOWED, what=f"load of a corrupted file ({how})")
            return
        exc = ctx.attempt("loaded = rnnfast.RNNModel.load(path)")
        judge(ctx, exc, True)
        model, loaded = ctx["model"], ctx["loaded"]
        for k in NAMES:
            a, b = model.parameters[k], loaded.parameters[k]
            if a.dtype != b.dtype or not np.array_equal(a, b, equal_nan=True):
                fail(ctx, "roundtrip", [k], f"save/load changed parameter {k}")
        want = json.loads(json.dumps(model.metadata)) or {}
        if json.dumps(loaded.metadata, sort_keys=True) != json.dumps(want, sort_keys=True):
            fail(ctx, "roundtrip", ["metadata"], "save/load changed metadata")
        return
    if variant == "paths":
        p, ok = data.draw(st.sampled_from((("d", None), ("os.path.join(d, 'no', 'such', 'm.npz')", None),
                                           ("3", None), ("None", False), ("b'/nonexistent/x.npz'", None),
                                           ("os.path.join(d, 'missing.npz')", "save ok"))))
        op = data.draw(st.sampled_from(("save", "load")))
        if op == "save":
            exc = ctx.attempt(f"model.save({p})")
            judge(ctx, exc, True if ok == "save ok" else ok, allowed=ALLOWED + (OSError,), what=f"save to {p}")
        else:
            exc = ctx.attempt(f"loaded = rnnfast.RNNModel.load({p})")
            judge(ctx, exc, False if ok in (False, "save ok") else None, allowed=LOAD_ALLOWED + (TypeError,),
                  what=f"load from {p}")
        return
    # crafted files
    meta, meta_ok = data.draw(st.sampled_from(META_VARIANTS), label="meta")
    arr, arr_ok = data.draw(st.sampled_from(ARRAY_VARIANTS), label="arrays")
    ctx.run("arrays = {k: np.asarray(v) for k, v in model.parameters.items()}")
    edit = {"whx_1d": "arrays['Whx'] = arrays['Whx'].ravel()",
            "whx_3d": "arrays['Whx'] = arrays['Whx'][None]",
            "whx_empty": "arrays['Whx'] = np.zeros((0, 3))",
            "whx_0d": "arrays['Whx'] = np.float64(1.0)",
            "bh_shape": "arrays['bh'] = np.zeros((arrays['bh'].shape[0] + 1, 1))",
            "complex": "arrays['Whh'] = arrays['Whh'].astype(complex)",
            "int": "arrays['Whh'] = arrays['Whh'].astype(np.int64)",
            "bool": "arrays['Wyh'] = arrays['Wyh'] > 0",
            "str": "arrays['by'] = arrays['by'].astype(str)",
            "missing_by": "del arrays['by']",
            "float16": "arrays['Whh'] = arrays['Whh'].astype(np.float16)",
            "extra": "arrays['extra'] = np.zeros(3)",
            "object": "arrays['Whh'] = arrays['Whh'].astype(object)"}.get(arr)
    if edit:
        ctx.run(edit)
    saver = data.draw(st.sampled_from(("np.savez", "np.savez_compressed", "np.save")))
    if saver == "np.save":
        ctx.run("np.save(path, arrays['Whh'])")
        ok = False
    else:
        ctx.run(f"{saver}(path, __meta__={meta if meta.startswith('np.') else 'np.array(' + meta + ')'}, "
                "**arrays, allow_pickle=True)" if arr == "object" else
                f"{saver}(path, __meta__={meta if meta.startswith('np.') else 'np.array(' + meta + ')'}, **arrays)")
        ok = None if (meta_ok is None or arr_ok is None) else (meta_ok and arr_ok)
        if saver == "np.savez_compressed" and data.draw(st.booleans()):
            k = data.draw(st.integers(40, 400))
            ctx.run(f"raw = bytearray(open(path, 'rb').read()); raw[{k} % len(raw)] ^= 0x5a; "
                    "open(path, 'wb').write(raw)")
            ok = None
    exc = ctx.attempt("loaded = rnnfast.RNNModel.load(path)")
    judge(ctx, exc, ok, allowed=LOAD_ALLOWED, what=f"load of a crafted file ({saver}, meta {meta}, arrays {arr})")


W_dirs = []


# =============================================================================
# target: rnn (rnnfast.RNN) -- NumPy oracle
# =============================================================================

def rnn_oracle(sd, cfg, X, h0, lengths, dt, g_out=None, g_hn=None):
    """Forward (and backward) of an nn.RNN with ``cfg``; X (N, L, I), h0 (S, N, H)."""
    P = {k: conv(v, dt) for k, v in sd.items()}
    X, h0 = conv(X, dt), conv(h0, dt)
    N, L = X.shape[:2]
    H, D, layers, relu, bias = cfg["H"], cfg["D"], cfg["layers"], cfg["relu"], cfg["bias"]
    valid = np.ones((N, L), bool) if lengths is None else np.arange(L)[None, :] < lengths[:, None]
    act = (lambda z: np.maximum(z, 0)) if relu else np.tanh
    h_n = np.zeros((layers * D, N, H), dt)
    layer_in, cache = X, []
    with np.errstate(all="ignore"):
        for k in range(layers):
            outs, lc = [], []
            for d in range(D):
                sfx = "_reverse" if d else ""
                Wih, Whh = P[f"weight_ih_l{k}{sfx}"], P[f"weight_hh_l{k}{sfx}"]
                b = (P[f"bias_ih_l{k}{sfx}"] + P[f"bias_hh_l{k}{sfx}"]) if bias else np.zeros(H, dt)
                h = h0[k * D + d]
                S, prev = np.zeros((N, L, H), dt), np.zeros((N, L, H), dt)
                for t in (range(L) if d == 0 else range(L - 1, -1, -1)):
                    hn = act(layer_in[:, t] @ Wih.T + h @ Whh.T + b)
                    prev[:, t] = h
                    h = np.where(valid[:, t][:, None], hn, h)
                    S[:, t] = h
                h_n[k * D + d] = h
                outs.append(np.where(valid[:, :, None], S, 0))
                lc.append((Wih, Whh, S, prev))
            cache.append((layer_in, lc))
            layer_in = np.concatenate(outs, axis=2)
        out = layer_in
        if g_out is None:
            return out, h_n, None
        g_layer = conv(g_out, dt)
        g_hn = conv(g_hn, dt)
        d_hx = np.zeros((layers * D, N, H), dt)
        grads = {}
        for k in range(layers - 1, -1, -1):
            lin, lc = cache[k]
            d_in = np.zeros(lin.shape, dt)
            for d in range(D):
                sfx = "_reverse" if d else ""
                Wih, Whh, S, prev = lc[d]
                gS = np.where(valid[:, :, None], g_layer[:, :, d * H:(d + 1) * H], 0)
                G = g_hn[k * D + d].copy()
                dWih, dWhh, db = np.zeros(Wih.shape, dt), np.zeros(Whh.shape, dt), np.zeros(H, dt)
                for t in (range(L - 1, -1, -1) if d == 0 else range(L)):
                    v = valid[:, t][:, None]
                    tot = G + gS[:, t]
                    hh = S[:, t]
                    fp = (hh > 0).astype(dt) if relu else 1 - hh * hh
                    dz = np.where(v, tot * fp, 0)
                    dWih += dz.T @ lin[:, t]
                    dWhh += dz.T @ prev[:, t]
                    db += dz.sum(axis=0)
                    d_in[:, t] += dz @ Wih
                    G = np.where(v, dz @ Whh, tot)
                grads[f"weight_ih_l{k}{sfx}"], grads[f"weight_hh_l{k}{sfx}"] = dWih, dWhh
                if bias:
                    grads[f"bias_ih_l{k}{sfx}"], grads[f"bias_hh_l{k}{sfx}"] = db, db
                d_hx[k * D + d] = G
            g_layer = d_in
        return out, h_n, (g_layer, d_hx, grads)


RNN_CTOR_HOSTILE = {
    "input_size": CTOR_HOSTILE, "hidden_size": CTOR_HOSTILE,
    "num_layers": (("0", False), ("-2", False), ("1.0", False), ("True", False), ("np.int32(2)", True)),
    "nonlinearity": (("'sigmoid'", False), ("None", False), ("'TANH'", False), ("'relu'", True)),
    "dropout": (("-0.1", False), ("1.5", False), ("float('nan')", False), ("'0.5'", False),
                ("True", False), ("1", True), ("np.float32(0.25)", True)),
    "dtype": DTYPE_HOSTILE, "seed": SEED_HOSTILE,
}


def t_rnn(data):
    ctx = Ctx("rnn")
    I = data.draw(st.integers(1, 3))
    H = data.draw(st.one_of(st.integers(1, 3), st.sampled_from((31, 33, 64, 65))), label="H")
    cfg = {"input_size": str(I), "hidden_size": str(H),
           "num_layers": str(data.draw(st.integers(1, 3))),
           "nonlinearity": repr(data.draw(st.sampled_from(("tanh", "relu")))),
           "bias": str(data.draw(st.booleans())), "batch_first": str(data.draw(st.booleans())),
           "dropout": repr(data.draw(st.sampled_from((0.0, 0.0, 0.5, 1.0)))),
           "bidirectional": str(data.draw(st.booleans())),
           "dtype": data.draw(st.sampled_from(("np.float32", "np.float64"))),
           "seed": str(data.draw(st.integers(0, 9)))}
    valid = True
    if data.draw(st.integers(0, 7)) == 0:
        k = data.draw(st.sampled_from(tuple(RNN_CTOR_HOSTILE)))
        cfg[k], valid = data.draw(st.sampled_from(RNN_CTOR_HOSTILE[k]))
    ctor = ("r = rnnfast.RNN(" + ", ".join(f"{k}={v}" for k, v in cfg.items()) + ")")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exc = ctx.attempt(ctor)
    judge(ctx, exc, valid, what="RNN constructor")
    if exc is not None:
        return
    r = ctx["r"]
    if r.hidden_size * r.num_layers * r.input_size > 10**5:
        return
    if data.draw(st.integers(0, 15)) == 0:
        # backward before any forward: RuntimeError is deliberate (torch does the same)
        exc = ctx.attempt("r.backward(np.zeros((1, 1, 1)))")
        judge(ctx, exc, False, allowed=ALLOWED + (RuntimeError,), what="backward before forward")
        return
    I, H, D = r.input_size, r.hidden_size, r.num_directions
    S = r.num_layers * D
    regime = data.draw(st.sampled_from(REGIMES))
    if data.draw(st.integers(0, 2)) == 0:
        sd_kind = data.draw(st.sampled_from(("valid", "valid", "missing", "extra", "shape", "complex",
                                             "bool", "list", "object")))
        shapes = {k: v.shape for k, v in r.state_dict().items()}
        sdt = pick_dtype(data.draw, "odd")
        if sdt == "bool":
            sdt = "float64"
        items = []
        for i, (k, s) in enumerate(shapes.items()):
            emit_array(ctx, f"p{i}", data.draw(array_spec(s, regime, sdt)))
            items.append(f"{k!r}: p{i}")
        ctx.run("sd = {" + ", ".join(items) + "}")
        first = next(iter(shapes))
        sd_valid, sd_exp = True, None
        if sd_kind == "missing":
            ctx.run(f"del sd[{first!r}]")
            sd_valid, sd_exp = False, KeyError
        elif sd_kind == "extra":
            ctx.run("sd['weight_ih_l99'] = np.zeros(1)")
            sd_valid, sd_exp = False, KeyError
        elif sd_kind == "shape":
            ctx.run(f"sd[{first!r}] = np.zeros(({shapes[first][0] + 1}, 1))")
            sd_valid, sd_exp = False, ValueError
        elif sd_kind in ("complex", "bool", "object"):
            ctx.run(f"sd[{first!r}] = np.asarray(sd[{first!r}]).astype({sd_kind})")
            sd_valid, sd_exp = False, TypeError
        elif sd_kind == "list":
            ctx.run("sd = list(sd.values())")
            sd_valid, sd_exp = False, TypeError
        before = snapshot(r.state_dict())
        exc = ctx.attempt("r.load_state_dict(sd)")
        judge(ctx, exc, sd_valid, sd_exp, what=f"load_state_dict {sd_kind}")
        if exc is not None:
            if snapshot(r.state_dict()) != before:
                fail(ctx, "partial-update", ["load_state_dict"], "a failed load_state_dict changed parameters")
        else:
            for k, v in ctx["sd"].items():
                want = np.asarray(v).astype(r.dtype)
                if not np.array_equal(r.state_dict()[k], want, equal_nan=True):
                    fail(ctx, "wrong-value", ["load_state_dict", k], f"{k} after load_state_dict differs")
    if data.draw(st.booleans()):
        ctx.run("r.eval()")
    batched = data.draw(st.integers(0, 4)) > 0
    N, L = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4))
    if not batched:
        N = 1
    valid, expected, what = True, None, "valid"
    defect = data.draw(st.sampled_from(("none",) * 8 + ("zero", "width", "ndim", "hx_shape", "bad_dtype",
                                                         "len_zero", "len_long", "len_float", "len_shape",
                                                         "len_neg", "len_bool")))
    if defect == "zero":
        if batched:
            N = 0 if data.draw(st.booleans()) else N
        L = 0 if N != 0 else L
        valid, expected, what = False, ValueError, "zero size"
    shape = ((N, L, I) if r.batch_first else (L, N, I)) if batched else (L, I)
    if defect == "width":
        shape = shape[:-1] + (I + 1,)
        valid, expected, what = False, ValueError, "input width"
    elif defect == "ndim":
        shape = shape[:1] if data.draw(st.booleans()) else shape + (1,) * (4 - len(shape))
        valid, expected, what = False, ValueError, "input ndim"
    dt = pick_dtype(data.draw, "odd")
    if defect == "bad_dtype":
        dt, valid, expected, what = data.draw(st.sampled_from(BAD_DTYPES)), False, TypeError, "input dtype"
    emit_array(ctx, "inp", data.draw(array_spec(shape, regime, dt)))
    hx_shape = (S, N, H) if batched else (S, H)
    if defect == "hx_shape":
        hx_shape = (S + 1,) + hx_shape[1:]
        valid, expected, what = False, ValueError, "hx shape"
    if defect == "hx_shape" or data.draw(st.booleans()):
        emit_array(ctx, "hx", data.draw(array_spec(hx_shape, regime, pick_dtype(data.draw, "odd"))))
    else:
        ctx.run("hx = None")
    lengths = None
    if L >= 1 and (defect.startswith("len") or data.draw(st.booleans())):
        lens = data.draw(st.lists(st.integers(1, L), min_size=N, max_size=N))
        lexp = {"len_zero": (0, ValueError), "len_long": (L + 1, ValueError),
                "len_neg": (-1, ValueError)}.get(defect)
        if lexp is not None and lens:
            lens[0] = lexp[0]
            valid, expected, what = False, lexp[1], defect
        ldt = data.draw(st.sampled_from(("int64", "int32", "uint8", "list")))
        if defect == "len_neg" and ldt == "uint8":
            ldt = "int64"
        if defect == "len_float":
            ldt, valid, expected, what = "float64", False, TypeError, defect
        if defect == "len_bool":
            ldt, valid, expected, what = "bool", False, TypeError, defect
        if ldt == "list":
            ctx.run(f"lengths = {lens!r}")
        else:
            ctx.run(f"lengths = np.array({lens!r}, dtype={ldt!r})")
        if defect == "len_shape":
            ctx.run("lengths = np.concatenate([np.asarray(lengths, dtype=np.int64), [1]])")
            valid, expected, what = False, ValueError, defect
        lengths = ctx["lengths"]
    else:
        ctx.run("lengths = None")
    objs = {"input": ctx["inp"], "hx": ctx["hx"], "lengths": ctx["lengths"]}
    before = snap_all(objs)
    exc = ctx.attempt("out, h_n = r(inp, hx, lengths=lengths)")
    check_unmutated(ctx, before, objs)
    judge(ctx, exc, valid, expected, what=what)
    if exc is not None:
        return
    out, h_n = ctx["out"], ctx["h_n"]
    oshape = ((N, L, D * H) if r.batch_first else (L, N, D * H)) if batched else (L, D * H)
    hshape = (S, N, H) if batched else (S, H)
    for name, a, s in (("output", out, oshape), ("h_n", h_n, hshape)):
        if type(a) is not np.ndarray or a.shape != s or a.dtype != r.dtype:
            fail(ctx, "result-format", [name], f"{name}: {type(a).__name__} "
                 f"{getattr(a, 'shape', None)} {getattr(a, 'dtype', None)}; expected {s} {r.dtype}")
    comparable = not r.training or r.dropout == 0 or r.num_layers == 1

    def canon():
        Xa = np.asarray(ctx["inp"], dtype=np.longdouble)
        Xa = Xa[None] if not batched else (Xa if r.batch_first else Xa.transpose(1, 0, 2))
        hx = ctx["hx"]
        h0 = np.zeros((S, Xa.shape[0], H)) if hx is None else \
            (np.asarray(hx, np.longdouble) if batched else np.asarray(hx, np.longdouble)[:, None])
        ln = None if lengths is None else np.asarray(lengths).reshape(-1).astype(np.intp)
        return Xa, h0, ln
    ocfg = {"H": H, "D": D, "layers": r.num_layers, "relu": r.nonlinearity == "relu", "bias": r.bias}
    sd = r.state_dict()

    def layout(o):
        return o[0] if not batched else (o if r.batch_first else o.transpose(1, 0, 2))

    def hlayout(hh):
        return hh if batched else hh[:, 0]
    go_regime = data.draw(st.sampled_from(REGIMES))
    bwd_defect = data.draw(st.sampled_from(("none",) * 5 + ("go_shape", "ghn_shape", "go_dtype")))
    gshape = oshape if bwd_defect != "go_shape" else oshape[:-1] + (oshape[-1] + 1,)
    emit_array(ctx, "go", data.draw(array_spec(gshape, go_regime, pick_dtype(data.draw, "odd")
                                               if bwd_defect != "go_dtype" else "complex128")))
    if bwd_defect == "ghn_shape" or data.draw(st.booleans()):
        emit_array(ctx, "ghn", data.draw(array_spec(hshape if bwd_defect != "ghn_shape" else hshape + (1,),
                                                    go_regime, pick_dtype(data.draw, "odd"))))
    else:
        ctx.run("ghn = None")
    memo = {}

    def orc(dt):
        if dt not in memo:
            Xa, h0, ln = canon()
            if bwd_defect != "none":
                memo[dt] = rnn_oracle(sd, ocfg, Xa.astype(dt), h0.astype(dt), ln, dt)
                return memo[dt]
            go = np.asarray(ctx["go"], np.longdouble)
            go = go[None] if not batched else (go if r.batch_first else go.transpose(1, 0, 2))
            ghn = ctx["ghn"]
            ghn = np.zeros((S, Xa.shape[0], H)) if ghn is None else \
                (np.asarray(ghn, np.longdouble) if batched else np.asarray(ghn, np.longdouble)[:, None])
            if bwd_defect != "none":
                go, ghn = None, None
            memo[dt] = rnn_oracle(sd, ocfg, Xa.astype(dt), h0.astype(dt), ln, dt, go, ghn)
        return memo[dt]
    code = "# reference: a NumPy nn.RNN (per-step loops, pack_padded semantics) in float64"
    hxv = ctx["hx"]
    # signature tag: a known layout bug must not mute value checks of every other RNN example
    tag = "hx C-contiguous" if hxv is None or (isinstance(hxv, np.ndarray) and hxv.flags.c_contiguous) \
        else "hx not C-contiguous"
    if comparable:
        ref, alt, rtol = ref_pair(r.dtype, lambda: orc(np.float64), lambda: orc(np.longdouble),
                                  lambda: orc(np.float32))
        compare(ctx, "output", out, layout(ref[0]), layout(alt[0]), rtol, regime, code, tag)
        compare(ctx, "h_n", h_n, hlayout(ref[1]), hlayout(alt[1]), rtol, regime, code, tag)
    objs = {"grad_output": ctx["go"], "grad_h_n": ctx["ghn"]}
    before = snap_all(objs)
    sd_before = snapshot(r.state_dict())
    exc = ctx.attempt("g = r.backward(go, ghn)")
    check_unmutated(ctx, before, objs)
    if snapshot(r.state_dict()) != sd_before:
        fail(ctx, "mutated-input", ["parameters"], "backward changed the parameters")
    judge(ctx, exc, bwd_defect == "none", ValueError if "shape" in bwd_defect else
          (TypeError if bwd_defect == "go_dtype" else None), what=f"backward {bwd_defect}")
    if exc is not None:
        return
    g = ctx["g"]
    keys = ["input", "hx"] + list(sd)
    if not isinstance(g, dict) or list(g) != keys:
        fail(ctx, "result-format", ["backward keys"], f"backward keys {list(g)}, expected {keys}")
    fin = np.isfinite(np.asarray(out, np.float64)).all() and np.isfinite(np.asarray(h_n, np.float64)).all()
    if not (comparable and fin):
        return
    ref, alt, rtol = ref_pair(r.dtype, lambda: orc(np.float64), lambda: orc(np.longdouble),
                              lambda: orc(np.float32))
    compare(ctx, "g['input']", g["input"], layout(ref[2][0]), layout(alt[2][0]), rtol, regime, code, tag)
    compare(ctx, "g['hx']", g["hx"], hlayout(ref[2][1]), hlayout(alt[2][1]), rtol, regime, code, tag)
    fl = call_scale(ref[2][0], ref[2][1], *ref[2][2].values())
    for k in sd:
        compare(ctx, f"g[{k!r}]", g[k], ref[2][2][k], alt[2][2][k], rtol, regime, code, tag, floor=fl)
    if data.draw(st.integers(0, 3)) == 0:
        exc = ctx.attempt("g2 = r.backward(go, ghn)")
        judge(ctx, exc, True)
        for k in keys:
            if not np.array_equal(g[k], ctx["g2"][k], equal_nan=True):
                fail(ctx, "not-repeatable", ["rnn", k], f"a second backward gives another {k}")


# =============================================================================
# target: optim (SGD, Adam, Adagrad, clip_grad_norm, clip_grad_value)
# =============================================================================

HYPER_HOSTILE = (("-1.0", False), ("float('nan')", False), ("float('inf')", False), ("None", False),
                 ("'0.1'", True), ("10**400", False), ("1j", False), ("np.float32(0.01)", True),
                 ("True", True), ("0", True))


def opt_oracle(kind, hp, p, g, state, step, dt):
    """One update of parameter ``p`` (float ``dt``) with torch.optim's rules; returns new p."""
    p = conv(p, dt).copy()
    g = conv(g, dt)
    lr = dt(hp["lr"])
    if kind == "SGD":
        mom = hp["momentum"]
        if mom:
            buf = state.get("buf")
            buf = g.copy() if buf is None else buf * dt(mom) + g
            state["buf"] = buf
            g = buf
        return p - lr * g
    if kind == "Adagrad":
        s = state.get("sum", np.zeros_like(p)) + g * g
        state["sum"] = s
        return p - lr * (g / (np.sqrt(s) + dt(hp["eps"])))
    b1, b2 = hp["betas"]
    if hp["weight_decay"]:
        g = g + dt(hp["weight_decay"]) * p
    m = state.get("m", np.zeros_like(p))
    v = state.get("v", np.zeros_like(p))
    m = m + dt(1 - b1) * (g - m)
    v = v * dt(b2) + dt(1 - b2) * g * g
    state["m"], state["v"] = m, v
    step_size = dt(hp["lr"] / (1 - b1 ** step))
    bc2 = dt(math.sqrt(1 - b2 ** step))
    return p - step_size * m / (np.sqrt(v) / bc2 + dt(hp["eps"]))


def t_optim(data):
    ctx = Ctx("optim")
    what = data.draw(st.sampled_from(("SGD", "Adam", "Adagrad", "SGD", "Adam", "clip_norm", "clip_value")))
    if what.startswith("clip"):
        return t_clip(data, ctx, what)
    names = data.draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True))
    regime = data.draw(st.sampled_from(("moderate", "moderate", "special", "huge", "tiny")))
    pvalid = True
    shapes = {}
    for i, k in enumerate(names):
        s = tuple(data.draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)))
        shapes[k] = s
        dt = data.draw(st.sampled_from(("float64", "float64", "float32", "float32", "float16", "longdouble",
                                        "int64", ">f8")))
        lay = data.draw(st.sampled_from(("c",) * 8 + ("f", "readonly", "list", "strided")))
        emit_array(ctx, f"p_{k}", {**data.draw(array_spec(s, regime, dt)), "layout": lay})
        v = ctx[f"p_{k}"]
        if not (isinstance(v, np.ndarray) and v.dtype.kind == "f" and v.flags.writeable
                and v.flags.c_contiguous):
            pvalid = False
    pc = data.draw(st.sampled_from(("dict",) * 6 + ("empty", "list")))
    if pc == "dict":
        ctx.run("params = {" + ", ".join(f"{k!r}: p_{k}" for k in names) + "}")
    elif pc == "empty":
        ctx.run("params = {}")
        pvalid = False
    else:
        ctx.run("params = [" + ", ".join(f"p_{k}" for k in names) + "]")
        pvalid = False
    hp_expr = {"lr": repr(data.draw(st.sampled_from((0.1, 0.01, 1.0, 1e-3))))}
    if what == "SGD":
        hp_expr["momentum"] = repr(data.draw(st.sampled_from((0.0, 0.0, 0.9, 0.5))))
    elif what == "Adam":
        hp_expr["betas"] = repr(data.draw(st.sampled_from(((0.9, 0.999), (0.5, 0.9), (0.0, 0.0)))))
        hp_expr["eps"] = repr(data.draw(st.sampled_from((1e-8, 0.0, 1.0))))
        hp_expr["weight_decay"] = repr(data.draw(st.sampled_from((0.0, 0.0, 0.1))))
    else:
        hp_expr["eps"] = repr(data.draw(st.sampled_from((1e-8, 1e-10, 0.5))))
    hvalid = True
    if data.draw(st.integers(0, 4)) == 0:
        k = data.draw(st.sampled_from(tuple(hp_expr)))
        if k == "betas":
            hp_expr[k], hvalid = data.draw(st.sampled_from((("(0.9,)", False), ("(0.9, 0.99, 0.5)", False),
                                                            ("(1.0, 0.999)", False), ("(0.9, -0.1)", False),
                                                            ("0.9", False), ("'ab'", False),
                                                            ("(float('nan'), 0.9)", False), ("[0.8, 0.9]", True))))
        else:
            hp_expr[k], hvalid = data.draw(st.sampled_from(HYPER_HOSTILE))
    ctor = f"opt = rnnfast.optim.{what}(params, " + ", ".join(f"{k}={v}" for k, v in hp_expr.items()) + ")"
    objs = {"params": ctx["params"]}
    before = snap_all(objs)
    exc = ctx.attempt(ctor)
    check_unmutated(ctx, before, objs)
    judge(ctx, exc, pvalid and hvalid, what=f"{what} constructor")
    if exc is not None:
        return
    opt = ctx["opt"]
    hp = {"lr": opt.lr}
    hp.update({"momentum": getattr(opt, "momentum", 0.0), "eps": getattr(opt, "eps", 0.0),
               "betas": getattr(opt, "betas", (0.9, 0.999)), "weight_decay": getattr(opt, "weight_decay", 0.0)})
    P = ctx["params"]
    oracle = {dt: ({k: np.array(P[k], dtype=dt, copy=True) for k in names}, {k: {} for k in names})
              for dt in (np.float64, np.longdouble, np.float32, np.float16)}
    good_steps = 0
    for s in range(data.draw(st.integers(1, 3))):
        gdef = data.draw(st.sampled_from(("none",) * 6 + ("missing", "shape", "complex", "bool", "object",
                                                          "notdict", "list")))
        g_items, gvalid, gexp = [], True, None
        gregime = data.draw(st.sampled_from(("moderate", "moderate", "special", "huge")))
        for i, k in enumerate(names):
            shp = shapes[k]
            dt = data.draw(st.sampled_from(("float64", "float32", "float16", "int64", ">f4")))
            if gdef == "shape" and i == 0:
                shp, gvalid, gexp = shp + (2,), False, ValueError
            if gdef in ("complex", "bool", "object") and i == 0:
                dt, gvalid, gexp = {"complex": "complex128", "bool": "bool", "object": "object"}[gdef], False, TypeError
            emit_array(ctx, f"g{s}_{k}", data.draw(array_spec(shp, gregime, dt)))
            if not (gdef == "missing" and i == 0):
                g_items.append(f"'d{k}': g{s}_{k}")
        if gdef == "missing":
            gvalid, gexp = False, KeyError
        gd = "{" + ", ".join(g_items + ["'dx': None"]) + "}"
        if gdef == "notdict":
            gd, gvalid, gexp = "list(" + gd + ".values())", False, TypeError
        if gdef == "list":
            ctx.run(f"g{s}_{names[0]} = np.asarray(g{s}_{names[0]}).tolist()")
            gd = "{" + ", ".join(f"'d{k}': g{s}_{k}" for k in names) + "}"
        ctx.run(f"grads = {gd}")
        objs = {"grads": ctx["grads"]}
        before = snap_all(objs)
        state_before = (snapshot({k: P[k] for k in names}), snapshot(opt.state), opt.steps)
        exc = ctx.attempt("opt.step(grads)")
        check_unmutated(ctx, before, objs)
        if exc is not None:
            state_after = (snapshot({k: P[k] for k in names}), snapshot(opt.state), opt.steps)
            if state_after != state_before:
                changed = [n for n, a, b in zip(("parameters", "state", "steps"), state_before, state_after) if a != b]
                fail(ctx, "failed-step-changed-state", [what, type(exc).__name__, origin(exc)],
                     f"opt.step raised {type(exc).__name__} but changed {', '.join(changed)} "
                     "(documented: a failed step leaves everything as it was)", exc)
        judge(ctx, exc, gvalid, gexp, what=f"step with grads {gdef}")
        if exc is not None:
            return
        good_steps += 1
        grads = ctx["grads"]
        for dt, (op, ost) in oracle.items():
            for k in names:
                with np.errstate(all="ignore"):
                    op[k] = opt_oracle(what, hp, op[k], conv(np.asarray(grads["d" + k]).astype(P[k].dtype), dt),
                                       ost[k], good_steps, dt)
        pdt = P[names[0]].dtype
        code = f"# reference: torch.optim.{what}'s update rule in float64 NumPy"
        for k in names:
            ref, alt, rtol = ref_pair(P[k].dtype if P[k].dtype in (np.float32, np.float64) else np.float64,
                                      lambda: oracle[np.float64][0][k], lambda: oracle[np.longdouble][0][k],
                                      lambda: oracle[np.float32][0][k])
            if P[k].dtype.itemsize < 4:     # float16 parameters: torch's rule evaluated in float16
                rtol, alt = 2e-3, oracle[np.float16][0][k]
            compare(ctx, f"params[{k!r}] after step {s + 1}", P[k], ref, alt, rtol, gregime, code)
        del pdt


def t_clip(data, ctx, what):
    keys = data.draw(st.lists(st.sampled_from(("dWhx", "dWhh", "dWyh", "dbh", "dby", "dx", "dh0")),
                              min_size=1, max_size=4, unique=True))
    regime = data.draw(st.sampled_from(("moderate", "moderate", "special", "huge", "tiny")))
    valid = any(k in ("dWhx", "dWhh", "dWyh", "dbh", "dby") for k in keys)
    for k in keys:
        s = tuple(data.draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)))
        dt = data.draw(st.sampled_from(("float64", "float64", "float32", "float16", "int64")))
        lay = data.draw(st.sampled_from(("c",) * 8 + ("f", "readonly", "list", "strided")))
        emit_array(ctx, f"a_{k}", {**data.draw(array_spec(s, regime, dt)), "layout": lay})
        v = ctx[f"a_{k}"]
        if k not in ("dx", "dh0") and not (isinstance(v, np.ndarray) and v.dtype.kind == "f"
                                           and v.flags.writeable):
            valid = False
    ctx.run("grads = {" + ", ".join(f"{k!r}: a_{k}" for k in keys) + "}")
    lim = repr(data.draw(st.sampled_from((1.0, 0.5, 5.0, 0.0, 1e-3, 1e300))))
    lvalid = True
    if data.draw(st.integers(0, 4)) == 0:
        lim, lvalid = data.draw(st.sampled_from(HYPER_HOSTILE))
        if lim == "'0.1'" and what == "clip_value":
            lvalid = None
    G = ctx["grads"]
    orig = {k: (np.array(G[k], copy=True) if isinstance(G[k], np.ndarray) else G[k]) for k in keys}
    call = f"total = rnnfast.clip_grad_norm(grads, {lim})" if what == "clip_norm" \
        else f"rnnfast.clip_grad_value(grads, {lim})"
    exc = ctx.attempt(call)
    judge(ctx, exc, None if lvalid is None else (valid and lvalid), what=what)
    if exc is not None:
        return
    for k in ("dx", "dh0"):
        if k in keys and not np.array_equal(np.asarray(G[k]), np.asarray(orig[k]), equal_nan=True):
            fail(ctx, "mutated-input", [what, k], f"{what} changed grads[{k!r}]")
    limit = float(eval(lim, {"np": np}))
    pk = [k for k in keys if k not in ("dx", "dh0")]
    code = f"# reference: torch.nn.utils.{'clip_grad_norm_' if what == 'clip_norm' else 'clip_grad_value_'} semantics"
    if what == "clip_norm":
        def tot(dt):
            with np.errstate(all="ignore"):
                return np.sqrt(sum((conv(orig[k], dt) ** 2).sum() for k in pk))
        t64, tld = tot(np.float64), tot(np.longdouble)
        rt = max((RTOL64 if orig[k].dtype == np.float64 else RTOL32 if orig[k].dtype == np.float32 else 2e-3)
                 for k in pk)
        compare(ctx, "total norm", ctx["total"], t64, tld, rt, regime, code)
        with np.errstate(all="ignore"):
            coef = np.minimum(limit / (float(ctx["total"]) + 1e-6), 1.0)     # NaN propagates, as in torch.clamp
            for k in pk:
                want = (orig[k] * orig[k].dtype.type(coef)) if orig[k].dtype.kind == "f" else orig[k] * coef
                compare(ctx, "grads after clip_grad_norm", G[k], want, want, 0.0, regime, code)
    else:
        for k in pk:
            want = np.clip(orig[k], -limit, limit)
            compare(ctx, "grads after clip_grad_value", G[k], want, want, 0.0, regime, code)


# =============================================================================
# target: cli (python -m rnnfast demo/train/sample)
# =============================================================================

CLI_ALLOWED = ALLOWED + (SystemExit,)


class _Code(str):
    """A piece of source code inside an argv list (not a literal)."""
    @property
    def code(self):
        return str(self)


PATH, SAVE = _Code("path"), _Code("os.path.join(d, 'm.npz')")
TEXTS = (("text", "'hello world, hello rnn.\\n' * 3"), ("one_char", "'a'"), ("two_chars", "'ab'"),
         ("same_char", "'aaaaaaa'"), ("unicode", "'h\\u00e9llo \\U0001F600 w\\u00f6rld\\n'"),
         ("empty", "''"), ("nul", "'ab\\x00cd'"), ("bad_utf8", None), ("dir", None), ("missing", None))


def t_cli(data):
    ctx = Ctx("cli")
    ctx.run("from rnnfast.__main__ import main")
    ctx.run("d = tempfile.mkdtemp()")
    W_dirs.append(ctx["d"])
    cmd = data.draw(st.sampled_from(("demo", "train", "train", "sample", "sample")))
    if cmd == "demo":
        argv = ["demo", "--iterations", str(data.draw(st.sampled_from((-1, 0, 1, 2, 3)))),
                "--lr", data.draw(st.sampled_from(("0.1", "0", "-1", "nan", "inf", "1e300"))),
                "--seed", str(data.draw(st.sampled_from((0, 1, -1)))),
                "--dtype", data.draw(st.sampled_from(("float32", "float64", "float16")))]
    elif cmd == "train":
        kind, text = data.draw(st.sampled_from(TEXTS))
        ctx.run("path = os.path.join(d, 'input.txt')")
        if text is not None:
            ctx.run(f"open(path, 'w', encoding='utf-8').write({text})")
        elif kind == "bad_utf8":
            ctx.run("open(path, 'wb').write(b'ab\\xff\\xfecd')")
        elif kind == "dir":
            ctx.run("path = d")
        argv = ["train", PATH, "--hidden", str(data.draw(st.sampled_from((0, 1, 3, 8)))),
                "--seq-len", str(data.draw(st.sampled_from((0, 1, 5, 25)))),
                "--batch", str(data.draw(st.sampled_from((0, 1, 3, 100)))),
                "--steps", str(data.draw(st.sampled_from((0, 1, 3)))),
                "--lr", data.draw(st.sampled_from(("0.01", "0", "nan", "-1", "inf"))),
                "--clip", data.draw(st.sampled_from(("5", "0", "-1", "nan", "inf"))),
                "--sample-every", str(data.draw(st.sampled_from((0, 1, -1)))),
                "--quiet"]
        if data.draw(st.booleans()):
            argv += ["--save", SAVE]
    else:
        ctx.run("path = os.path.join(d, 'm.npz')")
        n = data.draw(st.integers(1, 4))
        n_y = data.draw(st.sampled_from((n, n, n + 1)))
        ctx.run(f"model = rnnfast.RNNModel({n}, 3, {n_y}, seed=0)")
        md = data.draw(st.sampled_from((f"{{'vocab': 'abcd'[:{n}]}}", f"{{'vocab': 'abcd'[:{n}]}}", "{}",
                                        "{'vocab': 5}", "[1, 2]", f"{{'vocab': list('abcd'[:{n}])}}",
                                        "{'vocab': 'toolongvocabulary'}")))
        ctx.run(f"model.metadata = {md}")
        ctx.run("model.save(path)")
        if data.draw(st.integers(0, 5)) == 0:
            ctx.run("open(path, 'r+b').truncate(100)")
        argv = ["sample", PATH, "--length", str(data.draw(st.sampled_from((-1, 0, 1, 5)))),
                "--temperature", data.draw(st.sampled_from(("1", "0", "-1", "nan", "inf", "1e-320", "1e300"))),
                "--prime", data.draw(st.sampled_from(("", "a", "ab", "zz", "\u00e9"))),
                "--seed", str(data.draw(st.sampled_from((0, 1))))]
    ctx.run("argv = [" + ", ".join(a.code if isinstance(a, _Code) else repr(a) for a in argv) + "]")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        exc = ctx.attempt("rc = main(argv)")
    judge(ctx, exc, None, allowed=CLI_ALLOWED, what=" ".join(map(str, argv)))
    if exc is None and ctx["rc"] not in (0, 1):
        fail(ctx, "result-format", ["cli return"], f"main returned {ctx['rc']!r}")


# =============================================================================
# worker driver
# =============================================================================

def _cleanup_dirs():
    while W_dirs:
        shutil.rmtree(W_dirs.pop(), ignore_errors=True)


TEST_FUNCS = {
    "forward": lambda data: t_forward(data, cell=False),
    "cell": lambda data: t_forward(data, cell=True),
    "loss": t_loss, "model": t_model, "model_io": t_model_io, "rnn": t_rnn,
    "optim": t_optim, "cli": t_cli,
}


def worker(args):
    global rnnfast, reference
    warnings.simplefilter("ignore")
    np.seterr(all="ignore")
    _strategies()
    import rnnfast  # noqa: F401
    from rnnfast import reference  # noqa: F401
    W.target = args.worker
    W.current_path = os.path.join(args.workdir, f"current_{args.worker}.py")
    W.crash_file = open(os.path.join(args.workdir, f"crash_{args.worker}.txt"), "w")
    faulthandler.enable(file=W.crash_file, all_threads=True)
    result_path = os.path.join(args.workdir, f"result_{args.worker}.json")
    if args.known and os.path.exists(args.known):
        with open(args.known) as f:
            W.muted = set(json.load(f))
    start = time.time()
    W.stop_at = start + args.budget
    hard_stop = W.stop_at + SHRINK_GRACE
    fn = TEST_FUNCS[args.worker]

    def inner(data):
        if time.time() > hard_stop:
            return
        W.examples += 1
        W.ctx = None
        try:
            fn(data)
        except (FuzzFailure, Muted) as exc:
            if isinstance(exc, Muted):
                return
            raise
        except Exception as exc:  # noqa: BLE001 - a problem of the fuzzer itself
            frames = traceback.extract_tb(exc.__traceback__)
            fr = [f for f in frames if f.filename == __file__]
            where = f"fuzz_api.py:{fr[-1].lineno}" if fr else "?"
            ctx = W.ctx if W.ctx is not None else Ctx(W.target)
            ctx.lines.append(f"# fuzzer error at {where}")
            try:
                fail(ctx, "fuzzer-error", [type(exc).__name__, where], f"{type(exc).__name__}: {_short(exc)}", exc)
            except Muted:
                return
        finally:
            _cleanup_dirs()

    def save():
        out = {"target": W.target, "examples": W.examples, "failures": W.failures,
               "muted_hits": dict(W.muted_hits), "seconds": time.time() - start, "done": False}
        tmp = result_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(out, f)
        os.replace(tmp, result_path)
        return out

    rnd = 0
    while time.time() < W.stop_at:
        rnd += 1
        test = given(st.data())(inner)
        test = settings(max_examples=ROUND_EXAMPLES.get(args.worker, EXAMPLES_PER_ROUND), deadline=None, database=None,
                        suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet,
                        report_multiple_bugs=True, phases=[Phase.generate, Phase.shrink])(test)
        test = hseed(args.seed * 7919 + rnd * 104729 + TARGETS.index(args.worker))(test)
        try:
            test()
        except KeyboardInterrupt:
            raise
        except BaseException:  # noqa: BLE001 - failures are recorded by fail()
            pass
        W.muted.update(W.failures)
        save()
    out = save()
    out["done"] = True
    with open(result_path, "w") as f:
        json.dump(out, f)
    return 0


# =============================================================================
# parent: schedule workers, collect, confirm crashes, report
# =============================================================================

def parent(args):
    targets = [t.strip() for t in args.targets.split(",") if t.strip()] if args.targets else list(TARGETS)
    for t in targets:
        if t not in TARGETS:
            raise SystemExit(f"unknown target {t!r}; choose from {', '.join(TARGETS)}")
    workdir = tempfile.mkdtemp(prefix="rnnfast-fuzz-")
    known_path = os.path.join(workdir, "known.json")
    start = time.time()
    deadline = start + args.minutes * 60
    examples = collections.Counter()
    failures = {}
    crashes = collections.Counter()
    slice_s = args.slice or max(15.0, args.minutes * 60 / len(targets) - 8)
    i = 0
    print(f"fuzzing rnnfast from {_rnnfast_location()} for {args.minutes} min; "
          f"targets {', '.join(targets)}; work dir {workdir}", flush=True)
    while True:
        remaining = deadline - time.time()
        if remaining < 8:
            break
        live = [t for t in targets if crashes[t] < 3]
        if not live:
            break
        t = live[i % len(live)]
        i += 1
        budget = max(5.0, min(slice_s, remaining - 5 - SHRINK_GRACE / 2))
        with open(known_path, "w") as f:
            json.dump(sorted(failures), f)
        for name in (f"result_{t}.json", f"current_{t}.py", f"crash_{t}.txt"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(workdir, name))
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", t, "--budget", f"{budget:.1f}",
               "--workdir", workdir, "--known", known_path, "--seed", str(args.seed + i)]
        t0 = time.time()
        try:
            proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True,
                                  timeout=budget + SHRINK_GRACE + HANG_SECONDS + 60)
            rc, stderr = proc.returncode, proc.stderr
        except subprocess.TimeoutExpired as exc:
            rc, stderr = "timeout", (exc.stderr or b"").decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        res = _read_json(os.path.join(workdir, f"result_{t}.json"))
        n = res.get("examples", 0) if res else 0
        examples[t] += n
        new = 0
        for sig, rec in (res or {}).get("failures", {}).items():
            old = failures.get(sig)
            if old is None:
                failures[sig] = rec
                new += 1
            else:
                old["count"] += rec["count"]
                if len(rec["code"]) < len(old["code"]):
                    old.update(code=rec["code"], message=rec["message"], traceback=rec["traceback"])
        status = "ok"
        if not (res and res.get("done")):
            crashes[t] += 1
            status = _record_crash(t, rc, stderr, workdir, failures)
            new += 1
        print(f"  [{time.time() - start:6.1f}s] {t:9s} {time.time() - t0:5.1f}s  {n:5d} examples  "
              f"{new} new failure signature(s)  {status}", flush=True)
    total = sum(examples.values())
    print_summary(examples, failures, time.time() - start)
    if args.report:
        with open(args.report, "w") as f:
            json.dump({"examples": dict(examples), "total_examples": total,
                       "seconds": time.time() - start, "failures": list(failures.values())}, f, indent=1)
        print(f"\nJSON report: {args.report}")
    shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failures else 0


def _rnnfast_location():
    try:
        out = subprocess.run([sys.executable, "-c", "import rnnfast; print(rnnfast.__file__)"],
                             capture_output=True, text=True, timeout=60, cwd=tempfile.gettempdir())
        return out.stdout.strip() or out.stderr.strip().splitlines()[-1]
    except Exception as exc:  # noqa: BLE001
        return f"? ({exc})"


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _record_crash(t, rc, stderr, workdir, failures):
    cur = os.path.join(workdir, f"current_{t}.py")
    code = open(cur).read() if os.path.exists(cur) else "# (no example recorded)"
    log = open(os.path.join(workdir, f"crash_{t}.txt")).read() if \
        os.path.exists(os.path.join(workdir, f"crash_{t}.txt")) else ""
    if "Timeout (" in log or rc == "timeout":
        kind, what = "hang", f"no return within {HANG_SECONDS} s"
    elif isinstance(rc, int) and rc < 0:
        kind, what = "crash", f"killed by signal {-rc}"
    else:
        kind, what = "worker-died", f"worker exit status {rc}; stderr tail: {stderr[-800:]}"
    confirm = ""
    if kind in ("crash", "hang") and os.path.exists(cur):
        try:
            p = subprocess.run([sys.executable, "-X", "faulthandler", cur], cwd=workdir,
                               capture_output=True, text=True, timeout=HANG_SECONDS + 30)
            confirm = f"re-run alone: exit status {p.returncode}"
        except subprocess.TimeoutExpired:
            confirm = "re-run alone: timed out"
    sig = f"{t} | {kind} | {what.split(';')[0]}"
    rec = failures.get(sig)
    if rec is None or len(code) < len(rec["code"]):
        failures[sig] = {"sig": sig, "target": t, "kind": kind, "message": f"{what}. {confirm}",
                         "code": code.rstrip() + f"\n# -> {what}", "traceback": log[-3000:],
                         "count": (rec or {}).get("count", 0) + 1}
    else:
        rec["count"] += 1
    return f"{kind}: {what[:120]} {confirm}"


def print_summary(examples, failures, seconds):
    total = sum(examples.values())
    print("\n" + "=" * 78)
    print(f"rnnfast API fuzz: {total} examples in {seconds:.0f} s")
    for t, n in examples.items():
        print(f"  {t:9s} {n:6d}")
    print(f"failures: {len(failures)} distinct signature(s)")
    order = sorted(failures.values(), key=lambda r: (r["kind"] == "fuzzer-error", r["target"], r["sig"]))
    for k, rec in enumerate(order, 1):
        print("\n" + "-" * 78)
        print(f"[{k}] {rec['sig']}")
        print(f"    {rec['message']}")
        print(f"    seen {rec['count']} time(s); minimal reproducer:")
        for line in rec["code"].splitlines():
            print("        " + line)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=5.0, help="total fuzzing time (default 5)")
    p.add_argument("--targets", default="", help=f"comma-separated subset of {','.join(TARGETS)}")
    p.add_argument("--slice", type=float, default=0.0, help="seconds per worker run (default: even split)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--report", help="also write the failures as JSON to this file")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--budget", type=float, default=30.0, help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    p.add_argument("--known", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)
    return parent(args)


if __name__ == "__main__":
    sys.exit(main())
