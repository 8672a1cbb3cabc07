"""Simulated serial devices: ptys behind stable symlinks, a SmartLabel reader, a GPS receiver.

The gateway opens the symlink with pyserial exactly as it opens a USB device in the field; these
classes hold the other end and speak the real byte protocols, built with ``protocols``.
"""

from simulator.serial.gps import GpsReceiverSim
from simulator.serial.pty import PtyPort
from simulator.serial.reader import SmartLabelReaderSim

__all__ = ["GpsReceiverSim", "PtyPort", "SmartLabelReaderSim"]
