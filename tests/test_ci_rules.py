"""The suite's own rules: in CI (CI=true) a missing input fails a test instead of skipping it."""

from __future__ import annotations

import pytest

import conftest


@pytest.mark.parametrize("in_ci, outcome", [(True, pytest.fail.Exception), (False, pytest.skip.Exception)])
def test_missing_inputs_skip_locally_and_fail_in_ci(monkeypatch, tmp_path, in_ci, outcome):
    monkeypatch.setattr(conftest, "IN_CI", in_ci)
    with pytest.raises(outcome, match="shared thing not found at"):
        conftest.need_path(tmp_path / "absent", "shared thing")
    with pytest.raises(outcome, match="module evss_no_such_module is not installed"):
        conftest.need_module("evss_no_such_module")
    assert conftest.need_path(tmp_path, "present") == tmp_path


def test_ci_flag_is_read_from_the_environment():
    for value, expected in (("true", True), ("TRUE", True), ("1", True), ("", False), ("false", False)):
        assert conftest.ci_from_env({"CI": value}) is expected
    assert conftest.ci_from_env({}) is False
