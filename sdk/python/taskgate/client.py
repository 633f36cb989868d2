"""What a Taskgate client needs besides the stubs generated into taskgate.v1.

A request id on every call that takes one (AIP-155), and a retry policy
that is safe because of it::

    from taskgate import client
    from taskgate.v1 import task_pb2_grpc

    tasks = task_pb2_grpc.TaskServiceStub(client.channel("127.0.0.1:7070"))

On such a channel a CreateTask, RunTask, ReviewTask or KillTask request
without a request_id gets a new random one, and the call is tried again (up
to five attempts, backing off from 0.25 s) when the server is UNAVAILABLE:
every attempt carries the same id, so the server acts at most once and
answers a repeat with the task (docs/design.md "Retries and request ids").

This file is written by hand; generate.sh keeps it and regenerates v1/.
"""
import json
import uuid
from typing import Optional

import grpc

# The TaskService methods whose requests carry a request_id.
_METHODS = ("CreateTask", "RunTask", "ReviewTask", "KillTask")

# Their gRPC paths.
TAKES_REQUEST_ID = frozenset("/taskgate.v1.TaskService/" + m for m in _METHODS)

# Retries the calls that carry a request id when the server is UNAVAILABLE.
SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{"service": "taskgate.v1.TaskService", "method": m} for m in _METHODS],
                "retryPolicy": {
                    "maxAttempts": 5,
                    "initialBackoff": "0.25s",
                    "maxBackoff": "4s",
                    "backoffMultiplier": 1.6,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)

# Channel options that turn the retry policy on.
CHANNEL_OPTIONS = (("grpc.service_config", SERVICE_CONFIG), ("grpc.enable_retries", 1))


def new_request_id() -> str:
    """A new request id: a random (version 4) UUID."""
    return str(uuid.uuid4())


class RequestIdInterceptor(grpc.UnaryUnaryClientInterceptor):
    """Gives each request that takes a request_id and has none a new one.

    It fills a copy, so a request object sent again as a new call gets a new
    id. It runs once per call, before gRPC's own retries, so every attempt of
    a call carries the same id.
    """

    def intercept_unary_unary(self, continuation, client_call_details, request):
        method = client_call_details.method
        if isinstance(method, bytes):
            method = method.decode()
        if method in TAKES_REQUEST_ID and not request.request_id:
            filled = type(request)()
            filled.CopyFrom(request)
            filled.request_id = new_request_id()
            request = filled
        return continuation(client_call_details, request)


def channel(target: str, credentials: Optional[grpc.ChannelCredentials] = None) -> grpc.Channel:
    """A channel to a Taskgate server with request ids and safe retries.

    With `credentials` (e.g. grpc.ssl_channel_credentials()) it uses TLS.
    """
    if credentials is None:
        raw = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
    else:
        raw = grpc.secure_channel(target, credentials, options=CHANNEL_OPTIONS)
    return grpc.intercept_channel(raw, RequestIdInterceptor())
