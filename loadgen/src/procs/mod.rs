//! Multi-process runs (`--procs`): one process's descriptor limit is not
//! always enough for the connections asked for.
//!
//! [`share`] says which part of a run a process and a thread do;
//! [`parent`] starts the worker processes and merges their results;
//! [`relay`] is a worker's side, sending its progress and figures up;
//! [`fleet`] is the conducting thread's view of its workers, whether they
//! are threads of this process or other processes.

pub(crate) mod fleet;
pub(crate) mod parent;
pub(crate) mod relay;
pub(crate) mod share;
