"""A real single-node Kubernetes cluster for the ``cluster`` test tier (see README "Testing").

containerd + runc + CNI plugins from Debian, etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kubelet and kube-proxy built from the pinned Go module (hack/), started as
child processes of the pytest session and torn down with everything they created.
"""
