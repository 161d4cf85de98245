"""Every benchmark, every backend, one table: `make bench`.

Runs `bench_distill.py`, `bench_study.py` and `bench_memory.py` once per
backend, each in its own process (Keras fixes its backend at import), then
prints one table of the distillation step with each target met or missed,
the study-cost ratios (teacher cache, shared teacher pass, the study's fixed
cost, plain PyTorch) and the memory lines.

Usage:

    .venv/bin/python benchmarks/run_all.py                # the README's table
    .venv/bin/python benchmarks/run_all.py --quick        # fewer rounds, smaller epochs
    .venv/bin/python benchmarks/run_all.py --pairs resnet56:resnet20 --backends jax,torch
    .venv/bin/python benchmarks/run_all.py --demo         # + peak RSS of the full `keras-mixkd study`

The results also go to `runs/benchmarks/` (JSON per run, `latest.md`).
"""

import argparse
import datetime
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

BACKENDS = ("tensorflow", "jax", "torch")
FLOOR_TARGET = 1.05
KERAS_TARGET = 1.0
TORCH_TARGET = 1.5


def run_script(script, backend, arguments, json_path):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, os.path.join(common.BENCHMARKS_DIR, script)] + arguments
    command += ["--json", json_path]
    common.log(f"$ KERAS_BACKEND={backend} {' '.join(command[1:])}")
    # stderr passes through: the scripts log their progress there.
    completed = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True)
    if completed.returncode != 0:
        common.log(f"exit {completed.returncode}")
        return None
    common.log(completed.stdout.rstrip())
    with open(json_path) as handle:
        return json.load(handle)


def verdict(ok):
    return "met" if ok else "MISSED"


def distill_table(results):
    """Markdown rows of the step table, and the target lines.

    Verdicts use the paired per-round ratios (each round runs every
    contender back to back), which cancel load that drifts between rounds on
    a shared machine; the ratios of the medians are shown beside them.
    """
    lines = [
        "| backend | pair | ours | floor (teacher inf. + student step) | keras.distillation | plain PyTorch "
        "| ours/floor time | ours/keras speed | ours/PyTorch speed |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    targets = []
    best = {}
    for r in results:
        ips, t = r["images_per_s"], r["timings"]
        paired = r.get("paired_ratios") or common.paired_ratios(t)
        floor_cell = (
            f"{ips['floor']:.1f} ({t['teacher_inference']['median_s'] * 1e3:.0f} + "
            f"{t['student_step']['median_s'] * 1e3:.0f} ms)"
        )

        def cell(name):
            return f"{ips[name]:.1f}" if name in ips else "–"

        def ratio(key, digits=2):
            return f"{paired[key]:.{digits}f}" if key in paired else "–"

        jit = " (XLA)" if r.get("ours_jit_compile") and r["backend"] == "tensorflow" else ""
        lines.append(
            f"| {r['backend']}{jit} | {r['pair']} | {cell('ours')} | {floor_cell} | {cell('keras')} | "
            f"{cell('torch')} | {ratio('ours_over_floor_time', 3)} | {ratio('ours_over_keras_speed')} | "
            f"{ratio('ours_over_torch_speed')} |"
        )

        def detail(key, digits):
            return f"(paired {paired[key]:.{digits}f}, ratio of medians {r[key]:.{digits}f})"

        line = (
            f"- {r['backend']}, {r['pair']}: ours ≤ {FLOOR_TARGET} × floor time: "
            f"{verdict(paired['ours_over_floor_time'] <= FLOOR_TARGET)} {detail('ours_over_floor_time', 3)}"
        )
        if "ours_over_keras_speed" in paired:
            line += (
                f"; ours ≥ {KERAS_TARGET} × keras.distillation speed: "
                f"{verdict(paired['ours_over_keras_speed'] >= KERAS_TARGET)} {detail('ours_over_keras_speed', 2)}"
            )
        targets.append(line)
        if "ours_over_torch_speed" in paired:
            previous = best.get(r["pair"])
            if previous is None or paired["ours_over_torch_speed"] > previous[1]:
                best[r["pair"]] = (r["backend"], paired["ours_over_torch_speed"], r["ours_over_torch_speed"])
    for pair, (backend, speedup, of_medians) in best.items():
        targets.append(
            f"- {pair}: best backend ({backend}) ≥ {TORCH_TARGET} × plain PyTorch speed: "
            f"{verdict(speedup >= TORCH_TARGET)} (paired {speedup:.2f}, ratio of medians {of_medians:.2f})"
        )
    return lines, targets


STUDY_KEYS = ("cache_vs_alone", "shared_vs_floor", "shared_vs_separate", "demo_vs_before", "torch_vs_plain")


def study_table(studies):
    """Markdown rows of `bench_study.py`'s ratios, one row per backend, with its targets."""
    import bench_study

    lines = [
        "| backend | " + " | ".join(f"{key} ({bench_study.TARGETS[key][0]} {bench_study.TARGETS[key][1]})"
                                    for key in STUDY_KEYS) + " |",
        "|---|" + "---:|" * len(STUDY_KEYS),
    ]
    for study in studies:
        cells = []
        for key in STUDY_KEYS:
            value = study.get(key)
            cells.append("–" if value is None else f"{value:.2f} {bench_study.verdict(key, value).split()[0]}")
        lines.append(f"| {study['backend']} | " + " | ".join(cells) + " |")
    return lines


def study_scale(m):
    extra = m["command"].split(" --runs-dir ", 1)[-1].split(" ", 1)
    return f" {extra[1]}" if len(extra) > 1 else " (the full demo)"


def memory_lines(memory):
    lines = []
    for m in memory:
        if m["what"] == "epochs":
            rss = ", ".join(f"{v:.0f}" for v in m["epoch_rss_mib"])
            growth = m.get("growth_epoch5_over_epoch2")
            growth_text = (
                f"{growth:+.1%} ({verdict(abs(growth) <= 0.05)})" if growth is not None else "–"
            )
            lines.append(
                f"| {m['backend']} | {m['pair']} fit, {m['examples_per_epoch']} images/epoch × "
                f"{len(m['epoch_rss_mib'])} epochs | {m['peak_rss_mib']:.0f} | "
                f"{m['rss_after_import_mib']:.0f} / {m['rss_after_build_mib']:.0f} | {rss} | {growth_text} |"
            )
        else:
            status = "" if m["returncode"] == 0 else f" — FAILED (exit {m['returncode']})"
            lines.append(
                f"| {m['backend']} | `keras-mixkd {m['command'].partition(' ')[2].split(' --runs-dir ')[0]}`"
                f"{study_scale(m)}{status}, {m['seconds']:.0f} s | "
                f"{m['peak_tree_rss_mib']:.0f} | – | – | – |"
            )
    if lines:
        lines = [
            "| backend | job | peak RSS (MiB) | RSS after import / build (MiB) | RSS at each epoch end (MiB) | epoch 5 vs 2 |",
            "|---|---|---:|---:|---|---|",
        ] + lines
    return lines


def render(stamp, command, machine, settings, distill, pipelines, memory, failures=(), costs=(), studies=()):
    """The report as Markdown text."""
    out = [
        f"Run {stamp}: {machine.get('Model name', machine['cpu'])}, {machine['nproc']} cores, "
        f"{machine.get('ram_gib', '?')} GiB RAM; load average at the end {machine['load_average']}.",
        f"Command: {command}",
    ]
    if settings:
        out.append(
            f"Settings: batch {settings['batch_size']}, {settings.get('image_size', 32)}x"
            f"{settings.get('image_size', 32)}x3, {settings['num_classes']} classes, mixup; "
            f"{settings['warmup']} warm-up + {settings['repeats']} timed interleaved rounds; jit_compile "
            f"{settings['jit_compile']}; OMP_WAIT_POLICY={settings.get('omp_wait_policy', '?')}."
        )
    out.append("")
    if distill:
        rows, targets = distill_table(distill)
        out += ["Distillation step, images/s (median of the timed rounds; higher is better):", ""]
        out += rows + ["", "Targets:"] + targets + [""]
    if costs:
        out += [
            "XLA's cost analysis of the compiled steps (JAX): the work each does, whatever the load:",
            "",
            "| pair | ours GFLOP / GB | floor GFLOP / GB | keras.distillation GFLOP / GB | ours/floor | ours/keras |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for r in costs:
            c = r["costs"]

            def cell(name):
                return f"{c[name]['gflop']:.3f} / {c[name]['gb_accessed']:.3f}"

            def ratio(other):
                return (
                    f"{c['ours']['gflop'] / c[other]['gflop']:.5f} / "
                    f"{c['ours']['gb_accessed'] / c[other]['gb_accessed']:.4f}"
                )

            out.append(
                f"| {r['pair']} | {cell('ours')} | {cell('floor')} | {cell('keras')} | {ratio('floor')} | {ratio('keras')} |"
            )
        out.append("")
    if pipelines:
        out += ["Input pipeline (`make_dataset` + mixup + normalisation, in-memory images):"]
        for backend, p in pipelines:
            out.append(
                f"- {backend}: pipeline alone {p['pipeline_images_per_s']:.0f} images/s; `fit` fed by it "
                f"{p['fit_images_per_s']:.1f} images/s against {p['step_images_per_s']:.1f} for the bare "
                f"step ({p['pair']}, fit/step time {p['fit_over_step_time']:.2f})"
            )
        out.append("")
    if studies:
        out += ["Study cost (`bench_study.py`; ratios paired per round, see its docstring):", ""]
        out += study_table(studies) + [""]
    if memory:
        out += ["Memory:", ""] + memory_lines(memory) + [""]
    if failures:
        out += ["FAILED: " + "; ".join(failures)]
    return "\n".join(out)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--pairs", default=None, help="teacher:student,... (default: the three of the issue)")
    parser.add_argument("--quick", action="store_true", help="1 warm-up + 5 timed rounds; 512-image epochs")
    parser.add_argument("--smoke", action="store_true", help="tiny models: checks that everything runs")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--jit-compile", default=None, help="passed to bench_distill.py")
    parser.add_argument("--no-distill", action="store_true")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--no-study", action="store_true", help="skip bench_study.py")
    parser.add_argument("--no-pipeline", action="store_true", help="skip the input-pipeline line")
    parser.add_argument("--no-cost", action="store_true", help="skip XLA's cost analysis (JAX)")
    parser.add_argument("--from-json", default=None, help="print the report of a saved summary-*.json and exit")
    parser.add_argument("--demo", action="store_true", help="peak RSS of the full `keras-mixkd study` (minutes)")
    parser.add_argument(
        "--out-dir",
        default=os.path.join(common.REPO_DIR, "runs", "benchmarks"),
        help="where the JSON results and latest.md go (default: runs/benchmarks, git-ignored)",
    )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.from_json:
        with open(args.from_json) as handle:
            saved = json.load(handle)
        print(
            render(
                saved["stamp"], saved["command"], saved["machine"], saved["settings"],
                saved["distill"], saved["pipelines"], saved["memory"], saved.get("failures", ()),
                saved.get("costs", ()), saved.get("studies", ()),
            )
        )
        return 0
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    os.makedirs(args.out_dir, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    scale = ["--smoke"] if args.smoke else (["--quick"] if args.quick else [])

    distill_args = list(scale)
    if args.pairs:
        distill_args += ["--pairs", args.pairs]
    if args.warmup is not None:
        distill_args += ["--warmup", str(args.warmup)]
    if args.repeats is not None:
        distill_args += ["--repeats", str(args.repeats)]
    if args.jit_compile:
        distill_args += ["--jit-compile", args.jit_compile]
    if not args.no_pipeline:
        distill_args += ["--pipeline"]

    distill, pipelines, memory, failures, settings, studies = [], [], [], [], None, []
    for backend in backends:
        if not args.no_study:
            path = os.path.join(args.out_dir, f"study-{backend}-{stamp}.json")
            payload = run_script("bench_study.py", backend, list(scale), path)
            if payload is None:
                failures.append(f"bench_study.py under {backend}")
            else:
                studies.append(payload)
        if not args.no_distill:
            path = os.path.join(args.out_dir, f"distill-{backend}-{stamp}.json")
            payload = run_script("bench_distill.py", backend, distill_args, path)
            if payload is None:
                failures.append(f"bench_distill.py under {backend}")
            else:
                distill += payload["results"]
                settings = payload["settings"]
                if payload.get("pipeline"):
                    pipelines.append((backend, payload["pipeline"]))
        if not args.no_memory:
            path = os.path.join(args.out_dir, f"memory-{backend}-{stamp}.json")
            payload = run_script("bench_memory.py", backend, list(scale), path)
            if payload is None:
                failures.append(f"bench_memory.py under {backend}")
            else:
                memory.append(payload)
    costs = []
    if not args.no_cost and "jax" in backends:
        path = os.path.join(args.out_dir, f"cost-jax-{stamp}.json")
        cost_args = list(scale) + (["--pairs", args.pairs] if args.pairs else [])
        payload = run_script("bench_cost.py", "jax", cost_args, path)
        if payload is None:
            failures.append("bench_cost.py under jax")
        else:
            costs = payload["results"]
    if not args.no_memory:
        # `make demo`'s main job, under the default backend.
        path = os.path.join(args.out_dir, f"memory-study-{stamp}.json")
        study_args = "" if args.demo else "--smoke"
        payload = run_script("bench_memory.py", "tensorflow", ["--what", "study", f"--study-args={study_args}"], path)
        if payload is None:
            failures.append("bench_memory.py --what study")
        else:
            memory.append(payload)

    machine = common.machine_info()
    command = " ".join(
        [os.path.relpath(sys.executable, common.REPO_DIR), "benchmarks/run_all.py"]
        + (argv if argv is not None else sys.argv[1:])
    )
    if settings:
        settings = dict(settings, omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"))
    text = render(stamp, command, machine, settings, distill, pipelines, memory, failures, costs, studies)
    print(text)
    with open(os.path.join(args.out_dir, "latest.md"), "w") as handle:
        handle.write(text + "\n")
    common.write_json(
        os.path.join(args.out_dir, f"summary-{stamp}.json"),
        {
            "stamp": stamp,
            "command": command,
            "machine": machine,
            "settings": settings,
            "distill": distill,
            "pipelines": pipelines,
            "memory": memory,
            "costs": costs,
            "studies": studies,
            "failures": failures,
        },
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
