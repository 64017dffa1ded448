"""The add-on's dashboard, served through Home Assistant's ingress (docs/addon.md)."""
