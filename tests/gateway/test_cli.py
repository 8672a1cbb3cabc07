"""The command line's top level: --help and --version work and name the program."""

import pytest

from gateway.cli import build_parser, main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("tagrelay ")


def test_help_lists_every_subcommand() -> None:
    from gateway.cli import SUBCOMMANDS

    text = build_parser().format_help()
    assert "tagrelay" in text
    for name in SUBCOMMANDS:
        assert name in text
