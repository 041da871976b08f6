//! Build script of the ABI layout checks.
//!
//! 1. Runs bindgen over `wrapper.h` (`<linux/kvm.h>`) into
//!    `$OUT_DIR/bindings.rs` (used for a second, independent size check).
//! 2. Turns `src/table.rs` into a C probe that prints `sizeof`, `_Alignof`,
//!    `offsetof` and field sizes of every listed struct, plus the value of
//!    every listed constant and of every `_IO*` ioctl macro and `KVM_CAP_*` of
//!    the host header; compiles it with the host `cc`, runs it, and writes
//!    the results to `$OUT_DIR/probe.txt`.
//! 3. Does the same for the arm64/ppc64le/s390x sections with
//!    `clang --target=...` against the Debian cross headers
//!    (`/usr/<triple>/include`), reading values out of the LLVM IR instead
//!    of running anything. Missing clang or headers are recorded, not fatal.
//!
//! Probe lines that do not compile (a struct or macro the header lacks) are
//! dropped one by one and recorded with the compiler's message; the test
//! decides which drops are expected.

use std::collections::BTreeMap;
use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

struct StructEntry {
    key: String,
    ctype: String,
    fields: Vec<(String, String)>,
}

struct Table {
    host_structs: Vec<StructEntry>,
    host_ioctls: Vec<String>,
    host_consts: Vec<String>,
    arm64_structs: Vec<StructEntry>,
    arm64_consts: Vec<String>,
    ppc_structs: Vec<StructEntry>,
    ppc_consts: Vec<String>,
    s390x_structs: Vec<StructEntry>,
    s390x_consts: Vec<String>,
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

fn struct_entry(rust: &str, c: &str, fields: &[(&str, &str)]) -> StructEntry {
    let c = c.trim();
    let ctype = match c.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(lit) => lit.to_string(),
        None => format!("struct {c}"),
    };
    StructEntry {
        key: clean(rust),
        ctype,
        fields: fields.iter().map(|(r, c)| (clean(r), clean(c))).collect(),
    }
}

macro_rules! cname {
    ($f:ident) => {
        stringify!($f)
    };
    ($f:ident, $cf:ident) => {
        stringify!($cf)
    };
}

macro_rules! structs {
    ($( $rty:path = $cty:tt { $( $f:ident $(=> $cf:ident)? ),* $(,)? } ),* $(,)?) => {
        vec![$(
            struct_entry(stringify!($rty), stringify!($cty), &[$( (stringify!($f), cname!($f $(, $cf)?)) ),*])
        ),*]
    };
}

macro_rules! names {
    ($($p:path),* $(,)?) => {
        vec![$( stringify!($p).to_string() ),*]
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
            host_structs: structs!($($hs)*),
            host_ioctls: names!($($hi)*),
            host_consts: names!($($hc)*),
            arm64_structs: structs!($($a_s)*),
            arm64_consts: names!($($a_c)*),
            ppc_structs: structs!($($p_s)*),
            ppc_consts: names!($($p_c)*),
            s390x_structs: structs!($($s_s)*),
            s390x_consts: names!($($s_c)*),
        }
    };
}

/// One value the probe computes: a key for the test, a C expression and an
/// optional `#ifdef` guard.
struct Probe {
    key: String,
    expr: String,
    guard: Option<String>,
}

fn struct_probes(structs: &[StructEntry], out: &mut Vec<Probe>) {
    for s in structs {
        let t = &s.ctype;
        out.push(Probe {
            key: format!("size {}", s.key),
            expr: format!("sizeof({t})"),
            guard: None,
        });
        out.push(Probe {
            key: format!("align {}", s.key),
            expr: format!("_Alignof({t})"),
            guard: None,
        });
        for (rf, cf) in &s.fields {
            out.push(Probe {
                key: format!("off {}.{rf}", s.key),
                expr: format!("__builtin_offsetof({t}, {cf})"),
                guard: None,
            });
            out.push(Probe {
                key: format!("fsize {}.{rf}", s.key),
                expr: format!("sizeof((({t} *)0)->{cf})"),
                guard: None,
            });
        }
    }
}

fn macro_probes(kind: &str, names: &[String], out: &mut Vec<Probe>) {
    for n in names {
        let c = last_segment(n);
        // No `#ifdef` guard: enum constants are not macros. An undefined name
        // fails to compile and is dropped (and reported) like any other.
        out.push(Probe {
            key: format!("{kind} {c}"),
            expr: c,
            guard: None,
        });
    }
}

const PRELUDE: &str = "#include <linux/kvm.h>\n#define MEMBER(T, m) __typeof__(((T *)0)->m)\n";

/// Writes the probe source; returns it and the line number of each probe.
fn render(probes: &[Probe], host: bool) -> (String, BTreeMap<usize, usize>) {
    let mut src = String::new();
    if host {
        src.push_str("#include <stdio.h>\n");
    }
    src.push_str(PRELUDE);
    if host {
        src.push_str("int main(void) {\n");
    }
    let mut lines = BTreeMap::new();
    for (i, p) in probes.iter().enumerate() {
        if let Some(g) = &p.guard {
            let _ = writeln!(src, "#ifdef {g}");
        }
        lines.insert(src.lines().count() + 1, i);
        if host {
            let _ = writeln!(
                src,
                "printf(\"%s\\t%llu\\n\", \"{}\", (unsigned long long)({}));",
                p.key, p.expr
            );
        } else {
            let _ = writeln!(
                src,
                "const unsigned long long kp_{i} = (unsigned long long)({});",
                p.expr
            );
        }
        if p.guard.is_some() {
            src.push_str("#endif\n");
        }
    }
    if host {
        src.push_str("return 0;\n}\n");
    }
    (src, lines)
}

/// Compiles the probe, dropping probes whose line does not compile, until it
/// compiles. Returns the compiler output of the last (successful) run and the
/// dropped probes with their error messages.
fn compile_dropping(
    probes: &mut Vec<Probe>,
    host: bool,
    file: &Path,
    compile: &dyn Fn(&Path) -> std::process::Output,
) -> (std::process::Output, Vec<(String, String)>) {
    let mut dropped = Vec::new();
    for _ in 0..8 {
        let (src, lines) = render(probes, host);
        fs::write(file, &src).expect("write probe source");
        let out = compile(file);
        if out.status.success() {
            return (out, dropped);
        }
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let fname = file
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or("probe.c")
            .to_string();
        // An error may be reported inside a macro (`MEMBER`) with the probe
        // line only in a following "in expansion of" note: attribute every
        // probe line mentioned while inside an error's diagnostic block.
        let mut bad: BTreeMap<usize, String> = BTreeMap::new();
        let mut current: Option<String> = None;
        for l in stderr.lines() {
            if l.contains(" error: ") || l.contains(": error:") {
                let msg = l.split("error:").nth(1).unwrap_or(l).trim().to_string();
                current = Some(msg);
            } else if l.contains(" warning: ") || l.contains(": warning:") {
                current = None;
            }
            let Some(msg) = &current else { continue };
            let Some(rest) = l
                .find(&format!("{fname}:"))
                .map(|i| &l[i + fname.len() + 1..])
            else {
                continue;
            };
            let Some(num) = rest.split(':').next().and_then(|n| n.parse::<usize>().ok()) else {
                continue;
            };
            if let Some(&idx) = lines.get(&num) {
                bad.entry(idx).or_insert_with(|| msg.clone());
            }
        }
        if bad.is_empty() {
            panic!(
                "probe {} failed to compile and no error maps to a probe line:\n{stderr}",
                file.display()
            );
        }
        for (idx, msg) in bad.iter().rev() {
            let p = probes.remove(*idx);
            dropped.push((p.key, msg.clone()));
        }
    }
    panic!("probe {} still fails after 8 rounds", file.display());
}

fn header_macros(cmd: &mut Command) -> Vec<(String, String)> {
    let out = cmd.output().expect("run the C preprocessor (-E -dM)");
    assert!(
        out.status.success(),
        "preprocessor failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("#define ")?;
            let (name, body) = rest.split_once(' ').unwrap_or((rest, ""));
            Some((name.to_string(), body.trim().to_string()))
        })
        .collect()
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/table.rs");
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-env-changed=CC");
    println!("cargo:rerun-if-changed=/usr/include/linux/kvm.h");

    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let wrapper = manifest.join("wrapper.h");

    // 1. bindgen.
    bindgen::Builder::default()
        .header(wrapper.to_string_lossy())
        .allowlist_type("kvm_.*")
        .allowlist_var("KVM_.*")
        .layout_tests(false)
        .derive_debug(false)
        .derive_default(false)
        .derive_copy(true)
        .generate_comments(false)
        .generate()
        .expect(
            "bindgen failed on <linux/kvm.h>; install libclang-dev and linux-libc-dev \
             (apt-get install -y libclang-dev clang linux-libc-dev)",
        )
        .write_to_file(out_dir.join("bindings.rs"))
        .expect("write bindings.rs");

    let table: Table = include!("src/table.rs");
    let mut report = String::new();

    // 2. Host probe.
    let cc = env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let macros = header_macros(Command::new(&cc).args(["-E", "-dM"]).arg(&wrapper));
    let mut header_ioctls = Vec::new();
    let mut header_caps = Vec::new();
    for (name, body) in &macros {
        let is_ioctl = ["_IO(", "_IOR(", "_IOW(", "_IOWR(", "__KVM_DEPRECATED_"]
            .iter()
            .any(|p| body.starts_with(p));
        if name.starts_with("KVM_") && !name.contains('(') && is_ioctl {
            header_ioctls.push(name.clone());
        }
        if name.starts_with("KVM_CAP_") && !name.contains('(') {
            header_caps.push(name.clone());
        }
    }
    header_ioctls.sort();
    header_caps.sort();
    let mut ioctl_names: Vec<String> = table.host_ioctls.clone();
    ioctl_names.extend(header_ioctls.iter().cloned());
    let mut seen = std::collections::BTreeSet::new();
    ioctl_names.retain(|n| seen.insert(last_segment(n)));

    let mut probes = Vec::new();
    struct_probes(&table.host_structs, &mut probes);
    macro_probes("ioctl", &ioctl_names, &mut probes);
    macro_probes("const", &table.host_consts, &mut probes);
    macro_probes("cap", &header_caps, &mut probes);
    let exe = out_dir.join("kvm_probe");
    let (_, dropped) = compile_dropping(&mut probes, true, &out_dir.join("kvm_probe.c"), &|f| {
        Command::new(&cc)
            .arg("-std=gnu11")
            .arg("-o")
            .arg(&exe)
            .arg(f)
            .output()
            .expect("run the host C compiler ($CC or cc)")
    });
    let run = Command::new(&exe).output().expect("run the host probe");
    assert!(run.status.success(), "host probe failed");
    for l in String::from_utf8_lossy(&run.stdout).lines() {
        let _ = writeln!(report, "V\thost\t{l}");
    }
    for (k, msg) in dropped {
        let _ = writeln!(report, "D\thost\t{k}\t{msg}");
    }
    for n in &header_ioctls {
        let _ = writeln!(report, "H\t{n}");
    }
    for n in &header_caps {
        let _ = writeln!(report, "C\t{n}");
    }

    // 3. Cross probes (clang + Debian cross headers), read from LLVM IR.
    let arches: [(&str, &str, &[StructEntry], &[String]); 3] = [
        (
            "arm64",
            "aarch64-linux-gnu",
            &table.arm64_structs,
            &table.arm64_consts,
        ),
        (
            "ppc",
            "powerpc64le-linux-gnu",
            &table.ppc_structs,
            &table.ppc_consts,
        ),
        (
            "s390x",
            "s390x-linux-gnu",
            &table.s390x_structs,
            &table.s390x_consts,
        ),
    ];
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    println!("cargo:rerun-if-env-changed=CLANG");
    let clang_ok = Command::new(&clang)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    for (arch, triple, structs, consts) in arches {
        let inc = PathBuf::from(format!("/usr/{triple}/include"));
        println!(
            "cargo:rerun-if-changed={}",
            inc.join("linux/kvm.h").display()
        );
        if !clang_ok {
            let _ = writeln!(report, "U\t{arch}\tclang not found (apt-get install clang)");
            continue;
        }
        if !inc.join("linux/kvm.h").exists() || !inc.join("asm/kvm.h").exists() {
            let pkg = match arch {
                "arm64" => "linux-libc-dev-arm64-cross",
                "ppc" => "linux-libc-dev-ppc64el-cross",
                _ => "linux-libc-dev-s390x-cross",
            };
            let _ = writeln!(
                report,
                "U\t{arch}\t{} missing (apt-get install {pkg})",
                inc.display()
            );
            continue;
        }
        let mut probes = Vec::new();
        struct_probes(structs, &mut probes);
        macro_probes("const", consts, &mut probes);
        let target = format!("--target={triple}");
        let (out, dropped) = compile_dropping(
            &mut probes,
            false,
            &out_dir.join(format!("kvm_probe_{arch}.c")),
            &|f| {
                Command::new(&clang)
                    .args([target.as_str(), "-ferror-limit=0", "-nostdinc", "-isystem"])
                    .arg(&inc)
                    .args(["-S", "-emit-llvm", "-o", "-"])
                    .arg(f)
                    .output()
                    .expect("run clang")
            },
        );
        let ir = String::from_utf8_lossy(&out.stdout);
        for l in ir.lines() {
            // @kp_12 = dso_local constant i64 864, align 8
            let Some(rest) = l.strip_prefix("@kp_") else {
                continue;
            };
            let Some((idx, tail)) = rest.split_once(' ') else {
                continue;
            };
            let Some(val) = tail.split("constant i64 ").nth(1) else {
                continue;
            };
            let val = val
                .split(|c: char| c == ',' || c.is_whitespace())
                .next()
                .unwrap_or("");
            let (Ok(idx), Ok(val)) = (idx.parse::<usize>(), val.parse::<i64>()) else {
                continue;
            };
            if let Some(p) = probes.get(idx) {
                let _ = writeln!(report, "V\t{arch}\t{}\t{}", p.key, val as u64);
            }
        }
        for (k, msg) in dropped {
            let _ = writeln!(report, "D\t{arch}\t{k}\t{msg}");
        }
    }

    fs::write(out_dir.join("probe.txt"), report).expect("write probe.txt");
}
