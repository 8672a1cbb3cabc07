"""Configuration loading, secrets and the `config check` / `config show` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import ConfigError, config_hash, load_config, redacted_view

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "tagrelay.example.toml"

MINIMAL = """
gateway_id = "gw-1"
state_dir = "state"
[uplink]
host = "broker.example"
transport = "tcp"
port = 1883
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tagrelay.toml"
    path.write_text(text)
    return path


def test_example_config_passes_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out
    assert "truck-0042" in out
    assert "MQTT 5, TLS" in out


def test_minimal_config_defaults_and_relative_paths(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), environ={})
    assert config.state_dir == tmp_path / "state"
    assert config.uplink.protocol == "5"
    assert config.uplink.in_flight_window == 50
    assert config.logging.level == "INFO"


def test_errors_name_the_field_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = MINIMAL.replace("port = 1883", "port = 70000\nwindow = 3").replace("gw-1", "gw/1")
    path = write(tmp_path, bad)
    with pytest.raises(ConfigError) as exc:
        load_config(path, environ={})
    locations = {issue.location for issue in exc.value.issues}
    assert locations == {"gateway_id", "uplink.port", "uplink.window"}
    assert main(["config", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "uplink.port" in err
    assert "INVALID, 3 error(s)" in err


def test_syntax_error_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, "gateway_id = \n"), environ={})
    assert exc.value.issues[0].location == "(syntax)"


def test_password_from_file_and_env_is_never_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pw").write_text("hunter2-file\n")
    from_file = load_config(
        write(tmp_path, MINIMAL + 'username = "u"\npassword_file = "pw"\n'), environ={}
    )
    assert from_file.uplink.password is not None
    assert from_file.uplink.password.get_secret_value() == "hunter2-file"
    assert "hunter2" not in repr(from_file)
    assert "hunter2" not in json.dumps(redacted_view(from_file))
    path = write(tmp_path, MINIMAL + 'password_env = "MQTT_PW"\n')
    from_env = load_config(path, environ={"MQTT_PW": "hunter2-env"})
    assert from_env.uplink.password is not None
    assert from_env.uplink.password.get_secret_value() == "hunter2-env"
    with pytest.raises(ConfigError) as exc:
        load_config(path, environ={})
    assert exc.value.issues[0].location == "uplink.password_env"
    inline = write(tmp_path, MINIMAL + 'password = "hunter2-inline"\n')
    assert main(["config", "show", str(inline)]) == 0
    shown = capsys.readouterr().out
    assert "hunter2" not in shown
    assert json.loads(shown)["uplink"]["password"] == "**********"
    assert main(["config", "check", str(inline)]) == 0
    assert "hunter2" not in capsys.readouterr().out


def test_two_password_sources_are_refused(tmp_path: Path) -> None:
    text = MINIMAL + 'password = "a"\npassword_env = "B"\n'
    with pytest.raises(ConfigError, match="at most one"):
        load_config(write(tmp_path, text), environ={"B": "b"})


def test_config_hash_is_stable_and_tracks_changes(tmp_path: Path) -> None:
    a = load_config(write(tmp_path, MINIMAL), environ={})
    b = load_config(write(tmp_path, MINIMAL), environ={})
    c = load_config(write(tmp_path, MINIMAL.replace("1883", "1884")), environ={})
    assert config_hash(a) == config_hash(b) != config_hash(c)
    assert len(config_hash(a)) == 16


def test_metrics_are_off_by_default_on_in_the_example_and_loopback_only(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, MINIMAL), environ={}).metrics.enabled is False
    example = load_config(EXAMPLE, environ={}, secrets=False).metrics
    assert example.enabled is True
    assert example.url == "http://127.0.0.1:9466/metrics"
    v6 = load_config(write(tmp_path, MINIMAL + '[metrics]\nbind = "::1"\n'), environ={})
    assert v6.metrics.url == "http://[::1]:9466/metrics"
    for bind in ("0.0.0.0", "192.168.1.10", "localhost"):
        with pytest.raises(ConfigError) as err:
            load_config(write(tmp_path, MINIMAL + f'[metrics]\nbind = "{bind}"\n'), environ={})
        assert "metrics.bind" in str(err.value)
