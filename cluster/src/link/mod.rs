//! Node links (filled in by the link module).
