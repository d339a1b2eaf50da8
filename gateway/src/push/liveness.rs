//! In-process liveness for the worker inside `serve --push`: the devices
//! live on this gateway are the ones it knows without asking anyone.

use std::collections::HashMap;

use chatgw_protocol::{DeviceName, UserId};
use chatgw_push_worker::Liveness;

use crate::LiveDevices;

impl Liveness for LiveDevices {
    fn live_devices(&self, users: &[UserId]) -> HashMap<UserId, Vec<DeviceName>> {
        self.of(users).into_iter().filter(|(_, devices)| !devices.is_empty()).collect()
    }
}
