"""Shipyard: one typed task spec becomes a governed production service.

The public Python API: build a container from settings, then use its services or serve it.
"""

from shipyard.errors import ShipyardError
from shipyard.settings import Settings

__version__ = "0.1.0"

__all__ = ["Settings", "ShipyardError", "__version__"]
