"""What every script here shares: read a runs folder given on the command line, say where a figure went."""

import argparse
import os

from keras_mixkd.analysis import load_results


def read_run(description, argv=None):
    """`(run_dir, config, records, out_dir)` from `python analysis/<name>.py runs/<name> [--out DIR]`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("run_dir", help="a runs folder written by `keras-mixkd study` (runs/<name>)")
    parser.add_argument("--out", default=None, help="folder for the figure (default: <run_dir>/analysis)")
    args = parser.parse_args(argv)
    config, records, _ = load_results(args.run_dir)
    if not records:
        parser.error(f"{args.run_dir} holds no finished cell yet.")
    out_dir = args.out or os.path.join(args.run_dir, "analysis")
    return args.run_dir, config, records, out_dir
