"""The HTTP front door: ASGI app, service detection, the handler chain, access log, admin API."""
