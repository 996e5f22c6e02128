//! The cgroup v2 device controller is an eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE) attached
//! to the cgroup; this module compiles the spec's device rules into one.
//!
//! Rules are evaluated last to first, so the last matching rule decides, as the v1
//! devices.allow/deny files behave. An allow rule matches a request whose access is a subset
//! of the rule's; a deny rule matches any overlap, so a partial deny is never widened. No
//! matching rule means deny.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use berth_oci::oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::CgroupError;
use crate::sys;

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// One eBPF instruction: opcode, dst/src registers, offset, immediate.
#[derive(Debug, Clone, Copy)]
struct Insn(u8, u8, u8, i16, i32);

impl Insn {
    fn bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.0;
        b[1] = (self.2 << 4) | (self.1 & 0xf);
        b[2..4].copy_from_slice(&self.3.to_le_bytes());
        b[4..8].copy_from_slice(&self.4.to_le_bytes());
        b
    }
}

// Opcodes (include/uapi/linux/bpf.h, bpf_common.h).
const LDX_W: u8 = 0x61; // dst = *(u32 *)(src + off)
const AND32_K: u8 = 0x54;
const RSH32_K: u8 = 0x74;
const MOV64_X: u8 = 0xbf;
const MOV64_K: u8 = 0xb7;
const AND64_K: u8 = 0x57;
const JNE_K: u8 = 0x55;
const JNE_X: u8 = 0x5d;
const JEQ_K: u8 = 0x15;
const EXIT: u8 = 0x95;

const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

fn access_bits(s: &str) -> i32 {
    s.chars().fold(0, |acc, c| {
        acc | match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => 0,
        }
    })
}

/// Compiles the rules to eBPF. Registers: r2 = type, r3 = access, r4 = major, r5 = minor.
fn compile(rules: &[LinuxDeviceCgroup]) -> Vec<Insn> {
    let mut p = vec![
        Insn(LDX_W, 2, 1, 0, 0),
        Insn(AND32_K, 2, 0, 0, 0xffff),
        Insn(LDX_W, 3, 1, 0, 0),
        Insn(RSH32_K, 3, 0, 0, 16),
        Insn(LDX_W, 4, 1, 4, 0),
        Insn(LDX_W, 5, 1, 8, 0),
    ];
    for r in rules.iter().rev() {
        let mut block: Vec<Insn> = Vec::new();
        match r.typ() {
            Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => block.push(Insn(JNE_K, 2, 0, 0, 2)),
            Some(LinuxDeviceType::B) => block.push(Insn(JNE_K, 2, 0, 0, 1)),
            _ => {}
        }
        let acc = access_bits(r.access().as_deref().unwrap_or("rwm"));
        if acc != ACC_READ | ACC_WRITE | ACC_MKNOD || !r.allow() {
            block.push(Insn(MOV64_X, 6, 3, 0, 0));
            block.push(Insn(AND64_K, 6, 0, 0, acc));
            if r.allow() {
                // requested access must lie within the rule's: (req & acc) == req
                block.push(Insn(JNE_X, 6, 3, 0, 0));
            } else {
                // any overlap denies
                block.push(Insn(JEQ_K, 6, 0, 0, 0));
            }
        }
        if let Some(m) = r.major().filter(|m| *m >= 0) {
            block.push(Insn(JNE_K, 4, 0, 0, i32::try_from(m).unwrap_or(i32::MAX)));
        }
        if let Some(m) = r.minor().filter(|m| *m >= 0) {
            block.push(Insn(JNE_K, 5, 0, 0, i32::try_from(m).unwrap_or(i32::MAX)));
        }
        // Jumps in the block go to the next rule: past the two instructions that return.
        let n = block.len();
        for (i, insn) in block.iter_mut().enumerate() {
            if matches!(insn.0, JNE_K | JNE_X | JEQ_K) {
                insn.3 = i16::try_from(n - i - 1 + 2).unwrap_or(i16::MAX);
            }
        }
        p.extend(block);
        p.push(Insn(MOV64_K, 0, 0, 0, i32::from(r.allow())));
        p.push(Insn(EXIT, 0, 0, 0, 0));
    }
    p.push(Insn(MOV64_K, 0, 0, 0, 0));
    p.push(Insn(EXIT, 0, 0, 0, 0));
    p
}

/// Loads the program for `rules` and attaches it to the cgroup at `path`.
pub(super) fn apply(path: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    let insns: Vec<u8> = compile(rules).into_iter().flat_map(Insn::bytes).collect();
    let license = b"Apache\0";
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&BPF_PROG_TYPE_CGROUP_DEVICE.to_le_bytes());
    let cnt = u32::try_from(insns.len() / 8).unwrap_or(u32::MAX);
    attr[4..8].copy_from_slice(&cnt.to_le_bytes());
    attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_le_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_le_bytes());
    attr[68..72].copy_from_slice(&BPF_CGROUP_DEVICE.to_le_bytes());
    let prog = match sys::bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => fd,
        Err(e) => {
            // Load again with the verifier's log, so the error says why.
            let mut log = vec![0u8; 16 * 1024];
            attr[24..28].copy_from_slice(&1u32.to_le_bytes());
            attr[28..32].copy_from_slice(&u32::try_from(log.len()).unwrap_or(0).to_le_bytes());
            attr[32..40].copy_from_slice(&(log.as_mut_ptr() as u64).to_le_bytes());
            let _ = sys::bpf(BPF_PROG_LOAD, &mut attr);
            let text = String::from_utf8_lossy(&log);
            let text = text.trim_end_matches('\0').trim();
            return Err(CgroupError::DeviceFilter(std::io::Error::new(
                e.kind(),
                format!("{e}: {text}"),
            )));
        }
    };
    let prog = i32::try_from(prog).map_err(|_| CgroupError::DeviceFilter(std::io::Error::other("bad fd")))?;
    // SAFETY: BPF_PROG_LOAD returned a new descriptor that we now own.
    let prog = unsafe { OwnedFd::from_raw_fd(prog) };
    let dir = std::fs::File::open(path).map_err(super::io_err("opening", path))?;
    let mut attr = [0u8; 32];
    let target = u32::try_from(dir.as_raw_fd()).unwrap_or(0);
    let progfd = u32::try_from(prog.as_raw_fd()).unwrap_or(0);
    attr[0..4].copy_from_slice(&target.to_le_bytes());
    attr[4..8].copy_from_slice(&progfd.to_le_bytes());
    attr[8..12].copy_from_slice(&BPF_CGROUP_DEVICE.to_le_bytes());
    attr[12..16].copy_from_slice(&BPF_F_ALLOW_MULTI.to_le_bytes());
    sys::bpf(BPF_PROG_ATTACH, &mut attr).map_err(CgroupError::DeviceFilter)?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;

    /// Runs the compiled program in a tiny interpreter, enough to check rule semantics.
    fn run(prog: &[Insn], typ: u32, access: u32, major: u32, minor: u32) -> u64 {
        let mut r = [0u64; 11];
        let ctx = [(access << 16) | typ, major, minor];
        let mut pc = 0usize;
        loop {
            let Insn(op, dst, src, off, imm) = prog[pc];
            let (d, s) = (dst as usize, src as usize);
            pc += 1;
            let jump = |c: bool, pc: &mut usize| {
                if c {
                    *pc = (*pc as i64 + off as i64) as usize
                }
            };
            match op {
                LDX_W => r[d] = ctx[(off / 4) as usize] as u64,
                AND32_K => r[d] = (r[d] as u32 & imm as u32) as u64,
                RSH32_K => r[d] = ((r[d] as u32) >> imm) as u64,
                MOV64_X => r[d] = r[s],
                MOV64_K => r[d] = imm as u64,
                AND64_K => r[d] &= imm as u64,
                JNE_K => jump(r[d] != imm as u64, &mut pc),
                JNE_X => jump(r[d] != r[s], &mut pc),
                JEQ_K => jump(r[d] == imm as u64, &mut pc),
                EXIT => return r[0],
                _ => panic!("bad op {op:#x}"),
            }
        }
    }

    fn rule(
        allow: bool,
        typ: Option<LinuxDeviceType>,
        major: Option<i64>,
        minor: Option<i64>,
        access: &str,
    ) -> LinuxDeviceCgroup {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(allow);
        r.set_typ(typ);
        r.set_major(major);
        r.set_minor(minor);
        r.set_access(Some(access.to_string()));
        r
    }

    #[test]
    fn docker_style_rules() {
        let rules = vec![
            rule(false, None, None, None, "rwm"),
            rule(true, Some(LinuxDeviceType::C), Some(1), Some(3), "rwm"),
            rule(true, Some(LinuxDeviceType::C), Some(5), Some(1), "rw"),
            rule(false, Some(LinuxDeviceType::C), Some(1), Some(3), "w"),
        ];
        let p = compile(&rules);
        let (c, b) = (2, 1);
        let (r, w, m) = (ACC_READ as u32, ACC_WRITE as u32, ACC_MKNOD as u32);
        assert_eq!(run(&p, c, r, 1, 3), 1, "read /dev/null");
        assert_eq!(run(&p, c, w, 1, 3), 0, "write /dev/null denied by the last rule");
        assert_eq!(run(&p, c, r | w, 5, 1), 1);
        assert_eq!(run(&p, c, m, 5, 1), 0, "mknod not in rw");
        assert_eq!(run(&p, b, r, 1, 3), 0, "block device");
        assert_eq!(run(&p, c, r, 8, 0), 0, "default deny");
    }
}
