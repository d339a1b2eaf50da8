//! Services the fleet tests start for themselves.
