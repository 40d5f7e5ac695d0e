// Package deploy holds the tests of the deployment files: the Prometheus
// alerts and the Grafana dashboard (prometheus/, grafana/), the Kubernetes
// manifests (k8s/) and the repository's Dockerfile. It is a Go module of its
// own so that the PromQL parser and the Kubernetes API types stay out of
// the main module. The tests build and run the real wsproxy binary.
package deploy
