#!/usr/bin/env bash
# Memory-safety checks of rnnfast's compiled code, on the committed tree only.
#
#   tools/memcheck.sh [--torch] [--valgrind] [--asan] [--no-suite] [--rev REV]
#                     [--keep] [--logs DIR]
#
# 1. (always, unless --no-suite) copies the committed tree (`git archive REV`,
#    default HEAD) to a temp dir, installs it into a fresh venv with
#    RNNFAST_DEBUG_CYTHON=1 (Cython bounds, wraparound and initialisation
#    checks) and the [test] extra, and runs the whole pytest suite from the
#    copy's root against the installed package (the copy's rnnfast/ source
#    folder is removed after the install so that it cannot shadow it).
#    Exceptions raised inside the `noexcept` kernels cannot propagate; Python
#    prints them as "Exception ignored in ..." and pytest turns them into a
#    PytestUnraisableExceptionWarning, which is made an error here and also
#    grepped for in the log.
#    Note: Cython's bounds checks only guard memoryview/buffer indexing.  The
#    kernels in _kernels.pyx work on raw pointers, so the checks reach only
#    _updates.pyx (the Adam step); --valgrind / --asan are what check the kernels.
# 2. --valgrind: a release build (the directives that ship, with -g) in a second
#    fresh venv; a representative subset of the tests (rnn_forward/backward,
#    cells, layouts and dtypes, rnn_loss, RNNModel, optimizers, validation,
#    hostile inputs, the hypothesis properties, and the rnnfast.RNN module
#    tests when torch is installed) plus a small driver
#    that exercises rnnfast.RNN without torch (layers, directions, relu, lengths,
#    dropout, both dtypes, both product paths) run under
#    `valgrind --tool=memcheck --error-exitcode=99` with PYTHONMALLOC=malloc.
#    Errors are attributed to rnnfast when a frame of their stack lies in
#    rnnfast's extension modules (_kernels, _updates, _vecmath*.h); all the
#    others (CPython, NumPy, OpenBLAS, torch) are counted and listed as noise.
#    Valgrind does not emulate AVX-512, so the kernels' AVX2/SSE2 clones run.
# 3. --asan: a release build with -fsanitize=address in a third venv, and the
#    whole suite under it (LD_PRELOAD=libasan, PYTHONMALLOC=malloc,
#    detect_leaks=0).  Natively fast, and it runs the AVX-512 clones too.
#
# --torch installs torch==2.13.0 into every venv (the parity tests skip without
# it).  Exit status: 0 when everything that ran is clean; 1 when the
# bounds-checked suite fails (or reports an ignored exception), valgrind finds
# an error in rnnfast's code or a test fails under valgrind, or ASan reports an
# error or a test fails under it; 2 on a usage or set-up error.  Logs and
# summaries are kept in the --logs directory (default: a new /tmp dir, printed).
# The copies and venvs are deleted at the end unless --keep.
set -euo pipefail

usage() { sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

with_torch=0 run_suite=1 run_valgrind=0 run_asan=0 keep=0 rev=HEAD logs=""
while (($#)); do
    case $1 in
        --torch) with_torch=1 ;;
        --valgrind) run_valgrind=1 ;;
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

# make_venv NAME SRC [ENV=VALUE...]: a fresh venv with SRC[test] (and torch)
# installed under the given build environment; prints the venv's path.
make_venv() {
    local name=$1 src=$2
    shift 2
    local venv=$work/venv-$name
    "$PYTHON" -m venv "$venv"
    local -a pkgs=("$src[test]")
    ((with_torch)) && pkgs+=("$TORCH_SPEC")
    # --no-cache-dir: never reuse a wheel built with other flags.
    if ! env "$@" "$venv/bin/pip" install --no-cache-dir "${pkgs[@]}" \
            >"$logs/pip-$name.log" 2>&1; then
        echo "memcheck: pip install failed, see $logs/pip-$name.log" >&2
        tail -n 30 "$logs/pip-$name.log" >&2
        exit 2
    fi
    echo "$venv"
}

# Remove the copy's sources so that Python started in it imports the installed
# package, and check that it does.
use_installed() {
    local venv=$1 src=$2
    rm -rf "$src/rnnfast" "$src/build" "$src"/*.egg-info
    local where
    where=$(cd "$src" && "$venv/bin/python" -c \
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
    venv=$(make_venv debug "$src" RNNFAST_DEBUG_CYTHON=1)
    # The checks really are compiled in: Cython's buffer bounds-check message
    # is only present when boundscheck is on (it guards _updates.adam's views).
    updates_so=$("$venv/bin/python" -c 'import rnnfast._updates as u; print(u.__file__)')
    if ! grep -qa 'Out of bounds on buffer access' "$updates_so"; then
        echo "memcheck: $updates_so has no bounds checks: RNNFAST_DEBUG_CYTHON had no effect" >&2
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

# summarise_valgrind LOG...: counts errors, attributing them to rnnfast when a
# frame of the error's own stack is in rnnfast's compiled code.  Prints a
# summary; the last line is "RNNFAST_ERRORS=N".
summarise_valgrind() {
    "$PYTHON" - "$@" <<'EOF'
import collections, re, sys

OURS = re.compile(r"rnnfast|_kernels[.]|_updates[.]|_vecmath")
PREFIX = re.compile(r"^==\d+== ?")
KIND = re.compile(r"^(Invalid (read|write|free)|Conditional jump|Use of uninitialised"
                  r"|Syscall param|Mismatched free|Source and destination overlap"
                  r"|Argument '.*' of function .* has a fishy|Jump to the invalid"
                  r"|Process terminating|Stack overflow|Invalid .*)")
ours, others = [], collections.Counter()
for path in sys.argv[1:]:
    blocks, cur = [], []
    for raw in open(path, errors="replace"):
        line = PREFIX.sub("", raw.rstrip("\n"))
        if not line.strip():
            if cur:
                blocks.append(cur)
            cur = []
        elif PREFIX.match(raw) or not raw.startswith("--"):
            cur.append(line)
    if cur:
        blocks.append(cur)
    for b in blocks:
        if not KIND.match(b[0]):
            continue
        # the error's own stack: up to the first "Address ..." / origin line
        stack = []
        for l in b[1:]:
            if not re.match(r"\s+(at|by) 0x", l):
                break
            stack.append(l)
        if any(OURS.search(l) for l in stack):
            ours.append((path, b))
        else:
            top = next((l.split(":", 1)[1].strip() for l in stack), "?")
            others[(b[0], top)] += 1

print(f"errors in rnnfast's code: {len(ours)}")
for path, b in ours[:3]:
    print(f"--- {path}")
    print("\n".join(b[:25]))
print(f"other errors (CPython/NumPy/OpenBLAS/torch noise): {sum(others.values())}")
for (kind, top), n in others.most_common(10):
    print(f"  {n:4d}  {kind}  at {top}")
print(f"RNNFAST_ERRORS={len(ours)}")
EOF
}

if ((run_valgrind)); then
    command -v valgrind >/dev/null || { echo "memcheck: valgrind is not installed" >&2; exit 2; }
    say "valgrind memcheck on a release build (a subset of the tests + the RNN driver)"
    t0=$(date +%s)
    src=$(copy_tree src-valgrind)
    venv=$(make_venv valgrind "$src")
    use_installed "$venv" "$src"
    write_rnn_driver "$work/rnn_driver.py"
    build_time=$(elapsed "$t0")
    t1=$(date +%s)
    # Small shapes everywhere; the finite-difference loss test (reference-heavy,
    # slow under valgrind) is left out, and so is the reference's own test file.
    subset=(tests/test_against_reference.py tests/test_layouts_and_dtypes.py
            tests/test_loss.py tests/test_model.py tests/test_optim.py tests/test_validation.py
            tests/test_hostile.py tests/test_properties.py)
    if "$venv/bin/python" -c 'import torch' 2>/dev/null; then
        subset+=(tests/test_rnn_module.py)
    fi
    deselect=(-k "not finite_differences and not apple_training_matches_torch")
    vg=(valgrind --tool=memcheck --error-exitcode=99 --leak-check=no --num-callers=40
        --track-origins=yes --log-file="$logs/valgrind-%p.log")
    export_vg=(env PYTHONMALLOC=malloc OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
               MKL_NUM_THREADS=1 PYTHONHASHSEED=0)
    rm -f "$logs"/valgrind-*.log
    set +e
    (cd "$src" && "${export_vg[@]}" "${vg[@]}" "$venv/bin/python" "${PYTEST[@]}" \
        "${subset[@]}" "${deselect[@]}") 2>&1 | tee "$logs/valgrind-pytest.out"
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
    t0=$(date +%s)
    src=$(copy_tree src-asan)
    venv=$(make_venv asan "$src" CFLAGS="-fsanitize=address -fno-omit-frame-pointer -g" \
        LDFLAGS="-fsanitize=address")
    asan_env=(env LD_PRELOAD="$libasan" PYTHONMALLOC=malloc
              ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:halt_on_error=1:exitcode=98:log_path=$logs/asan")
    rm -f "$logs"/asan.*
    if ! (cd / && "${asan_env[@]}" "$venv/bin/python" -c 'import rnnfast'); then
        echo "memcheck: the ASan build does not import" >&2
        exit 2
    fi
    use_installed "$venv" "$src"
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
fi

say "summary (commit $commit)"
((${#results[@]})) || note "nothing was run"
printf '%s\n' "${results[@]}" | tee "$logs/summary.txt"
exit "$status"
