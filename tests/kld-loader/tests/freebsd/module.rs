//! Loading and unloading `kvmport.ko` as FreeBSD's kernel linker does: check, map, relocate,
//! bind imports, read `set_modmetadata_set` (the kernel dependency, the module and its
//! version), run `set_sysinit_set` sorted by subsystem and order (the module's sysinit,
//! `module_register_init`, delivers MOD_LOAD), and on unload MOD_QUIESCE, MOD_UNLOAD and
//! `set_sysuninit_set` in reverse order.

use std::path::Path;
use std::sync::Mutex;

use kvmport_kld_loader::check;
use kvmport_kld_loader::elf::Elf;
use kvmport_kld_loader::freebsd::FreeBsd14;
use kvmport_kld_loader::load::{self, Loaded};

use crate::kernel::{self, Entry, FREEBSD_VERSION};
use crate::{cpu, mem};

const MDT_DEPEND: i32 = 1;
const MDT_MODULE: i32 = 2;
const MDT_VERSION: i32 = 3;
const MOD_LOAD: i32 = 0;
const MOD_UNLOAD: i32 = 1;
const MOD_QUIESCE: i32 = 3;

/// What the metadata declared, and the MOD_LOAD result.
#[derive(Debug, Default, Clone)]
pub struct ModInfo {
    /// `struct moduledata` of the MDT_MODULE entry.
    pub moddata: u64,
    /// The module's name.
    pub name: String,
    /// MDT_VERSION of the module.
    pub version: Option<i32>,
    /// The kernel version range of MDT_DEPEND(kernel).
    pub kernel_range: Option<(i32, i32)>,
    /// The `module_t` handed to the event handler.
    pub module: u64,
    /// The result of MOD_LOAD.
    pub load_result: Option<i32>,
    sysuninits: Vec<(u32, u32, u64, u64)>,
}

static INFO: Mutex<Option<ModInfo>> = Mutex::new(None);

fn rd64(a: u64) -> u64 {
    // SAFETY: the callers read the module's own loaded data.
    unsafe { (a as *const u64).read_unaligned() }
}
fn rd32(a: u64) -> i32 {
    // SAFETY: as above.
    unsafe { (a as *const i32).read_unaligned() }
}
fn cstr(a: u64) -> String {
    // SAFETY: metadata strings are NUL-terminated rodata of the module.
    unsafe { std::ffi::CStr::from_ptr(a as *const std::ffi::c_char) }
        .to_string_lossy()
        .into_owned()
}

fn evhand(moddata: u64, module: u64, what: i32) -> i32 {
    let f = rd64(moddata + 8);
    let priv_ = rd64(moddata + 16);
    // The module's event handler, `int (*)(module_t, int, void *)`.
    crate::kstack::call_int(f, &[module, what as u64, priv_])
}

/// `module_register_init(data)`: registers the module and sends MOD_LOAD.
pub fn register_and_load(data: u64) {
    let info = INFO.lock().unwrap().clone();
    let Some(mut info) = info else { return };
    if data != info.moddata {
        kernel::k(|k| {
            k.problems
                .push("module_register_init with unregistered moduledata".into())
        });
        return;
    }
    info.module = mem::kalloc(64, "module");
    *INFO.lock().unwrap() = Some(info.clone());
    let r = evhand(info.moddata, info.module, MOD_LOAD);
    if let Some(i) = INFO.lock().unwrap().as_mut() {
        i.load_result = Some(r);
    }
}

/// Checks, loads and starts the module; returns it with what its metadata declared.
pub fn load(ko: &Path) -> Result<(Loaded, ModInfo), String> {
    let data = std::fs::read(ko).map_err(|e| format!("{}: {e}", ko.display()))?;
    let elf = Elf::parse(data).map_err(|e| e.to_string())?;
    let report = check::check(&elf, &FreeBsd14);
    println!("{report}");
    if !report.ok() {
        return Err("the module check failed".into());
    }
    let sites = cpu::cpuid_sites(ko)?;
    let loaded = load::load(&elf, &FreeBsd14, mem::MODULE_BASE, kernel::resolve)?;
    let (text, text_len) = loaded.section(".text").ok_or("no .text")?;
    for off in &sites {
        let at = text + off;
        // SAFETY: inside the loaded text; CPUID (0F A2) becomes UD2 (0F 0B), same length.
        unsafe {
            let p = at as *mut [u8; 2];
            if p.read() != [0x0f, 0xa2] {
                return Err(format!("no CPUID at .text+{off:#x}"));
            }
            p.write([0x0f, 0x0b]);
        }
    }
    println!(
        "loader: {} CPUID instructions emulated as UD2 traps",
        sites.len()
    );
    cpu::install_traps(text, text + text_len);

    let mut info = ModInfo::default();
    let mut modules = 0;
    for md in loaded.set("modmetadata_set") {
        let (ver, ty, data, cval) = (rd32(md), rd32(md + 4), rd64(md + 8), rd64(md + 16));
        if ver != 1 {
            return Err(format!("mod_metadata version {ver}"));
        }
        match ty {
            MDT_DEPEND => {
                let (min, max) = (rd32(data), rd32(data + 8));
                if cstr(cval) == "kernel" {
                    info.kernel_range = Some((min, max));
                }
            }
            MDT_MODULE => {
                modules += 1;
                info.moddata = data;
                info.name = cstr(rd64(data));
            }
            MDT_VERSION => info.version = Some(rd32(data)),
            t => return Err(format!("unexpected metadata type {t}")),
        }
    }
    if modules != 1 {
        return Err(format!("{modules} MDT_MODULE entries"));
    }
    match info.kernel_range {
        Some((min, max)) if (min..=max).contains(&FREEBSD_VERSION) => {}
        r => {
            return Err(format!(
                "kernel dependency {r:?} excludes {FREEBSD_VERSION}"
            ));
        }
    }
    let read_set = |name: &str| {
        let mut v: Vec<(u32, u32, u64, u64)> = loaded
            .set(name)
            .into_iter()
            .map(|si| {
                (
                    rd32(si) as u32,
                    rd32(si + 4) as u32,
                    rd64(si + 16),
                    rd64(si + 24),
                )
            })
            .collect();
        v.sort_by_key(|&(s, o, ..)| (s, o));
        v
    };
    let sysinits = read_set("sysinit_set");
    info.sysuninits = read_set("sysuninit_set");
    info.sysuninits.reverse();
    *INFO.lock().unwrap() = Some(info);
    {
        let _e = Entry::new();
        for (_, _, func, udata) in &sysinits {
            // A sysinit function of the module, `void (*)(const void *)`.
            crate::kstack::call(*func, &[*udata]);
        }
    }
    let info = INFO.lock().unwrap().clone().ok_or("no module info")?;
    match info.load_result {
        Some(0) => Ok((loaded, info)),
        Some(e) => Err(format!("MOD_LOAD failed with {e}")),
        None => Err("the sysinits never delivered MOD_LOAD".into()),
    }
}

/// MOD_QUIESCE, MOD_UNLOAD, then the sysuninits.
pub fn unload(info: &ModInfo) -> Result<(), String> {
    let _e = Entry::new();
    let q = evhand(info.moddata, info.module, MOD_QUIESCE);
    if q != 0 {
        return Err(format!("MOD_QUIESCE returned {q}"));
    }
    let u = evhand(info.moddata, info.module, MOD_UNLOAD);
    if u != 0 {
        return Err(format!("MOD_UNLOAD returned {u}"));
    }
    for (_, _, func, udata) in &info.sysuninits {
        // A sysuninit function of the module.
        crate::kstack::call(*func, &[*udata]);
    }
    mem::kfree(info.module);
    Ok(())
}
