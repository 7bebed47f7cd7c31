package probe

import (
	"slices"
	"testing"
)

func TestParseStat(t *testing.T) {
	const full = "4711 (agent) S 4700 4711 4711 0 -1 4194560 812 0 0 0 250 40 7 3 20 0 12 0 98765 812345344 20480 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
	tests := []struct {
		name   string
		in     string
		want   procStat
		wantOK bool
	}{
		{
			name:   "full line",
			in:     full,
			want:   procStat{pid: 4711, ppid: 4700, pgrp: 4711, state: 'S', threads: 12, ticks: 250 + 40 + 7 + 3, start: 98765, rssPages: 20480},
			wantOK: true,
		},
		{
			name:   "comm with spaces and parentheses",
			in:     "9 (a) (b c) R 1 9 9 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0 77 0 3 0 0\n",
			want:   procStat{pid: 9, ppid: 1, pgrp: 9, state: 'R', threads: 1, ticks: 11, start: 77, rssPages: 3},
			wantOK: true,
		},
		{
			name:   "zombie",
			in:     "10133 (sleep) Z 10131 10129 4277 0 -1 4227084 96 0 0 0 0 0 0 0 20 0 1 0 33966 0 0 18446744073709551615 0 0 0 0 0 0 0 6 0 1 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
			want:   procStat{pid: 10133, ppid: 10131, pgrp: 10129, state: 'Z', threads: 1, start: 33966},
			wantOK: true,
		},
		{name: "cut short before rss", in: full[:60]},
		{name: "cut short inside rss", in: "9 (a) R 1 9 9 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0 77 0 3"},
		{name: "cut short inside comm", in: "9 (ag"},
		{name: "empty", in: ""},
		{name: "negative field", in: "9 (a) R 1 9 9 0 -1 0 0 0 0 0 -5 6 0 0 20 0 1 0 77 0 3 0\n"},
		{name: "two-letter state", in: "9 (a) RS 1 9 9 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0 77 0 3 0\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseStat(tt.want.pid, []byte(tt.in))
			if ok != tt.wantOK {
				t.Fatalf("parseStat(%q) ok = %v, want %v", tt.in, ok, tt.wantOK)
			}
			if ok && got != tt.want {
				t.Errorf("parseStat(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseStatZombie(t *testing.T) {
	tests := []struct {
		name string
		p    procStat
		want bool
	}{
		{"running", procStat{state: 'R', threads: 1}, false},
		{"zombie", procStat{state: 'Z', threads: 1}, true},
		{"dead", procStat{state: 'X', threads: 0}, true},
		{"leader exited, threads run on", procStat{state: 'Z', threads: 3}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.zombie(); got != tt.want {
				t.Errorf("zombie() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseIO(t *testing.T) {
	tests := []struct {
		name                string
		in                  string
		wantRead, wantWrite uint64
		wantOK              bool
	}{
		{
			name:     "full",
			in:       "rchar: 2586339\nwchar: 135078\nsyscr: 12189\nsyscw: 363\nread_bytes: 4096\nwrite_bytes: 278528\ncancelled_write_bytes: 155648\n",
			wantRead: 4096, wantWrite: 278528, wantOK: true,
		},
		{name: "cut short", in: "rchar: 2586339\nwchar: 135078\nsyscr: 12189\nsyscw: 363\nread_bytes: 4096\n"},
		{name: "empty", in: ""},
		{name: "garbage value", in: "read_bytes: x\nwrite_bytes: 1\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, w, ok := parseIO([]byte(tt.in))
			if ok != tt.wantOK || ok && (r != tt.wantRead || w != tt.wantWrite) {
				t.Errorf("parseIO = %d, %d, %v; want %d, %d, %v", r, w, ok, tt.wantRead, tt.wantWrite, tt.wantOK)
			}
		})
	}
}

func TestAppendPIDList(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []int
	}{
		{"kernel format", "101 102 104 ", []int{101, 102, 104}},
		{"no trailing space", "7", []int{7}},
		{"newline", "7 8\n", []int{7, 8}},
		{"empty", "", nil},
		{"junk skipped", "7 x 0 9", []int{7, 9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := appendPIDList(nil, []byte(tt.in))
			if !slices.Equal(got, tt.want) {
				t.Errorf("appendPIDList(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseUint(t *testing.T) {
	tests := []struct {
		in     string
		want   uint64
		wantOK bool
	}{
		{"0", 0, true},
		{"18446744073709551615", 1<<64 - 1, true},
		{"18446744073709551616", 0, false},
		{"", 0, false},
		{"-1", 0, false},
		{"1 ", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := parseUint([]byte(tt.in))
			if ok != tt.wantOK || got != tt.want {
				t.Errorf("parseUint(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
