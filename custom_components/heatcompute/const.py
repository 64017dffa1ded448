"""Constants of the heatcompute integration."""

from typing import Final

DOMAIN: Final = "heatcompute"
