//! The Lua scripts that make the lease and ghost checks atomic.
//!
//! Each runs on one server (every key it touches shares a hash slot), so a
//! check and the change it guards cannot be split by another node's write.
//! They are sent with `EVAL` (a few hundred bytes): `EVALSHA` would save
//! little and fail after Redis restarts, which this registry must survive.

/// KEYS: epoch counter, all-nodes set. ARGV: wall-clock milliseconds, node.
/// The next epoch: one more than the last, and never below the clock, so
/// epochs keep growing even after Redis lost the counter. The node joins
/// the set of nodes.
pub(crate) const NEXT_EPOCH: &str = r"
local e = redis.call('INCR', KEYS[1])
local now = tonumber(ARGV[1])
if e < now then
  redis.call('SET', KEYS[1], ARGV[1])
  e = now
end
redis.call('SADD', KEYS[2], ARGV[2])
return e
";

/// KEYS: lease. ARGV: value, lease ms.
/// Take the lease if nobody holds it: `{1, ''}`, else `{0, holder}`.
pub(crate) const TAKE_LEASE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, ''}
end
return {0, redis.call('GET', KEYS[1]) or ''}
";

/// KEYS: lease, all-nodes set, epoch counter. ARGV: value, lease ms, node,
/// epoch. Held by this epoch: extend it, `{0, ''}`. Missing (lapsed, or
/// Redis lost its data): take it again, rejoin the set and keep the counter
/// at least at this epoch, `{1, ''}`. Held by another epoch: `{2, holder}`.
pub(crate) const RENEW_LEASE: &str = r"
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  redis.call('SADD', KEYS[2], ARGV[3])
  local n = tonumber(redis.call('GET', KEYS[3]) or '0') or 0
  if n < tonumber(ARGV[4]) then
    redis.call('SET', KEYS[3], ARGV[4])
  end
  return {1, ''}
end
if string.match(cur, '^%S+') == ARGV[4] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {0, ''}
end
return {2, cur}
";

/// KEYS: lease. ARGV: epoch. Delete the lease if it holds this epoch.
pub(crate) const DROP_LEASE: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur and string.match(cur, '^%S+') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// KEYS: a user's key. ARGV: node, epoch. Remove the node's field if it
/// still holds that epoch (a newer run may have written it meanwhile).
pub(crate) const REMOVE_GHOST: &str = r"
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
";

/// An `EVAL` of `script` on `keys` with `args`.
pub(crate) fn eval(script: &str, keys: &[&str], args: &[&str]) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script).arg(keys.len()).arg(keys).arg(args);
    cmd
}
