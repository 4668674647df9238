"""The ELMo biLM (char CNN + two stacks of LSTMs with projection) in PyTorch.

Parameters keep the layout of the original TensorFlow weights (row-vector convention
``x @ W + b``, LSTM gates in the order i, j, f, o, forget bias +1 added at run time), so the
HDF5 files map one to one and the float32 arithmetic follows the original order of operations.
The module compiles with ``torch.jit.script``; its time loops then export to ONNX ``Loop`` nodes.

State layout (``initial_c``/``initial_h`` and the returned final states): index
``d * n_layers + l`` holds direction ``d`` (0 = forward, 1 = backward), layer ``l``.
"""

from typing import Final

import torch
from torch import Tensor, nn

from export.elmo.options import ElmoOptions

FORGET_BIAS: Final = 1.0
"""Added to the forget-gate pre-activation, as TensorFlow's LSTMCell does (not stored in B)."""


class Dense(nn.Module):
    """``x @ weight + bias`` with ``weight`` stored (in, out), as in the TensorFlow weights."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_dim, out_dim))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, x: Tensor) -> Tensor:
        return torch.matmul(x, self.weight) + self.bias


class Highway(nn.Module):
    """One highway layer: ``g * relu(x @ W_transform + b) + (1 - g) * x``.

    ``g = sigmoid(x @ W_carry + b_carry)``: the gate TensorFlow named "carry" multiplies the
    transformed branch (the naming trap of the original weights).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.carry = Dense(dim, dim)
        self.transform = Dense(dim, dim)
        nn.init.constant_(self.carry.bias, -2.0)

    def forward(self, x: Tensor) -> Tensor:
        gate = torch.sigmoid(self.carry(x))
        transformed = torch.relu(self.transform(x))
        return gate * transformed + (1.0 - gate) * x


class CharCnnTokenEmbedder(nn.Module):
    """Context-independent token vectors: char embedding, CNN, highway, projection.

    Each convolution is max-pooled over the character positions, then the activation is applied.
    """

    use_tanh: Final[bool]

    def __init__(self, options: ElmoOptions) -> None:
        super().__init__()
        self.use_tanh = options.activation == "tanh"
        self.char_embedding = nn.Embedding(
            options.n_characters, options.char_embedding_dim, padding_idx=0
        )
        self.convolutions = nn.ModuleList(
            nn.Conv1d(options.char_embedding_dim, count, width) for width, count in options.filters
        )
        self.highways = nn.ModuleList(Highway(options.n_filters) for _ in range(options.n_highway))
        self.projection: nn.Module = (
            Dense(options.n_filters, options.projection_dim)
            if options.n_filters != options.projection_dim
            else nn.Identity()
        )

    def forward(self, char_ids: Tensor) -> Tensor:
        """``(B, T, max_chars)`` int64 ids → ``(B, T, projection_dim)`` (padding not masked)."""
        batch_size, seq_len = char_ids.size(0), char_ids.size(1)
        chars = self.char_embedding(char_ids.reshape(-1, char_ids.size(2))).transpose(1, 2)
        pooled: list[Tensor] = []
        for convolution in self.convolutions:
            features = torch.amax(convolution(chars), dim=2)
            pooled.append(torch.tanh(features) if self.use_tanh else torch.relu(features))
        x = torch.cat(pooled, dim=1)
        for highway in self.highways:
            x = highway(x)
        projected: Tensor = self.projection(x)
        return projected.reshape(batch_size, seq_len, projected.size(1))


class LstmCellWithProjection(nn.Module):
    """TensorFlow ``LSTMCell(num_proj=..., cell_clip=..., proj_clip=...)`` without peepholes.

    ``weight`` is ``W_0`` (in + proj, 4 * cell) with column blocks i, j, f, o; ``bias`` is ``B``;
    ``projection`` is ``W_P_0`` (cell, proj).
    """

    cell_dim: Final[int]
    forget_bias: Final[float]
    cell_clip: Final[float | None]
    proj_clip: Final[float | None]

    def __init__(
        self,
        input_dim: int,
        cell_dim: int,
        proj_dim: int,
        cell_clip: float | None,
        proj_clip: float | None,
    ) -> None:
        super().__init__()
        self.cell_dim = cell_dim
        self.forget_bias = FORGET_BIAS
        self.cell_clip = cell_clip
        self.proj_clip = proj_clip
        self.weight = nn.Parameter(torch.empty(input_dim + proj_dim, 4 * cell_dim))
        self.bias = nn.Parameter(torch.zeros(4 * cell_dim))
        self.projection = nn.Parameter(torch.empty(cell_dim, proj_dim))
        nn.init.xavier_uniform_(self.weight)
        nn.init.xavier_uniform_(self.projection)

    def forward(self, x: Tensor, c: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """One step: ``(B, in)``, ``(B, cell)``, ``(B, proj)`` → new ``(c, h)``."""
        gates = torch.matmul(torch.cat([x, h], dim=1), self.weight) + self.bias
        i, j, f, o = torch.split(gates, self.cell_dim, dim=1)
        c = torch.sigmoid(f + self.forget_bias) * c + torch.sigmoid(i) * torch.tanh(j)
        cell_clip = self.cell_clip
        if cell_clip is not None:
            c = torch.clamp(c, -cell_clip, cell_clip)
        h = torch.matmul(torch.sigmoid(o) * torch.tanh(c), self.projection)
        proj_clip = self.proj_clip
        if proj_clip is not None:
            h = torch.clamp(h, -proj_clip, proj_clip)
        return c, h


class LstmStack(nn.Module):
    """Layers of ``LstmCellWithProjection`` run over time in one direction.

    Steps where ``mask`` is False leave the state unchanged and output zeros. With skip
    connections, layers >= 1 output ``h + input`` (the recurrent state stays ``h``).
    This one loop serves inference, the exported graph and training (which alone passes
    ``dropout``).
    """

    use_skip_connections: Final[bool]

    def __init__(self, options: ElmoOptions) -> None:
        super().__init__()
        self.use_skip_connections = options.use_skip_connections
        dim = options.projection_dim
        self.cells = nn.ModuleList(
            LstmCellWithProjection(dim, options.lstm_dim, dim, options.cell_clip, options.proj_clip)
            for _ in range(options.n_layers)
        )

    def forward(
        self,
        inputs: Tensor,
        mask: Tensor,
        initial_c: Tensor,
        initial_h: Tensor,
        dropout: float = 0.0,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``inputs (B, T, proj)``, ``mask (B, T)`` bool, states ``(n_layers, B, dim)``.

        Returns the layer outputs ``(n_layers, B, T, proj)`` and the final ``c`` and ``h``.
        With ``dropout > 0`` and the module in training mode, each layer's input is dropped out
        first, as bilm-tf's ``DropoutWrapper(input_keep_prob)`` does; the skip connection then
        adds the dropped-out input, as its ``ResidualWrapper`` sits inside the dropout wrapper.
        """
        valid = mask.unsqueeze(2)
        outputs: list[Tensor] = []
        final_c: list[Tensor] = []
        final_h: list[Tensor] = []
        x = inputs
        for layer, cell in enumerate(self.cells):
            if dropout > 0.0:
                x = nn.functional.dropout(x, dropout, self.training)
            c = initial_c[layer]
            h = initial_h[layer]
            steps: list[Tensor] = []
            for t in range(x.size(1)):
                step_valid = valid.select(1, t)
                new_c, new_h = cell(x.select(1, t), c, h)
                c = torch.where(step_valid, new_c, c)
                h = torch.where(step_valid, new_h, h)
                steps.append(new_h)
            layer_output = torch.stack(steps, dim=1)
            if self.use_skip_connections and layer > 0:
                layer_output = layer_output + x
            x = torch.where(valid, layer_output, torch.zeros_like(layer_output))
            outputs.append(x)
            final_c.append(c)
            final_h.append(h)
        return torch.stack(outputs), torch.stack(final_c), torch.stack(final_h)


class ElmoBiLm(nn.Module):
    """The biLM: token layer plus ``n_layers`` biLSTM layers, stateful through explicit states."""

    n_layers: Final[int]

    def __init__(self, options: ElmoOptions) -> None:
        super().__init__()
        self.options = options
        self.n_layers = options.n_layers
        self.token_embedder = CharCnnTokenEmbedder(options)
        self.forward_lstm = LstmStack(options)
        self.backward_lstm = LstmStack(options)

    def token_embeddings(self, char_ids: Tensor) -> Tensor:
        """Context-free vectors ``(B, T, proj)`` of ids ``(B, T, max_chars)``, padding unmasked."""
        embeddings: Tensor = self.token_embedder(char_ids)
        return embeddings

    def zero_state(self, batch_size: int) -> tuple[Tensor, Tensor]:
        """Zero ``(initial_c, initial_h)`` for a batch: the state of a fresh biLM."""
        n_states = 2 * self.options.n_layers
        return (
            torch.zeros(n_states, batch_size, self.options.lstm_dim),
            torch.zeros(n_states, batch_size, self.options.projection_dim),
        )

    def forward(
        self, char_ids: Tensor, initial_c: Tensor, initial_h: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Run the biLM on ``(B, T, max_chars)`` ids (T counts the <S> and </S> positions).

        ``initial_c (2 * n_layers, B, lstm_dim)``, ``initial_h (2 * n_layers, B, proj)`` in the
        order of the module docstring. Returns ``layers (n_layers + 1, B, T, 2 * proj)`` (zeros
        at padded positions), ``mask (B, T)`` bool, ``final_c`` and ``final_h`` (same layout as the
        initial states, each row's state at its last valid step).

        A row's length is its number of positions with any id > 0; ``mask`` is ``t < length``.
        """
        lengths = (torch.amax(char_ids, dim=2) > 0).sum(dim=1)
        positions = torch.arange(char_ids.size(1), device=char_ids.device)
        mask = positions.unsqueeze(0) < lengths.unsqueeze(1)
        tokens = self.token_embedder(char_ids)
        tokens = torch.where(mask.unsqueeze(2), tokens, torch.zeros_like(tokens))

        n = self.n_layers
        forward_out, forward_c, forward_h = self.forward_lstm(
            tokens, mask, initial_c[:n], initial_h[:n]
        )
        reverse = _reverse_index(positions, lengths)
        backward_out, backward_c, backward_h = self.backward_lstm(
            _reorder_time(tokens, reverse), mask, initial_c[n:], initial_h[n:]
        )
        backward_out = _reorder_layers_time(backward_out, reverse)

        token_layer = torch.cat([tokens, tokens], dim=2).unsqueeze(0)
        lstm_layers = torch.cat([forward_out, backward_out], dim=3)
        layers = torch.cat([token_layer, lstm_layers], dim=0)
        final_c = torch.cat([forward_c, backward_c], dim=0)
        final_h = torch.cat([forward_h, backward_h], dim=0)
        return layers, mask, final_c, final_h


def _reverse_index(positions: Tensor, lengths: Tensor) -> Tensor:
    """``(B, T)`` index that reverses each row within its own length (padding stays in place)."""
    t = positions.unsqueeze(0)
    last = lengths.unsqueeze(1) - 1
    return torch.where(t <= last, last - t, t)


def _reorder_time(x: Tensor, index: Tensor) -> Tensor:
    """Reorder the time axis of ``x (B, T, D)`` with a ``(B, T)`` index."""
    return torch.gather(x, 1, index.unsqueeze(2).expand_as(x))


def _reorder_layers_time(layers: Tensor, index: Tensor) -> Tensor:
    """Reorder the time axis of ``layers (L, B, T, D)`` with a ``(B, T)`` index."""
    return torch.gather(layers, 2, index.unsqueeze(0).unsqueeze(3).expand_as(layers))


def remove_sentence_boundaries(layers: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Drop the <S> and </S> positions: ``(..., B, T, D)``, ``(B, T)`` → ``T - 2`` positions.

    Each row shifts left by one; its </S> position falls into the masked (zeroed) tail.
    """
    new_mask = mask[:, 2:]
    inner = layers[..., 1:-1, :]
    return torch.where(new_mask.unsqueeze(-1), inner, torch.zeros_like(inner)), new_mask


class ScalarMix(nn.Module):
    """``gamma * sum_j softmax(w)_j * layer_j``, optionally layer-normalising each layer first.

    The layer norm uses the mean and variance over all unmasked elements of the whole batch.
    """

    do_layer_norm: Final[bool]
    epsilon: Final[float]

    def __init__(self, n_layers: int, do_layer_norm: bool = False, epsilon: float = 1e-12) -> None:
        super().__init__()
        self.do_layer_norm = do_layer_norm
        self.epsilon = epsilon
        self.weights = nn.Parameter(torch.zeros(n_layers))
        self.gamma = nn.Parameter(torch.ones(()))

    def forward(self, layers: Tensor, mask: Tensor | None = None) -> Tensor:
        """``layers (L, B, T, D)``, ``mask (B, T)`` (needed for layer norm) → ``(B, T, D)``."""
        if self.do_layer_norm:
            if mask is None:
                raise ValueError("ScalarMix with layer norm needs the mask")
            layers = self._layer_norm(layers, mask)
        normed_weights = torch.softmax(self.weights, dim=0).reshape(-1, 1, 1, 1)
        return self.gamma * (normed_weights * layers).sum(dim=0)

    def _layer_norm(self, layers: Tensor, mask: Tensor) -> Tensor:
        valid = mask.unsqueeze(-1).to(layers.dtype)
        count = valid.sum() * layers.size(-1)
        mean = (layers * valid).sum(dim=(1, 2, 3), keepdim=True) / count
        variance = (((layers - mean) * valid) ** 2).sum(dim=(1, 2, 3), keepdim=True) / count
        return (layers - mean) / torch.sqrt(variance + self.epsilon)
