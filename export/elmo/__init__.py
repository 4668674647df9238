"""ELMo biLM: options, PyTorch model, bilm-tf HDF5 weights, ONNX export and repository import.

The character-id encoding is not here: it is part of the model's input contract, shared with
the server, and lives in ``modelrepo.elmo_characters`` (numpy only). This package file imports
nothing, so importing one of its modules pulls in only what that module needs.
"""
