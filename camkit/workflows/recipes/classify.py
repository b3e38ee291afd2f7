"""The classifier recipe (the fallback): a model with one probability per class, cross-entropy on (x, y).

Evaluation: accuracy, macro/micro precision/recall/F1 and a confusion matrix of the best model (or
``--model-path``) on the test split, in ``results/<exp>/metrics.json`` and ``plots/<exp>/confusion_matrix.png``.
"""

from __future__ import annotations

import time
from typing import Any

import keras
import numpy as np

from camkit.config import ExperimentConfig
from camkit.errors import CamkitError
from camkit.io import atomic_write_json
from camkit.metrics.classification import classification_report, format_report
from camkit.models.saving import load_model
from camkit.plots import confusion_matrix_figure, save_figure
from camkit.workflows.fit import unknown_length_ok
from camkit.workflows.recipes.base import (
    EvalRun,
    Recipe,
    TrainRun,
    build_configured,
    check_input_shape,
    register_recipe,
    resolve_batch_size,
)


class ClassifyRecipe(Recipe):
    """Train and evaluate a classifier."""

    name = "classify"

    def matches(self, config: ExperimentConfig) -> bool:
        return config.task == "classify"

    def validates(self, config: ExperimentConfig) -> bool:
        return config.train.validation_split > 0 and config.data.kind == "timeseries"

    def build(self, run: TrainRun) -> keras.Model:
        model = build_configured(run.config, run.data)
        self.check_model(run, model, f"--model {run.config.model.name}")
        return model

    def check_model(self, run: TrainRun, model: keras.Model, culprit: str) -> None:
        super().check_model(run, model, culprit)
        data = run.data
        if len(model.outputs) != 1 or tuple(model.output_shape[1:]) != (data.n_classes,):
            raise CamkitError(f"{culprit}: its output {model.output_shape} is not one probability per class "
                              f"of {data.name} ({data.n_classes}); it cannot be trained as a classifier")

    def classifier(self, model: keras.Model) -> keras.Model:
        """The part of a trained model that gives the class probabilities (the whole model here)."""
        if len(model.outputs) != 1:
            raise CamkitError(f"--model-path: the model has {len(model.outputs)} outputs; a classifier has one")
        return model

    def report_extras(self, run: EvalRun, model: keras.Model, probabilities: np.ndarray) -> dict[str, Any]:
        """Keys added to the report before anything is written (a failed check writes nothing)."""
        return {}

    def evaluate(self, run: EvalRun) -> dict[str, Any]:
        data, dirs = run.data, run.dirs
        culprit = "--model-path" if run.model_path else str(dirs.best_model)
        model = run.model if run.model is not None else load_model(
            run.model_path or dirs.best_model, compile=False, option="--model-path" if run.model_path else None)
        check_input_shape(model, data.input_shape, data.name, culprit)
        start = time.perf_counter()
        with unknown_length_ok():
            probabilities = self.classifier(model).predict(
                data.test_inputs(resolve_batch_size(run.config, data)), verbose=0)
        predict_s = time.perf_counter() - start
        if probabilities.shape[-1] != data.n_classes:
            raise CamkitError(f"{culprit}: the model has {probabilities.shape[-1]} outputs "
                              f"but {data.name} has {data.n_classes} classes")
        extras = self.report_extras(run, model, probabilities)
        dirs.ensure()
        report = classification_report(data.y_test, np.argmax(probabilities, axis=-1), data.n_classes)
        report.update(experiment=run.config.name, dataset=data.name, labels=data.labels,
                      predict_wall_time_s=predict_s, model_path=str(run.model_path or dirs.best_model), **extras)
        atomic_write_json(dirs.results / "metrics.json", report)
        figure = confusion_matrix_figure(report["confusion_matrix"], data.labels,
                                         title=f"{data.name} — accuracy {report['accuracy']:.3f}")
        report["confusion_matrix_png"] = str(save_figure(figure, dirs.plots / "confusion_matrix.png"))
        report["text"] = format_report(report)
        return report


register_recipe(ClassifyRecipe(), fallback=True)
