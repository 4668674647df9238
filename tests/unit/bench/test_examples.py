"""``make examples`` finds the README's client commands exactly as a reader would run them."""

from __future__ import annotations

import sys

from bench.examples import ROOT, Example, command_of, readme_examples, skip_reason

README = """\
Some prose with python -m service.client models in it (not a command).

```sh
.venv/bin/python -m service.client embed --model bert "a b ." --layers 2   # a comment
python -m service --port 6000
.venv/bin/python -m service.client --tls-ca-file ca.crt \\
    --token-file my-token models
```

```python
client.embed(["python -m service.client health"])
```

```sh
make serve
python -m service.client fill-mask --model bert "the [MASK] ."
```
"""


def test_commands_come_from_shell_blocks_only() -> None:
    assert readme_examples(README) == [
        Example(4, ("embed", "--model", "bert", "a b .", "--layers", "2")),
        Example(6, ("--tls-ca-file", "ca.crt", "--token-file", "my-token", "models")),
        Example(16, ("fill-mask", "--model", "bert", "the [MASK] .")),
    ]


def test_commands_needing_credentials_are_told_apart() -> None:
    flags = [example.needs_credentials for example in readme_examples(README)]
    assert flags == [False, True, False]
    assert Example(1, ("--token=abc", "models")).needs_credentials


def test_the_target_goes_before_the_command() -> None:
    example = Example(1, ("similar", "--model", "word2vec", "apple"))
    assert command_of(example, "h:1") == [
        sys.executable, "-m", "service.client", "--target", "h:1",
        "similar", "--model", "word2vec", "apple",
    ]  # fmt: skip


def test_the_readme_has_an_example_of_every_client_command() -> None:
    examples = readme_examples((ROOT / "README.md").read_text(encoding="utf-8"))
    commands = {
        next(word for word in example.arguments if not word.startswith("-"))
        for example in examples
        if not example.needs_credentials
    }
    assert {"models", "embed", "fill-mask", "similar", "tokenize", "health"} <= commands


def test_commands_for_a_model_the_server_lacks_are_skipped() -> None:
    imported = Example(1, ("embed", "--model", "e5", "--prompt-name", "query", "a"))
    assert imported.model == "e5" and Example(1, ("embed", "--model=e5", "a")).model == "e5"
    assert skip_reason(imported, {"bert"}) == (
        "the server does not serve 'e5'; the README imports it first"
    )
    assert skip_reason(imported, {"bert", "e5"}) is None
    assert skip_reason(imported, None) is None  # the listing failed: run it and see
    assert skip_reason(Example(1, ("health",)), {"bert"}) is None
