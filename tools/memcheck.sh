#!/usr/bin/env bash
# Memory-safety checks of rnnfast's compiled code, on the committed tree only.
#
#   tools/memcheck.sh [--torch] [--valgrind] [--valgrind-torch] [--asan]
#                     [--no-suite] [--rev REV] [--keep] [--logs DIR]
#
# Nothing in the working tree is read or written: each part installs a fresh
# copy of `git archive REV` (default HEAD) into a fresh venv under a temp dir,
# and removes the copy's rnnfast/ source folder after the install so that the
# tests, run from the copy's root, import the installed package (checked).
#
# 1. (unless --no-suite) RNNFAST_DEBUG_CYTHON=1 build (Cython bounds,
#    wraparound and initialisation checks; checked to be in the binary) with the
#    [test] extra, and the whole suite: `python -m pytest -q -p no:cacheprovider`
#    plus -rfEs and -W error::pytest.PytestUnraisableExceptionWarning: an
#    exception raised inside a `noexcept` kernel cannot propagate, Python only
#    prints "Exception ignored in ...", so that warning is made an error (and
#    the log is grepped for it).
#    Note: Cython's bounds checks only guard memoryview/buffer indexing.  The
#    kernels (_kernel_src/*.pxi) work on raw pointers, so the checks reach only
#    _updates.pyx (the Adam step); --valgrind / --asan are what check the kernels.
# 2. --valgrind: a release build (the directives that ship; Python's -g) and a
#    representative subset of the tests (rnn_forward/backward, cells, layouts
#    and dtypes, rnn_loss, RNNModel, optimizers, validation, hostile inputs,
#    rnnfast.RNN against its NumPy twin, the layer
#    kernels and the BLAS shim; --valgrind-torch adds the torch comparisons)
#    plus a driver that runs rnnfast.RNN
#    (layers, directions, relu, bias, batch_first, lengths, dropout, unbatched,
#    both dtypes, all product paths), under `valgrind --tool=memcheck
#    --error-exitcode=99 --track-origins=yes` with PYTHONMALLOC=malloc.  An error
#    is rnnfast's when a frame of rnnfast's compiled code (_kernels, _updates,
#    _vecmath*.h) comes before the interpreter's in its stack, or in the stack
#    that allocated an uninitialised value; all the others (CPython 3.11's
#    long-object and glibc noise, torch) are counted and listed, not failed on.
#    A positive control (a deliberate out-of-bounds read through the kernels'
#    raw entry point) must be caught and attributed first.  Valgrind does not
#    emulate AVX-512, so the kernels' AVX2 (x86-64-v3) clones run.  ~7 min.
# 3. --asan: a release build with -fsanitize=address (checked), the same
#    positive control, then the whole suite under LD_PRELOAD=libasan,
#    PYTHONMALLOC=malloc, ASAN_OPTIONS=detect_leaks=0:halt_on_error=1.  Runs at
#    native speed and runs the AVX-512 clones on a CPU that has it.  ~1.5 min.
#    libstdc++ is preloaded after libasan: otherwise, with torch loaded, ASan
#    stops at the first C++ exception torch throws ("CHECK failed ...
#    real___cxa_throw != 0": its interceptor found no __cxa_throw at start-up).
#    With --torch, a last step runs the torch operators' fuzz test
#    (tests/torch/test_torch_operators.py) alone under ASan and fails if it skipped.
#
# --torch installs torch==2.13.0 into the bounds-checked and ASan venvs (the
# parity and rnnfast.RNN tests skip without it).  --valgrind-torch (implies
# --valgrind) installs it into the valgrind venv too, adding test_rnn_module.py
# and the subset's torch comparisons under valgrind: ~14 min instead of ~7,
# most of it in torch.
#
# Exit status: 0 when everything that ran is clean; 1 when the bounds-checked
# suite fails (or shows an ignored exception), valgrind attributes an error to
# rnnfast or a test fails under valgrind, or ASan reports an error or a test
# fails under it; 2 on a usage or set-up error (including a positive control
# that was missed or did not run).  Logs and summary.txt go to --logs DIR (default: a new /tmp dir,
# printed); the copies and venvs are deleted unless --keep.
set -euo pipefail
shopt -s inherit_errexit     # a failure inside $(...) stops the script too

usage() { sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

with_torch=0 valgrind_torch=0 run_suite=1 run_valgrind=0 run_asan=0 keep=0 rev=HEAD logs=""
while (($#)); do
    case $1 in
        --torch) with_torch=1 ;;
        --valgrind) run_valgrind=1 ;;
        --valgrind-torch) run_valgrind=1 valgrind_torch=1 ;;
        --asan) run_asan=1 ;;
        --no-suite) run_suite=0 ;;
        --keep) keep=1 ;;
        --rev) rev=${2:?--rev needs a value}; shift ;;
        --logs) logs=${2:?--logs needs a value}; shift ;;
        -h|--help) usage ;;
        *) echo "memcheck: unknown argument: $1" >&2; usage ;;
    esac
    shift
done

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(git -C "$script_dir" rev-parse --show-toplevel)
commit=$(git -C "$repo" rev-parse --verify "$rev^{commit}")
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

work=$(mktemp -d "${TMPDIR:-/tmp}/rnnfast-memcheck.XXXXXX")
if [[ -z $logs ]]; then
    logs=$(mktemp -d "${TMPDIR:-/tmp}/rnnfast-memcheck-logs.XXXXXX")
fi
mkdir -p "$logs"
logs=$(cd "$logs" && pwd)
cleanup() {
    if ((keep)); then
        echo "memcheck: kept copies and venvs in $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

say() { printf '\n=== %s\n' "$*"; }
status=0
declare -a results=()
note() { results+=("$*"); }
elapsed() { local s=$(($(date +%s) - $1)); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

echo "memcheck: repo $repo, commit $commit"
echo "memcheck: logs in $logs"

# A fresh copy of the committed tree: prints its path.
copy_tree() {
    local dest=$work/$1
    mkdir -p "$dest"
    git -C "$repo" archive --format=tar "$commit" | tar -x -C "$dest"
    echo "$dest"
}

# make_venv NAME SRC TORCH [ENV=VALUE...]: a fresh venv with SRC[test] (and
# torch when TORCH is 1) installed under the given build environment; prints
# the venv's path.
make_venv() {
    local name=$1 src=$2 torch=$3
    shift 3
    local venv=$work/venv-$name
    "$PYTHON" -m venv "$venv"
    local -a pkgs=("$src[test]")
    ((torch)) && pkgs+=("$TORCH_SPEC")
    # --no-cache-dir: never reuse a wheel built with other flags.
    if ! env "$@" "$venv/bin/pip" install --no-cache-dir "${pkgs[@]}" \
            >"$logs/pip-$name.log" 2>&1; then
        echo "memcheck: pip install failed, see $logs/pip-$name.log" >&2
        tail -n 30 "$logs/pip-$name.log" >&2
        exit 2
    fi
    echo "$venv"
}

# use_installed VENV SRC [ENV=VALUE...]: remove the copy's sources so that
# Python started in it imports the installed package, and check that it does.
use_installed() {
    local venv=$1 src=$2
    shift 2
    rm -rf "$src/rnnfast" "$src/build" "$src"/*.egg-info
    local where
    where=$(cd "$src" && env "$@" "$venv/bin/python" -c \
        'import rnnfast, rnnfast._kernels, rnnfast._updates; print(rnnfast._kernels.__file__)')
    case $where in
        "$venv"/*) echo "memcheck: tests import $where" ;;
        *) echo "memcheck: tests would import rnnfast from $where, not from $venv" >&2; exit 2 ;;
    esac
}

# pytest's closing line ("N passed, N skipped in 12.3s") from a log.
closing_line() { grep -E '^(=+ )?[0-9]+ (passed|failed|error|skipped|deselected)' "$1" | tail -n 1 || true; }

PYTEST=(-m pytest -q -p no:cacheprovider -rfEs)

# ---------------------------------------------------------------- 1. bounds checks
if ((run_suite)); then
    say "bounds-checked build (RNNFAST_DEBUG_CYTHON=1) and the full test suite"
    t0=$(date +%s)
    src=$(copy_tree src-debug)
    venv=$(make_venv debug "$src" "$with_torch" RNNFAST_DEBUG_CYTHON=1)
    # The checks really are compiled in: Cython calls __Pyx_RaiseBufferIndexError
    # (and emits it at all) only when boundscheck is on; it guards the views of
    # _updates.adam.  pip builds in the copy, so the generated C is there.
    updates_c=$src/rnnfast/_updates.c
    [[ -e $updates_c ]] || updates_c=$("$venv/bin/python" -c \
        'import rnnfast._updates as u; print(u.__file__)')
    if ! grep -qa '__Pyx_RaiseBufferIndexError' "$updates_c"; then
        echo "memcheck: $updates_c has no bounds checks: RNNFAST_DEBUG_CYTHON had no effect" >&2
        exit 2
    fi
    use_installed "$venv" "$src"
    build_time=$(elapsed "$t0")
    t1=$(date +%s)
    set +e
    (cd "$src" && "$venv/bin/python" "${PYTEST[@]}" \
        -W error::pytest.PytestUnraisableExceptionWarning) 2>&1 | tee "$logs/suite-boundscheck.log"
    rc=${PIPESTATUS[0]}
    set -e
    line=$(closing_line "$logs/suite-boundscheck.log")
    ignored=$(grep -cE 'Exception ignored|PytestUnraisableExceptionWarning|Out of bounds on buffer access' \
        "$logs/suite-boundscheck.log" || true)
    if ((rc != 0 || ignored > 0)); then
        status=1
        note "bounds-checked suite: FAILED (pytest exit $rc; $ignored ignored-exception/bounds lines): $line"
    else
        note "bounds-checked suite: ok: $line"
    fi
    note "  build+install $build_time, tests $(elapsed "$t1"); log $logs/suite-boundscheck.log"
fi

# ---------------------------------------------------------------- 2. valgrind
# Exercises rnnfast.RNN (the nn.RNN counterpart) without torch: every option
# and both dtypes, small shapes, forward and backward.
write_rnn_driver() {
    cat >"$1" <<'EOF'
import itertools
import numpy as np
import rnnfast
from rnnfast import functional

rng = np.random.default_rng(0)
count = 0
for force, dtype in itertools.product([None, True, False], [np.float32, np.float64]):
    functional._force_products = force
    for layers, bidir, nonlin, bias, batch_first in itertools.product(
            [1, 2], [False, True], ["tanh", "relu"], [True, False], [False, True]):
        r = rnnfast.RNN(3, 5, num_layers=layers, bidirectional=bidir, nonlinearity=nonlin,
                        bias=bias, batch_first=batch_first,
                        dropout=0.3 if layers > 1 else 0.0, dtype=dtype, seed=1)
        r.train(layers > 1)
        dirs = 2 if bidir else 1
        for n_batch, lengths in [(3, None), (3, [4, 2, 1]), (1, None), (1, [2])]:
            shape = (n_batch, 4, 3) if batch_first else (4, n_batch, 3)
            x = rng.standard_normal(shape).astype(dtype)
            hx = rng.standard_normal((layers * dirs, n_batch, 5)).astype(dtype)
            out, h_n = r(x, hx, lengths=lengths)
            assert np.all(np.isfinite(out)) and np.all(np.isfinite(h_n))
            grads = r.backward(rng.standard_normal(out.shape).astype(dtype),
                               rng.standard_normal(h_n.shape).astype(dtype))
            assert all(np.all(np.isfinite(g)) for g in grads.values())
            count += 1
        # unbatched input
        out, h_n = r(rng.standard_normal((4, 3)).astype(dtype))
        r.backward(np.ones_like(out))
        count += 1
functional._force_products = None
print(f"rnn driver: {count} forward/backward passes ok")
EOF
}

# A deliberate out-of-bounds read through the kernels' raw entry point (by is
# one element short, which rnnfast's public functions would refuse): run under
# valgrind it must be reported and attributed to rnnfast, or the check above
# proves nothing.
write_positive_control() {
    cat >"$1" <<'EOF'
import re
import numpy as np
from rnnfast import _kernels as k

n_x, n_h, n_y, m, T = 3, 4, 5, 2, 3
rng = np.random.default_rng(0)
args = dict(
    x_mode=k.X_COLUMNS, x=rng.standard_normal((n_x, m * T)), h0=np.zeros((m, n_h)),
    w_hx=rng.standard_normal((n_h, n_x)), w_hh=rng.standard_normal((n_h, n_h)),
    w_yh=rng.standard_normal((n_y, n_h)), b_h=np.zeros(n_h),
    b_y=np.zeros(n_y - 1),                                  # one element short
    h_out=np.empty((m, T, n_h)), y_out=np.empty((m, T, n_y)),
    w_hh_t=np.empty((n_h, n_h)), own_products=False, softmax=True)
# The entry point's arguments, by name, from its embedded signature (the
# internal API changes; the names have been stable).
head = (k.forward.__doc__ or "").strip().splitlines()[0]
names = []
for piece in re.search(r"\((.*)\)", head).group(1).split(","):
    piece = piece.split("=")[0]
    piece = piece.split(":")[0] if ":" in piece else piece
    names.append(piece.split()[-1])
k.forward(**{n: args[n] for n in names if n in args})
print("positive control ran")
EOF
}

# summarise_valgrind LOG...: the error contexts that valgrind printed (each
# distinct stack once), attributed to rnnfast when one of its frames comes
# before the interpreter's in the error's own stack: the error happened inside
# a call into rnnfast (in its code, or in BLAS/NumPy/libc called from it).  A
# frame of rnnfast's further down only means that its code is on the stack
# (e.g. _kernels' module init importing scipy).  Prints a summary whose last
# line is "RNNFAST_ERRORS=N".
summarise_valgrind() {
    "$PYTHON" - "$@" <<'EOF'
import collections, re, sys

# rnnfast's compiled code: the modules' sources and objects, Cython's mangled
# names (__pyx_..._7rnnfast_8_kernels_...) and the rf_* helpers of _vecmath*.h;
# never a bare "rnnfast" (the temp dirs' paths contain it).
OURS = re.compile(r"\b(_kernels|_updates)[.](c|pyx|cpython)|_vecmath"
                  r"|7rnnfast_\d+_(kernels|updates)|\brf_\w+_[df]\b")
INTERPRETER = re.compile(r"\b(_PyEval_EvalFrameDefault|_PyEval_Vector|PyModule_ExecDef"
                         r"|_PyObject_MakeTpCall|PyObject_Vectorcall|PyObject_Call)\b")
PREFIX = re.compile(r"^==\d+== ?")
FRAME = re.compile(r"^\s+(at|by) 0x[0-9A-Fa-f]+: ")
ours, others, totals = [], collections.Counter(), []


def called_from_rnnfast(stack):
    """A frame of rnnfast's comes before the first of the interpreter's."""
    for frame in stack:
        if OURS.search(frame):
            return True
        if INTERPRETER.search(frame):
            return False
    return False


for path in sys.argv[1:]:
    blocks, cur = [], []
    for raw in open(path, errors="replace"):
        if not PREFIX.match(raw):
            continue
        line = PREFIX.sub("", raw.rstrip("\n"))
        if line.startswith("ERROR SUMMARY"):
            totals.append(f"{path}: {line}")
        if line.strip():
            cur.append(line)
        elif cur:
            blocks.append(cur)
            cur = []
    if cur:
        blocks.append(cur)
    for b in blocks:
        if len(b) < 2 or not FRAME.match(b[1]):
            continue                      # banners, summaries, notes
        stack = []                        # the error's own stack (not the origin's)
        for l in b[1:]:
            if not FRAME.match(l):
                break
            stack.append(FRAME.sub("", l))
        mine = called_from_rnnfast(stack)
        # an uninitialised value whose memory rnnfast's code allocated (an
        # output a kernel did not fully write) counts too, wherever it is used
        for i, l in enumerate(b):
            if "Uninitialised value was created" in l:
                origin = [FRAME.sub("", o) for o in b[i + 1:] if FRAME.match(o)]
                mine = mine or called_from_rnnfast(origin)
                break
        if mine:
            ours.append((path, b))
        else:
            others[(b[0], stack[0])] += 1

print("\n".join(totals))
print(f"error contexts in rnnfast's code: {len(ours)}")
for path, b in ours[:3]:
    print(f"--- {path}")
    print("\n".join(b[:30]))
print(f"other error contexts (CPython, glibc, NumPy, OpenBLAS, torch): {sum(others.values())}")
for (kind, top), n in others.most_common(12):
    print(f"  {n:4d}  {kind}  at {top}")
print(f"RNNFAST_ERRORS={len(ours)}")
EOF
}

if ((run_valgrind)); then
    command -v valgrind >/dev/null || { echo "memcheck: valgrind is not installed" >&2; exit 2; }
    say "valgrind memcheck on a release build (a subset of the tests + the RNN driver)"
    t0=$(date +%s)
    src=$(copy_tree src-valgrind)
    venv=$(make_venv valgrind "$src" "$valgrind_torch")
    use_installed "$venv" "$src"
    write_rnn_driver "$work/rnn_driver.py"
    build_time=$(elapsed "$t0")
    t1=$(date +%s)
    # Small shapes everywhere; the finite-difference loss test (reference-heavy,
    # slow under valgrind) is left out, and so are the reference's own test file
    # and the property tests (2,600 examples: more than 30 minutes under valgrind).
    subset=(tests/kernels/test_against_reference.py tests/kernels/test_layouts_and_dtypes.py
            tests/modules/test_rnn_module.py tests/kernels/test_layer_kernels.py
            tests/kernels/test_blas.py tests/kernels/test_loss.py tests/model/test_model.py
            tests/optim/test_optim.py tests/kernels/test_validation.py tests/kernels/test_hostile.py)
    deselect=(-k "not finite_differences and not apple_training_matches_torch")
    # The detector and the attribution work: a known bug is found.
    write_positive_control "$work/control.py"
    mkdir -p "$work/control-logs"
    (cd "$src" && env PYTHONMALLOC=malloc OPENBLAS_NUM_THREADS=1 valgrind --tool=memcheck \
        --error-exitcode=99 --leak-check=no --log-file="$work/control-logs/vg-%p.log" \
        "$venv/bin/python" "$work/control.py") >"$logs/valgrind-control.out" 2>&1 || true
    if ! grep -q 'positive control ran' "$logs/valgrind-control.out"; then
        echo "memcheck: the valgrind positive control did not run, so nothing shows that" \
             "valgrind would catch an error:" \
             "$(grep -m1 -E 'Error|error' "$logs/valgrind-control.out" || true)" >&2
        exit 2
    elif summarise_valgrind "$work"/control-logs/vg-*.log | grep -c '^RNNFAST_ERRORS=[1-9]' >/dev/null; then
        note "valgrind: positive control (a deliberate out-of-bounds read in _kernels) detected"
    else
        echo "memcheck: valgrind missed the positive control's out-of-bounds read;" \
             "the attribution of errors is broken" >&2
        exit 2
    fi
    vg=(valgrind --tool=memcheck --error-exitcode=99 --leak-check=no --num-callers=40
        --track-origins=yes --log-file="$logs/valgrind-%p.log")
    export_vg=(env PYTHONMALLOC=malloc OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
               MKL_NUM_THREADS=1 PYTHONHASHSEED=0)
    rm -f "$logs"/valgrind-*.log
    set +e
    (cd "$src" && "${export_vg[@]}" "${vg[@]}" "$venv/bin/python" "${PYTEST[@]}" \
        --durations=5 "${subset[@]}" "${deselect[@]}") 2>&1 | tee "$logs/valgrind-pytest.out"
    rc_tests=${PIPESTATUS[0]}
    (cd "$src" && "${export_vg[@]}" "${vg[@]}" "$venv/bin/python" "$work/rnn_driver.py") \
        2>&1 | tee "$logs/valgrind-driver.out"
    rc_driver=${PIPESTATUS[0]}
    set -e
    summarise_valgrind "$logs"/valgrind-*.log | tee "$logs/valgrind-summary.txt"
    n_ours=$(sed -n 's/^RNNFAST_ERRORS=//p' "$logs/valgrind-summary.txt")
    line=$(closing_line "$logs/valgrind-pytest.out")
    # 99 is valgrind's "errors found" (judged by attribution above); 1 is pytest's failures.
    if ((n_ours > 0)); then
        status=1
        note "valgrind: FAILED: $n_ours error(s) in rnnfast's code (see $logs/valgrind-summary.txt)"
    else
        note "valgrind: no error in rnnfast's code"
    fi
    if ((rc_tests != 0 && rc_tests != 99)) || ((rc_driver != 0 && rc_driver != 99)); then
        status=1
        note "valgrind: FAILED: a test or the RNN driver failed under valgrind (pytest exit $rc_tests, driver exit $rc_driver)"
    fi
    note "  pytest under valgrind: $line; driver: $(tail -n 1 "$logs/valgrind-driver.out")"
    note "  exit codes: pytest $rc_tests, driver $rc_driver (99 = valgrind saw some error, maybe noise)"
    note "  build+install $build_time, valgrind runs $(elapsed "$t1"); logs $logs/valgrind-*"
fi

# ---------------------------------------------------------------- 3. ASan
if ((run_asan)); then
    say "AddressSanitizer build and the full test suite"
    libasan=$(gcc -print-file-name=libasan.so)
    [[ -e $libasan ]] || { echo "memcheck: libasan not found ($libasan)" >&2; exit 2; }
    libstdcxx=$(gcc -print-file-name=libstdc++.so)
    [[ -e $libstdcxx ]] || { echo "memcheck: libstdc++ not found ($libstdcxx)" >&2; exit 2; }
    preload="$libasan $libstdcxx"
    t0=$(date +%s)
    src=$(copy_tree src-asan)
    venv=$(make_venv asan "$src" "$with_torch" CFLAGS="-fsanitize=address -fno-omit-frame-pointer -g" \
        LDFLAGS="-fsanitize=address")
    asan_env=(env LD_PRELOAD="$preload" PYTHONMALLOC=malloc
              ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:halt_on_error=1:exitcode=98:log_path=$logs/asan")
    kernels_so=$(find "$venv" -name '_kernels*.so' | head -n 1)
    # grep -c reads all of nm's output: with grep -q, nm could die of SIGPIPE once grep had
    # its match, and pipefail would then report an instrumented build as not instrumented
    if ! nm -D "$kernels_so" | grep -c '__asan_report' >/dev/null; then
        echo "memcheck: $kernels_so is not instrumented by ASan" >&2
        exit 2
    fi
    rm -f "$logs"/asan.*
    use_installed "$venv" "$src" "${asan_env[@]:1}"
    # The positive control: ASan must stop it with a heap-buffer-overflow.
    write_positive_control "$work/control.py"
    (cd "$src" && env LD_PRELOAD="$preload" PYTHONMALLOC=malloc \
        ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:exitcode=98" \
        "$venv/bin/python" "$work/control.py") >"$logs/asan-control.out" 2>&1 || true
    if grep -q 'positive control ran' "$logs/asan-control.out"; then
        echo "memcheck: ASan missed the positive control's out-of-bounds read" >&2
        exit 2
    elif grep -q 'ERROR: AddressSanitizer: heap-buffer-overflow' "$logs/asan-control.out"; then
        note "asan: positive control (a deliberate out-of-bounds read in _kernels) detected"
    else
        echo "memcheck: the ASan positive control did not run, so nothing shows that" \
             "ASan would catch an error:" \
             "$(grep -m1 -E 'Error|error' "$logs/asan-control.out" || true)" >&2
        exit 2
    fi
    build_time=$(elapsed "$t0")
    t1=$(date +%s)
    set +e
    (cd "$src" && "${asan_env[@]}" "$venv/bin/python" "${PYTEST[@]}") 2>&1 \
        | tee "$logs/suite-asan.log"
    rc=${PIPESTATUS[0]}
    set -e
    line=$(closing_line "$logs/suite-asan.log")
    reports=$(cat "$logs"/asan.* 2>/dev/null | grep -c 'ERROR: AddressSanitizer' || true)
    if ((rc != 0 || reports > 0)); then
        status=1
        note "asan: FAILED: pytest exit $rc (98 = ASan abort), $reports ASan report(s) in $logs/asan.*: $line"
    else
        note "asan: clean: $line"
    fi
    note "  build+install $build_time, tests $(elapsed "$t1"); log $logs/suite-asan.log"
    if ((with_torch)); then
        say "the torch operators' fuzz test under AddressSanitizer"
        set +e
        (cd "$src" && "${asan_env[@]}" "$venv/bin/python" "${PYTEST[@]}" \
            tests/torch/test_torch_operators.py) >"$logs/torch-ops-asan.log" 2>&1
        rc=$?
        set -e
        line=$(closing_line "$logs/torch-ops-asan.log")
        reports=$(cat "$logs"/asan.* 2>/dev/null | grep -c 'ERROR: AddressSanitizer' || true)
        if ((rc != 0 || reports > 0)) || [[ $line == *skipped* || $line != *passed* ]]; then
            status=1
            note "asan: torch operators: FAILED (pytest exit $rc, $reports ASan report(s)," \
                 "or skipped): $line; log $logs/torch-ops-asan.log"
        else
            note "asan: torch operators' fuzz test clean: $line"
        fi
    fi
fi

say "summary (commit $commit)"
((${#results[@]})) || note "nothing was run"
printf '%s\n' "${results[@]}" | tee "$logs/summary.txt"
exit "$status"
