// Package deploy holds no code: its folder carries the deployment files (the
// image, a compose file, Kubernetes manifests, systemd units), and its tests
// check them with the real tools: docker builds and runs the image,
// docker-compose, systemd-analyze and kubectl validate the rest, and every
// flag the files name is looked up in the real binaries' --help.
package deploy
