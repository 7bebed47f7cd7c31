package wire

import (
	"strconv"
	"strings"
)

// MaxShards bounds --shards: more channels than this cost subscriptions and
// buy nothing (a replica judges hundreds of thousands of agents).
const MaxShards = 1024

// Channel is the reference design's beat channel. With one shard, every beat
// goes there; with more, a watcher still reads it for clients that know of no
// shards.
const Channel = "heartbeats"

// Shard is the shard an agent's beats go to when there are n shards: the
// 32-bit FNV-1a hash of the agent id's bytes, modulo n. It is part of the wire
// format, so that any client can compute it:
//
//	h = 2166136261
//	for each byte c of the id: h = (h XOR c) * 16777619  (mod 2^32)
//	shard = h mod n
//
// For example Shard("summariser-1", 16) is 13 and Shard("agent-0", 3) is 0.
// With n ≤ 1 it is 0.
func Shard(id string, n int) int {
	if n <= 1 {
		return 0
	}
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h = (h ^ uint32(id[i])) * 16777619
	}
	return int(h % uint32(n))
}

// ShardChannel is the channel of shard s out of n: "heartbeats" when n ≤ 1,
// else "heartbeats:<s>" (the namespace prefix comes on top).
func ShardChannel(s, n int) string {
	if n <= 1 {
		return Channel
	}
	return Channel + ":" + strconv.Itoa(s)
}

// ParseShardChannel reads the shard out of a channel name without its
// namespace prefix: "heartbeats:7" is 7; "heartbeats" (the reference design's
// channel) and anything else is -1.
func ParseShardChannel(ch string) int {
	rest, ok := strings.CutPrefix(ch, Channel+":")
	if !ok {
		return -1
	}
	s, err := strconv.Atoi(rest)
	if err != nil || s < 0 || strconv.Itoa(s) != rest {
		return -1
	}
	return s
}
