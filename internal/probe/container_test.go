package probe

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestContainerIDFromFixtures(t *testing.T) {
	tests := []struct {
		dir  string // under testdata/containerid
		want string
	}{
		{"docker-v1", "2a759f8fac4d817ff2bc28c224d51c5030f915c0c14997110517984ca9aa8d0f"},
		{"docker-v2", "523c835670a5065bb35e0b537f4ab7fffdb6fa0d55b6d72d7b6bb4af0cf13045"},
		{"docker-v2-cgroupns", "2b7ccb74724593fdc3de2f6573063db82e12b09076a480140551a39a560f913b"},
		{"docker-in-docker", "33bf6fbd7cd8379785a21e233d8e09f824e7bab459168a96312c1c882c1d7e1f"},
		{"k8s-v1", "966511cf5a3e7b4276064cba4bde5f73bfdc5c2ebeeed9b48a2845ecfed20e9a"},
		{"k8s-v2-containerd", "503427a6331522a04aca7f35aa1123ec201636ddfd4ef383114334a313c9b4d1"},
		{"k8s-v2-crio", "c64064614423cb790e88b3e5492ff5ccf673b25ae823089f7a60c65cda24d809"},
		// A private cgroup namespace hides the path, and containerd mounts
		// /etc/hostname from the pod sandbox, whose id is not the
		// container's: nothing to go by.
		{"k8s-v2-cgroupns", ""},
		{"podman", "2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9"},
		{"podman-rootless-mountinfo", "56dfa3bc944415a972b0fe05883435f6f061150cc65600d923a24fd565932362"},
		// Docker's default host name is the 12-hex short id, and a beat
		// carries the full id or none.
		{"hostname-only", ""},
		{"host", ""},
		{"sandbox", ""},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			dir := filepath.Join("testdata", "containerid", tt.dir)
			cgroup := readFixture(t, filepath.Join(dir, "cgroup"))
			mountinfo := readFixture(t, filepath.Join(dir, "mountinfo"))
			if got := containerIDFrom(cgroup, mountinfo); got != tt.want {
				t.Errorf("containerIDFrom(%s) = %q, want %q", tt.dir, got, tt.want)
			}
		})
	}
}

func TestContainerIDFrom(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		name      string
		cgroup    string
		mountinfo string
		want      string
	}{
		{"cgroup wins over mountinfo", "0::/docker/" + id + "\n", "1 0 8:1 /var/lib/docker/containers/" + strings.Repeat("f", 64) + "/hostname /etc/hostname rw - ext4 /dev/sda1 rw\n", id},
		{"cgroup line without newline", "0::/system.slice/docker-" + id + ".scope", "", id},
		{"conmon is not the container", "0::/machine.slice/libpod-conmon-" + id + ".scope\n", "", ""},
		{"uppercase hex is not an id", "0::/docker/" + strings.ToUpper(id) + "\n", "", ""},
		{"63 hex is not an id", "0::/docker/" + id[1:] + "\n", "", ""},
		{"short id is not an id", "0::/docker/" + id[:12] + "\n", "", ""},
		{"mountinfo", "", "1 0 8:1 /var/lib/docker/containers/" + id + "/hostname /etc/hostname rw - ext4 /dev/sda1 rw\n", id},
		{"mountinfo needs the slash after the id", "", "1 0 8:1 /var/lib/docker/containers/" + id + "x/hostname /etc/hostname rw - ext4 /dev/sda1 rw\n", ""},
		{"mountinfo at end of input", "", "1 0 8:1 /var/lib/docker/containers/" + id, ""},
		{"nothing", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := containerIDFrom([]byte(tt.cgroup), []byte(tt.mountinfo))
			if got != tt.want {
				t.Errorf("containerIDFrom = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestIsContainerID(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		in   string
		want bool
	}{
		{id, true},
		{"", false},
		{id[:12], false},
		{id + "0", false},
		{strings.ToUpper(id), false},
		{id[:63] + "g", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := IsContainerID(tt.in); got != tt.want {
				t.Errorf("IsContainerID(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestContainerIDReadsProcSelf(t *testing.T) {
	const id = "523c835670a5065bb35e0b537f4ab7fffdb6fa0d55b6d72d7b6bb4af0cf13045"
	root := t.TempDir()
	self := filepath.Join(root, "self")
	if err := os.Mkdir(self, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(self, "cgroup"), "0::/system.slice/docker-"+id+".scope\n")
	writeFile(t, filepath.Join(self, "mountinfo"), "")
	if got := ContainerID(root); got != id {
		t.Errorf("ContainerID(%s) = %q, want %q", root, got, id)
	}
}

func readFixture(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
