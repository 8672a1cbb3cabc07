"""First contact: `config check` finds what `run` would fail on, `run` refuses it with exit 78 and
one line, classes by name, effective defaults, stated assumptions, plain help texts."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest

from gateway.cli import build_parser, main
from tests.fixtures.mosquitto import Certificates

EX_CONFIG: Final = 78

BASE = """
gateway_id = "gw-1"
state_dir = "state"
[uplink]
host = "broker.example"
port = 8883
transport = "tls"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tagrelay.toml"
    path.write_text(text)
    return path


def tagrelay_in_process(*args: str) -> subprocess.CompletedProcess[str]:
    """``tagrelay ARGS`` through the same entry point, in this process (fast, for the commands
    that start no daemon)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def tagrelay(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize(
    ("setup", "field", "says"),
    [
        ("missing-ca", "uplink.tls.ca_file", "does not exist"),
        ("state-is-file", "state_dir", "is not a directory"),
    ],
)
def test_run_refuses_a_config_problem_with_exit_78_and_one_line(
    tmp_path: Path, setup: str, field: str, says: str
) -> None:
    text = BASE
    if setup == "missing-ca":
        text += '[uplink.tls]\nca_file = "no-such-ca.pem"\n'
    else:
        (tmp_path / "state").write_text("a file, not a directory\n")
    config = write(tmp_path, text)

    check = tagrelay("config", "check", str(config))
    assert check.returncode == 1
    assert "INVALID" in check.stderr
    assert f"  {field}: " in check.stderr
    assert ": OK" not in check.stdout

    run = tagrelay("run", "--config", str(config))
    assert run.returncode == EX_CONFIG
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert lines[0].startswith("tagrelay: cannot start, configuration ")
    assert f"{field}: " in lines[0]
    assert says in lines[0]
    # Nothing was created on the way: the refusal comes before the daemon starts.
    if setup == "missing-ca":
        assert not (tmp_path / "state").exists()


def test_tls_files_are_parsed(tmp_path: Path, certificates: Certificates) -> None:
    (tmp_path / "garbage.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n")
    garbage = write(tmp_path, BASE + '[uplink.tls]\nca_file = "garbage.pem"\n')
    done = tagrelay_in_process("config", "check", str(garbage))
    assert done.returncode == 1
    assert "uplink.tls.ca_file: " in done.stderr
    assert "is not a PEM CA bundle" in done.stderr

    mismatched = write(
        tmp_path,
        BASE
        + f'[uplink.tls]\nca_file = "{certificates.ca_cert}"\n'
        + f'cert_file = "{certificates.client_cert}"\nkey_file = "{certificates.server_key}"\n',
    )
    done = tagrelay_in_process("config", "check", str(mismatched))
    assert done.returncode == 1
    assert "uplink.tls.cert_file: " in done.stderr
    assert "matching key" in done.stderr

    good = write(
        tmp_path,
        BASE
        + f'[uplink.tls]\nca_file = "{certificates.ca_cert}"\n'
        + f'cert_file = "{certificates.client_cert}"\nkey_file = "{certificates.client_key}"\n',
    )
    done = tagrelay_in_process("config", "check", str(good))
    assert done.returncode == 0, done.stderr
    assert "TLS + client certificate" in done.stdout


def test_state_dir_that_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "plain-file").write_text("x")
    config = write(tmp_path, BASE.replace('state_dir = "state"', 'state_dir = "plain-file/sub"'))
    done = tagrelay_in_process("config", "check", str(config))
    assert done.returncode == 1
    assert "state_dir: " in done.stderr
    assert "cannot be created" in done.stderr


def test_password_warnings_and_strict(tmp_path: Path) -> None:
    inline = write(tmp_path, BASE + 'username = "gw"\npassword = "hunter2-inline"\n')
    done = tagrelay_in_process("config", "check", str(inline))
    assert done.returncode == 0
    assert ": OK with 2 warning(s)" in done.stdout  # the inline password, and no device
    assert "warning: uplink.password: the password is written in the configuration" in done.stdout
    assert "hunter2" not in done.stdout + done.stderr
    strict = tagrelay_in_process("config", "check", "--strict", str(inline))
    assert strict.returncode == 1
    assert ": OK" not in strict.stdout
    assert "FAILED (--strict: 2 warning(s))" in strict.stdout

    secret = tmp_path / "mqtt-password"
    secret.write_text("hunter2-file\n")
    secret.chmod(0o644)
    from_file = write(tmp_path, BASE + 'username = "gw"\npassword_file = "mqtt-password"\n')
    done = tagrelay_in_process("config", "check", str(from_file))
    assert done.returncode == 0
    assert "warning: uplink.password_file: " in done.stdout
    assert "readable by every user (mode 0644)" in done.stdout
    secret.chmod(0o640)
    done = tagrelay_in_process("config", "check", str(from_file))
    assert "uplink.password_file" not in done.stdout
    assert "hunter2" not in done.stdout + done.stderr


def test_defaults_that_were_assumed_are_said(tmp_path: Path) -> None:
    config = write(tmp_path, 'gateway_id = "gw-1"\nstate_dir = "state"\n[uplink]\n')
    done = tagrelay_in_process("config", "check", str(config))
    assert done.returncode == 0, done.stderr
    assert "assumed: uplink.host: not set: assuming localhost" in done.stdout
    assert (
        "assumed: uplink.transport: not set: assuming tls "
        '(a plain MQTT broker needs transport = "tcp")' in done.stdout
    )
    assert "assumed: uplink.port: not set: assuming 8883" in done.stdout
    explicit = write(tmp_path, BASE)
    assert "assumed:" not in tagrelay_in_process("config", "check", str(explicit)).stdout


def test_show_is_the_effective_configuration_with_classes_by_name(tmp_path: Path) -> None:
    config = write(tmp_path, BASE + "[outbox.ttl_s]\ntelemetry = 3600\n")
    done = tagrelay_in_process("config", "show", str(config))
    assert done.returncode == 0, done.stderr
    outbox = json.loads(done.stdout)["outbox"]
    assert outbox["ttl_s"] == {
        "alarm": 2592000.0,
        "handoff": 2592000.0,
        "presence": 604800.0,
        "status": 259200.0,
        "telemetry": 3600.0,
    }
    assert set(outbox["class_weights"]) == {"alarm", "handoff", "presence", "status", "telemetry"}


@pytest.mark.parametrize(
    ("table", "field"),
    [
        ("telemetry = -1", "outbox.ttl_s"),
        ('presence = "soon"', "outbox.ttl_s.presence"),
        ("4 = 0", "outbox.ttl_s"),
    ],
)
def test_ttl_errors_name_the_class(tmp_path: Path, table: str, field: str) -> None:
    config = write(tmp_path, BASE + f"[outbox.ttl_s]\n{table}\n")
    done = tagrelay_in_process("config", "check", str(config))
    assert done.returncode == 1
    assert f"  {field}: " in done.stderr
    assert any(name in done.stderr for name in ("telemetry", "presence"))
    assert not any(f".{n}:" in done.stderr for n in range(5))


def _all_help(parser: argparse.ArgumentParser) -> dict[str, str]:
    texts = {parser.prog: parser.format_help()}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                texts.update(_all_help(sub))
    return texts


def test_help_texts_have_no_markup_and_name_no_missing_command() -> None:
    texts = _all_help(build_parser())
    assert len(texts) > 15
    for prog, text in texts.items():
        assert "`" not in text, f"{prog}:\n{text}"
        assert ":mod:" not in text, prog
        assert ":class:" not in text, prog
    # The outbox has no MQTT command but outbox.stats: its help names no other.
    outbox = texts["tagrelay outbox"]
    assert "its 'outbox' command" not in outbox
    assert "requeue-dead" in outbox


def test_log_options_both_spellings_and_the_command_line_wins() -> None:
    parser = build_parser()
    before = parser.parse_args(["--log-level", "WARNING", "run", "--config", "x.toml"])
    after = parser.parse_args(["run", "--config", "x.toml", "--log-level", "ERROR"])
    neither = parser.parse_args(["run", "--config", "x.toml"])
    fmt = parser.parse_args(["config", "check", "x.toml", "--log-format", "json"])
    assert (before.log_level, after.log_level, getattr(neither, "log_level", None)) == (
        "WARNING",
        "ERROR",
        None,
    )
    assert fmt.log_format == "json"


DOCS: Final = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize("doc", ["ble.md", "serial.md"])
def test_config_examples_in_the_device_docs_are_accepted(tmp_path: Path, doc: str) -> None:
    import re

    blocks = re.findall(r"^```toml\n(.*?)^```$", (DOCS / doc).read_text(), re.M | re.S)
    assert blocks, doc
    for block in blocks:
        config = write(tmp_path, BASE + block)
        done = tagrelay_in_process("config", "check", str(config))
        assert "INVALID" not in done.stderr, f"{doc}:\n{block}\n{done.stderr}"


async def test_outbox_stats_answer_names_the_classes(tmp_path: Path) -> None:
    from foundation.clock import SystemClock
    from gateway.daemon import outbox_stats_view
    from gateway.outbox import EventClass, Outbox, OutboxConfig
    from tests.gateway.uplink.helpers import event

    async with Outbox(tmp_path / "outbox.db", OutboxConfig(), SystemClock()) as outbox:
        await outbox.accept([event(1), event(2, EventClass.ALARM, "condition.alarm")])
        view = outbox_stats_view(await outbox.stats())
    assert isinstance(view, dict)
    classes = view["classes"]
    assert isinstance(classes, list)
    depth = {c["event_class"]: c["depth"] for c in classes if isinstance(c, dict)}
    assert depth["telemetry"] == 1
    assert depth["alarm"] == 1
    assert json.dumps(view)  # plain JSON
