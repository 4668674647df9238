"""The parts of the locustfile that need no Locust: gRPC calls, texts, per-second figures, sweeps.

Each module imports only the standard library, grpc and the generated stubs, never the
``service`` package (numpy, redis): Locust must stay the only heavy import in its process.
"""
