#!/usr/bin/env python3
"""Creates a Taskgate task, follows its logs live and exits with its exit status.

    TASKGATE_SERVER=127.0.0.1:7070 TASKGATE_TOKEN=tg_user_... \
        python3 example.py TARGET 'echo hello'

Set TASKGATE_TLS_CA to a CA file to connect with TLS. The CreateTask
carries a new request id (taskgate.client), so a retry never makes a second
task; TASKGATE_REQUEST_ID sets it, to repeat a run safely.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import grpc  # noqa: E402

from taskgate import client  # noqa: E402
from taskgate.v1 import task_pb2, task_pb2_grpc  # noqa: E402


def main() -> int:
    try:
        return run()
    except grpc.RpcError as err:
        # The server's status and message, e.g. "NOT_FOUND: target ... does not exist".
        print(f"{err.code().name}: {err.details()}", file=sys.stderr)
        return 1
    except KeyError as err:
        print(f"set {err.args[0]}", file=sys.stderr)
        return 2


def run() -> int:
    if len(sys.argv) != 3:
        print("usage: example.py TARGET SCRIPT", file=sys.stderr)
        return 2
    target, script = sys.argv[1], sys.argv[2]
    server = os.environ.get("TASKGATE_SERVER", "127.0.0.1:7070")
    metadata = [("authorization", "Bearer " + os.environ["TASKGATE_TOKEN"])]
    ca = os.environ.get("TASKGATE_TLS_CA")
    credentials = None
    if ca:
        with open(ca, "rb") as f:
            credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
    tasks = task_pb2_grpc.TaskServiceStub(client.channel(server, credentials))

    # An empty request_id gets a new one from client.RequestIdInterceptor.
    request = task_pb2.CreateTaskRequest(
        target=target,
        script=script,
        message="from the Python SDK example",
        request_id=os.environ.get("TASKGATE_REQUEST_ID", ""),
    )
    created = tasks.CreateTask(request, metadata=metadata).task
    print(f"task {created.id}: {task_pb2.TaskStatus.Name(created.status)}", file=sys.stderr)
    if created.status == task_pb2.TASK_STATUS_PENDING_REVIEW:
        print("it waits for review; follow it later with GetTaskLogs", file=sys.stderr)
        return 3

    request = task_pb2.GetTaskLogsRequest(id=created.id, follow=True)
    for response in tasks.GetTaskLogs(request, metadata=metadata):
        if response.HasField("chunk"):
            sys.stdout.buffer.write(response.chunk.data)
            sys.stdout.buffer.flush()
        elif response.HasField("finished"):
            task = response.finished
            status = task_pb2.TaskStatus.Name(task.status)
            if task.HasField("exit_code"):
                print(f"task {task.id} ended: {status}, exit code {task.exit_code}", file=sys.stderr)
            else:
                print(f"task {task.id} ended: {status}", file=sys.stderr)
            if task.status == task_pb2.TASK_STATUS_SUCCESS:
                return 0
            return task.exit_code if task.HasField("exit_code") and task.exit_code != 0 else 1
    return 1


if __name__ == "__main__":
    sys.exit(main())
