//! Typed commands and events: everything of [`qmp_proto::typed`], and the
//! [`Qmp`] methods that take them: `execute`, `execute_with_fd`,
//! `human_monitor_command`, `schema`, `transaction`, `find`, `wait_for`
//! and, with the `qapi` feature, `execute_qapi`.
//!
//! Those methods are compositions of the raw ones with the sans-IO values
//! of `qmp_proto::typed`, the same for every runtime, so they are written
//! once, in `qmp-proto`, and expanded here.
//!
//! ```no_run
//! use qmp_smol::typed::commands::{DeviceAdd, DeviceDel, QueryStatus};
//! use qmp_smol::typed::events::DeviceDeleted;
//! use qmp_smol::{ConnectOptions, Qmp};
//! use std::time::Duration;
//!
//! # async fn run() -> Result<(), qmp_smol::Error> {
//! let qmp = Qmp::connect_unix("/tmp/qmp.sock", ConnectOptions::default()).await?;
//! println!("running: {}", qmp.execute(&QueryStatus).await?.running);
//!
//! qmp.execute(&DeviceAdd::new("usb-tablet").id("tablet0")).await?;
//! let cursor = qmp.cursor();
//! qmp.execute(&DeviceDel::new("tablet0")).await?;
//! let gone = DeviceDeleted::matching_device("tablet0");
//! let deleted = qmp.wait_for(cursor, &gone, Duration::from_secs(10)).await?;
//! println!("{} deleted", deleted.data.path);
//!
//! println!("{}", qmp.human_monitor_command("info version").await?);
//! # Ok(()) }
//! ```

use crate::Qmp;

pub use qmp_proto::typed::*;

qmp_proto::__typed_adapter_methods!(Qmp);
