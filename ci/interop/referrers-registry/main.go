// A registry that implements the OCI 1.1 referrers API, for the interop tests: go-containerregistry's
// registry package with its referrers support switched on (`crane registry serve` leaves it off), blobs on
// disk, listening on --address until SIGTERM.
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

func main() {
	address := flag.String("address", "127.0.0.1:0", "address to listen on")
	disk := flag.String("disk", "", "directory for blobs")
	flag.Parse()
	if *disk == "" {
		log.Fatalln("--disk is required")
	}
	listener, err := net.Listen("tcp", *address)
	if err != nil {
		log.Fatalln(err)
	}
	handler := registry.New(registry.WithReferrersSupport(true),
		registry.WithBlobHandler(registry.NewDiskBlobHandler(*disk)))
	server := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = server.Shutdown(context.Background())
	}()
	log.Printf("serving on %s", listener.Addr())
	if err := server.Serve(listener); err != http.ErrServerClosed {
		log.Fatalln(err)
	}
}
