"""Architectures for restoration, each registered with a :class:`ModelSpec`.

    import restore.models as models
    models.available(task="sr")            # names
    net = models.build("rrdbnet", scale=4)  # module with net.spec and net.config
    models.save(net, "net.safetensors")     # weights + spec metadata
    net = models.load("net.safetensors")    # ours, or third-party .pth/.safetensors via spandrel

One file per architecture (``restore.models.rrdbnet``, ``restore.models.lama``...); they load on
the first registry query, not at import.
"""

from .examples import example_inputs
from .loading import WeightsFormatError, load, load_state_dict, save
from .registry import (
    TASKS,
    ModelSpec,
    available,
    build,
    describe,
    get_spec,
    register_model,
    spec_of,
    specs,
)

__all__ = [
    "TASKS",
    "ModelSpec",
    "WeightsFormatError",
    "available",
    "build",
    "describe",
    "example_inputs",
    "get_spec",
    "load",
    "load_state_dict",
    "register_model",
    "save",
    "spec_of",
    "specs",
]
