// Package taskgate holds what a Taskgate client needs besides the stubs
// generated into gen/taskgate/v1: a request id on every call that takes one
// (AIP-155), and a retry policy that is safe because of it.
//
//	conn, err := grpc.NewClient(server, append(taskgate.DialOptions(), grpc.WithTransportCredentials(creds))...)
//
// With these options a CreateTask, RunTask, ReviewTask or KillTask request
// that has no request_id gets a new random one, and such a call is tried
// again (up to five attempts, backing off from 0.25 s) when the server is
// UNAVAILABLE: every attempt carries the same id, so the server acts at most
// once and answers a repeat with the task (docs/design.md "Retries and
// request ids").
package taskgate

import (
	"context"
	"crypto/rand"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	taskgatev1 "github.com/taskgate/taskgate/sdk/go/gen/taskgate/v1"
)

// ServiceConfig retries the TaskService calls that carry a request id when
// the server is UNAVAILABLE (gRPC retry policy; see DialOptions).
const ServiceConfig = `{
  "methodConfig": [{
    "name": [
      {"service": "taskgate.v1.TaskService", "method": "CreateTask"},
      {"service": "taskgate.v1.TaskService", "method": "RunTask"},
      {"service": "taskgate.v1.TaskService", "method": "ReviewTask"},
      {"service": "taskgate.v1.TaskService", "method": "KillTask"}
    ],
    "retryPolicy": {
      "maxAttempts": 5,
      "initialBackoff": "0.25s",
      "maxBackoff": "4s",
      "backoffMultiplier": 1.6,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
}`

// NewRequestID returns a new request id: a random (version 4) UUID.
func NewRequestID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// RequestIDs is a unary client interceptor that gives each CreateTask,
// RunTask, ReviewTask and KillTask request without a request_id a new one.
// It fills a copy, so a request value used again for a new call gets a new
// id. It runs once per call, before gRPC's own retries, so every attempt of
// a call carries the same id.
func RequestIDs() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return invoker(ctx, method, withRequestID(req), reply, cc, opts...)
	}
}

// withRequestID returns req, or a copy of it with a new request id when it
// takes one and has none.
func withRequestID(req any) any {
	switch r := req.(type) {
	case *taskgatev1.CreateTaskRequest:
		if r.GetRequestId() == "" {
			c := proto.CloneOf(r)
			c.RequestId = NewRequestID()
			return c
		}
	case *taskgatev1.RunTaskRequest:
		if r.GetRequestId() == "" {
			c := proto.CloneOf(r)
			c.RequestId = NewRequestID()
			return c
		}
	case *taskgatev1.ReviewTaskRequest:
		if r.GetRequestId() == "" {
			c := proto.CloneOf(r)
			c.RequestId = NewRequestID()
			return c
		}
	case *taskgatev1.KillTaskRequest:
		if r.GetRequestId() == "" {
			c := proto.CloneOf(r)
			c.RequestId = NewRequestID()
			return c
		}
	}
	return req
}

// DialOptions are the options a Taskgate client should dial with: request
// ids (RequestIDs) and the retry policy that relies on them (ServiceConfig).
// Add the transport credentials.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(RequestIDs()),
		grpc.WithDefaultServiceConfig(ServiceConfig),
	}
}
