"""``python -m rnnfast train FILE``: the options of :func:`rnnfast.training.train`, and its
end as an exit status (0, or 130 / 143 when stopped by SIGINT / SIGTERM)."""

import dataclasses
import signal
import sys

from rnnfast.cli.checks import HelpFormatter
from rnnfast.model import CELL_NAMES
from rnnfast.training import OPTIMIZERS, SCHEDULES, TrainSettings, train

_EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}


def add_parser(commands):
    """Add the ``train`` command to an argparse sub-parser set."""
    p = commands.add_parser(
        "train", help="train a char-level model on a UTF-8 text file",
        formatter_class=HelpFormatter,
        description="Char-level language model on a text file: truncated BPTT with the "
                    "hidden state carried across chunks. Ctrl-C or SIGTERM finish the current "
                    "step, write a checkpoint and exit (130 / 143); --resume continues it "
                    "exactly.")
    p.add_argument("file", help="a UTF-8 text file")
    p.add_argument("--cell", choices=list(CELL_NAMES), default=None,
                   help="the recurrent cell, saved with the model; with --init-from, the "
                        "model's (default: rnn)")
    p.add_argument("--hidden", type=int, default=None,
                   help="hidden units per layer; with --init-from, the model's (default: 128)")
    p.add_argument("--layers", type=int, default=None,
                   help="recurrent layers; with --init-from, the model's (default: 1)")
    p.add_argument("--dropout", type=float, default=0.0,
                   help="dropout between layers while training, in [0, 1)")
    p.add_argument("--dtype", choices=["float32", "float64"], default=None,
                   help="the model's floating-point type; with --init-from, the model's "
                        "(default: float32)")
    p.add_argument("--seq-len", type=int, default=25,
                   help="characters per chunk (steps of truncated BPTT)")
    p.add_argument("--batch", type=int, default=16, help="parallel streams over the text")
    p.add_argument("--steps", type=int, default=1000,
                   help="total optimizer steps (a resumed run continues to this total)")
    p.add_argument("--optimizer", choices=list(OPTIMIZERS), default="adam",
                   help="update rule, with torch.optim's defaults besides --lr")
    p.add_argument("--lr", type=float, default=3e-3, help="learning rate (at the start)")
    p.add_argument("--lr-decay", type=float, default=1.0, metavar="F",
                   help="multiply the learning rate by F, in (0, 1], at the end of each epoch "
                        "from epoch --decay-after on (an epoch: one pass of the --batch "
                        "streams over the training text); 1 = no decay")
    p.add_argument("--decay-after", type=int, default=10, metavar="N",
                   help="the first epoch whose end decays the learning rate")
    p.add_argument("--schedule", default=None, metavar="CALL",
                   help="a learning-rate schedule of rnnfast.optim.lr_scheduler, stepped "
                        "after every step from --lr, as 'CosineAnnealingLR(T_max=1000)'; "
                        f"one of {', '.join(SCHEDULES)} (default: none, or --lr-decay)")
    p.add_argument("--clip", type=float, default=5.0,
                   help="max gradient norm; 0 = no clipping")
    p.add_argument("--val-frac", type=float, default=0.0, metavar="F",
                   help="hold out the last fraction F of the text for validation; 0 = none")
    p.add_argument("--eval-every", type=int, default=0, metavar="K",
                   help="report the validation loss and bits per character every K steps "
                        "(and at the end); 0 = at the end only")
    p.add_argument("--checkpoint-every", type=int, default=0, metavar="K",
                   help="write a checkpoint every K steps; 0 = only when stopped by a signal")
    p.add_argument("--checkpoint", metavar="CKPT.npz", default=None,
                   help="where checkpoints go (default: MODEL.npz.ckpt.npz with --save, "
                        "else checkpoint.npz)")
    p.add_argument("--resume", metavar="CKPT.npz", default=None,
                   help="continue from a checkpoint, with the same settings and text, to "
                        "--steps (default: start afresh)")
    p.add_argument("--init-from", metavar="MODEL.npz", default=None,
                   help="fine-tune: start from the weights of a saved model (--save) or a "
                        "checkpoint, with a fresh optimizer and step count; its cell, sizes, "
                        "dtype and vocabulary are used (default: random weights)")
    p.add_argument("--keep-best", action="store_true",
                   help="keep the checkpoint of the lowest validation loss so far in "
                        "CKPT.best.npz beside --checkpoint CKPT.npz (needs --val-frac and "
                        "--eval-every; default: not kept)")
    p.add_argument("--sample-every", type=int, default=0, metavar="K",
                   help="print 200 sampled characters every K steps; 0 = never")
    p.add_argument("--save", metavar="MODEL.npz",
                   help="save the trained model here (default: not saved)")
    p.add_argument("--plot", metavar="FILE.png",
                   help="plot the training and validation loss curves, in a format named by "
                        "the extension (needs matplotlib; default: no plot)")
    p.add_argument("--log", metavar="FILE.jsonl",
                   help="append one JSON record per evaluation (step, losses, speed) "
                        "(default: no log)")
    p.add_argument("--seed", type=int, default=0,
                   help="a number that fixes the random initial weights and dropout masks (the "
                        "same number, the same run)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar (default: a progress bar on a terminal)")
    p.set_defaults(run=run)


def settings_from(args):
    """The :class:`~rnnfast.training.TrainSettings` of parsed ``args``."""
    return TrainSettings(**{f.name: getattr(args, f.name)
                            for f in dataclasses.fields(TrainSettings)})


def run(args):
    """Run ``train`` with the parsed ``args``; the exit status."""
    result = train(settings_from(args))
    if result.signal is None:
        return 0
    if result.error is not None:
        print(f"error: {result.error}", file=sys.stderr)
    return _EXIT_STATUS[result.signal]
