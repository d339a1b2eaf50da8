//! Services the fleet tests start for themselves: a `redis-server` (or a
//! Redis Cluster of several) on free loopback ports, each in its own temp
//! dir, killed when dropped.

mod redis_server;

pub use redis_server::{TestRedis, TestRedisCluster};
