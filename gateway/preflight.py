"""Everything ``tagrelay run`` will need from its configuration, checked before it starts.

``tagrelay config check`` prints these findings; ``tagrelay run`` refuses to start on any error
(exit 78, one line) instead of failing half-way with a traceback that systemd would restart in
a loop. Each finding names its field.

- errors: the daemon cannot work (a TLS file missing or unparseable, a state directory that is
  a file or cannot be created, a password file it cannot read);
- warnings: it works, but somebody should look (a reader not plugged in yet, a password inline
  or readable by every user);
- assumptions: a value the file does not give and the daemon chooses (the broker's host,
  transport and port), said out loud because a wrong guess fails far from its cause.
"""

from __future__ import annotations

import os
import ssl
import stat
from dataclasses import dataclass, field
from pathlib import Path

from gateway.config import ConfigIssue, GatewayConfig

__all__ = ["Findings", "preflight"]


@dataclass(frozen=True, slots=True)
class Findings:
    errors: tuple[ConfigIssue, ...] = ()
    warnings: tuple[ConfigIssue, ...] = ()
    assumptions: tuple[ConfigIssue, ...] = ()


@dataclass(slots=True)
class _Collect:
    errors: list[ConfigIssue] = field(default_factory=list)
    warnings: list[ConfigIssue] = field(default_factory=list)
    assumptions: list[ConfigIssue] = field(default_factory=list)

    def error(self, location: str, message: str) -> None:
        self.errors.append(ConfigIssue(location, message))

    def warn(self, location: str, message: str) -> None:
        self.warnings.append(ConfigIssue(location, message))


def preflight(config: GatewayConfig) -> Findings:
    """The findings for ``config`` on this machine, as the current user."""
    found = _Collect()
    _state_dir(config.state_dir, found)
    _uplink(config, found)
    _devices(config, found)
    return Findings(tuple(found.errors), tuple(found.warnings), tuple(found.assumptions))


def _state_dir(path: Path, found: _Collect) -> None:
    where = "state_dir"
    if path.exists() or path.is_symlink():
        if not path.is_dir():
            found.error(where, f"{path} exists and is not a directory")
        elif not os.access(path, os.W_OK | os.X_OK):
            found.error(where, f"{path} is not writable by this user")
        else:
            # The outbox and the state store (and their WAL files): a file left by a manual run
            # as another user would make the daemon fail on its first write.
            for item in sorted(path.iterdir()):
                if item.is_file() and not os.access(item, os.R_OK | os.W_OK):
                    found.error(where, f"{item} is not readable and writable by this user")
        return
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        found.error(where, f"{path} cannot be created: {parent} is not a directory")
    elif not os.access(parent, os.W_OK | os.X_OK):
        found.error(where, f"{path} cannot be created: {parent} is not writable by this user")


def _readable(path: Path, where: str, found: _Collect) -> bool:
    if not path.exists():
        found.error(where, f"{path} does not exist")
        return False
    if not path.is_file():
        found.error(where, f"{path} is not a file")
        return False
    if not os.access(path, os.R_OK):
        found.error(where, f"{path} is not readable by this user")
        return False
    return True


def _uplink(config: GatewayConfig, found: _Collect) -> None:
    up = config.uplink
    given = up.model_fields_set
    if "host" not in given:
        found.assumptions.append(ConfigIssue("uplink.host", f"not set: assuming {up.host}"))
    if "transport" not in given:
        found.assumptions.append(
            ConfigIssue(
                "uplink.transport",
                f'not set: assuming {up.transport} (a plain MQTT broker needs transport = "tcp")',
            )
        )
    if "port" not in given:
        found.assumptions.append(ConfigIssue("uplink.port", f"not set: assuming {up.port}"))
    if up.transport == "tls":
        tls = up.tls
        context: ssl.SSLContext | None = None
        if tls.ca_file is not None and _readable(tls.ca_file, "uplink.tls.ca_file", found):
            try:
                context = ssl.create_default_context(cafile=str(tls.ca_file))
            except (ssl.SSLError, OSError, ValueError) as exc:
                found.error("uplink.tls.ca_file", f"{tls.ca_file} is not a PEM CA bundle: {exc}")
        elif tls.ca_file is None:
            context = ssl.create_default_context()
        if tls.cert_file is not None and tls.key_file is not None:
            cert_ok = _readable(tls.cert_file, "uplink.tls.cert_file", found)
            key_ok = _readable(tls.key_file, "uplink.tls.key_file", found)
            if cert_ok and key_ok:
                try:
                    (context or ssl.create_default_context()).load_cert_chain(
                        str(tls.cert_file), str(tls.key_file)
                    )
                except (ssl.SSLError, OSError, ValueError) as exc:
                    found.error(
                        "uplink.tls.cert_file",
                        f"{tls.cert_file} with key {tls.key_file} is not a usable PEM "
                        f"certificate and matching key: {exc}",
                    )
    if up.password is not None and "password" in given:
        found.warn(
            "uplink.password",
            "the password is written in the configuration file: use password_file (mode "
            "0640, group tagrelay) or password_env",
        )
    if up.password_file is not None and _readable(up.password_file, "uplink.password_file", found):
        mode = stat.S_IMODE(up.password_file.stat().st_mode)
        if mode & stat.S_IROTH:
            found.warn(
                "uplink.password_file",
                f"{up.password_file} is readable by every user (mode {mode:04o}): "
                "chmod o-rwx, and group tagrelay",
            )
    if up.username is None and (up.password is not None or up.password_file or up.password_env):
        found.warn("uplink.username", "a password is given without a username: it is not sent")


def _devices(config: GatewayConfig, found: _Collect) -> None:
    paths = [
        (f"smartlabel_readers.{i}.path", r.path, r.is_url)
        for i, r in enumerate(config.smartlabel_readers)
    ]
    if config.gps is not None and config.gps.serial is not None:
        paths.append(("gps.serial.path", config.gps.serial.path, config.gps.serial.is_url))
    for where, name, is_url in paths:
        if is_url:
            continue
        path = Path(name)
        # A reader that is unplugged now is waited for by the daemon: a warning only.
        if not path.exists():
            found.warn(where, f"{name} does not exist (yet)")
        elif not os.access(path, os.R_OK | os.W_OK):
            found.warn(where, f"{name} is not readable and writable by this user (group dialout?)")
    if not (config.ble.scanners or config.smartlabel_readers or config.gps):
        found.warn("(devices)", "no BLE scanner, SmartLabel reader or GPS: nothing to hear")
