"""Training, import and ONNX export of the served models: the side that needs torch.

Nothing here is imported by the server; the shared repository format lives in ``modelrepo``.
This package file imports nothing, so ``python -m export --help`` stays cheap.

Layout, one line each:

- ``__main__``: ``python -m export``: builds the parser from the registry, parses once into a
  typed request, runs the command the subcommand chose.
- ``requests``: the shared option groups (``--models-dir/--corpus-dir/--seed/--no-progress``,
  ``--name/--version/--steps/--checkpoint-dir``) and the frozen ``Workspace`` / ``Target``.
- ``registry``: every architecture: export-spec factory, subcommand, trainer, importer, evaluator.
- ``commands``: the commands across architectures: ``evaluate``, ``evaluate --compare``,
  ``defaults`` (and ``DEFAULT_MODELS``, in build order).
- ``console``: the one stderr console and what a finished export prints.
- ``checkpoints``: where training writes its source checkpoint (``build/checkpoints/NAME``).
- ``spec``: ``ExportSpec``: an architecture's graphs, named dynamic axes, opset, tolerance.
- ``validate``: the shared validation of a graph against its source framework.
- ``publish``: atomic publication of a version (staging folder, spec, validation report).
- ``optimize``: ONNX Runtime's transformer optimizer.
- ``corpus``: the default corpus generator (seeded sentences, held-out split, senses).
- ``lexicon/``: the corpus lexicon as data, its grammar and its writer.
- ``batches``: length-bucketed, seeded training batches.
- ``progress``: the training progress bar.
- ``evaluate``: quality measures shared by architectures (fill-mask accuracy, polysemy gap).
- ``bert/``: BERT: command, training, tokenizer, graphs, exporter, ONNX inference.
- ``elmo/``: ELMo biLM: command, options, model, bilm-tf weights, training, ONNX export,
  exporter, inference, evaluation.
- ``word2vec/``: word2vec: command, gensim training, C formats, graphs, exporter, inference,
  evaluation.
"""
