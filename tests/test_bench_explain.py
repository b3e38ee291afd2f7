"""scripts/bench_explain.py's logic: method options, the floor, the input budget, the plan, the pooled ratios.

The floor passes themselves are checked on a tiny linear model whose sums have closed forms.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

import bench_common as bc
import bench_explain
import bench_explain_table as report

ABLATION = {"forward": 1, "backward": 0, "upper": 512, "backward_to": "layer"}
GRADCAM = {"forward": 1, "backward": 1, "upper": 0, "backward_to": "layer"}


def test_variants_split_on_top_level_commas_only() -> None:
    assert bc.parse_variant("layercam:layers=[a, b],smooth=aug") == ("layercam", ["layers=[a, b]", "smooth=aug"])
    assert bc.label("gradcam", ["smooth=eigen"]) == "gradcam smooth=eigen"
    for bad in ("gradcam", "gradcam:", ":smooth=aug", "gradcam:smooth"):
        with pytest.raises(ValueError):
            bc.parse_variant(bad)
    with pytest.raises(ValueError):
        bc.option_key("2x=1")


def test_floor_counts_each_pass_once_and_no_negative_backward() -> None:
    per = {"forward": 0.010, "layer": 0.012, "input": 0.025, "upper": 0.0001}
    assert bc.floor_keys(ABLATION) == ["forward", "upper"]
    assert bc.floor_seconds(ABLATION, per, 3) == pytest.approx(3 * (0.010 + 512 * 0.0001))
    assert bc.floor_seconds(GRADCAM, per, 2) == pytest.approx(2 * 0.012)
    aug = {**GRADCAM, "forward": 6, "backward": 6, "backward_to": "input"}
    assert bc.floor_keys(aug) == ["forward", "input"]
    assert bc.floor_seconds(aug, per, 1) == pytest.approx(6 * 0.010 + 6 * 0.015)
    assert bc.floor_seconds(GRADCAM, {**per, "layer": 0.009}, 1) == pytest.approx(0.010)  # noise: fb < f
    assert bc.passes_text(ABLATION) == "1 F + 512 U" and bc.passes_text(aug) == "6 F + 6 B (input)"


def test_sample_count_fits_the_budget() -> None:
    assert bc.sample_count(0.1, 4.0, 32) == 32
    assert bc.sample_count(0.3, 4.0, 32) == 13
    assert bc.sample_count(45.0, 4.0, 32) == 1  # never none
    assert bc.sample_count(45.0, 0, 32) == 32  # no budget: all


def _args(**kw) -> argparse.Namespace:
    base = {"models": ["fcn", "vgg16"], "methods": ["gradcam", "grad-clusters", "warped", "scorecam"],
            "variants": ["gradcam:smooth=aug"], "option": ["chunk=64"], "repeats": 3, "batch_size": 32,
            "budget": 4.0, "max_seconds": 20.0, "fcn_model": None}
    return argparse.Namespace(**{**base, **kw})


INFO = {
    "gradcam": {"task": "classify", "kinds": ["series", "images"], "requires_model": None,
                "options": ["smooth", "layer"]},
    "grad-clusters": {"task": "cluster", "kinds": ["series", "images"], "requires_model": None, "options": []},
    "warped": {"task": "classify", "kinds": ["images"], "requires_model": None, "options": ["layer"]},
    "scorecam": {"task": "classify", "kinds": ["series", "images"], "requires_model": None,
                 "options": ["chunk", "layer"]},
}


def test_plan_follows_the_metadata_and_gives_options_to_who_takes_them() -> None:
    jobs, skipped = bench_explain.plan(_args(), INFO)
    rows = [(j["model"], j["method"], j["options"]) for j in jobs]
    assert rows == [("fcn", "gradcam", []), ("fcn", "scorecam", ["chunk=64"]), ("fcn", "gradcam", ["smooth=aug"]),
                    ("vgg16", "gradcam", []), ("vgg16", "warped", []), ("vgg16", "scorecam", ["chunk=64"]),
                    ("vgg16", "gradcam", ["smooth=aug"])]
    assert any("grad-clusters on fcn" in s for s in skipped) and any("warped on fcn" in s for s in skipped)
    jobs, _ = bench_explain.plan(_args(methods=["scorecam"], variants=None), INFO)  # defaults: of the selected methods
    assert [j["method"] for j in jobs] == ["scorecam", "scorecam"]
    jobs, _ = bench_explain.plan(_args(methods=["gradcam"], variants=None, option=[], models=["fcn"]), INFO)
    assert [j["options"] for j in jobs] == [[], ["smooth=aug"], ["smooth=eigen"]]
    with pytest.raises(SystemExit, match="no selected method takes chunk"):
        bench_explain.plan(_args(methods=["gradcam"]), INFO)


def _result(method: str, samples: int, method_s: list[float], floor: dict[str, list[float]], passes: dict) -> dict:
    times = {"method": method_s, "predict": [0.5, 0.7, 0.6], "forward": [0.3, 0.3],
             **{f"floor {k}": v for k, v in floor.items()}}
    return {"arch": "vgg16", "model": "vgg16", "arch_reason": "", "method": method, "options": [], "label": method,
            "layer": "pool", "passes": passes, "samples": samples, "floor_batch": 4, "input_shape": [8, 8, 3],
            "times_s": times, "cpu_times_s": times, "median_s": {"method": float(np.median(method_s))},
            "first_call_s": {"method": 1.0, "predict": 1.0, "forward": 1.0}, "maps_per_s": 1.0,
            "peak_memory_mib": 10.0, "memory_kind": "rss", "other_cpu_cores": 0.0, "load_avg_1min": [0, 0]}


def test_references_pool_floor_passes_over_workers_and_predict_per_input_count() -> None:
    grad = _result("gradcam", 4, [0.9], {"forward": [0.40, 0.44], "forward + backward to pool": [0.48]}, GRADCAM)
    abl = _result("ablationcam", 1, [0.4], {"forward": [0.36], "layers above pool": [0.004, 0.004]}, ABLATION)
    abl["times_s"] = {**abl["times_s"], "predict": [0.2]}
    refs = report.references([grad, abl])
    floors = refs["vgg16"]["floor_per_sample"]
    assert floors["forward"] == pytest.approx(0.10)  # median of 0.40, 0.44, 0.36 over a batch of 4
    assert floors["forward + backward to pool"] == pytest.approx(0.12)
    assert grad["x_floor"] == pytest.approx(0.9 / (4 * 0.12))
    assert abl["x_floor"] == pytest.approx(0.4 / (0.10 + 512 * 0.001))
    assert grad["x_predict"] == pytest.approx(0.9 / 0.6) and abl["x_predict"] == pytest.approx(0.4 / 0.2)
    text = report.table([grad, abl], refs, dict(report.DEFAULTS), "test machine", ["x on fcn: why"])
    assert "| vgg16 | 1 × 8×8×3 | ablationcam | 1 F + 512 U |" in text and "Not timed: x on fcn: why." in text
    assert "| vgg16 | 4 × 8×8×3 | `model.predict` (reference) |" in text  # the largest input count


def test_floor_runners_match_closed_forms() -> None:
    """conv (valid, linear) -> GAP -> Dense: Σ_A d(Σ_i max_c y_ic)/dA = Σ_i Σ_k W[k, c_i]; to the input, times
    Σ_{j,c} K[j, c, k]; the upper layers on A give the model's outputs."""
    import keras

    from camkit.methods.layers import LayerRef

    keras.utils.set_random_seed(3)
    inputs = keras.Input((9, 2))
    conv = keras.layers.Conv1D(3, 3, name="conv")
    logits = keras.layers.Dense(4, name="head")(keras.layers.GlobalAveragePooling1D()(conv(inputs)))
    model = keras.Model(inputs, logits)
    x = np.random.default_rng(0).normal(size=(5, 9, 2)).astype(np.float32)
    y = model.predict(x, verbose=0)
    kernel, head = np.asarray(conv.kernel), np.asarray(model.get_layer("head").kernel)
    top = y.argmax(1)
    runs = bc.floor_runners(model, LayerRef("conv", conv), ["forward", "layer", "input", "upper"], x)
    assert runs["forward"]() == pytest.approx(y.sum(), rel=1e-5)
    assert runs["upper"]() == pytest.approx(y[:, 0].sum(), rel=1e-5)  # class 0 of every copy
    assert runs["layer"]() == pytest.approx(head[:, top].sum(), rel=1e-5)
    assert runs["input"]() == pytest.approx((kernel.sum((0, 1)) @ head[:, top]).sum(), rel=1e-5)
