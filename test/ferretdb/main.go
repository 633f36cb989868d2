// Command ferretdb-test runs FerretDB v1 as a MongoDB-wire server for
// Taskgate's test suite, on its PostgreSQL backend (-postgresql-url: the
// harness, test/helpers/mongo.ts, starts a throwaway PostgreSQL for it) or
// its SQLite backend (-dir: a data directory). It listens on 127.0.0.1 with a
// free port, prints "ready <mongodb-uri>" on stdout once it accepts
// connections, and exits when stdin closes or on SIGINT/SIGTERM, so a test
// harness that dies cannot leave it running.
//
// `go install .../cmd/ferretdb@v1.24.2` yields a binary that panics at start
// (a generated version file is missing from the module), hence this small main
// that embeds the library package instead.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	dir := flag.String("dir", "", "data directory: the SQLite backend")
	pgURL := flag.String("postgresql-url", "", "PostgreSQL connection string (pgx syntax): the PostgreSQL backend")
	port := flag.Int("port", 0, "TCP port on 127.0.0.1; 0 picks a free one")
	flag.Parse()

	config := ferretdb.Config{}
	switch {
	case *dir != "" && *pgURL != "":
		log.Fatal("give -dir (SQLite) or -postgresql-url (PostgreSQL), not both")
	case *pgURL != "":
		config.Handler = "postgresql"
		config.PostgreSQLURL = *pgURL
	case *dir != "":
		if err := os.MkdirAll(*dir, 0o755); err != nil {
			log.Fatal(err)
		}
		config.Handler = "sqlite"
		config.SQLiteURL = "file:" + *dir + "/"
	default:
		log.Fatal("-dir (SQLite backend) or -postgresql-url (PostgreSQL backend) is required")
	}

	addr := fmt.Sprintf("127.0.0.1:%d", *port)
	if *port == 0 {
		// FerretDB's config wants a concrete address for the URI it reports;
		// take a free port from the kernel and hand it over.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			log.Fatal(err)
		}
		addr = l.Addr().String()
		_ = l.Close()
	}

	logger := slog.New(quietDuplicates{slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})})
	config.Listener = ferretdb.ListenerConfig{TCP: addr}
	config.Logger = logger
	f, err := ferretdb.New(&config)
	if err != nil {
		log.Fatal(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// The parent closes our stdin (or dies): stop.
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop()
	}()

	done := make(chan struct{})
	go func() {
		_ = f.Run(ctx)
		close(done)
	}()

	// Wait until the listener accepts connections before announcing it.
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			break
		}
		if time.Now().After(deadline) {
			log.Fatalf("ferretdb did not listen on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Printf("ready mongodb://%s/\n", addr)

	<-done
}

// quietDuplicates drops the PostgreSQL backend's log line for each query that
// failed on a unique index (SQLSTATE 23505): the client gets a duplicate key
// error (11000) for it, and Taskgate's locks and request ids expect many.
type quietDuplicates struct{ slog.Handler }

func (h quietDuplicates) Handle(ctx context.Context, r slog.Record) error {
	duplicate := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" && strings.Contains(a.Value.String(), "SQLSTATE 23505") {
			duplicate = true
		}
		return !duplicate
	})
	if duplicate {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h quietDuplicates) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietDuplicates{h.Handler.WithAttrs(attrs)}
}

func (h quietDuplicates) WithGroup(name string) slog.Handler {
	return quietDuplicates{h.Handler.WithGroup(name)}
}
