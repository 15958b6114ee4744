"""False alarms and power: Emerald's detector against TFDV's JSD on the same simulated nights.

The nights are `pipeline_src.validation.simulate`'s (also used by
tests/pipeline_src/validation/test_detector_simulated.py, whose nights are the
first ones of these): a 3000-image training set of four exact camera sizes
(point-mass aspect_ratio and pixel_area), continuous pixel statistics and three
labels; and, for the "one camera" row, the demo's training set (120 images at
400x300 and 36 at 240x320 exactly) with clean nights taken wholly at its most
common size, 400x300. Emerald runs the shipped settings (1 % false alarms per
night, Bonferroni over skew + drift = 18 tests, 9999 permutations, minimum
effect 0.3 KS / 0.2 TVD); TFDV runs the old skew comparators (JSD 0.2
aspect_ratio, JSD 0.25 brightness, L-infinity 0.3 label) between the training
statistics and tonight's. Writes the table into BENCHMARKS.md.

    .venv/bin/python bench/bench_detector.py [--nights 1000] [--tfdv-nights 1000]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO))
from bench_parse import write_section  # noqa: E402  (a sibling script, not a package)

CLEAN_SIZES = (6, 36, 500)
ONE_CAMERA = "one camera"          # clean: every image at the demo training's dominant size
SHIFTS = {"brightness": "brightness", "portrait": "aspect_ratio"}   # shift -> property
SHIFT_LABELS = {"brightness": "brightness x0.7 (underexposed)",
                "portrait": "all portrait 3:4 (training mostly landscape)"}
# (images tonight, kind of night), in table order; the training set is simulate.training_for(kind).
CASES = ([(n, None) for n in CLEAN_SIZES] + [(36, ONE_CAMERA)]
         + [(36, shift) for shift in SHIFTS])


def _rate(hits: int, total: int) -> str:
    from scipy import stats as sps

    low, high = sps.binomtest(hits, total).proportion_ci(0.95)
    return f"{hits / total:.1%} ({hits}/{total}; {low:.1%}-{high:.1%})"


def _machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}, "
            f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the start")


def _trainings() -> dict:
    from pipeline_src.validation import simulate

    return {shift: simulate.training_for(shift) for shift in {s for _, s in CASES}}


def run_emerald(trainings: dict, nights: int) -> dict:
    from pipeline_src.validation import simulate

    results = {}
    for n, shift in CASES:
        start, rows = time.perf_counter(), []
        for i, tonight, last in simulate.nights(n, nights, shift=shift):
            result = simulate.run(tonight, trainings[shift], last, seed=f"sim-{n}-{shift}-{i}")
            aspect = next(c for c in result["comparisons"]
                          if (c["kind"], c["feature"]) == ("skew", "aspect_ratio"))
            rows.append({**{kind: simulate.fired_features(result, kind)
                            for kind in ("skew", "drift")},
                         "aspect_effect": aspect["effect"], "aspect_p": aspect["p_value"],
                         "aspect_significant": aspect["significant"], "alpha": result["alpha"]})
        results[n, shift] = {"rows": rows, "seconds": (time.perf_counter() - start) / nights}
        print(f"emerald n={n} shift={shift}: {results[n, shift]['seconds'] * 1e3:.0f} ms/night",
              flush=True)
    return results


def run_tfdv(trainings: dict, nights: int) -> dict:
    from pipeline_src.validation import simulate

    start = time.perf_counter()
    detectors = {shift: simulate.TfdvDetector(train) for shift, train in trainings.items()}
    print(f"TFDV imported and training statistics made in {time.perf_counter() - start:.1f} s",
          flush=True)
    results = {}
    for n, shift in CASES:
        start, rows = time.perf_counter(), []
        for _, tonight, _ in simulate.nights(n, nights, shift=shift):
            flagged, measured = detectors[shift].validate(tonight)
            rows.append({"flagged": flagged, "measured": measured})
        results[n, shift] = {"rows": rows, "seconds": (time.perf_counter() - start) / nights}
        print(f"tfdv n={n} shift={shift}: {results[n, shift]['seconds'] * 1e3:.0f} ms/night",
              flush=True)
    return results


def _clean_label(n: int, shift) -> str:
    if shift == ONE_CAMERA:
        return f"clean, one camera (the training's dominant size), {n} images; demo training"
    return f"clean, {n} images"


def _clean_nights_label(n: int, shift) -> str:
    return f"{n} images, one camera (demo training)" if shift == ONE_CAMERA else f"{n} images"


def _percent(hits: int, total: int) -> str:
    return f"{hits / total:.1%}"


def table(emerald: dict, tfdv: dict, args, machine: str) -> str:
    clean = [(n, shift) for n, shift in CASES if shift in (None, ONE_CAMERA)]
    lines = [
        "## Skew detector: false alarms and power on simulated nights",
        "",
        f"Command: `.venv/bin/python bench/bench_detector.py --nights {args.nights} "
        f"--tfdv-nights {args.tfdv_nights}` (from the repository root; written by the script).",
        "",
        f"Machine: {machine}.",
        "",
        "Nights: `pipeline_src/validation/simulate.py`, a 3000-image training set whose sizes "
        "are 4000x3000 (45 %), 3024x4032 (15 %), 1920x1080 (25 %) and 640x480 (15 %) exactly "
        "(aspect_ratio and pixel_area are point masses), Beta-distributed luminance with a "
        "per-image colour cast, Beta rms contrast, log-normal sharpness, labels "
        "lion/tiger/bear 40/35/25 %. Clean nights come from the same population; each is "
        "compared with the training set (skew) and with the night before (drift). "
        "The one-camera row uses the demo's training set instead: exactly 120 images at "
        "400x300 (the corpus, aspect 4/3) and 36 at 240x320 (one night of Toto's portrait "
        "camera, aspect 3/4), the other properties from the same population; its clean nights "
        "take all 36 images at 400x300, the training's most common size (Toto used the "
        "landscape camera), the other properties again from the same population, and drift "
        "compares two such nights. "
        "Emerald: shipped settings, 1 % false alarms per night (Bonferroni over 18 tests), "
        "9999 permutations, minimum effect 0.3 (KS distance) / 0.2 (label TVD). "
        "TFDV: `validate_statistics(training, schema, serving_statistics=tonight)` with the "
        "old skew comparators (approximate JSD 0.2 on aspect_ratio, 0.25 on brightness, "
        "L-infinity 0.3 on label), in-memory statistics (`generate_statistics_from_dataframe`, "
        "one job, no Beam pipeline). TFDV only ever compared tonight with training, so the "
        "like-for-like Emerald column is its skew family; the per-night column adds drift "
        "(what the product's budget covers). Rates with 95 % Clopper-Pearson intervals.",
        "",
        "| nights | measured | Emerald, per night (skew + drift) | Emerald, skew family | "
        "TFDV JSD / L-inf (skew) |",
        "|---|---|---|---|---|",
    ]
    for n, shift in clean:
        ours, theirs = emerald[n, shift]["rows"], tfdv[n, shift]["rows"]
        lines.append(
            f"| {_clean_label(n, shift)} | false alarms (anything flagged) | "
            f"{_rate(sum(bool(r['skew'] or r['drift']) for r in ours), len(ours))} | "
            f"{_rate(sum(bool(r['skew']) for r in ours), len(ours))} | "
            f"{_rate(sum(bool(r['flagged']) for r in theirs), len(theirs))} |")
    for shift, name in SHIFTS.items():
        ours, theirs = emerald[36, shift]["rows"], tfdv[36, shift]["rows"]
        lines.append(
            f"| {SHIFT_LABELS[shift]}, 36 images | detected ({name} flagged) | "
            f"{_rate(sum(name in (r['skew'] | r['drift']) for r in ours), len(ours))} | "
            f"{_rate(sum(name in r['skew'] for r in ours), len(ours))} | "
            f"{_rate(sum(name in r['flagged'] for r in theirs), len(theirs))} |")

    lines += ["", "What TFDV flags on clean nights, and its median measurement "
              "(threshold in brackets):", "",
              "| clean nights | aspect_ratio flagged | median JSD aspect_ratio (0.2) | "
              "brightness flagged | median JSD brightness (0.25) | label flagged | "
              "median L-inf label (0.3) |",
              "|---|---|---|---|---|---|---|"]
    for n, shift in clean:
        rows = tfdv[n, shift]["rows"]
        cells = []
        for feature in ("aspect_ratio", "brightness", "label"):
            hits = sum(feature in r["flagged"] for r in rows)
            median = statistics.median(r["measured"].get(feature, 0.0) for r in rows)
            cells += [_percent(hits, len(rows)), f"{median:.3f}"]
        lines.append(f"| {_clean_nights_label(n, shift)} | " + " | ".join(cells) + " |")

    one = emerald[36, ONE_CAMERA]["rows"]
    effects = [r["aspect_effect"] for r in one]
    p_values = [r["aspect_p"] for r in one]
    significant = sum(r["aspect_significant"] for r in one)
    one_tfdv = tfdv[36, ONE_CAMERA]["rows"]
    jsd = [r["measured"].get("aspect_ratio", 0.0) for r in one_tfdv]
    lines += ["", "The one-camera night on aspect_ratio, tonight against the demo training: "
              f"Emerald's KS distance is {min(effects):.3f}-{max(effects):.3f} "
              f"(median {statistics.median(effects):.3f}; 36/156 = {36 / 156:.3f}, below the "
              f"0.3 minimum effect), its permutation p-value median "
              f"{statistics.median(p_values):.4f} (range {min(p_values):.4f}-"
              f"{max(p_values):.4f}) against a level of {one[0]['alpha']:.5f}, significant on "
              f"{_percent(significant, len(one))} of nights and fired on "
              f"{_percent(sum('aspect_ratio' in r['skew'] for r in one), len(one))}; "
              f"TFDV's approximate JSD is {min(jsd):.3f}-{max(jsd):.3f} "
              f"(median {statistics.median(jsd):.3f}, its maximum is 1) against its 0.2 "
              f"threshold, flagged on "
              f"{_percent(sum('aspect_ratio' in r['flagged'] for r in one_tfdv), len(one_tfdv))}."]

    def tfdv_alarms(case):
        rows = tfdv[case]["rows"]
        return _percent(sum(bool(r["flagged"]) for r in rows), len(rows))

    def tfdv_detected(shift):
        rows = tfdv[36, shift]["rows"]
        return _percent(sum(SHIFTS[shift] in r["flagged"] for r in rows), len(rows))

    worst = max(sum(bool(r["skew"] or r["drift"]) for r in emerald[case]["rows"])
                / len(emerald[case]["rows"]) for case in clean)
    power = min(sum(name in (r["skew"] | r["drift"]) for r in emerald[36, shift]["rows"])
                / len(emerald[36, shift]["rows"]) for shift, name in SHIFTS.items())
    lines += ["", "Where TFDV's JSD goes wrong on these nights. It false-alarms on tiny clean "
              f"nights ({tfdv_alarms((6, None))} of clean nights of 6 flagged: histograms of six "
              "values are far from training's whatever the population) and on a whole clean "
              "night at the training's dominant camera size "
              f"({tfdv_alarms((36, ONE_CAMERA))} of one-camera nights flagged: one point mass "
              "tonight against two in training scores the maximum JSD on aspect_ratio, although "
              "every value tonight is the training's most common one). It misses underexposed "
              f"nights of 36 images: brightness x0.7 is flagged on {tfdv_detected('brightness')} "
              "of them, the rest scoring below its 0.25 JSD threshold. In every clean row Emerald "
              f"false-alarms on at most {worst:.1%} of nights (skew + drift; the budget is "
              "1 %), the one-camera nights included (their KS distance of 0.23 is below the "
              "0.3 minimum effect, and their drift compares identical sizes), and it detects "
              f"each shift at 36 images on at least {power:.1%} of nights."]
    lines += ["", "Cost per night on this machine (the detector alone, properties in memory): "
              "Emerald " + ", ".join(
                  f"{emerald[n, None]['seconds'] * 1e3:.0f} ms at {n}" for n in CLEAN_SIZES)
              + "; TFDV statistics + validation " + ", ".join(
                  f"{tfdv[n, None]['seconds'] * 1e3:.0f} ms at {n}" for n in CLEAN_SIZES)
              + " (plus the TFDV import)."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nights", type=int, default=1000, help="Emerald nights per case")
    parser.add_argument("--tfdv-nights", type=int, default=1000, help="TFDV nights per case")
    args = parser.parse_args()

    machine = _machine()
    trainings = _trainings()
    emerald = run_emerald(trainings, args.nights)
    tfdv = run_tfdv(trainings, args.tfdv_nights)
    body = table(emerald, tfdv, args, machine)
    print(body)
    write_section("BENCHMARKS.md", "detector", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
