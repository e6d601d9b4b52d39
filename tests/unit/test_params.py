"""params.yaml is parsed once into typed sections; every bad value names key, value and rule."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlrepo.errors import ParamsError, run_cli
from mlrepo.params import Params, load_params, parse_params
from mlrepo.stages import generate

PROJECT_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def problem_message(raw: dict[str, Any]) -> str:
    with pytest.raises(ParamsError) as caught:
        parse_params(raw)
    return str(caught.value)


def test_empty_mapping_gives_the_documented_defaults() -> None:
    params = parse_params({})
    assert params.train.model == "random_forest"
    assert params.train.random_forest.n_estimators == 100
    assert params.featurize.test_size == 0.2
    assert params.validate_params.missing == "error"
    assert params.validate_params.duplicates == "drop"
    assert params.evaluate.min_accuracy == 0.85
    assert params.generate.weights is None


def test_the_project_params_file_parses_and_sections_are_typed() -> None:
    params = load_params(PROJECT_PARAMS)
    assert isinstance(params, Params)
    assert params.train.model_params() is getattr(params.train, params.train.model)
    # "validate" is a reserved name on pydantic models: the section is read through its alias.
    assert params.validate_params.min_class_count >= 1


def test_values_are_parsed_into_their_types() -> None:
    params = parse_params(
        {
            "train": {"model": "svm", "svm": {"C": 2, "gamma": 0.5}},
            "validate": {"columns": {"age": {"dtype": "numeric", "min": 0, "max": 120}}},
        }
    )
    assert params.train.model_params() == params.train.svm
    assert params.train.svm.C == 2.0
    assert params.train.svm.gamma == 0.5
    age = params.validate_params.columns["age"]
    assert (age.dtype, age.min, age.max) == ("numeric", 0.0, 120.0)


@pytest.mark.parametrize(
    ("raw", "key", "given", "allowed"),
    [
        pytest.param(
            {"train": {"model": "catboost"}},
            "train.model",
            "'catboost'",
            ["'random_forest'", "'logistic_regression'", "'svm'"],
            id="unknown-model",
        ),
        pytest.param(
            {"train": {"random_forest": {"n_estimators": 0}}},
            "train.random_forest.n_estimators",
            "0",
            ["greater than 0"],
            id="n_estimators-zero",
        ),
        pytest.param(
            {"train": {"random_forest": {"n_estimators": -5}}},
            "train.random_forest.n_estimators",
            "-5",
            ["greater than 0"],
            id="n_estimators-negative",
        ),
        pytest.param(
            {"featurize": {"test_size": 0}},
            "featurize.test_size",
            "0",
            ["greater than 0"],
            id="test_size-zero",
        ),
        pytest.param(
            {"featurize": {"test_size": 1}},
            "featurize.test_size",
            "1",
            ["less than 1"],
            id="test_size-one",
        ),
        pytest.param(
            {"featurize": {"test_size": 1.5}},
            "featurize.test_size",
            "1.5",
            ["less than 1"],
            id="test_size-above-one",
        ),
        pytest.param(
            {"train": {"random_forest": {"n_estimators": "ten"}}},
            "train.random_forest.n_estimators",
            "'ten'",
            ["valid integer"],
            id="wrong-type",
        ),
        pytest.param(
            {"validate": {"missing": "skip"}},
            "validate.missing",
            "'skip'",
            ["'error'", "'drop'", "'impute'"],
            id="validate-alias-in-key",
        ),
        pytest.param(
            {"generate": {"n_classes": 2, "weights": [0.5, 0.3, 0.2]}},
            "generate.weights",
            "[0.5, 0.3, 0.2]",
            ["n_classes is 2", "one weight per class"],
            id="weights-length",
        ),
        pytest.param(
            {"train": {"n_jobs": 0}},
            "train.n_jobs",
            "0",
            ["-1 (every core)", "a count >= 1"],
            id="n_jobs-zero",
        ),
        pytest.param(
            {"train": {"cv_max_rows": 0}},
            "train.cv_max_rows",
            "0",
            ["greater than 0"],
            id="cv_max_rows-zero",
        ),
        pytest.param(
            {"train": {"hist_gradient_boosting": {"early_stopping": "yes"}}},
            "train.hist_gradient_boosting.early_stopping",
            "'yes'",
            ["'auto'"],
            id="early_stopping-word",
        ),
        pytest.param(
            {"train": {"hist_gradient_boosting": {"validation_fraction": 1.5}}},
            "train.hist_gradient_boosting.validation_fraction",
            "1.5",
            ["less than 1"],
            id="validation_fraction-above-one",
        ),
        pytest.param(
            {"train": {"xgboost": {"learning_rate": 0}}},
            "train.xgboost.learning_rate",
            "0",
            ["greater than 0"],
            id="xgboost-learning_rate-zero",
        ),
        pytest.param(
            {"train": {"xgboost": {"subsample": 1.5}}},
            "train.xgboost.subsample",
            "1.5",
            ["less than or equal to 1"],
            id="xgboost-subsample-above-one",
        ),
        pytest.param(
            {"train": {"xgboost": {"tree_method": "gpu_hist"}}},
            "train.xgboost.tree_method",
            "'gpu_hist'",
            ["'hist'", "'approx'", "'exact'"],
            id="xgboost-tree_method",
        ),
        pytest.param(
            {"train": {"xgboost": {"early_stopping": "yes"}}},
            "train.xgboost.early_stopping",
            "'yes'",
            ["'auto'"],
            id="xgboost-early_stopping-word",
        ),
        pytest.param(
            {"train": {"lightgbm": {"num_leaves": 1}}},
            "train.lightgbm.num_leaves",
            "1",
            ["greater than or equal to 2"],
            id="lightgbm-num_leaves-one",
        ),
        pytest.param(
            {"train": {"lightgbm": {"max_depth": -1}}},
            "train.lightgbm.max_depth",
            "-1",
            ["greater than 0"],
            id="lightgbm-max_depth-negative",
        ),
        pytest.param(
            {"train": {"lightgbm": {"validation_fraction": 0}}},
            "train.lightgbm.validation_fraction",
            "0",
            ["greater than 0"],
            id="lightgbm-validation_fraction-zero",
        ),
    ],
)
def test_bad_value_names_dotted_key_value_given_and_what_is_allowed(
    raw: dict[str, Any], key: str, given: str, allowed: list[str]
) -> None:
    message = problem_message(raw)
    assert "params.yaml has 1 problem(s)" in message
    assert f"- {key}: " in message
    assert f"(given: {given})" in message
    for fragment in allowed:
        assert fragment in message


@pytest.mark.parametrize("model", ["xgboost", "lightgbm"])
def test_boosting_library_sections_are_typed_and_match_params_yaml(model: str) -> None:
    params = parse_params({"train": {"model": model, model: {"n_estimators": 7}}})
    section = params.train.model_params()
    assert section is getattr(params.train, model)
    assert section.model_dump()["n_estimators"] == 7
    assert section.model_dump()["early_stopping"] == "auto"
    # params.yaml spells out every default of the section, so neither can drift from the other.
    project = load_params(PROJECT_PARAMS)
    assert getattr(project.train, model) == type(section)()
    assert set(yaml.safe_load(PROJECT_PARAMS.read_text())["train"][model]) == set(
        type(section).model_fields
    )


def test_a_library_alias_is_not_a_key_of_the_section() -> None:
    # xgboost accepts eta for learning_rate; the schema has one name per knob.
    message = problem_message({"train": {"model": "xgboost", "xgboost": {"eta": 0.3}}})
    assert "train.xgboost.eta: unknown key" in message
    assert "learning_rate" in message


def test_misspelled_key_suggests_the_right_dotted_key() -> None:
    message = problem_message({"train": {"random_forst": {"n_estimators": 10}}})
    assert "train.random_forst: unknown key" in message
    assert "did you mean 'train.random_forest'?" in message
    assert "allowed keys: model, seed" in message


def test_unknown_section_lists_the_sections() -> None:
    message = problem_message({"trian": {"model": "svm"}})
    assert "trian: unknown key" in message
    assert "did you mean 'train'?" in message
    for section in ("generate", "validate", "featurize", "train", "evaluate"):
        assert section in message.split("allowed keys:")[1]


def test_unknown_key_without_a_close_match_gives_no_suggestion() -> None:
    message = problem_message({"featurize": {"zzzzzz": 1}})
    assert "featurize.zzzzzz: unknown key" in message
    assert "did you mean" not in message
    assert "allowed keys: test_size, seed, scaler" in message


def test_search_space_key_that_is_not_a_param_of_the_model() -> None:
    message = problem_message(
        {"train": {"model": "random_forest", "search": "grid", "search_space": {"max_iter": [1]}}}
    )
    assert "train.search_space" in message
    assert "'max_iter'" in message
    assert "random_forest" in message
    assert "allowed: class_weight, max_depth, max_features, min_samples_leaf, n_estimators" in (
        message
    )


def test_search_space_is_checked_against_the_chosen_model() -> None:
    # max_iter is a parameter of logistic_regression, so the same space is fine there.
    params = parse_params(
        {
            "train": {
                "model": "logistic_regression",
                "search": "grid",
                "search_space": {"max_iter": [100, 200]},
            }
        }
    )
    assert params.train.search_space == {"max_iter": [100, 200]}


def test_search_space_with_an_empty_list_is_rejected() -> None:
    message = problem_message({"train": {"search": "grid", "search_space": {"max_depth": []}}})
    assert "train.search_space" in message and "max_depth is an empty list" in message


def test_search_space_is_not_checked_against_an_unknown_model() -> None:
    # The bad model is the one problem; the space cannot be judged without a model.
    message = problem_message(
        {"train": {"model": "catboost", "search": "grid", "search_space": {"eta": [0.1]}}}
    )
    assert "has 1 problem(s)" in message
    assert "train.model" in message and "'catboost'" in message


def test_search_without_a_space_is_rejected() -> None:
    message = problem_message({"train": {"search": "random"}})
    assert "train" in message and "search_space is empty" in message


def test_distributed_training_is_for_xgboost_only() -> None:
    message = problem_message({"train": {"distributed": True}})
    assert "train: distributed is true but model is 'random_forest': only xgboost" in message
    assert "set model: xgboost or distributed: false" in message
    assert parse_params({"train": {"model": "xgboost", "distributed": True}}).train.distributed


def test_distributed_training_needs_a_cv_row_count() -> None:
    message = problem_message(
        {"train": {"model": "xgboost", "distributed": True, "cv_max_rows": None}}
    )
    assert "distributed is true but cv_max_rows is null" in message


def test_every_problem_is_reported_at_once() -> None:
    message = problem_message(
        {
            "train": {"model": "catboost", "cv_folds": 1},
            "featurize": {"test_size": 2},
            "evaluate": {"min_acuracy": 0.9},
        }
    )
    assert "has 4 problem(s)" in message
    for key in ("train.model", "train.cv_folds", "featurize.test_size", "evaluate.min_acuracy"):
        assert f"- {key}:" in message
    assert "did you mean 'evaluate.min_accuracy'?" in message


def test_load_params_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ParamsError, match="file not found") as caught:
        load_params(path)
    assert str(path) in str(caught.value)


def test_load_params_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  model: [random_forest\n", encoding="utf-8")
    with pytest.raises(ParamsError, match="not valid YAML") as caught:
        load_params(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(("text", "kind"), [("- train\n- validate\n", "list"), ("42\n", "int")])
def test_load_params_not_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ParamsError, match=f"expected a mapping of sections, got {kind}") as caught:
        load_params(path)
    assert str(path) in str(caught.value)


def test_load_params_names_the_file_in_value_problems(
    params_file: Callable[[dict[str, Any]], Path],
) -> None:
    path = params_file({"train": {"cv_folds": 1}})
    with pytest.raises(ParamsError) as caught:
        load_params(path)
    message = str(caught.value)
    assert message.startswith(f"{path} has 1 problem(s)")
    assert "train.cv_folds" in message and "(given: 1)" in message


def test_empty_params_file_means_defaults(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("", encoding="utf-8")
    assert load_params(path) == Params()


def test_a_stage_stops_on_bad_params_with_one_message_and_no_output(
    tmp_path: Path,
    params_file: Callable[[dict[str, Any]], Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = params_file({"train": {"model": "catboost"}})
    out = tmp_path / "raw.parquet"
    code = run_cli(generate.main, ["--params", str(path), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ")
    assert "train.model" in err and "'catboost'" in err
    assert "Traceback" not in err
    assert not out.exists()
