"""Training recipes: one per kind of experiment (classify, cluster, hires), picked by :func:`recipe_for`.

A recipe module defines a :class:`Recipe` subclass and calls :func:`register_recipe` on an instance; the
imports below register the built-in ones (classify is the fallback).
"""

from camkit.workflows.recipes import classify, cluster, hires  # noqa: F401  (register the built-in recipes)
from camkit.workflows.recipes.base import EvalRun, Recipe, TrainRun, recipe_for, recipe_names, register_recipe

__all__ = ["EvalRun", "Recipe", "TrainRun", "recipe_for", "recipe_names", "register_recipe"]
