//! Services the fleet tests start for themselves.

mod proxy;

pub use proxy::FaultProxy;
