import datetime

from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReviewMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVIEW_MODE_UNSPECIFIED: _ClassVar[ReviewMode]
    REVIEW_MODE_NONE: _ClassVar[ReviewMode]
    REVIEW_MODE_ANYONE: _ClassVar[ReviewMode]
    REVIEW_MODE_TEAM: _ClassVar[ReviewMode]
REVIEW_MODE_UNSPECIFIED: ReviewMode
REVIEW_MODE_NONE: ReviewMode
REVIEW_MODE_ANYONE: ReviewMode
REVIEW_MODE_TEAM: ReviewMode

class Target(_message.Message):
    __slots__ = ("name", "type", "agent", "message", "created", "updated", "review", "reviewers", "groups", "allow_type_override", "active", "timeout_seconds", "redact", "custom_detectors", "secret_provider", "secret_path", "secret_mapping", "run_as", "distinct_reviewers")
    class SecretMappingEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    REVIEW_FIELD_NUMBER: _ClassVar[int]
    REVIEWERS_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    ALLOW_TYPE_OVERRIDE_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REDACT_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_DETECTORS_FIELD_NUMBER: _ClassVar[int]
    SECRET_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    SECRET_PATH_FIELD_NUMBER: _ClassVar[int]
    SECRET_MAPPING_FIELD_NUMBER: _ClassVar[int]
    RUN_AS_FIELD_NUMBER: _ClassVar[int]
    DISTINCT_REVIEWERS_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    agent: str
    message: str
    created: _timestamp_pb2.Timestamp
    updated: _timestamp_pb2.Timestamp
    review: ReviewMode
    reviewers: _containers.RepeatedScalarFieldContainer[str]
    groups: _containers.RepeatedScalarFieldContainer[str]
    allow_type_override: bool
    active: bool
    timeout_seconds: int
    redact: _containers.RepeatedScalarFieldContainer[str]
    custom_detectors: _containers.RepeatedCompositeFieldContainer[CustomDetector]
    secret_provider: str
    secret_path: str
    secret_mapping: _containers.ScalarMap[str, str]
    run_as: str
    distinct_reviewers: bool
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., agent: _Optional[str] = ..., message: _Optional[str] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., review: _Optional[_Union[ReviewMode, str]] = ..., reviewers: _Optional[_Iterable[str]] = ..., groups: _Optional[_Iterable[str]] = ..., allow_type_override: _Optional[bool] = ..., active: _Optional[bool] = ..., timeout_seconds: _Optional[int] = ..., redact: _Optional[_Iterable[str]] = ..., custom_detectors: _Optional[_Iterable[_Union[CustomDetector, _Mapping]]] = ..., secret_provider: _Optional[str] = ..., secret_path: _Optional[str] = ..., secret_mapping: _Optional[_Mapping[str, str]] = ..., run_as: _Optional[str] = ..., distinct_reviewers: _Optional[bool] = ...) -> None: ...

class CustomDetector(_message.Message):
    __slots__ = ("info_type", "pattern")
    INFO_TYPE_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    info_type: str
    pattern: str
    def __init__(self, info_type: _Optional[str] = ..., pattern: _Optional[str] = ...) -> None: ...

class CreateTargetRequest(_message.Message):
    __slots__ = ("target",)
    TARGET_FIELD_NUMBER: _ClassVar[int]
    target: Target
    def __init__(self, target: _Optional[_Union[Target, _Mapping]] = ...) -> None: ...

class CreateTargetResponse(_message.Message):
    __slots__ = ("target",)
    TARGET_FIELD_NUMBER: _ClassVar[int]
    target: Target
    def __init__(self, target: _Optional[_Union[Target, _Mapping]] = ...) -> None: ...

class GetTargetRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetTargetResponse(_message.Message):
    __slots__ = ("target",)
    TARGET_FIELD_NUMBER: _ClassVar[int]
    target: Target
    def __init__(self, target: _Optional[_Union[Target, _Mapping]] = ...) -> None: ...

class ListTargetsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTargetsResponse(_message.Message):
    __slots__ = ("targets", "next_page_token")
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    targets: _containers.RepeatedCompositeFieldContainer[Target]
    next_page_token: str
    def __init__(self, targets: _Optional[_Iterable[_Union[Target, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateTargetRequest(_message.Message):
    __slots__ = ("target", "update_mask")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    target: Target
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, target: _Optional[_Union[Target, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateTargetResponse(_message.Message):
    __slots__ = ("target",)
    TARGET_FIELD_NUMBER: _ClassVar[int]
    target: Target
    def __init__(self, target: _Optional[_Union[Target, _Mapping]] = ...) -> None: ...

class DeleteTargetRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteTargetResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SetSecretRequest(_message.Message):
    __slots__ = ("target", "key", "value")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    target: str
    key: str
    value: str
    def __init__(self, target: _Optional[str] = ..., key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class SetSecretResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSecretsRequest(_message.Message):
    __slots__ = ("target",)
    TARGET_FIELD_NUMBER: _ClassVar[int]
    target: str
    def __init__(self, target: _Optional[str] = ...) -> None: ...

class ListSecretsResponse(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, keys: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteSecretRequest(_message.Message):
    __slots__ = ("target", "key")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    target: str
    key: str
    def __init__(self, target: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class DeleteSecretResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
