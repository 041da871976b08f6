//! The irqchip in a VM (to follow).
