//! Seccomp: compiles the spec's `linux.seccomp` (config-linux.md "Seccomp") into a classic BPF
//! program and installs it, in pure Rust (no libseccomp).
//!
//! Program shape: check the architecture, then per architecture compare the syscall number
//! against each syscall that has rules (`jeq` + `ja` pairs, so no jump ever needs more than
//! the 8-bit conditional offset), and for each, evaluate its rules in spec order: all argument
//! conditions of a rule must hold (64-bit compares on the two 32-bit halves) for its action to
//! be returned. Anything else gets the default action. Syscall names unknown for an
//! architecture are skipped, as runc and libseccomp do, so one profile serves every kernel.

use std::collections::BTreeMap;

use berth_oci::oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use berth_oci::ErrorKind;

/// Seccomp failures.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The profile asks for something this runtime cannot do.
    #[error("seccomp: {0}")]
    Unsupported(String),
    /// The compiled program is too large for the kernel.
    #[error("seccomp: the compiled filter has {0} instructions, more than the kernel's 4096")]
    TooLarge(usize),
    /// A rule's argument index is out of range.
    #[error("seccomp: syscall {syscall}: argument index {index} is out of range (0-5)")]
    BadArg {
        /// The syscall name.
        syscall: String,
        /// The index.
        index: usize,
    },
    /// The kernel refused the filter.
    #[error("loading seccomp filter")]
    Load(#[source] std::io::Error),
}

impl SeccompError {
    /// The error's category.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SeccompError::Load(_) => ErrorKind::Internal,
            _ => ErrorKind::InvalidArgument,
        }
    }
}

// Classic BPF opcodes (linux/filter.h).
const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGT_K: u16 = 0x25;
const JGE_K: u16 = 0x35;
const JA: u16 = 0x05;
const RET_K: u16 = 0x06;
const AND_K: u16 = 0x54;

const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const X32_BIT: u32 = 0x4000_0000;

const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_LOG: u32 = 0x7ffc_0000;

type Label = usize;

#[derive(Debug, Clone, Copy)]
enum Op {
    Stmt(u16, u32),
    Jmp(u16, u32, Label, Label),
    Ja(Label),
    Mark(Label),
}

#[derive(Debug, Default)]
struct Asm {
    ops: Vec<Op>,
    labels: usize,
}

impl Asm {
    fn label(&mut self) -> Label {
        self.labels += 1;
        self.labels - 1
    }
    fn stmt(&mut self, code: u16, k: u32) {
        self.ops.push(Op::Stmt(code, k));
    }
    fn jmp(&mut self, code: u16, k: u32, jt: Label, jf: Label) {
        self.ops.push(Op::Jmp(code, k, jt, jf));
    }
    fn mark(&mut self, l: Label) {
        self.ops.push(Op::Mark(l));
    }
    fn ret(&mut self, action: u32) {
        self.stmt(RET_K, action);
    }

    /// Resolves labels into offsets. Conditional targets must be within 255 instructions,
    /// which holds by construction: they only jump inside one rule or to the next `ja`.
    fn finish(self) -> Result<Vec<libc::sock_filter>, SeccompError> {
        let mut pos = vec![0usize; self.labels];
        let mut n = 0;
        for op in &self.ops {
            match op {
                Op::Mark(l) => pos[*l] = n,
                _ => n += 1,
            }
        }
        if n > 4096 {
            return Err(SeccompError::TooLarge(n));
        }
        let mut out = Vec::with_capacity(n);
        for op in &self.ops {
            let here = out.len() + 1;
            let rel = |l: Label| pos[l].checked_sub(here);
            let f = match *op {
                Op::Mark(_) => continue,
                Op::Stmt(code, k) => libc::sock_filter { code, jt: 0, jf: 0, k },
                Op::Ja(l) => libc::sock_filter {
                    code: JA,
                    jt: 0,
                    jf: 0,
                    k: rel(l)
                        .and_then(|d| u32::try_from(d).ok())
                        .ok_or(SeccompError::TooLarge(n))?,
                },
                Op::Jmp(code, k, jt, jf) => {
                    let short = |l| {
                        rel(l)
                            .and_then(|d| u8::try_from(d).ok())
                            .ok_or(SeccompError::TooLarge(n))
                    };
                    libc::sock_filter {
                        code,
                        jt: short(jt)?,
                        jf: short(jf)?,
                        k,
                    }
                }
            };
            out.push(f);
        }
        Ok(out)
    }
}

fn action_code(action: LinuxSeccompAction, errno: Option<u32>) -> Result<u32, SeccompError> {
    if action == LinuxSeccompAction::ScmpActNotify {
        return Err(SeccompError::Unsupported(
            "SCMP_ACT_NOTIFY (a seccomp agent) is not supported".into(),
        ));
    }
    Ok(action.as_u32(errno.map(|e| e & 0xffff)))
}

/// The architectures a profile covers on this machine: the native one and its compat
/// sibling, when listed (or native alone when none are).
fn arches(seccomp: &LinuxSeccomp) -> Vec<Arch> {
    let native = if cfg!(target_arch = "aarch64") {
        Arch::ScmpArchAarch64
    } else {
        Arch::ScmpArchX86_64
    };
    let listed = seccomp.architectures().clone().unwrap_or_default();
    if listed.is_empty() {
        return vec![native];
    }
    let mut out: Vec<Arch> = listed
        .into_iter()
        .map(|a| if a == Arch::ScmpArchNative { native } else { a })
        .filter(|a| {
            matches!(
                (native, a),
                (
                    Arch::ScmpArchX86_64,
                    Arch::ScmpArchX86_64 | Arch::ScmpArchX86 | Arch::ScmpArchX32
                ) | (Arch::ScmpArchAarch64, Arch::ScmpArchAarch64 | Arch::ScmpArchArm)
            )
        })
        .collect();
    out.dedup();
    if !out.contains(&native) {
        out.insert(0, native);
    }
    out
}

/// The syscall number of `name` on `arch`, if it has one.
fn syscall_nr(arch: Arch, name: &str) -> Option<u32> {
    use std::str::FromStr;
    let nr = match arch {
        Arch::ScmpArchX86_64 | Arch::ScmpArchX32 => syscalls::x86_64::Sysno::from_str(name).ok()?.id(),
        Arch::ScmpArchX86 => syscalls::x86::Sysno::from_str(name).ok()?.id(),
        Arch::ScmpArchAarch64 => syscalls::aarch64::Sysno::from_str(name).ok()?.id(),
        Arch::ScmpArchArm => syscalls::arm::Sysno::from_str(name).ok()?.id(),
        _ => return None,
    };
    u32::try_from(nr).ok()
}

/// Emits the checks of one argument condition; jumps to `fail` when it does not hold.
fn emit_cond(asm: &mut Asm, arg: &LinuxSeccompArg, fail: Label) {
    let idx = u32::try_from(arg.index()).unwrap_or(0);
    let lo_off = 16 + 8 * idx;
    let hi_off = lo_off + 4;
    let (mut v, mask) = match arg.op() {
        LinuxSeccompOperator::ScmpCmpMaskedEq => (arg.value_two().unwrap_or(0), arg.value()),
        _ => (arg.value(), u64::MAX),
    };
    v &= mask;
    let (vhi, vlo) = ((v >> 32) as u32, (v & 0xffff_ffff) as u32);
    let (mhi, mlo) = ((mask >> 32) as u32, (mask & 0xffff_ffff) as u32);
    let ok = asm.label();
    match arg.op() {
        LinuxSeccompOperator::ScmpCmpEq | LinuxSeccompOperator::ScmpCmpMaskedEq => {
            let next = asm.label();
            asm.stmt(LD_W_ABS, hi_off);
            if mhi != u32::MAX {
                asm.stmt(AND_K, mhi);
            }
            asm.jmp(JEQ_K, vhi, next, fail);
            asm.mark(next);
            asm.stmt(LD_W_ABS, lo_off);
            if mlo != u32::MAX {
                asm.stmt(AND_K, mlo);
            }
            asm.jmp(JEQ_K, vlo, ok, fail);
        }
        LinuxSeccompOperator::ScmpCmpNe => {
            let next = asm.label();
            asm.stmt(LD_W_ABS, hi_off);
            asm.jmp(JEQ_K, vhi, next, ok);
            asm.mark(next);
            asm.stmt(LD_W_ABS, lo_off);
            asm.jmp(JEQ_K, vlo, fail, ok);
        }
        op => {
            // hi > vhi decides true, hi < vhi false, equal compares the low words.
            let (gt_ok, lo_code, lo_true_ok) = match op {
                LinuxSeccompOperator::ScmpCmpGt => (true, JGT_K, true),
                LinuxSeccompOperator::ScmpCmpGe => (true, JGE_K, true),
                LinuxSeccompOperator::ScmpCmpLt => (false, JGE_K, false),
                _ => (false, JGT_K, false), // Le
            };
            let eq = asm.label();
            let check_eq = asm.label();
            asm.stmt(LD_W_ABS, hi_off);
            let (if_gt, if_not_gt) = if gt_ok { (ok, check_eq) } else { (fail, check_eq) };
            asm.jmp(JGT_K, vhi, if_gt, if_not_gt);
            asm.mark(check_eq);
            let hi_less = if gt_ok { fail } else { ok };
            asm.jmp(JEQ_K, vhi, eq, hi_less);
            asm.mark(eq);
            asm.stmt(LD_W_ABS, lo_off);
            if lo_true_ok {
                asm.jmp(lo_code, vlo, ok, fail);
            } else {
                asm.jmp(lo_code, vlo, fail, ok);
            }
        }
    }
    asm.mark(ok);
}

/// Compiles a profile for this machine.
pub fn compile(seccomp: &LinuxSeccomp) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let default = action_code(seccomp.default_action(), seccomp.default_errno_ret())?;
    // Syscalls of an architecture the profile does not cover must not slip through an
    // allow-by-default profile.
    let foreign = if default == RET_ALLOW || default == RET_LOG {
        RET_KILL_PROCESS
    } else {
        default
    };
    let rules = seccomp.syscalls().clone().unwrap_or_default();
    for r in &rules {
        for a in r.args().iter().flatten() {
            if a.index() > 5 {
                return Err(SeccompError::BadArg {
                    syscall: r.names().first().cloned().unwrap_or_default(),
                    index: a.index(),
                });
            }
        }
        action_code(r.action(), r.errno_ret())?;
    }
    let all = arches(seccomp);
    let x32 = all.contains(&Arch::ScmpArchX32);
    let arches: Vec<Arch> = all.into_iter().filter(|a| *a != Arch::ScmpArchX32).collect();
    let mut asm = Asm::default();
    let sections: Vec<Label> = arches.iter().map(|_| asm.label()).collect();
    asm.stmt(LD_W_ABS, OFF_ARCH);
    for (arch, section) in arches.iter().zip(&sections) {
        let hit = asm.label();
        let skip = asm.label();
        asm.jmp(JEQ_K, *arch as u32, hit, skip);
        asm.mark(hit);
        asm.ops.push(Op::Ja(*section));
        asm.mark(skip);
    }
    asm.ret(foreign);
    for (arch, section) in arches.iter().zip(&sections) {
        asm.mark(*section);
        asm.stmt(LD_W_ABS, OFF_NR);
        if *arch == Arch::ScmpArchX86_64 {
            let native = asm.label();
            let x32_nr = asm.label();
            asm.jmp(JGE_K, X32_BIT, x32_nr, native);
            asm.mark(x32_nr);
            if x32 {
                // x32 numbers are x86_64's with bit 30 set (its own calls from 512 on
                // match no rule and get the default).
                asm.stmt(AND_K, !X32_BIT);
            } else {
                asm.ret(foreign);
            }
            asm.mark(native);
        }
        // Group rules by number, keeping spec order within each; a rule without conditions
        // ends the list (later ones can never match).
        let mut by_nr: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, r) in rules.iter().enumerate() {
            for name in r.names() {
                if let Some(nr) = syscall_nr(*arch, name) {
                    let list = by_nr.entry(nr).or_default();
                    let closed = list
                        .last()
                        .is_some_and(|&j| rules[j].args().as_ref().is_none_or(|a| a.is_empty()));
                    if !closed && !list.contains(&i) {
                        list.push(i);
                    }
                }
            }
        }
        // Numbers whose only rule is unconditional are answered by one jeq each, straight
        // to a shared return of their action; chunks keep every jump within 255.
        let mut simple: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        let mut complex: Vec<(u32, Vec<usize>)> = Vec::new();
        for (nr, list) in by_nr {
            let r = &rules[list[0]];
            if list.len() == 1 && r.args().as_ref().is_none_or(|a| a.is_empty()) {
                simple
                    .entry(action_code(r.action(), r.errno_ret())?)
                    .or_default()
                    .push(nr);
            } else {
                complex.push((nr, list));
            }
        }
        for (action, nrs) in &simple {
            for chunk in nrs.chunks(200) {
                let hit = asm.label();
                let after = asm.label();
                for nr in chunk {
                    let next = asm.label();
                    asm.jmp(JEQ_K, *nr, hit, next);
                    asm.mark(next);
                }
                asm.ops.push(Op::Ja(after));
                asm.mark(hit);
                asm.ret(*action);
                asm.mark(after);
            }
        }
        let blocks: Vec<Label> = complex.iter().map(|_| asm.label()).collect();
        for ((nr, _), block) in complex.iter().zip(&blocks) {
            let hit = asm.label();
            let miss = asm.label();
            asm.jmp(JEQ_K, *nr, hit, miss);
            asm.mark(hit);
            asm.ops.push(Op::Ja(*block));
            asm.mark(miss);
        }
        asm.ret(default);
        for ((_, list), block) in complex.iter().zip(blocks) {
            asm.mark(block);
            for &i in list {
                let r = &rules[i];
                let fail = asm.label();
                for a in r.args().iter().flatten() {
                    emit_cond(&mut asm, a, fail);
                }
                asm.ret(action_code(r.action(), r.errno_ret())?);
                asm.mark(fail);
            }
            asm.ret(default);
        }
    }
    asm.finish()
}

/// The `seccomp(2)` flags the profile asks for.
pub fn flags(seccomp: &LinuxSeccomp) -> u32 {
    seccomp
        .flags()
        .iter()
        .flatten()
        .map(|f| match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => 1,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => 2,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => 4,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 32,
        })
        .fold(0, |a, b| a | b)
}

/// Installs a compiled program in the calling thread.
pub fn install(prog: &[libc::sock_filter], flags: u32) -> Result<(), SeccompError> {
    crate::sys::seccomp_set_filter(prog, flags).map_err(SeccompError::Load)
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;
    use berth_oci::oci_spec::runtime::LinuxSyscall;

    /// Interprets a classic BPF program over a seccomp_data, to check semantics in-process.
    fn run(prog: &[libc::sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        let (mut a, mut pc) = (0u32, 0usize);
        loop {
            let f = prog[pc];
            pc += 1;
            match f.code {
                LD_W_ABS => {
                    let k = f.k as usize;
                    a = u32::from_le_bytes(data[k..k + 4].try_into().unwrap());
                }
                AND_K => a &= f.k,
                RET_K => return f.k,
                JA => pc += f.k as usize,
                code => {
                    let t = match code {
                        JEQ_K => a == f.k,
                        JGT_K => a > f.k,
                        JGE_K => a >= f.k,
                        _ => panic!("op {code:#x}"),
                    };
                    pc += if t { f.jt } else { f.jf } as usize;
                }
            }
        }
    }

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    const X86_64: u32 = 0xc000003e;

    #[test]
    fn allowlist_with_errno_and_args() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
            "syscalls":[
              {"names":["read","write","nosuchcall"],"action":"SCMP_ACT_ALLOW"},
              {"names":["clone3"],"action":"SCMP_ACT_ERRNO","errnoRet":38},
              {"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]},
              {"names":["clone"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":2114060288,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}]},
              {"names":["kill"],"action":"SCMP_ACT_ALLOW","args":[{"index":1,"value":4294967296,"op":"SCMP_CMP_GE"}]}
            ]}"#,
        );
        let prog = compile(&p).unwrap();
        let eperm = 0x0005_0001;
        assert_eq!(run(&prog, X86_64, 0, [0; 6]), RET_ALLOW, "read");
        assert_eq!(run(&prog, X86_64, 2, [0; 6]), eperm, "open");
        assert_eq!(run(&prog, X86_64, 435, [0; 6]), 0x0005_0026, "clone3 ENOSYS");
        assert_eq!(run(&prog, X86_64, 135, [8, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(run(&prog, X86_64, 135, [9, 0, 0, 0, 0, 0]), eperm);
        assert_eq!(
            run(&prog, X86_64, 135, [8 | 1 << 32, 0, 0, 0, 0, 0]),
            eperm,
            "high word"
        );
        assert_eq!(run(&prog, X86_64, 56, [0x11, 0, 0, 0, 0, 0]), RET_ALLOW, "clone no ns");
        assert_eq!(
            run(&prog, X86_64, 56, [0x2000_0000, 0, 0, 0, 0, 0]),
            eperm,
            "clone newpid"
        );
        assert_eq!(run(&prog, X86_64, 62, [0, 1 << 32, 0, 0, 0, 0]), RET_ALLOW, "kill ge");
        assert_eq!(run(&prog, X86_64, 62, [0, 5, 0, 0, 0, 0]), eperm, "kill lt");
        // i386 read is 3; x32 read is 0 | X32 bit
        assert_eq!(run(&prog, 0x40000003, 3, [0; 6]), RET_ALLOW);
        assert_eq!(run(&prog, X86_64, X32_BIT, [0; 6]), RET_ALLOW);
        assert_eq!(run(&prog, 0xc00000b7, 0, [0; 6]), eperm, "foreign arch gets default");
    }

    #[test]
    fn denylist_closes_foreign_abis() {
        let p =
            profile(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#);
        let prog = compile(&p).unwrap();
        assert_eq!(run(&prog, X86_64, 83, [0; 6]), 0x0005_0001);
        assert_eq!(run(&prog, X86_64, 0, [0; 6]), RET_ALLOW);
        assert_eq!(run(&prog, X86_64, 83 | X32_BIT, [0; 6]), RET_KILL_PROCESS);
        assert_eq!(run(&prog, 0x40000003, 39, [0; 6]), RET_KILL_PROCESS);
    }

    #[test]
    fn comparison_operators() {
        for (op, v, arg, want) in [
            ("SCMP_CMP_NE", 5u64, 5u64, false),
            ("SCMP_CMP_NE", 5, 6, true),
            ("SCMP_CMP_LT", 5, 4, true),
            ("SCMP_CMP_LT", 5, 5, false),
            ("SCMP_CMP_LE", 5, 5, true),
            ("SCMP_CMP_LE", 1 << 33, 1 << 34, false),
            ("SCMP_CMP_GT", 5, 6, true),
            ("SCMP_CMP_GT", 1 << 33, 5, false),
            ("SCMP_CMP_GE", 5, 5, true),
        ] {
            let p = profile(&format!(
                r#"{{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{{"index":2,"value":{v},"op":"{op}"}}]}}]}}"#
            ));
            let prog = compile(&p).unwrap();
            let got = run(&prog, X86_64, 0, [0, 0, arg, 0, 0, 0]) == RET_ALLOW;
            assert_eq!(got, want, "{op} {v} vs {arg}");
        }
    }

    #[test]
    fn whole_table_allowlist_fits_the_kernel_limit() {
        // Podman's and Docker's profiles allow ~370 calls for three ABIs; every name this
        // table knows, for all three, must still compile under 4096 instructions.
        let names: Vec<&str> = syscalls::x86_64::Sysno::iter()
            .map(|s| s.name())
            .chain(syscalls::x86::Sysno::iter().map(|s| s.name()))
            .collect();
        let p = LinuxSeccomp::default();
        let mut p = p;
        p.set_default_action(LinuxSeccompAction::ScmpActErrno);
        p.set_architectures(Some(vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]));
        let mut all: LinuxSyscall = serde_json::from_str(r#"{"names":[],"action":"SCMP_ACT_ALLOW"}"#).unwrap();
        all.set_names(names.iter().map(|s| s.to_string()).collect());
        let cond: LinuxSyscall = serde_json::from_str(
            r#"{"names":["clone","personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":2114060288,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}]}"#,
        ).unwrap();
        p.set_syscalls(Some(vec![cond, all]));
        let prog = compile(&p).unwrap();
        assert!(prog.len() < 2000, "{} instructions", prog.len());
        // clone's conditional rule fails for a namespace flag, then the unconditional one allows.
        assert_eq!(run(&prog, X86_64, 56, [0x2000_0000, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(run(&prog, X86_64, 0, [0; 6]), RET_ALLOW);
    }

    #[test]
    fn notify_is_refused_clearly() {
        let p = profile(r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#);
        assert!(compile(&p).unwrap_err().to_string().contains("NOTIFY"));
    }
}
