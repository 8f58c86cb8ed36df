//! imanage
