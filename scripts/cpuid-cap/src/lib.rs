//! `libcpuid_cap.so`: loaded with `LD_PRELOAD` and `CPUID_CAP=avx512` or
//! `CPUID_CAP=avx2`, it makes every CPUID instruction of the process (and
//! of the processes it starts) report the CPU without the instruction sets
//! above the cap, so a library that dispatches on CPUID (ONNX Runtime's
//! MLAS, oneDNN, numpy) runs the kernels it would run on such a CPU:
//!
//! | `CPUID_CAP` | hidden | like |
//! | --- | --- | --- |
//! | `avx512` | AMX (tile, int8, bf16, fp16) | an AMD Zen 4 or Ice Lake Xeon |
//! | `avx2` | the above, every AVX-512 extension, AVX-VNNI, AVX-IFMA | an AMD Zen 2/3 |
//!
//! How: Linux's CPUID faulting (`arch_prctl(ARCH_SET_CPUID, 0)`, CPUs with
//! the `cpuid_fault` flag) turns each CPUID into a SIGSEGV; the handler runs
//! the real instruction with faulting briefly off, clears the hidden bits
//! and steps past it. The setting is per thread and inherited by new
//! threads; `execve` resets it, and the library, preloaded again, sets it
//! anew. Without `CPUID_CAP` the library does nothing. XGETBV still reports
//! the OS-enabled state, which is what the CPUID bits gate.
//!
//! Build: `cargo build --release --manifest-path scripts/cpuid-cap/Cargo.toml`.

use std::arch::x86_64::{__cpuid_count, CpuidResult};

const ARCH_SET_CPUID: libc::c_long = 0x1012;

/// Which bits one leaf's registers lose.
struct Hidden {
    leaf: u32,
    subleaf: u32,
    eax: u32,
    ebx: u32,
    ecx: u32,
    edx: u32,
}

const fn bits(list: &[u32]) -> u32 {
    let mut mask = 0;
    let mut i = 0;
    while i < list.len() {
        mask |= 1 << list[i];
        i += 1;
    }
    mask
}

/// AMX-BF16 (22), AMX-TILE (24), AMX-INT8 (25) in CPUID.7.0:EDX; AMX-FP16
/// (21) and AMX-COMPLEX in CPUID.7.1:EAX / EDX.
const NO_AMX: [Hidden; 2] = [
    Hidden {
        leaf: 7,
        subleaf: 0,
        eax: 0,
        ebx: 0,
        ecx: 0,
        edx: bits(&[22, 24, 25]),
    },
    Hidden {
        leaf: 7,
        subleaf: 1,
        eax: bits(&[21]),
        ebx: 0,
        ecx: 0,
        edx: bits(&[8]),
    },
];

/// Every AVX-512 extension (CPUID.7.0 EBX: F, DQ, IFMA, PF, ER, CD, BW, VL;
/// ECX: VBMI, VBMI2, VNNI, BITALG, VPOPCNTDQ; EDX: 4VNNIW, 4FMAPS,
/// VP2INTERSECT, FP16; CPUID.7.1:EAX: AVX-VNNI, AVX512-BF16, AVX-IFMA;
/// EDX: AVX-VNNI-INT8, AVX-NE-CONVERT, AVX-VNNI-INT16, AVX10) and AMX.
const AVX2_ONLY: [Hidden; 2] = [
    Hidden {
        leaf: 7,
        subleaf: 0,
        eax: 0,
        ebx: bits(&[16, 17, 21, 26, 27, 28, 30, 31]),
        ecx: bits(&[1, 6, 11, 12, 14]),
        edx: bits(&[2, 3, 8, 22, 23, 24, 25]),
    },
    Hidden {
        leaf: 7,
        subleaf: 1,
        eax: bits(&[4, 5, 21, 23]),
        ebx: 0,
        ecx: 0,
        edx: bits(&[4, 5, 8, 10, 19]),
    },
];

static mut HIDDEN: &[Hidden] = &[];

fn cpuid_faulting(on: bool) -> bool {
    // SAFETY: ARCH_SET_CPUID only changes whether CPUID faults in this thread.
    unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_SET_CPUID, (!on) as libc::c_long) == 0 }
}

fn masked(leaf: u32, subleaf: u32) -> CpuidResult {
    let mut r = __cpuid_count(leaf, subleaf);
    // SAFETY: HIDDEN is written once, before faulting is turned on.
    for h in unsafe { HIDDEN } {
        if h.leaf == leaf && h.subleaf == subleaf {
            r.eax &= !h.eax;
            r.ebx &= !h.ebx;
            r.ecx &= !h.ecx;
            r.edx &= !h.edx;
        }
    }
    r
}

extern "C" fn on_segv(_sig: libc::c_int, _info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: the kernel passes a ucontext_t; RIP points at the faulting
    // instruction, readable since it was just fetched.
    unsafe {
        let gregs = &mut (*(context as *mut libc::ucontext_t)).uc_mcontext.gregs;
        let rip = gregs[libc::REG_RIP as usize] as *const u8;
        if *rip != 0x0f || *rip.add(1) != 0xa2 {
            // A real fault: die of it with the default action.
            libc::signal(libc::SIGSEGV, libc::SIG_DFL);
            return;
        }
        let (leaf, subleaf) = (
            gregs[libc::REG_RAX as usize] as u32,
            gregs[libc::REG_RCX as usize] as u32,
        );
        cpuid_faulting(false);
        let r = masked(leaf, subleaf);
        cpuid_faulting(true);
        gregs[libc::REG_RAX as usize] = r.eax as i64;
        gregs[libc::REG_RBX as usize] = r.ebx as i64;
        gregs[libc::REG_RCX as usize] = r.ecx as i64;
        gregs[libc::REG_RDX as usize] = r.edx as i64;
        gregs[libc::REG_RIP as usize] += 2;
    }
}

extern "C" fn init() {
    let hidden: &'static [Hidden] = match std::env::var("CPUID_CAP").as_deref() {
        Ok("avx512") => &NO_AMX,
        Ok("avx2") => &AVX2_ONLY,
        Ok("") | Err(_) => return,
        Ok(other) => {
            eprintln!("cpuid-cap: CPUID_CAP={other:?} is not avx512 or avx2; nothing hidden");
            return;
        }
    };
    // SAFETY: written before any handler can run; sigaction with a valid
    // handler.
    unsafe {
        HIDDEN = hidden;
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_segv as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGSEGV, &action, std::ptr::null_mut());
    }
    if !cpuid_faulting(true) {
        eprintln!("cpuid-cap: this CPU or kernel has no CPUID faulting; nothing hidden");
    }
}

#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = init;
