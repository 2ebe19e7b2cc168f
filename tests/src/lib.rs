//! Shared harness of the workspace's integration tests (in `tests/tests/`).
//!
//! - [`qemu`]: throwaway real QEMU processes (`qemu-system-x86_64 -M none`
//!   and `qemu-storage-daemon`) with a QMP socket in a private directory.
//! - [`runtime`] and [`on_both_runtimes!`]: one test body compiled twice, once
//!   against `qmp-tokio` on tokio and once against `qmp-smol` on async-io.
//! - [`agent`]: a real `qemu-ga` on this host, with an allow-list of
//!   harmless commands, and a scripted mock agent.
//! - [`memory`]: this process's resident-set figures.
//!
//! The mock QEMU and the mock agent are the published `qmp-mock` crate's.
//!
//! Without the default `runtimes` feature only the parts that need nothing
//! but `qmp-proto` remain (the fuzz workspace uses it that way).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "runtimes")]
pub mod agent;
pub mod fuzz_bodies;
pub mod memory;
#[cfg(feature = "runtimes")]
pub mod qemu;
#[cfg(feature = "runtimes")]
pub mod runtime;
