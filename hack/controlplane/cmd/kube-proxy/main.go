// Command kube-proxy is the upstream Service proxy (iptables mode), for the cluster test tier
// (hack/cluster/).
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-proxy/app"
)

func main() {
	os.Exit(cli.Run(app.NewProxyCommand()))
}
