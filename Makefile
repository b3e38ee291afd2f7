# make demo: create .venv, install camkit, run the demo on the shipped data and write figures.
# make test: create .venv if missing, install, run the test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.camkit-installed

.PHONY: demo test lint bench-tsc clean

$(STAMP): pyproject.toml requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/camkit run configs/planted_fcn.yaml --epochs 12
	@echo "series (12 epochs; configs/planted_fcn.yaml trains 30): results/planted_fcn/ (metrics.json," \
	      "localization_gradcam/ with Grad-CAM's figures), plots/planted_fcn/explain_gradcam++/series_grid.png"
	$(BIN)/camkit run configs/cluttered_digits_cnn16.yaml --epochs 8
	$(BIN)/camkit explain -c configs/cluttered_digits_cnn16.yaml --method gradcam --images data/cluttered_digits/pairs \
	  --n-images all --target top1,true --save-dir plots/cluttered_digits_cnn16/pairs_gradcam --overwrite --no-progress
	$(BIN)/camkit eval-localization --maps plots/cluttered_digits_cnn16/pairs_gradcam \
	  --annotations data/cluttered_digits/annotations/pairs --overwrite
	@echo "images (8 epochs; configs/cluttered_digits_cnn16.yaml trains 15): test split" \
	      "results/cluttered_digits_cnn16/localization_gradcam/, pairs plots/cluttered_digits_cnn16/pairs_gradcam/"
	$(BIN)/camkit run configs/gunpoint_cluster.yaml --epochs 10 --name gunpoint_cluster_demo --no-progress
	@echo "Grad-CeAM (10 epochs; configs/gunpoint_cluster.yaml trains 50): results/gunpoint_cluster_demo/" \
	      "(cluster_metrics.json, faithfulness.json), plots/gunpoint_cluster_demo/grad_test_{best,worst,centers}{0,1}/"
	$(BIN)/camkit run configs/hires_demo.yaml --no-progress
	@echo "high-res CAM demo (a one-block DenseNet-FCN at 32x32, 5 + 2 epochs; the paper's model:" \
	      "configs/hires_digits.yaml): plots/hires_demo/explain_hires/ (image | low-res | high-res | refined)"

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check camkit tests scripts

bench-tsc: $(STAMP)
	$(BIN)/python scripts/bench_tsc.py --seeds 0 1 2 --readme

clean:
	rm -rf results models plots .pytest_cache
