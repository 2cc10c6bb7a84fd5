//! The options several commands share, each declared once and
//! `#[command(flatten)]`ed into the commands' arguments: how inputs are
//! batched (`--batch-size`, `--max-len`), where models run (`--device`) and
//! on how many CPU threads (`--threads`). A command that words one of them
//! for itself says so with `#[command(mut_arg(...))]` on its arguments.

use candle_core::Device;
use clap::{Args, ValueEnum};

use crate::diag::Diag;
use crate::runtime::run::runner::Schedule;

/// A device `--device` names.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    /// The CPU (every build of plcc).
    Cpu,
    /// The first CUDA GPU (plcc built with `--features cuda`).
    Cuda,
}

impl DeviceArg {
    /// The device this flag names.
    pub fn device(self) -> crate::base::Device {
        match self {
            DeviceArg::Cpu => crate::base::Device::Cpu,
            DeviceArg::Cuda => crate::base::Device::Cuda,
        }
    }

    /// Opens the candle device this flag names.
    pub fn open(self) -> Result<Device, Diag> {
        let device = self.device();
        crate::runtime::device::open(
            device,
            &format!("--device {}", device.name()),
            "use --device cpu",
        )
    }
}

/// `--batch-size` and `--max-len`: how a model's inputs are cut and batched.
#[derive(Args, Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    /// Inputs per forward pass (sorted by length first).
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub batch_size: usize,
    /// Cut each input to its first N tokens (default: the model's maximum
    /// positions).
    #[arg(long, value_name = "N")]
    pub max_len: Option<usize>,
    /// Run one batch at a time on every thread (the shortest time per
    /// batch). By default batches run side by side on the CPU, one per
    /// thread (the most inputs per second).
    #[arg(long)]
    pub one_batch_at_a_time: bool,
}

impl BatchOptions {
    /// How batches share the threads.
    pub fn schedule(&self) -> Schedule {
        if self.one_batch_at_a_time {
            Schedule::OneAtATime
        } else {
            Schedule::SideBySide
        }
    }

    /// Refuses a batch size of 0.
    pub fn check(&self) -> Result<(), Diag> {
        if self.batch_size == 0 {
            return Err(Diag::new(
                "plcc::cli::bad-batch-size",
                "--batch-size must be at least 1",
            ));
        }
        Ok(())
    }
}

/// `--device` of the commands that run a model on the CPU unless told
/// otherwise.
#[derive(Args, Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceOption {
    /// Where the model runs.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceArg,
}

impl DeviceOption {
    /// Opens the device.
    pub fn open(&self) -> Result<Device, Diag> {
        self.device.open()
    }
}

/// `--threads`: the CPU threads models run on.
#[derive(Args, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadsOption {
    /// CPU threads (default: every core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

impl ThreadsOption {
    /// Sets the CPU thread count for candle and gemm (both read
    /// `RAYON_NUM_THREADS` when their pools start, so this must run before
    /// any tensor work). A `--threads` above the machine's cores is lowered
    /// to the core count, with a note on stderr.
    ///
    /// candle's element-wise operations run on a second pool of their own
    /// (`CANDLE_NUM_THREADS`) whose idle workers spin; next to rayon's pool
    /// it oversubscribes the cores (measured on 2 cores: up to 3x slower for
    /// a small model). plcc's inference kernels run on rayon, so candle's
    /// pool is kept to the calling thread unless `CANDLE_NUM_THREADS` is set.
    pub fn apply(&self) -> Result<(), Diag> {
        if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
            std::env::set_var("CANDLE_NUM_THREADS", "1");
        }
        let Some(n) = self.threads else {
            return Ok(());
        };
        if n == 0 {
            return Err(Diag::new(
                "plcc::cli::bad-threads",
                "--threads must be at least 1",
            ));
        }
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        let n = if n > cores {
            eprintln!(
                "note: --threads {n} is more than the {cores} cores of this machine; using {cores}"
            );
            cores
        } else {
            n
        };
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        // gemm runs on rayon's global pool: size it before anything uses it.
        candle_core::utils::init_global_threadpool();
        Ok(())
    }
}
