// Command example creates a Taskgate task, follows its logs live and exits
// with its exit status.
//
//	TASKGATE_SERVER=127.0.0.1:7070 TASKGATE_TOKEN=tg_user_... go run ./example TARGET 'echo hello'
//
// Set TASKGATE_TLS_CA to a CA file to connect with TLS. The CreateTask
// carries a new request id (package taskgate), so a retry never makes a
// second task; TASKGATE_REQUEST_ID sets it, to repeat a run safely.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	taskgatev1 "github.com/taskgate/taskgate/sdk/go/gen/taskgate/v1"
	"github.com/taskgate/taskgate/sdk/go/taskgate"
)

func main() {
	os.Exit(run())
}

func run() int {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: example TARGET SCRIPT")
		return 2
	}
	target, script := os.Args[1], os.Args[2]
	server := os.Getenv("TASKGATE_SERVER")
	if server == "" {
		server = "127.0.0.1:7070"
	}
	creds := insecure.NewCredentials()
	if ca := os.Getenv("TASKGATE_TLS_CA"); ca != "" {
		tls, err := credentials.NewClientTLSFromFile(ca, "")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		creds = tls
	}
	conn, err := grpc.NewClient(server, append(taskgate.DialOptions(), grpc.WithTransportCredentials(creds))...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer conn.Close()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+os.Getenv("TASKGATE_TOKEN"))
	tasks := taskgatev1.NewTaskServiceClient(conn)

	// An empty RequestId gets a new one from taskgate.RequestIDs.
	request := &taskgatev1.CreateTaskRequest{Target: target, Script: script, Message: "from the Go SDK example", RequestId: os.Getenv("TASKGATE_REQUEST_ID")}
	created, err := tasks.CreateTask(ctx, request)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	task := created.GetTask()
	fmt.Fprintf(os.Stderr, "task %s: %s\n", task.GetId(), task.GetStatus())
	if task.GetStatus() == taskgatev1.TaskStatus_TASK_STATUS_PENDING_REVIEW {
		fmt.Fprintln(os.Stderr, "it waits for review; follow it later with GetTaskLogs")
		return 3
	}

	logs, err := tasks.GetTaskLogs(ctx, &taskgatev1.GetTaskLogsRequest{Id: task.GetId(), Follow: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for {
		res, err := logs.Recv()
		if errors.Is(err, io.EOF) {
			return 1
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if chunk := res.GetChunk(); chunk != nil {
			os.Stdout.Write(chunk.GetData())
		}
		if done := res.GetFinished(); done != nil {
			if done.ExitCode != nil {
				fmt.Fprintf(os.Stderr, "task %s ended: %s, exit code %d\n", done.GetId(), done.GetStatus(), done.GetExitCode())
			} else {
				fmt.Fprintf(os.Stderr, "task %s ended: %s\n", done.GetId(), done.GetStatus())
			}
			if done.GetStatus() == taskgatev1.TaskStatus_TASK_STATUS_SUCCESS {
				return 0
			}
			if done.GetExitCode() != 0 {
				return int(done.GetExitCode())
			}
			return 1
		}
	}
}
