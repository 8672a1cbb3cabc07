"""Device simulator: pty serial devices, a fake BlueZ on a private D-Bus bus, and scenarios.

The simulator never imports ``gateway`` or ``drivers``. It reaches them only through the real
interfaces (a pty, a D-Bus bus, an MQTT broker), exactly as hardware and the platform do, and
builds its bytes with the ``protocols`` definitions.
"""

__all__: list[str] = []
