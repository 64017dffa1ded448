"""The fleet: one model split over several nodes of a house (docs/fleet.md).

A worker lends its memory and CPU through ggml's RPC server (127.0.0.1 only) behind a
mutual-TLS tunnel; a lead runs the model's first layers itself and the rest on its
workers, through llama.cpp's RPC backend, in an engine process of its own.
"""
