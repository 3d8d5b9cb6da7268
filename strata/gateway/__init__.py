"""The HTTP front door: the HTTP/1.1 server on the event loop, service detection, the handler
chain, access log, admin API."""
