//! One one-to-one run's JSON report as the report's tables read it, for
//! the tests of those tables.

use serde_json::{json, Value};

/// A clean run at `rate` with the given gateway CPU per message, p99
/// send -> deliver and whole-box context switches per message.
pub(crate) fn run(rate: u64, us: f64, p99: f64, ctxt: f64) -> Value {
    json!({
        "lost": 0, "duplicated": 0, "refused_sends": 0, "achieved_delivery_rate": rate,
        "delivery_ms": { "p99_ms": p99 },
        "cpu": { "gateway_us_per_msg": us, "box_ctxt_per_msg": ctxt },
    })
}
