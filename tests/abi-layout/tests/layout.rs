//! Compares `kvmport_core::abi` with the host's `<linux/kvm.h>` (x86_64) and,
//! when the Debian cross headers are installed, with the arm64, ppc64le and
//! s390x headers: struct size, alignment, every listed field's offset and
//! size, ioctl numbers, constants and `KVM_CAP_*` numbers.
//!
//! What is checked is listed once, in `src/table.rs`; `build.rs` computes the
//! C side from the same list. All mismatches are collected and printed before
//! the test fails.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::mem::{align_of, offset_of, size_of, size_of_val};

use kvmport_abi_layout::{PROBE, bindings};
use kvmport_core::abi::cap::Cap;
#[allow(unused_imports)]
use kvmport_core::abi::{self, arm64, ioctl, ppc, s390x, x86};

/// The Rust side of one struct entry.
#[derive(Clone, Debug)]
struct RustStruct {
    key: String,
    size: usize,
    align: usize,
    /// `(size, align)` of bindgen's type of the same C struct (host only).
    bindgen: Option<(usize, usize)>,
    /// `(field, offset, size)`.
    fields: Vec<(String, usize, usize)>,
}

/// A constant's C name and value.
type NamedValue = (String, u64);

/// The tables of `src/table.rs`, Rust side.
struct Table {
    host_structs: Vec<RustStruct>,
    host_ioctls: Vec<(String, u64)>,
    host_consts: Vec<(String, u64)>,
    arm64_structs: Vec<RustStruct>,
    arm64_consts: Vec<(String, u64)>,
    ppc_structs: Vec<RustStruct>,
    ppc_consts: Vec<(String, u64)>,
    s390x_structs: Vec<RustStruct>,
    s390x_consts: Vec<(String, u64)>,
}

fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .replace("r#", "")
}

fn last_segment(path: &str) -> String {
    let p = clean(path);
    p.rsplit("::").next().unwrap_or(&p).to_string()
}

macro_rules! bindgen_layout {
    ($c:ident) => {
        Some((size_of::<bindings::$c>(), align_of::<bindings::$c>()))
    };
    ($c:literal) => {
        None
    };
}

macro_rules! rust_structs {
    ($bg:ident; $( $rty:path = $cty:tt { $( $f:ident $(=> $cf:ident)? ),* $(,)? } ),* $(,)?) => {
        vec![$({
            let v: $rty = Default::default();
            let _ = &v;
            RustStruct {
                key: clean(stringify!($rty)),
                size: size_of::<$rty>(),
                align: align_of::<$rty>(),
                bindgen: rust_structs!(@bg $bg $cty),
                fields: vec![$( (clean(stringify!($f)), offset_of!($rty, $f), size_of_val(&v.$f)) ),*],
            }
        }),*]
    };
    (@bg host $cty:tt) => { bindgen_layout!($cty) };
    (@bg cross $cty:tt) => { None };
}

macro_rules! values {
    ($($p:path),* $(,)?) => {
        vec![$( (last_segment(stringify!($p)), $p as u64) ),*]
    };
}

macro_rules! abi_table {
    (
        host_structs: [ $($hs:tt)* ],
        host_ioctls: [ $($hi:tt)* ],
        host_consts: [ $($hc:tt)* ],
        arm64_structs: [ $($a_s:tt)* ],
        arm64_consts: [ $($a_c:tt)* ],
        ppc_structs: [ $($p_s:tt)* ],
        ppc_consts: [ $($p_c:tt)* ],
        s390x_structs: [ $($s_s:tt)* ],
        s390x_consts: [ $($s_c:tt)* ] $(,)?
    ) => {
        Table {
            host_structs: rust_structs!(host; $($hs)*),
            host_ioctls: values!($($hi)*),
            host_consts: values!($($hc)*),
            arm64_structs: rust_structs!(cross; $($a_s)*),
            arm64_consts: values!($($a_c)*),
            ppc_structs: rust_structs!(cross; $($p_s)*),
            ppc_consts: values!($($p_c)*),
            s390x_structs: rust_structs!(cross; $($s_s)*),
            s390x_consts: values!($($s_c)*),
        }
    };
}

fn table() -> Table {
    include!("../src/table.rs")
}

/// Items the Linux 6.1 header does not have (they are newer, or their
/// argument struct is another architecture's). They are checked whenever the
/// header does have them; absent, they are skipped and listed.
const EXPECTED_ABSENT_ON_HOST: &[&str] = &[
    // Linux 6.8+.
    "abi::KvmUserspaceMemoryRegion2",
    "abi::KvmMemoryAttributes",
    "abi::KvmCreateGuestMemfd",
    "abi::KvmRunExitMemoryFault",
    "KVM_SET_USER_MEMORY_REGION2",
    "KVM_SET_MEMORY_ATTRIBUTES",
    "KVM_CREATE_GUEST_MEMFD",
    "KVM_MEM_GUEST_MEMFD",
    "KVM_MEMORY_ATTRIBUTE_PRIVATE",
    "KVM_EXIT_LOONGARCH_IOCSR",
    "KVM_EXIT_MEMORY_FAULT",
    "KVM_MEMORY_EXIT_FLAG_PRIVATE",
    "KVM_X86_DEFAULT_VM",
    "KVM_X86_SW_PROTECTED_VM",
    // `struct kvm_vcpu_init` is arm64-only: checked by the arm64 probe.
    "KVM_ARM_VCPU_INIT",
    "KVM_ARM_PREFERRED_TARGET",
];

/// The C side, parsed from `PROBE`.
#[derive(Default)]
struct Probe {
    values: BTreeMap<(String, String), u64>,
    dropped: BTreeMap<(String, String), String>,
    header_ioctls: Vec<String>,
    header_caps: Vec<String>,
    unavailable: BTreeMap<String, String>,
}

fn parse_probe(text: &str) -> Probe {
    let mut p = Probe::default();
    for line in text.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        match cols.as_slice() {
            ["V", arch, key, val] => {
                let v = val.trim().parse::<u64>().expect("probe value");
                p.values.insert((arch.to_string(), key.to_string()), v);
            }
            ["D", arch, key, msg] => {
                p.dropped
                    .insert((arch.to_string(), key.to_string()), msg.to_string());
            }
            ["H", name] => p.header_ioctls.push(name.to_string()),
            ["C", name] => p.header_caps.push(name.to_string()),
            ["U", arch, reason] => {
                p.unavailable.insert(arch.to_string(), reason.to_string());
            }
            _ => panic!("bad probe line: {line:?}"),
        }
    }
    p
}

/// Counters and findings of one comparison run.
#[derive(Default)]
struct Report {
    structs: usize,
    fields: usize,
    ioctls: usize,
    consts: usize,
    caps: usize,
    skipped: Vec<String>,
    mismatches: Vec<String>,
}

impl Report {
    fn mismatch(&mut self, arch: &str, msg: String) {
        self.mismatches.push(format!("[{arch}] {msg}"));
    }
}

fn absent(
    probe: &Probe,
    r: &mut Report,
    arch: &str,
    key: &str,
    name: &str,
    expected_absent: &[&str],
) {
    let why = probe
        .dropped
        .get(&(arch.to_string(), key.to_string()))
        .cloned()
        .unwrap_or_else(|| "no value from the C probe".to_string());
    if expected_absent.contains(&name) {
        r.skipped.push(format!("[{arch}] {key}: {why}"));
    } else {
        r.mismatch(arch, format!("{key}: not in the C header ({why})"));
    }
}

fn check_structs(
    probe: &Probe,
    r: &mut Report,
    arch: &str,
    structs: &[RustStruct],
    expected_absent: &[&str],
) {
    for s in structs {
        let get = |k: String| probe.values.get(&(arch.to_string(), k)).copied();
        let Some(csize) = get(format!("size {}", s.key)) else {
            absent(
                probe,
                r,
                arch,
                &format!("size {}", s.key),
                &s.key,
                expected_absent,
            );
            continue;
        };
        r.structs += 1;
        if csize != s.size as u64 {
            r.mismatch(
                arch,
                format!("{}: size rust {} != C {csize}", s.key, s.size),
            );
        }
        let calign = get(format!("align {}", s.key));
        match calign {
            Some(ca) if ca == s.align as u64 => {}
            Some(ca) => r.mismatch(arch, format!("{}: align rust {} != C {ca}", s.key, s.align)),
            None => absent(probe, r, arch, &format!("align {}", s.key), "", &[]),
        }
        // bindgen (libclang) and the compiled probe (cc) must agree too.
        match s.bindgen {
            Some((bs, ba)) if bs as u64 != csize || Some(ba as u64) != calign => r.mismatch(
                arch,
                format!(
                    "{}: bindgen size/align {bs}/{ba} != C {csize}/{calign:?}",
                    s.key
                ),
            ),
            _ => {}
        }
        for (f, off, fsize) in &s.fields {
            r.fields += 1;
            let ok = format!("off {}.{f}", s.key);
            match get(ok.clone()) {
                Some(c) if c == *off as u64 => {}
                Some(c) => r.mismatch(arch, format!("{}.{f}: offset rust {off} != C {c}", s.key)),
                None => absent(probe, r, arch, &ok, "", &[]),
            }
            let sk = format!("fsize {}.{f}", s.key);
            match get(sk.clone()) {
                Some(c) if c == *fsize as u64 => {}
                Some(c) => r.mismatch(arch, format!("{}.{f}: size rust {fsize} != C {c}", s.key)),
                None => absent(probe, r, arch, &sk, "", &[]),
            }
        }
    }
}

fn check_values(
    probe: &Probe,
    r: &mut Report,
    arch: &str,
    kind: &str,
    values: &[(String, u64)],
    expected_absent: &[&str],
) {
    for (name, v) in values {
        let key = format!("{kind} {name}");
        match probe.values.get(&(arch.to_string(), key.clone())) {
            Some(c) => {
                if kind == "ioctl" || (arch != "host" && abi_ioctl_like(name, *v)) {
                    r.ioctls += 1;
                } else {
                    r.consts += 1;
                }
                if c != v {
                    r.mismatch(arch, format!("{name}: rust {v:#x} != C {c:#x}"));
                }
            }
            None => absent(probe, r, arch, &key, name, expected_absent),
        }
    }
}

/// Whether a cross-arch "const" entry is an ioctl number (type byte 0xAE
/// and not a plain small constant), for counting only.
fn abi_ioctl_like(name: &str, v: u64) -> bool {
    let ioctl_names = [
        "KVM_GET_",
        "KVM_SET_",
        "KVM_ARM_VCPU_INIT",
        "KVM_ARM_PREFERRED_TARGET",
        "KVM_RUN",
        "KVM_CREATE_",
        "KVM_ARM_VCPU_FINALIZE",
        "KVM_S390_",
        "KVM_IRQ_LINE",
        "KVM_ENABLE_CAP",
        "KVM_PPC_GET_",
        "KVM_ARM_SET_DEVICE_ADDR",
    ];
    (v >> 8) & 0xff == 0xae
        && v <= u64::from(u32::MAX)
        && ioctl_names.iter().any(|p| name.starts_with(p))
}

/// `NR_VCPUS` -> `NrVcpus`.
fn camel(name: &str) -> String {
    name.split('_')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + &c.as_str().to_ascii_lowercase(),
                None => String::new(),
            }
        })
        .collect()
}

fn check_caps(probe: &Probe, r: &mut Report) {
    let header_max = probe
        .header_caps
        .iter()
        .filter_map(|n| probe.values.get(&("host".to_string(), format!("cap {n}"))))
        .max()
        .copied()
        .unwrap_or(0);
    let mut names = BTreeSet::new();
    for &c in Cap::ALL {
        let name = c.name();
        if !names.insert(name) {
            r.mismatch("host", format!("Cap {c:?}: duplicate name {name}"));
        }
        if Cap::from_raw(u64::from(c.raw())) != Some(c) {
            r.mismatch(
                "host",
                format!("Cap {c:?}: from_raw(raw()) does not round-trip"),
            );
        }
        let want = camel(name.trim_start_matches("KVM_CAP_"));
        if format!("{c:?}") != want {
            r.mismatch(
                "host",
                format!("Cap {c:?}: variant should be named {want} for {name}"),
            );
        }
        match probe
            .values
            .get(&("host".to_string(), format!("cap {name}")))
        {
            Some(&v) => {
                r.caps += 1;
                if v != u64::from(c.raw()) {
                    r.mismatch("host", format!("{name}: rust {} != C {v}", c.raw()));
                }
            }
            None if u64::from(c.raw()) > header_max => {
                r.skipped.push(format!(
                    "[host] {name} = {} (newer than the header)",
                    c.raw()
                ));
            }
            None => r.mismatch("host", format!("{name}: not in the C header")),
        }
    }
    for n in &probe.header_caps {
        if !names.contains(n.as_str()) {
            r.mismatch("host", format!("{n}: in the header but not a Cap variant"));
        }
    }
}

fn run_checks(t: &Table, probe: &Probe) -> (Report, BTreeMap<&'static str, Report>) {
    let mut host = Report::default();
    check_structs(
        probe,
        &mut host,
        "host",
        &t.host_structs,
        EXPECTED_ABSENT_ON_HOST,
    );
    check_values(
        probe,
        &mut host,
        "host",
        "ioctl",
        &t.host_ioctls,
        EXPECTED_ABSENT_ON_HOST,
    );
    check_values(
        probe,
        &mut host,
        "host",
        "const",
        &t.host_consts,
        EXPECTED_ABSENT_ON_HOST,
    );
    check_caps(probe, &mut host);

    let mut cross = BTreeMap::new();
    let arches: [(&'static str, &[RustStruct], &[NamedValue]); 3] = [
        ("arm64", &t.arm64_structs, &t.arm64_consts),
        ("ppc", &t.ppc_structs, &t.ppc_consts),
        ("s390x", &t.s390x_structs, &t.s390x_consts),
    ];
    for (arch, structs, consts) in arches {
        let mut r = Report::default();
        if !probe.unavailable.contains_key(arch) {
            check_structs(probe, &mut r, arch, structs, &[]);
            check_values(probe, &mut r, arch, "const", consts, &[]);
        }
        cross.insert(arch, r);
    }
    (host, cross)
}

#[test]
fn abi_matches_kernel_headers() {
    let t = table();
    let probe = parse_probe(PROBE);
    let (host, cross) = run_checks(&t, &probe);

    let mut out = String::new();
    let covered: BTreeSet<String> = t.host_ioctls.iter().map(|(n, _)| n.clone()).collect();
    let uncovered: Vec<&String> = probe
        .header_ioctls
        .iter()
        .filter(|n| !covered.contains(*n) && !n.starts_with("KVM_TRACE_"))
        .collect();
    out += &format!(
        "abi-layout: header ioctls without a core constant ({}): {}\n",
        uncovered.len(),
        uncovered
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    );
    for s in host
        .skipped
        .iter()
        .chain(cross.values().flat_map(|r| r.skipped.iter()))
    {
        out += &format!("abi-layout: skipped {s}\n");
    }
    let require_cross = std::env::var_os("KVMPORT_ABI_REQUIRE_CROSS").is_some();
    let mut mismatches: Vec<String> = host.mismatches.clone();
    let mut cross_parts = Vec::new();
    for (arch, r) in &cross {
        mismatches.extend(r.mismatches.iter().cloned());
        match probe.unavailable.get(*arch) {
            Some(why) => {
                cross_parts.push(format!("{arch} not checked ({why})"));
                if require_cross {
                    mismatches.push(format!("[{arch}] cross check required but {why}"));
                }
            }
            None => cross_parts.push(format!(
                "{arch} {} structs ({} fields), {} ioctl numbers, {} constants",
                r.structs, r.fields, r.ioctls, r.consts
            )),
        }
    }
    for m in &mismatches {
        out += &format!("abi-layout: MISMATCH {m}\n");
    }
    out += &format!(
        "abi-layout: host x86_64: {} structs ({} fields), {} ioctl numbers, {} constants\n",
        host.structs, host.fields, host.ioctls, host.consts
    );
    out += &format!("abi-layout: cross-arch: {}\n", cross_parts.join("; "));
    out += &format!(
        "abi-layout: checked {} structs ({} fields), {} ioctl numbers, {} constants, {} caps, \
         {} mismatches\n",
        host.structs + cross.values().map(|r| r.structs).sum::<usize>(),
        host.fields + cross.values().map(|r| r.fields).sum::<usize>(),
        host.ioctls + cross.values().map(|r| r.ioctls).sum::<usize>(),
        host.consts + cross.values().map(|r| r.consts).sum::<usize>(),
        host.caps,
        mismatches.len()
    );
    // Written to the real stderr (not the captured one) so the summary shows
    // in plain `cargo test` output too.
    let _ = std::io::stderr().write_all(out.as_bytes());

    assert!(
        mismatches.is_empty(),
        "{} ABI mismatches (see above)",
        mismatches.len()
    );
    assert!(
        host.structs >= 45,
        "only {} host structs checked",
        host.structs
    );
    assert!(
        host.ioctls >= 90,
        "only {} host ioctl numbers checked",
        host.ioctls
    );
    assert!(host.caps >= 200, "only {} caps checked", host.caps);
}

/// The checker itself must be able to fail: perturb real data and expect
/// exactly the planted mismatches.
#[test]
fn checker_reports_planted_errors() {
    let t = table();
    let probe = parse_probe(PROBE);
    let (clean_host, _) = run_checks(&t, &probe);
    assert!(
        clean_host.mismatches.is_empty(),
        "{:?}",
        clean_host.mismatches
    );

    let mut bad = table();
    // A wrong field offset and a wrong field size.
    let regs = bad
        .host_structs
        .iter_mut()
        .find(|s| s.key == "x86::KvmRegs")
        .expect("KvmRegs");
    regs.fields[1].1 += 1;
    regs.fields[2].2 += 4;
    // A wrong struct size.
    bad.host_structs
        .iter_mut()
        .find(|s| s.key == "abi::KvmRun")
        .expect("KvmRun")
        .size += 8;
    // A wrong ioctl number and a wrong constant.
    bad.host_ioctls
        .iter_mut()
        .find(|(n, _)| n == "KVM_RUN")
        .expect("KVM_RUN")
        .1 += 1;
    bad.host_consts
        .iter_mut()
        .find(|(n, _)| n == "KVM_EXIT_IO")
        .expect("KVM_EXIT_IO")
        .1 = 99;
    // A C name the header does not have, not in the expected-absent list.
    bad.host_ioctls.push(("KVM_NO_SUCH_IOCTL".to_string(), 0));
    let (host, _) = run_checks(&bad, &probe);
    assert_eq!(host.mismatches.len(), 6, "{:#?}", host.mismatches);
}

#[test]
fn ioctl_helpers_round_trip() {
    let cmd = ioctl::KVM_GET_REGS;
    assert_eq!(ioctl::ioc_dir(cmd), ioctl::IOC_READ);
    assert_eq!(ioctl::ioc_type(cmd), abi::KVMIO);
    assert_eq!(ioctl::ioc_nr(cmd), 0x81);
    assert_eq!(ioctl::ioc_size(cmd) as usize, size_of::<x86::KvmRegs>());
    assert_eq!(ppc::from_generic(ioctl::KVM_RUN), ppc::KVM_RUN);
    assert_eq!(ppc::from_generic(ioctl::KVM_CREATE_VM), ppc::KVM_CREATE_VM);
    assert_eq!(
        ppc::from_generic(ioctl::KVM_PPC_GET_PVINFO),
        ppc::KVM_PPC_GET_PVINFO
    );
}

#[test]
fn union_accessors_do_not_panic() {
    let mut run = abi::KvmRun::default();
    let io = abi::KvmRunExitIo {
        direction: abi::KVM_EXIT_IO_OUT,
        size: 1,
        port: 0x3f8,
        count: 1,
        data_offset: 4096,
    };
    assert!(run.exit.write(&io));
    assert_eq!(run.exit.read::<abi::KvmRunExitIo>(), Some(io));
    // Too large for the 256-byte exit union: refused, no panic.
    let big = [0u8; 300];
    assert!(!run.exit.write(&big));
    assert_eq!(run.exit.read::<[u8; 300]>(), None);
    assert_eq!(run.exit.read_or_zeroed::<[u8; 300]>(), [0u8; 300]);
    let mut e = abi::KvmIrqRoutingEntry::default();
    let msi = abi::KvmIrqRoutingMsi {
        address_lo: 0xfee0_0000,
        address_hi: 0,
        data: 0x41,
        devid: 0,
    };
    assert!(e.u.write(&msi));
    assert_eq!(e.u.read::<abi::KvmIrqRoutingMsi>(), Some(msi));
    assert_eq!(
        abi::KvmIrqchipChip::from_value(&x86::KvmPicState {
            irr: 3,
            ..Default::default()
        })
        .map(|c| c.pic().irr),
        Some(3)
    );
}
