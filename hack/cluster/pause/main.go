// Command pause is the pod sandbox's process: it holds the pod's namespaces open, reaps the
// zombies of processes that share its PID namespace, and exits on SIGINT/SIGTERM. The cluster
// test tier builds it here (no registry to pull registry.k8s.io/pause from) into an image that
// containerd's sandbox_image names (hack/cluster/build-images.sh).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if os.Getpid() != 1 {
		os.Stderr.WriteString("pause: warning: not PID 1, zombies of the pod are not reaped here\n")
	}
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
