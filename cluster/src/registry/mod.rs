//! Registry (filled in by the registry module).
