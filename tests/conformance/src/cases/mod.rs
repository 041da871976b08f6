//! The case table, one module per area.

use crate::harness::Case;

pub mod dirty;
pub mod hostile;
pub mod insn;
pub mod irq;
pub mod irqchip;
pub mod memslot;
pub mod mm;
pub mod run;
pub mod sys;
pub mod vcpu;
pub mod vm;

/// Every case, grouped by module, in run order.
pub static ALL: &[&[Case]] = &[
    sys::CASES,
    vm::CASES,
    memslot::CASES,
    dirty::CASES,
    mm::CASES,
    vcpu::CASES,
    run::CASES,
    insn::CASES,
    irq::CASES,
    irqchip::CASES,
    hostile::PTR_CASES,
    hostile::WRONG_FD_CASES,
    hostile::CASES,
];
