package probe

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
)

// ContainerID returns the id of the container the current process runs in,
// read from <procRoot>/self/cgroup, then <procRoot>/self/mountinfo; "" when
// it runs in none that can be told. It is always the full id (see
// IsContainerID): Docker's default host name is the 12-hex short id, but a
// beat carries the full id or none, so the host name is not used.
func ContainerID(procRoot string) string {
	cgroup, _ := os.ReadFile(filepath.Join(procRoot, "self", "cgroup"))
	mountinfo, _ := os.ReadFile(filepath.Join(procRoot, "self", "mountinfo"))
	return containerIDFrom(cgroup, mountinfo)
}

// IsContainerID reports whether s is a full container id as a beat carries
// it: 64 lowercase hexadecimal digits.
func IsContainerID(s string) bool { return isHex(s, 64) }

// containerIDFrom finds a container id in the content of /proc/self/cgroup
// and /proc/self/mountinfo, in that order of trust.
func containerIDFrom(cgroup, mountinfo []byte) string {
	if id := idFromCgroup(cgroup); id != "" {
		return id
	}
	return idFromMountinfo(mountinfo)
}

// idFromCgroup looks at the cgroup path of each line
// ("hierarchy:controllers:path"), deepest element first, so that a container
// nested in another gives its own id. Runtimes name the element after the id:
//
//	/docker/<id>
//	/system.slice/docker-<id>.scope
//	/kubepods/burstable/pod<uid>/<id>
//	/kubepods.slice/.../cri-containerd-<id>.scope (also crio-<id>.scope)
//	/machine.slice/libpod-<id>.scope
//
// With a private cgroup namespace (Docker's default on cgroup v2) the path is
// just "/" and says nothing.
func idFromCgroup(b []byte) string {
	for line := range bytes.Lines(b) {
		_, rest, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		_, path, ok := bytes.Cut(rest, []byte(":"))
		if !ok {
			continue
		}
		path = bytes.TrimSpace(path)
		for len(path) > 0 {
			i := bytes.LastIndexByte(path, '/')
			elem := path[i+1:]
			path = path[:max(i, 0)]
			if id := idFromCgroupElem(elem); id != "" {
				return id
			}
		}
	}
	return ""
}

func idFromCgroupElem(elem []byte) string {
	// conmon, podman's and CRI-O's monitor, runs beside the container, not
	// in it, in a cgroup named after the container.
	if bytes.Contains(elem, []byte("conmon")) {
		return ""
	}
	elem = bytes.TrimSuffix(elem, []byte(".scope"))
	if i := bytes.LastIndexByte(elem, '-'); i >= 0 {
		elem = elem[i+1:]
	}
	if isHex(string(elem), 64) {
		return string(elem)
	}
	return ""
}

// idFromMountinfo finds the files a runtime bind-mounts into its container
// from the container's own folder (/etc/hostname, /etc/hosts,
// /etc/resolv.conf):
//
//	/var/lib/docker/containers/<id>/hostname
//	/var/lib/containers/storage/overlay-containers/<id>/userdata/hostname
//
// Overlay layer folders (/var/lib/docker/overlay2/<id>/diff) are not
// container ids and are not matched.
func idFromMountinfo(b []byte) string {
	const marker = "containers/"
	s := string(b)
	for {
		i := strings.Index(s, marker)
		if i < 0 {
			return ""
		}
		s = s[i+len(marker):]
		if len(s) > 64 && s[64] == '/' && isHex(s[:64], 64) {
			return s[:64]
		}
	}
}

// isHex reports whether s is n lowercase hexadecimal digits.
func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
