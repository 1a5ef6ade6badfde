// Command kubelet is the upstream node agent, built from the same k8s.io/kubernetes module as the
// API server so the cluster test tier runs one version throughout (hack/cluster/).
package main

import (
	"context"
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kubelet/app"
)

func main() {
	os.Exit(cli.Run(app.NewKubeletCommand(context.Background())))
}
