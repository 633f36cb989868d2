import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from taskgate.v1 import target_pb2 as _target_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Agent(_message.Message):
    __slots__ = ("name", "connected", "version", "last_seen", "boot_id", "running_tasks")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    BOOT_ID_FIELD_NUMBER: _ClassVar[int]
    RUNNING_TASKS_FIELD_NUMBER: _ClassVar[int]
    name: str
    connected: bool
    version: str
    last_seen: _timestamp_pb2.Timestamp
    boot_id: str
    running_tasks: int
    def __init__(self, name: _Optional[str] = ..., connected: _Optional[bool] = ..., version: _Optional[str] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., boot_id: _Optional[str] = ..., running_tasks: _Optional[int] = ...) -> None: ...

class ConnectRequest(_message.Message):
    __slots__ = ("hello", "started", "output", "exit", "heartbeat", "draining")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    EXIT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    started: TaskStarted
    output: TaskOutput
    exit: TaskExit
    heartbeat: Heartbeat
    draining: Draining
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., started: _Optional[_Union[TaskStarted, _Mapping]] = ..., output: _Optional[_Union[TaskOutput, _Mapping]] = ..., exit: _Optional[_Union[TaskExit, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., draining: _Optional[_Union[Draining, _Mapping]] = ...) -> None: ...

class ConnectResponse(_message.Message):
    __slots__ = ("welcome", "run", "ack", "heartbeat", "kill")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    KILL_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    run: RunTask
    ack: OutputAck
    heartbeat: Heartbeat
    kill: KillTask
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., run: _Optional[_Union[RunTask, _Mapping]] = ..., ack: _Optional[_Union[OutputAck, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., kill: _Optional[_Union[KillTask, _Mapping]] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("name", "version", "boot_id", "held_task_ids", "resume_secret")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BOOT_ID_FIELD_NUMBER: _ClassVar[int]
    HELD_TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    RESUME_SECRET_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    boot_id: str
    held_task_ids: _containers.RepeatedScalarFieldContainer[str]
    resume_secret: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., boot_id: _Optional[str] = ..., held_task_ids: _Optional[_Iterable[str]] = ..., resume_secret: _Optional[str] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("heartbeat_interval_ms", "max_output_bytes", "session_secret")
    HEARTBEAT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTPUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    SESSION_SECRET_FIELD_NUMBER: _ClassVar[int]
    heartbeat_interval_ms: int
    max_output_bytes: int
    session_secret: str
    def __init__(self, heartbeat_interval_ms: _Optional[int] = ..., max_output_bytes: _Optional[int] = ..., session_secret: _Optional[str] = ...) -> None: ...

class RunTask(_message.Message):
    __slots__ = ("task_id", "script", "type", "target", "created_by", "message", "timeout_ms", "kill_grace_ms", "redact", "custom_detectors", "secret_provider", "secret_path", "secret_mapping", "user_groups", "stored_secrets", "run_as")
    class SecretMappingEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class StoredSecretsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    SCRIPT_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    KILL_GRACE_MS_FIELD_NUMBER: _ClassVar[int]
    REDACT_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_DETECTORS_FIELD_NUMBER: _ClassVar[int]
    SECRET_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    SECRET_PATH_FIELD_NUMBER: _ClassVar[int]
    SECRET_MAPPING_FIELD_NUMBER: _ClassVar[int]
    USER_GROUPS_FIELD_NUMBER: _ClassVar[int]
    STORED_SECRETS_FIELD_NUMBER: _ClassVar[int]
    RUN_AS_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    script: str
    type: str
    target: str
    created_by: str
    message: str
    timeout_ms: int
    kill_grace_ms: int
    redact: _containers.RepeatedScalarFieldContainer[str]
    custom_detectors: _containers.RepeatedCompositeFieldContainer[_target_pb2.CustomDetector]
    secret_provider: str
    secret_path: str
    secret_mapping: _containers.ScalarMap[str, str]
    user_groups: _containers.RepeatedScalarFieldContainer[str]
    stored_secrets: _containers.ScalarMap[str, str]
    run_as: str
    def __init__(self, task_id: _Optional[str] = ..., script: _Optional[str] = ..., type: _Optional[str] = ..., target: _Optional[str] = ..., created_by: _Optional[str] = ..., message: _Optional[str] = ..., timeout_ms: _Optional[int] = ..., kill_grace_ms: _Optional[int] = ..., redact: _Optional[_Iterable[str]] = ..., custom_detectors: _Optional[_Iterable[_Union[_target_pb2.CustomDetector, _Mapping]]] = ..., secret_provider: _Optional[str] = ..., secret_path: _Optional[str] = ..., secret_mapping: _Optional[_Mapping[str, str]] = ..., user_groups: _Optional[_Iterable[str]] = ..., stored_secrets: _Optional[_Mapping[str, str]] = ..., run_as: _Optional[str] = ...) -> None: ...

class KillTask(_message.Message):
    __slots__ = ("task_id", "grace_ms")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    GRACE_MS_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    grace_ms: int
    def __init__(self, task_id: _Optional[str] = ..., grace_ms: _Optional[int] = ...) -> None: ...

class Draining(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TaskStarted(_message.Message):
    __slots__ = ("task_id", "time", "pid")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    time: _timestamp_pb2.Timestamp
    pid: int
    def __init__(self, task_id: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., pid: _Optional[int] = ...) -> None: ...

class TaskOutput(_message.Message):
    __slots__ = ("task_id", "seq", "offset", "data")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    seq: int
    offset: int
    data: bytes
    def __init__(self, task_id: _Optional[str] = ..., seq: _Optional[int] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class TaskExit(_message.Message):
    __slots__ = ("task_id", "exit_code", "signal", "error", "chunks", "total_bytes", "timed_out", "dropped_bytes", "findings")
    class FindingsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    TIMED_OUT_FIELD_NUMBER: _ClassVar[int]
    DROPPED_BYTES_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    exit_code: int
    signal: str
    error: str
    chunks: int
    total_bytes: int
    timed_out: bool
    dropped_bytes: int
    findings: _containers.ScalarMap[str, int]
    def __init__(self, task_id: _Optional[str] = ..., exit_code: _Optional[int] = ..., signal: _Optional[str] = ..., error: _Optional[str] = ..., chunks: _Optional[int] = ..., total_bytes: _Optional[int] = ..., timed_out: _Optional[bool] = ..., dropped_bytes: _Optional[int] = ..., findings: _Optional[_Mapping[str, int]] = ...) -> None: ...

class OutputAck(_message.Message):
    __slots__ = ("task_id", "seq", "done")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    seq: int
    done: bool
    def __init__(self, task_id: _Optional[str] = ..., seq: _Optional[int] = ..., done: _Optional[bool] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskProgress]
    def __init__(self, tasks: _Optional[_Iterable[_Union[TaskProgress, _Mapping]]] = ...) -> None: ...

class TaskProgress(_message.Message):
    __slots__ = ("task_id", "dropped_bytes")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    DROPPED_BYTES_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    dropped_bytes: int
    def __init__(self, task_id: _Optional[str] = ..., dropped_bytes: _Optional[int] = ...) -> None: ...

class ListAgentsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAgentsResponse(_message.Message):
    __slots__ = ("agents",)
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    agents: _containers.RepeatedCompositeFieldContainer[Agent]
    def __init__(self, agents: _Optional[_Iterable[_Union[Agent, _Mapping]]] = ...) -> None: ...

class CreateAgentTokenRequest(_message.Message):
    __slots__ = ("name", "ttl")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    name: str
    ttl: _duration_pb2.Duration
    def __init__(self, name: _Optional[str] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class CreateAgentTokenResponse(_message.Message):
    __slots__ = ("token", "name")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    token: str
    name: str
    def __init__(self, token: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...
