// Package publish carries beatwrap's beats to wherever beatwatch reads
// them. Two backends share one small interface, Publisher:
//
//   - Redis: each beat is one MULTI/EXEC pipeline (PUBLISH on the heartbeats
//     channel, HSET of the agent:<id> hash, PEXPIRE of 4 × interval), sent in
//     one round trip. The key layout is the reference design's, optionally
//     under a namespace prefix (store.Keys), on any topology store.Open
//     reaches. With shards (RedisConfig.Shards > 1) the beat goes to its
//     shard's channel, heartbeats:<wire.Shard(id, n)>; on a Cluster by
//     SPUBLISH, sent alongside the hash's MULTI because the two live on
//     different slots (see Redis.sendSharded).
//     Every reply of the transaction is read (see tx): a beat Redis refused
//     is an ErrRejected naming the command and the missing permission, and
//     one it ran only in part, because MULTI itself was refused, is a
//     *PartialError saying which commands ran.
//   - HTTP: each beat is POSTed to a single-node beatwatch at /v1/beats.
//
// Sender sits in front of a Publisher and makes sure the agent is never harmed
// by the monitoring: beats are handed over without blocking, a slow or absent
// backend only ever delays the delivery of the newest beat, and an outage is
// logged once when it starts and once when it ends.
package publish
