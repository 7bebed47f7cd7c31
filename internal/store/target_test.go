package store

import (
	"strings"
	"testing"
)

func TestParseRedisURL(t *testing.T) {
	tests := []struct {
		url      string
		wantTopo Topology
		wantStr  string
		wantErr  string
	}{
		{"redis://127.0.0.1:6379/0", Single, "redis://127.0.0.1:6379", ""},
		{"rediss://user:pw@127.0.0.1:6380/2", Single, "rediss://127.0.0.1:6380", ""},
		{"redis://127.0.0.1", Single, "redis://127.0.0.1:6379", ""},
		{"redis://:pw@s1:26379?master_name=m&addr=s2:26379&addr=s3:26379", Sentinel, "sentinel://m@s1:26379,s2:26379,s3:26379", ""},
		{"rediss://s1:26379/3?master_name=m&password=x", Sentinel, "sentinel+tls://m@s1:26379", ""},
		{"redis://n1:7000?addr=n2:7001&addr=n3:7002", Cluster, "cluster://n1:7000,n2:7001,n3:7002", ""},
		{"rediss://u:p@n1:7000/0?addr=n2:7001", Cluster, "cluster+tls://n1:7000,n2:7001", ""},
		{"http://127.0.0.1:6379", 0, "", "must start with redis://"},
		{"127.0.0.1:6379", 0, "", "must start with redis://"},
		{"redis://127.0.0.1:6379/notadb", 0, "", "parse redis url"},
		{"redis://?addr=n2:7001", 0, "", "has no host"},
		{"redis://s1:26379?master_name=", 0, "", "master_name is empty"},
		{"redis://s1:26379?master_name=m&max_redirects=3", 0, "", "mixes forms: max_redirects= is a Cluster option"},
		{"redis://n1:7000/0?addr=n2:7001&db=2", 0, "", "mixes forms: db= is a Sentinel or single-server option"},
		{"redis://n1:7000/0?addr=n2:7001&password=x", 0, "", "mixes forms: password="},
		{"redis://n1:7000/3?addr=n2:7001", 0, "", "a Redis Cluster has only db 0, got /3"},
		{"redis://n1:7000?read_only=true", 0, "", "one address makes it a single server"},
		{"redis://n1:7000?addr=n1:7000", 0, "", "names n1:7000 twice"},
		{"redis://n1:7000?addr=n2", 0, "", `addr="n2" must be host:port`},
		{"redis://n1:7000?addr=n2:7001&frobnicate=1", 0, "", "(Cluster form): redis: unexpected option: frobnicate"},
		{"redis://u:secret@s1:26379?master_name=m&frob=1", 0, "", "(Sentinel form)"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			got, err := ParseRedisURL(tt.url, Options{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v", err)
			}
			if got.Topology != tt.wantTopo || got.String() != tt.wantStr {
				t.Errorf("got %v %s, want %v %s", got.Topology, got, tt.wantTopo, tt.wantStr)
			}
		})
	}
}
