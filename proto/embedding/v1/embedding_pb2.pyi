from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Pooling(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POOLING_UNSPECIFIED: _ClassVar[Pooling]
    POOLING_CLS: _ClassVar[Pooling]
    POOLING_MEAN: _ClassVar[Pooling]
    POOLING_MAX: _ClassVar[Pooling]
    POOLING_NONE: _ClassVar[Pooling]
    POOLING_MEAN_SQRT_LEN: _ClassVar[Pooling]

class Normalization(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NORMALIZATION_UNSPECIFIED: _ClassVar[Normalization]
    NORMALIZATION_ON: _ClassVar[Normalization]
    NORMALIZATION_OFF: _ClassVar[Normalization]

class CachePolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CACHE_POLICY_UNSPECIFIED: _ClassVar[CachePolicy]
    CACHE_POLICY_BYPASS: _ClassVar[CachePolicy]
    CACHE_POLICY_REFRESH: _ClassVar[CachePolicy]

class VectorEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VECTOR_ENCODING_UNSPECIFIED: _ClassVar[VectorEncoding]
    VECTOR_ENCODING_FLOAT32: _ClassVar[VectorEncoding]
    VECTOR_ENCODING_FLOAT16: _ClassVar[VectorEncoding]

class ModelState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_STATE_UNSPECIFIED: _ClassVar[ModelState]
    MODEL_STATE_LOADING: _ClassVar[ModelState]
    MODEL_STATE_READY: _ClassVar[ModelState]
    MODEL_STATE_DRAINING: _ClassVar[ModelState]
    MODEL_STATE_FAILED: _ClassVar[ModelState]
POOLING_UNSPECIFIED: Pooling
POOLING_CLS: Pooling
POOLING_MEAN: Pooling
POOLING_MAX: Pooling
POOLING_NONE: Pooling
POOLING_MEAN_SQRT_LEN: Pooling
NORMALIZATION_UNSPECIFIED: Normalization
NORMALIZATION_ON: Normalization
NORMALIZATION_OFF: Normalization
CACHE_POLICY_UNSPECIFIED: CachePolicy
CACHE_POLICY_BYPASS: CachePolicy
CACHE_POLICY_REFRESH: CachePolicy
VECTOR_ENCODING_UNSPECIFIED: VectorEncoding
VECTOR_ENCODING_FLOAT32: VectorEncoding
VECTOR_ENCODING_FLOAT16: VectorEncoding
MODEL_STATE_UNSPECIFIED: ModelState
MODEL_STATE_LOADING: ModelState
MODEL_STATE_READY: ModelState
MODEL_STATE_DRAINING: ModelState
MODEL_STATE_FAILED: ModelState

class EmbedRequest(_message.Message):
    __slots__ = ("model", "version", "texts", "pooling", "layers", "layer_weights", "normalize", "truncate", "skip_unknown", "cache_policy", "encoding", "normalization", "prompt_name", "dimensions")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    POOLING_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    LAYER_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    NORMALIZE_FIELD_NUMBER: _ClassVar[int]
    TRUNCATE_FIELD_NUMBER: _ClassVar[int]
    SKIP_UNKNOWN_FIELD_NUMBER: _ClassVar[int]
    CACHE_POLICY_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    NORMALIZATION_FIELD_NUMBER: _ClassVar[int]
    PROMPT_NAME_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: str
    texts: _containers.RepeatedScalarFieldContainer[str]
    pooling: Pooling
    layers: _containers.RepeatedScalarFieldContainer[int]
    layer_weights: _containers.RepeatedScalarFieldContainer[float]
    normalize: bool
    truncate: bool
    skip_unknown: bool
    cache_policy: CachePolicy
    encoding: VectorEncoding
    normalization: Normalization
    prompt_name: str
    dimensions: int
    def __init__(self, model: _Optional[str] = ..., version: _Optional[str] = ..., texts: _Optional[_Iterable[str]] = ..., pooling: _Optional[_Union[Pooling, str]] = ..., layers: _Optional[_Iterable[int]] = ..., layer_weights: _Optional[_Iterable[float]] = ..., normalize: _Optional[bool] = ..., truncate: _Optional[bool] = ..., skip_unknown: _Optional[bool] = ..., cache_policy: _Optional[_Union[CachePolicy, str]] = ..., encoding: _Optional[_Union[VectorEncoding, str]] = ..., normalization: _Optional[_Union[Normalization, str]] = ..., prompt_name: _Optional[str] = ..., dimensions: _Optional[int] = ...) -> None: ...

class Embedding(_message.Message):
    __slots__ = ("values", "num_tokens", "tokens", "truncated", "cached", "unknown_tokens", "raw_values", "unknown_offsets")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    NUM_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_TOKENS_FIELD_NUMBER: _ClassVar[int]
    RAW_VALUES_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_OFFSETS_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    num_tokens: int
    tokens: _containers.RepeatedScalarFieldContainer[str]
    truncated: bool
    cached: bool
    unknown_tokens: _containers.RepeatedScalarFieldContainer[str]
    raw_values: bytes
    unknown_offsets: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, values: _Optional[_Iterable[float]] = ..., num_tokens: _Optional[int] = ..., tokens: _Optional[_Iterable[str]] = ..., truncated: _Optional[bool] = ..., cached: _Optional[bool] = ..., unknown_tokens: _Optional[_Iterable[str]] = ..., raw_values: _Optional[bytes] = ..., unknown_offsets: _Optional[_Iterable[int]] = ...) -> None: ...

class Timing(_message.Message):
    __slots__ = ("queue_us", "tokenization_us", "inference_us", "total_us", "postprocess_us")
    QUEUE_US_FIELD_NUMBER: _ClassVar[int]
    TOKENIZATION_US_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_US_FIELD_NUMBER: _ClassVar[int]
    TOTAL_US_FIELD_NUMBER: _ClassVar[int]
    POSTPROCESS_US_FIELD_NUMBER: _ClassVar[int]
    queue_us: int
    tokenization_us: int
    inference_us: int
    total_us: int
    postprocess_us: int
    def __init__(self, queue_us: _Optional[int] = ..., tokenization_us: _Optional[int] = ..., inference_us: _Optional[int] = ..., total_us: _Optional[int] = ..., postprocess_us: _Optional[int] = ...) -> None: ...

class EmbedResponse(_message.Message):
    __slots__ = ("embeddings", "dim", "model", "version", "timing", "encoding")
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    embeddings: _containers.RepeatedCompositeFieldContainer[Embedding]
    dim: int
    model: str
    version: str
    timing: Timing
    encoding: VectorEncoding
    def __init__(self, embeddings: _Optional[_Iterable[_Union[Embedding, _Mapping]]] = ..., dim: _Optional[int] = ..., model: _Optional[str] = ..., version: _Optional[str] = ..., timing: _Optional[_Union[Timing, _Mapping]] = ..., encoding: _Optional[_Union[VectorEncoding, str]] = ...) -> None: ...

class FillMaskRequest(_message.Message):
    __slots__ = ("model", "version", "texts", "top_k", "cache_policy", "truncate")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    CACHE_POLICY_FIELD_NUMBER: _ClassVar[int]
    TRUNCATE_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: str
    texts: _containers.RepeatedScalarFieldContainer[str]
    top_k: int
    cache_policy: CachePolicy
    truncate: bool
    def __init__(self, model: _Optional[str] = ..., version: _Optional[str] = ..., texts: _Optional[_Iterable[str]] = ..., top_k: _Optional[int] = ..., cache_policy: _Optional[_Union[CachePolicy, str]] = ..., truncate: _Optional[bool] = ...) -> None: ...

class MaskPrediction(_message.Message):
    __slots__ = ("token", "score", "token_id", "sequence")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    token: str
    score: float
    token_id: int
    sequence: str
    def __init__(self, token: _Optional[str] = ..., score: _Optional[float] = ..., token_id: _Optional[int] = ..., sequence: _Optional[str] = ...) -> None: ...

class MaskPredictions(_message.Message):
    __slots__ = ("predictions",)
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    predictions: _containers.RepeatedCompositeFieldContainer[MaskPrediction]
    def __init__(self, predictions: _Optional[_Iterable[_Union[MaskPrediction, _Mapping]]] = ...) -> None: ...

class FillMaskResult(_message.Message):
    __slots__ = ("masks", "cached", "truncated")
    MASKS_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    masks: _containers.RepeatedCompositeFieldContainer[MaskPredictions]
    cached: bool
    truncated: bool
    def __init__(self, masks: _Optional[_Iterable[_Union[MaskPredictions, _Mapping]]] = ..., cached: _Optional[bool] = ..., truncated: _Optional[bool] = ...) -> None: ...

class FillMaskResponse(_message.Message):
    __slots__ = ("results", "model", "version", "timing")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[FillMaskResult]
    model: str
    version: str
    timing: Timing
    def __init__(self, results: _Optional[_Iterable[_Union[FillMaskResult, _Mapping]]] = ..., model: _Optional[str] = ..., version: _Optional[str] = ..., timing: _Optional[_Union[Timing, _Mapping]] = ...) -> None: ...

class MostSimilarRequest(_message.Message):
    __slots__ = ("model", "version", "positive", "negative", "top_k")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    POSITIVE_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: str
    positive: _containers.RepeatedScalarFieldContainer[str]
    negative: _containers.RepeatedScalarFieldContainer[str]
    top_k: int
    def __init__(self, model: _Optional[str] = ..., version: _Optional[str] = ..., positive: _Optional[_Iterable[str]] = ..., negative: _Optional[_Iterable[str]] = ..., top_k: _Optional[int] = ...) -> None: ...

class Neighbor(_message.Message):
    __slots__ = ("word", "score")
    WORD_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    word: str
    score: float
    def __init__(self, word: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class MostSimilarResponse(_message.Message):
    __slots__ = ("neighbors", "model", "version")
    NEIGHBORS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    neighbors: _containers.RepeatedCompositeFieldContainer[Neighbor]
    model: str
    version: str
    def __init__(self, neighbors: _Optional[_Iterable[_Union[Neighbor, _Mapping]]] = ..., model: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class TokenizeRequest(_message.Message):
    __slots__ = ("model", "version", "texts")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: str
    texts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, model: _Optional[str] = ..., version: _Optional[str] = ..., texts: _Optional[_Iterable[str]] = ...) -> None: ...

class TokenizedText(_message.Message):
    __slots__ = ("tokens", "ids", "offsets")
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    OFFSETS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedScalarFieldContainer[str]
    ids: _containers.RepeatedScalarFieldContainer[int]
    offsets: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, tokens: _Optional[_Iterable[str]] = ..., ids: _Optional[_Iterable[int]] = ..., offsets: _Optional[_Iterable[int]] = ...) -> None: ...

class TokenizeResponse(_message.Message):
    __slots__ = ("results", "model", "version")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[TokenizedText]
    model: str
    version: str
    def __init__(self, results: _Optional[_Iterable[_Union[TokenizedText, _Mapping]]] = ..., model: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("model", "version")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: str
    def __init__(self, model: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "version", "architecture", "dim", "num_layers", "max_sequence_length", "capabilities", "default_pooling", "default_layers", "mask_token", "versions", "source_checksum", "ready", "state", "state_reason", "precision", "default_normalize", "prompts", "default_prompt_name", "similarity")
    class PromptsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    NUM_LAYERS_FIELD_NUMBER: _ClassVar[int]
    MAX_SEQUENCE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_POOLING_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_LAYERS_FIELD_NUMBER: _ClassVar[int]
    MASK_TOKEN_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_REASON_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_NORMALIZE_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_PROMPT_NAME_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    architecture: str
    dim: int
    num_layers: int
    max_sequence_length: int
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    default_pooling: Pooling
    default_layers: _containers.RepeatedScalarFieldContainer[int]
    mask_token: str
    versions: _containers.RepeatedScalarFieldContainer[str]
    source_checksum: str
    ready: bool
    state: ModelState
    state_reason: str
    precision: str
    default_normalize: bool
    prompts: _containers.ScalarMap[str, str]
    default_prompt_name: str
    similarity: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., architecture: _Optional[str] = ..., dim: _Optional[int] = ..., num_layers: _Optional[int] = ..., max_sequence_length: _Optional[int] = ..., capabilities: _Optional[_Iterable[str]] = ..., default_pooling: _Optional[_Union[Pooling, str]] = ..., default_layers: _Optional[_Iterable[int]] = ..., mask_token: _Optional[str] = ..., versions: _Optional[_Iterable[str]] = ..., source_checksum: _Optional[str] = ..., ready: _Optional[bool] = ..., state: _Optional[_Union[ModelState, str]] = ..., state_reason: _Optional[str] = ..., precision: _Optional[str] = ..., default_normalize: _Optional[bool] = ..., prompts: _Optional[_Mapping[str, str]] = ..., default_prompt_name: _Optional[str] = ..., similarity: _Optional[str] = ...) -> None: ...
