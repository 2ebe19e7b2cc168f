//! Typed commands and events: everything of `qmp_proto::typed`, and the
//! [`Qmp`](crate::Qmp) methods that take them: `execute`,
//! `human_monitor_command`, `schema`, `transaction`, `find`, `wait_for`
//! and, with the `qapi` feature, `execute_qapi`.
//!
//! Those methods are `qmp_client`'s (see [`qmp_client::typed`]), the same
//! for every runtime.
//!
//! ```
//! use qmp_smol::typed::commands::{DeviceAdd, DeviceDel, QueryStatus};
//! use qmp_smol::typed::events::DeviceDeleted;
//! use qmp_smol::{ConnectOptions, Qmp};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), qmp_smol::Error> {
//! # let qemu = qmp_mock::docs_qemu();
//! # let socket = qemu.path().unwrap();
//! # smol::block_on(async {
//! // A mock QEMU's socket here, so that this example runs as a test.
//! let qmp = Qmp::connect_unix(&socket, ConnectOptions::default()).await?;
//! println!("running: {}", qmp.execute(&QueryStatus).await?.running);
//!
//! qmp.execute(&DeviceAdd::new("usb-tablet").id("tablet0")).await?;
//! let cursor = qmp.cursor();
//! qmp.execute(&DeviceDel::new("tablet0")).await?;
//! let gone = DeviceDeleted::matching_device("tablet0");
//! let deleted = qmp.wait_for(cursor, &gone, Duration::from_secs(10)).await?;
//! println!("{} deleted", deleted.data.path);
//! # assert_eq!(deleted.data.path, "/machine/peripheral/tablet0");
//!
//! println!("{}", qmp.human_monitor_command("info version").await?);
//! # assert!(qmp.execute(&QueryStatus).await?.running);
//! # Ok(()) })
//! # }
//! ```

pub use qmp_client::typed::*;
