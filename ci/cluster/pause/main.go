// The local cluster's sandbox ("pause") image: a static program that holds a pod's namespaces and exits on
// SIGTERM or SIGINT. Built with the Kubernetes components by src/imagepipe/cluster/binaries.py.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
