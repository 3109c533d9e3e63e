"""The stage table drives the CLI's choices, `all`, and the exit codes."""

from __future__ import annotations

import pytest

from imagepipe.cli import main
from imagepipe.errors import PipelineError, UsageError
from imagepipe.exec import exitcodes
from imagepipe.pipeline import stagetable


def test_stages_in_pipeline_order_with_their_exit_codes():
    assert [(s.name, s.exit_code) for s in stagetable.STAGES] == [
        ("provision", 10), ("base", 11), ("lint", 12), ("build", 13), ("push", 14), ("verify", 15), ("promote", 16)]
    codes = [s.exit_code for s in stagetable.STAGES] + [v.exit_code for v in stagetable.VERBS if v.exit_code]
    assert len(codes) == len(set(codes)), "each failure has its own code"
    assert not {exitcodes.OK, exitcodes.CHECKS_FAILED, exitcodes.USAGE, exitcodes.INTERNAL} & set(codes)


def test_cli_choices_come_from_the_table():
    for name in stagetable.CHOICES:
        assert main.parse_args([name]).stage == name
    with pytest.raises(SystemExit):
        main.parse_args(["nonsense"])


@pytest.mark.parametrize(("error", "code"), [
    (PipelineError("x", stage="push"), 14), (PipelineError("x", stage="registry"), 17),
    (PipelineError("x", stage="parity"), 18), (UsageError("x", stage="build"), exitcodes.USAGE),
    (PipelineError("x"), exitcodes.USAGE),
])
def test_exit_code_of_an_error(error, code):
    assert stagetable.exit_code(error) == code


def test_every_verb_has_a_module_with_run():
    """Each verb's module has `run(ctx: Context) -> int`: one parameter, the run's context, and an exit code."""
    import importlib
    import typing

    from imagepipe.pipeline.context import Context

    for verb in stagetable.VERBS:
        module = importlib.import_module(f"imagepipe.cli.verbs.{verb.module}")
        hints = typing.get_type_hints(module.run)
        assert hints == {"ctx": Context, "return": int}, f"{verb.name}: run(ctx: Context) -> int, not {hints}"
