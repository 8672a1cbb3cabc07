"""Ground every layer stands on: the injected time source and the owner of long-lived tasks.

Drivers, the gateway and the simulator all import from here; this package imports none of them
(and nothing of asyncio at package level, so a pure layer may use :mod:`foundation.clock`).
Import the submodules: ``foundation.clock`` (:class:`Clock`, :class:`SystemClock`,
:class:`ScaledClock`) and ``foundation.lifecycle`` (:class:`TaskOwner`).
"""
