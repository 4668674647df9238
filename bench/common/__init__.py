"""What every bench section shares: one load driver, one latency summary and percentile, one
batch recorder, the engine and settings of bench servers, raw ONNX Runtime replay, the models
and texts, a private Redis. One copy each, so every section measures the same way."""
