"""reference.config: benchmark YAMLs, validation errors naming fields, overrides."""
import copy
from pathlib import Path

import pytest
import yaml

from reference.config import (BenchmarkConfig, ConfigError, config_from_dict, dump_config,
                              load_config, parse_override)

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"


def _tiny_raw() -> dict:
    return yaml.safe_load((BENCH / "tiny.yaml").read_text())


def test_the_benchmarks_load():
    names = sorted(p.stem for p in BENCH.glob("*.yaml"))
    assert names == ["cambricon_mlu370x8_16", "mlcommons_v05", "seed_cmp_gru2x256",
                     "seed_objective_lstm", "seed_objective_lstm_nll", "tiny"]
    for name in names:
        cfg = load_config(BENCH / f"{name}.yaml")
        assert isinstance(cfg, BenchmarkConfig)
        assert cfg.name == name


def test_seed_comparison_is_the_seed_timing_configuration():
    c = load_config(BENCH / "seed_cmp_gru2x256.yaml")
    assert (c.model.rnn_type, c.model.hidden, c.model.layers, c.model.bidirectional,
            c.model.conv_channels) == ("gru", 256, 2, False, 32)
    assert (c.train.batch_per_card, c.train.threads, c.train.target_wer) == (8, 1, None)
    assert (c.optim.name, c.optim.lr, c.optim.nesterov) == ("sgd", 1e-4, True)
    assert c.augment.enabled


def test_benchmark_values():
    ml = load_config(BENCH / "mlcommons_v05.yaml")
    assert (ml.model.rnn_type, ml.model.hidden, ml.model.layers, ml.model.bidirectional) == \
        ("gru", 2560, 3, False)
    assert (ml.optim.name, ml.optim.lr, ml.optim.momentum, ml.optim.nesterov) == \
        ("sgd", 1e-4, 0.9, True)
    assert ml.train.batch_per_card == 8 and ml.train.epochs == 10
    assert ml.train.target_wer == 23.0 and ml.train.loss == "ctc_nll"
    cam = load_config(BENCH / "cambricon_mlu370x8_16.yaml")
    assert cam.model.rnn_type == "lstm" and cam.cards == 16
    assert cam.train.target_wer is None  # --acc 0.0: never stops early
    assert cam.train.loss == "seed_raw_logits"
    tiny = load_config(BENCH / "tiny.yaml")
    assert tiny.model.bidirectional and tiny.model.hidden == 256
    assert tiny.optim.name == "adamw" and isinstance(tiny.optim.lr, float)


def test_load_by_name():
    assert load_config("tiny") == load_config(BENCH / "tiny.yaml")


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_invalid_yaml(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


def test_unknown_key_names_the_dotted_field(tmp_path):
    raw = _tiny_raw()
    raw["train"]["batchsize"] = 8
    p = tmp_path / "x.yaml"
    p.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as err:
        load_config(p)
    msg = str(err.value)
    assert "train.batchsize" in msg and "unknown key" in msg
    assert str(p) in msg  # the file is named too


def test_unknown_top_level_key():
    with pytest.raises(ConfigError, match=r"\bmodle\b.*unknown key"):
        config_from_dict({"modle": {}})


@pytest.mark.parametrize("section, key, value, field", [
    ("optim", "lr", -0.1, "optim.lr"),
    ("optim", "lr", 0, "optim.lr"),
    ("train", "epochs", 0, "train.epochs"),
    ("train", "epochs", 2.5, "train.epochs"),
    ("train", "epochs", True, "train.epochs"),   # bool is not an int here
    ("train", "batch_per_card", 0, "train.batch_per_card"),
    ("model", "rnn_type", "rnn", "model.rnn_type"),
    ("model", "bidirectional", "true", "model.bidirectional"),
    ("data", "cache_audio", "no", "data.cache_audio"),
    ("optim", "momentum", 1.0, "optim.momentum"),
    ("train", "target_wer", 150, "train.target_wer"),
    ("train", "target_wer", "low", "train.target_wer"),
    ("train", "loss", "mse", "train.loss"),
    ("optim", "betas", [0.9], "optim.betas"),
    ("optim", "lr", "one", "optim.lr"),
])
def test_bad_values_name_the_field(section, key, value, field):
    raw = _tiny_raw()
    raw[section][key] = value
    with pytest.raises(ConfigError) as err:
        config_from_dict(raw, source="tiny.yaml")
    msg = str(err.value)
    assert msg.startswith("tiny.yaml: ")
    assert f"{field}:" in msg


def test_section_must_be_a_mapping():
    with pytest.raises(ConfigError, match="model: must be a mapping"):
        config_from_dict({"model": 3})


def test_int_widens_to_float_and_null_target():
    cfg = config_from_dict({"optim": {"lr": 1}, "train": {"target_wer": None}})
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.train.target_wer is None


def test_defaults_are_the_reference():
    cfg = config_from_dict({})
    assert cfg == BenchmarkConfig()
    assert cfg.model.hidden == 2560 and cfg.optim.lr == 1e-4 and cfg.train.batch_per_card == 8


def test_overrides():
    cfg = load_config(BENCH / "tiny.yaml",
                      overrides=["train.epochs=3", "optim.lr=0.01", "model.bidirectional=false",
                                 "train.target_wer=null", "model.rnn_type=lstm"])
    assert cfg.train.epochs == 3
    assert cfg.optim.lr == 0.01
    assert cfg.model.bidirectional is False
    assert cfg.train.target_wer is None
    assert cfg.model.rnn_type == "lstm"
    base = load_config(BENCH / "tiny.yaml")
    assert base.train.epochs == 12  # the file itself is untouched


def test_override_values_are_validated():
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        load_config(BENCH / "tiny.yaml", overrides=["train.epochs=0"])
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        load_config(BENCH / "tiny.yaml", overrides=["train.epochs=three"])


@pytest.mark.parametrize("override, field", [
    ("train.epoch=3", "train.epoch"),
    ("trian.epochs=3", "trian"),
    ("train.epochs.max=3", "train.epochs.max"),
    ("model=3", "model"),
])
def test_bad_override_paths_fail(override, field):
    with pytest.raises(ConfigError) as err:
        load_config(BENCH / "tiny.yaml", overrides=[override])
    assert field in str(err.value)


def test_override_needs_equals():
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("train.epochs")


def test_parse_override_yaml_scalars():
    assert parse_override("train.epochs=3") == ("train.epochs", 3)
    assert parse_override("optim.lr=1.5e-3") == ("optim.lr", 1.5e-3)
    assert parse_override("model.bidirectional=true") == ("model.bidirectional", True)
    assert parse_override("name = x=y") == ("name", "x=y")  # split at the first =


def test_overrides_do_not_mutate_the_input_mapping():
    raw = _tiny_raw()
    before = copy.deepcopy(raw)
    cfg = config_from_dict(raw, overrides=["train.epochs=3"])
    assert cfg.train.epochs == 3
    assert raw == before


@pytest.mark.parametrize("name", ["tiny", "mlcommons_v05", "cambricon_mlu370x8_16"])
def test_dump_round_trip(name):
    cfg = load_config(BENCH / f"{name}.yaml")
    text = dump_config(cfg)
    again = config_from_dict(yaml.safe_load(text))
    assert again == cfg
    assert dump_config(again) == text
    assert isinstance(again.optim.betas, tuple)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n"])
def test_top_level_must_be_a_mapping(tmp_path, text):
    p = tmp_path / "list.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(p)


def test_exponent_without_dot_is_a_number_but_words_are_not():
    # PyYAML reads `3e-3` as a string (YAML 1.1); a float field accepts it.
    cfg = load_config(BENCH / "tiny.yaml", overrides=["optim.lr=3e-3", "optim.anneal=1.2"])
    assert cfg.optim.lr == 3e-3 and cfg.optim.anneal == 1.2
    for bad in ("fast", "nan", "1e-3x"):
        with pytest.raises(ConfigError, match=r"optim\.lr: must be a number"):
            load_config(BENCH / "tiny.yaml", overrides=[f"optim.lr={bad}"])
