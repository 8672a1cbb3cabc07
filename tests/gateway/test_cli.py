"""The command line's top level: --help and --version work and name the program."""

import subprocess
import sys

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


def test_building_the_parser_loads_no_daemon_modules() -> None:
    """Every command builds the whole parser: the light ones (decode, demo) must not pay for
    MQTT, SQLite or the uplink. Checked in a fresh interpreter, where nothing is loaded yet."""
    heavy = ("paho", "sqlite3", "gateway.uplink", "gateway.outbox", "gateway.config")
    code = (
        "import sys, gateway.cli\n"
        "gateway.cli.build_parser()\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r} or m in {heavy!r}"
        " or m.startswith(('gateway.uplink.', 'gateway.outbox.'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout


def test_outbox_class_choices_match_the_event_classes() -> None:
    from gateway.cli.outbox import CLASS_NAMES
    from gateway.outbox import EventClass

    assert tuple(c.name.lower() for c in EventClass) == CLASS_NAMES
