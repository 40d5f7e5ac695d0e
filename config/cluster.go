package config

import "time"

// ClusterConfig configures the node registry (package cluster): every node
// writes a heartbeat with a TTL to Redis, so that any node can report
// cluster-wide totals.
type ClusterConfig struct {
	// Enabled turns the registry on. Zero value: off.
	Enabled bool `yaml:"enabled"`
	// RedisAddr of the Redis holding the registry. "": 127.0.0.1:6379.
	RedisAddr string `yaml:"redis_addr"`
	// RedisPassword for AUTH. "": none.
	RedisPassword string `yaml:"redis_password"`
	// RedisDB is the logical database. 0: database 0.
	RedisDB int `yaml:"redis_db"`
	// KeyPrefix of the heartbeat keys (one key per node: prefix + node id).
	// "": "wsproxy:node:".
	KeyPrefix string `yaml:"key_prefix"`
	// NodeID names this node. "": hostname-pid.
	NodeID string `yaml:"node_id"`
	// Address is what other nodes and operators see as this node's address.
	// "": the listening address.
	Address string `yaml:"address"`
	// Heartbeat is how often the node writes its record. 0: 5s.
	Heartbeat time.Duration `yaml:"heartbeat"`
	// TTL of a record: a node that stops heartbeating disappears after it.
	// Must exceed heartbeat. 0: 3 × heartbeat.
	TTL time.Duration `yaml:"ttl"`
}
