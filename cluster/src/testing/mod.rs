//! Services the fleet tests start for themselves.

mod proxy;
mod redis_server;

pub use proxy::FaultProxy;
pub use redis_server::{TestRedis, TestRedisCluster};
