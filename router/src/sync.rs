//! The atomics and lock the mailboxes use: std's, or loom's when built with
//! `--cfg loom`, so the loom models check the very code the cores run.

#[cfg(all(test, loom))]
pub(crate) use loom::sync::{
    atomic::{AtomicBool, AtomicUsize},
    Mutex,
};
#[cfg(not(all(test, loom)))]
pub(crate) use std::sync::{
    atomic::{AtomicBool, AtomicUsize},
    Mutex,
};
