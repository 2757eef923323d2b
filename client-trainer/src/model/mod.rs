//! Models and local training (being written).
