"""``python -m rnnfast sample MODEL``: generate text from a model saved by ``train``
(or a checkpoint), printed as it is made."""

import math
import sys
import time

from rnnfast.checkpoint import CheckpointError, model_from_checkpoint
from rnnfast.cli.checks import HelpFormatter, check_float, check_int, fail
from rnnfast.model import RNNModel
from rnnfast.text import generate_iter


def add_parser(commands):
    """Add the ``sample`` command to an argparse sub-parser set."""
    p = commands.add_parser("sample", help="generate text from a trained model",
                            formatter_class=HelpFormatter,
                            description="Generate text from a model saved by 'train --save', "
                                        "or from a checkpoint written by 'train'.")
    p.add_argument("model", help="a model file saved by 'train --save', or a checkpoint "
                                 "written by 'train'")
    p.add_argument("--length", type=int, default=200,
                   help="characters to generate (printed as they are made)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="any non-negative finite number: below 1 sharpens the distribution, "
                        "0 picks the most likely character every time, above 1 flattens it")
    p.add_argument("--top-k", type=int, default=None, metavar="K",
                   help="draw only among the K most likely characters (1: the most likely "
                        "every time; default: all)")
    p.add_argument("--top-p", type=float, default=None, metavar="P",
                   help="nucleus sampling: draw only among the most likely characters whose "
                        "probabilities add up to at least P, in (0, 1] (default: all)")
    p.add_argument("--prime", default="",
                   help="text the model reads first, printed before what it makes (default: "
                        "none, the first character is drawn uniformly)")
    p.add_argument("--seed", type=int, default=None,
                   help="a number that fixes the random choices: the same number gives the "
                        "same text (default: different text each run)")
    p.set_defaults(run=run)


def _check_args(args):
    check_int("--length", args.length, 0)
    check_float("--temperature", args.temperature, zero_means="greedy: the most likely "
                "character every time")
    if args.top_k is not None:
        check_int("--top-k", args.top_k, 1, " (1 = the most likely character every time)")
    if args.top_p is not None and not (math.isfinite(args.top_p) and 0 < args.top_p <= 1):
        fail(f"--top-p must be a number in (0, 1] (1 = every character); got {args.top_p}")
    if args.seed is not None:
        check_int("--seed", args.seed, 0)


def _load_for_sampling(path):
    """The model in ``path``: a model file (``train --save``) or a checkpoint."""
    try:
        try:
            return RNNModel.load(path)
        except ValueError as not_a_model:
            try:
                return model_from_checkpoint(path)
            except CheckpointError as exc:
                # an archive with a header that is not a model's: say why it is no checkpoint
                header = "no rnnfast.RNNModel header" in str(not_a_model)
                raise (exc if header else not_a_model) from None
    except FileNotFoundError:
        fail(f"{path}: no such file")
    except IsADirectoryError:
        fail(f"{path}: is a directory, not a model file")
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or type(exc).__name__}")
    except ValueError as exc:
        fail(str(exc))


def run(args):
    """Run ``sample`` with the parsed ``args``; the exit status (130 on Ctrl-C)."""
    _check_args(args)
    model = _load_for_sampling(args.model)
    if "vocab" not in model.metadata:
        fail(f"{args.model} has no vocabulary; save it with "
             "'python -m rnnfast train ... --save'")
    vocab = model.metadata["vocab"]
    n = model.input_size
    if not isinstance(vocab, str) or len(vocab) != n or len(set(vocab)) != n:
        got = (f"{len(vocab)} characters, {len(set(vocab))} distinct"
               if isinstance(vocab, str) else f"{type(vocab).__name__} {vocab!r}"[:80])
        fail(f"{args.model}: metadata 'vocab' must be a string of "
             f"{n} distinct characters (one per input); got {got}")
    if model.output_size != n:
        fail(f"{args.model} has input_size {n} and output_size "
             f"{model.output_size}; sampling feeds each output back in, so "
             "they must be equal")
    unknown = sorted(set(args.prime) - set(vocab))
    if unknown:
        fail(f"--prime holds characters the model never saw: {''.join(unknown)!r}")
    try:
        chunks = generate_iter(model, list(vocab), args.length, temperature=args.temperature,
                               top_k=args.top_k, top_p=args.top_p, prime=args.prime,
                               seed=args.seed)
    except ValueError as exc:
        fail(str(exc))
    return _stream(args.prime, (chunk[0] for chunk in chunks), sys.stdout)


def _stream(prime, pieces, out, interval=0.05):
    """Write ``prime`` and ``pieces`` (strings) to ``out`` as they come (flushed at each
    line and at least every ``interval`` seconds), then a newline; 0, or 130 on Ctrl-C (what
    was made is written).

    An output that cannot be written (a full disk) is one ``error:`` line; a reader that
    goes away (``| head``) ends the program quietly (:func:`rnnfast.cli.run`).
    """
    try:
        return _write_pieces(prime, pieces, out, interval)
    except BrokenPipeError:
        raise
    except OSError as exc:
        fail(f"cannot write the sample: {exc.strerror or exc}")


def _write_pieces(prime, pieces, out, interval):
    out.write(prime)
    last = time.monotonic()
    try:
        for piece in pieces:
            out.write(piece)
            if "\n" in piece or time.monotonic() - last >= interval:
                out.flush()
                last = time.monotonic()
    except KeyboardInterrupt:
        out.write("\n")
        out.flush()
        return 130
    out.write("\n")
    out.flush()
    return 0
