// Command kube-controller-manager is the upstream controller manager (Deployments, ReplicaSets,
// EndpointSlices, garbage collection, namespaces), for the cluster test tier (hack/cluster/).
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	os.Exit(cli.Run(app.NewControllerManagerCommand()))
}
