"""ELMo biLM: options, character ids, PyTorch model, bilm-tf HDF5 weights and ONNX export.

``characters`` depends on numpy only (the server encodes with the same rule); the other
modules need torch. This package file imports nothing so that stays true.
"""
