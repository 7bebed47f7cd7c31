package probe

import (
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testdata/proc is a small fake /proc:
//
//	1 systemd
//	├── 100 sh                  root of the tree under test
//	│   ├── 101 python3         3 threads; 103 hangs off thread 110
//	│   │   └── 103 "agent) (x" 2 threads
//	│   ├── 102 sleep           no io file (unreadable)
//	│   │   ├── 105 defunct     zombie
//	│   │   └── 106 trunc       stat cut short
//	│   └── 104                 listed, but no folder: exited
//	└── 200 cron
//	    └── 201 job
func TestSampleFixture(t *testing.T) {
	page := uint64(os.Getpagesize())
	tests := []struct {
		name    string
		root    int
		want    Sample
		wantErr error
	}{
		{
			name: "whole tree",
			root: 100,
			want: Sample{Processes: 4, Threads: 1 + 3 + 1 + 2, MemoryBytes: (200 + 10000 + 100 + 5000) * page,
				ReadBytes: 4096 + 1048576 + 8192, WriteBytes: 65536 + 12288},
		},
		{
			name: "multi-threaded subtree",
			root: 101,
			want: Sample{Processes: 2, Threads: 3 + 2, MemoryBytes: (10000 + 5000) * page,
				ReadBytes: 1048576 + 8192, WriteBytes: 65536 + 12288},
		},
		{
			name: "zombie and cut-short children not counted",
			root: 102,
			want: Sample{Processes: 1, Threads: 1, MemoryBytes: 100 * page},
		},
		{name: "zombie root", root: 105, want: Sample{}},
		{name: "root without folder", root: 104, wantErr: ErrNotFound},
		{name: "root with stat cut short", root: 106, wantErr: ErrNotFound},
		{name: "no such pid", root: 99999, wantErr: ErrNotFound},
		{name: "pid 0", root: 0, wantErr: ErrNotFound},
	}
	modes := []struct {
		name    string
		proc    func(t *testing.T) string
		wantMod childrenMode
	}{
		{"children files", func(*testing.T) string { return filepath.Join("testdata", "proc") }, childrenFiles},
		{"parent scan", procWithoutChildren, childrenScan},
	}
	for _, m := range modes {
		for _, tt := range tests {
			t.Run(m.name+"/"+tt.name, func(t *testing.T) {
				s := newSampler(t, m.proc(t))
				got, err := s.Sample(tt.root, time.Unix(1000, 0))
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Sample(%d) error = %v, want %v", tt.root, err, tt.wantErr)
				}
				if got != tt.want {
					t.Errorf("Sample(%d) = %+v, want %+v", tt.root, got, tt.want)
				}
				if err == nil && s.mode != m.wantMod {
					t.Errorf("children mode = %d, want %d", s.mode, m.wantMod)
				}
			})
		}
	}
}

func TestSampleCPUPercent(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name   string
		change func(t *testing.T, proc string)
		root   int           // of the second sample
		after  time.Duration // between the samples
		want   float64
	}{
		{
			name:   "nothing ran",
			change: func(*testing.T, string) {},
			root:   100, after: time.Second, want: 0,
		},
		{
			name:   "child busy half the time",
			change: func(t *testing.T, proc string) { addStatField(t, proc, 101, 14, 100) },
			root:   100, after: 2 * time.Second, want: 50,
		},
		{
			name: "two cores",
			change: func(t *testing.T, proc string) {
				addStatField(t, proc, 101, 14, 300)
				addStatField(t, proc, 103, 15, 100)
			},
			root: 100, after: 2 * time.Second, want: 200,
		},
		{
			// 103 ran 20 more ticks and exited; 101 reaped it, so its 60+20
			// ticks moved into 101's cutime: only the 20 are new.
			name: "grandchild reaped inside the tree",
			change: func(t *testing.T, proc string) {
				removeAll(t, filepath.Join(proc, "103"))
				writeFile(t, filepath.Join(proc, "101", "task", "110", "children"), "")
				addStatField(t, proc, 101, 16, 60+20)
			},
			root: 100, after: time.Second, want: 20,
		},
		{
			name: "process left the tree",
			change: func(t *testing.T, proc string) {
				addStatField(t, proc, 100, 14, 10)
				removeAll(t, filepath.Join(proc, "101"))
			},
			root: 100, after: time.Second, want: 0,
		},
		{
			name:   "clock did not move",
			change: func(t *testing.T, proc string) { addStatField(t, proc, 101, 14, 100) },
			root:   100, after: 0, want: 0,
		},
		{
			name:   "clock went back",
			change: func(t *testing.T, proc string) { addStatField(t, proc, 101, 14, 100) },
			root:   100, after: -time.Second, want: 0,
		},
		{
			name:   "another root",
			change: func(t *testing.T, proc string) { addStatField(t, proc, 101, 14, 100) },
			root:   101, after: time.Second, want: 0,
		},
		{
			name: "same pid started again",
			change: func(t *testing.T, proc string) {
				addStatField(t, proc, 100, 22, 1)
				addStatField(t, proc, 101, 14, 100)
			},
			root: 100, after: time.Second, want: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proc := copyProc(t)
			s := newSampler(t, proc)
			first, err := s.Sample(100, t0)
			if err != nil {
				t.Fatal(err)
			}
			if first.CPUPercent != 0 {
				t.Errorf("first CPUPercent = %v, want 0", first.CPUPercent)
			}
			tt.change(t, proc)
			got, err := s.Sample(tt.root, t0.Add(tt.after))
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got.CPUPercent-tt.want) > 1e-9 {
				t.Errorf("CPUPercent = %v, want %v", got.CPUPercent, tt.want)
			}
		})
	}
}

// After a failed sample (the child gone), the next sample of the same pid
// starts a new baseline.
func TestSampleCPUBaselineAfterError(t *testing.T) {
	proc := copyProc(t)
	s := newSampler(t, proc)
	t0 := time.Unix(1000, 0)
	if _, err := s.Sample(101, t0); err != nil {
		t.Fatal(err)
	}
	stat := readFixture(t, filepath.Join(proc, "101", "stat"))
	removeAll(t, filepath.Join(proc, "101", "stat"))
	if _, err := s.Sample(101, t0.Add(time.Second)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Sample of a vanished root: error = %v, want ErrNotFound", err)
	}
	writeFile(t, filepath.Join(proc, "101", "stat"), string(stat))
	addStatField(t, proc, 101, 14, 100)
	got, err := s.Sample(101, t0.Add(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if got.CPUPercent != 0 {
		t.Errorf("CPUPercent after an error = %v, want 0", got.CPUPercent)
	}
}

func TestSampleErrorWrapsCause(t *testing.T) {
	s := newSampler(t, filepath.Join("testdata", "proc"))
	_, err := s.Sample(104, time.Unix(1000, 0))
	if !errors.Is(err, ErrNotFound) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error = %v, want both ErrNotFound and fs.ErrNotExist", err)
	}
}

func TestNewSamplerBadRoot(t *testing.T) {
	if _, err := NewSampler(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("NewSampler on a missing folder: no error")
	}
}

func TestMemoryMB(t *testing.T) {
	if got, want := (Sample{MemoryBytes: 300 << 20}).MemoryMB(), 300.0; got != want {
		t.Errorf("MemoryMB = %v, want %v", got, want)
	}
}

func newSampler(t *testing.T, proc string) *Sampler {
	t.Helper()
	s, err := NewSampler(proc)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// copyProc copies testdata/proc to a temporary folder that a test may change.
func copyProc(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "proc")
	if err := os.CopyFS(dst, os.DirFS(filepath.Join("testdata", "proc"))); err != nil {
		t.Fatal(err)
	}
	return dst
}

// procWithoutChildren is testdata/proc as a kernel without
// CONFIG_PROC_CHILDREN shows it.
func procWithoutChildren(t *testing.T) string {
	t.Helper()
	proc := copyProc(t)
	err := filepath.WalkDir(proc, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "children" {
			err = os.Remove(path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return proc
}

// addStatField adds n to field (numbered as in proc(5), utime is 14) of
// <proc>/<pid>/stat.
func addStatField(t *testing.T, proc string, pid, field int, n uint64) {
	t.Helper()
	path := filepath.Join(proc, strconv.Itoa(pid), "stat")
	line := string(readFixture(t, path))
	r := strings.LastIndexByte(line, ')')
	fields := strings.Fields(line[r+1:])
	i := field - 3
	v, err := strconv.ParseUint(fields[i], 10, 64)
	if err != nil {
		t.Fatalf("%s field %d: %v", path, field, err)
	}
	fields[i] = strconv.FormatUint(v+n, 10)
	writeFile(t, path, line[:r+1]+" "+strings.Join(fields, " ")+"\n")
}

func removeAll(t *testing.T, path string) {
	t.Helper()
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
}
