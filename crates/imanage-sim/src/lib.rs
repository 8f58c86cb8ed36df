//! imanage-sim
