"""word2vec: gensim training, import of the C text and binary formats, ONNX export (lookup and
similarity graphs) and nearest-neighbour evaluation.

This package file imports nothing, so importing one of its modules pulls in only what that
module needs (gensim only where training or import happen).
"""
