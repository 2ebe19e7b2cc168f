//! `transaction`: several actions applied atomically — all of them or
//! none.
//!
//! A [`Transaction`] is a command like any other; build its actions with
//! the constructors of [`TransactionAction`]. Which actions a QEMU accepts
//! is in its schema: check with
//! [`Schema::check_transaction`](super::schema::Schema::check_transaction)
//! before sending (the adapters' `transaction` method does, against the
//! connected QEMU's schema).
//!
//! ```
//! use qmp_proto::typed::commands::BlockdevBackup;
//! use qmp_proto::typed::transaction::{CompletionMode, Transaction, TransactionAction};
//! use qmp_proto::typed::types::MirrorSyncMode;
//!
//! let transaction = Transaction::new([
//!     TransactionAction::block_dirty_bitmap_add("disk0", "bitmap0"),
//!     TransactionAction::blockdev_backup(
//!         BlockdevBackup::new("disk0", "backup0", MirrorSyncMode::Full).job_id("job0"),
//!     ),
//! ])
//! .completion_mode(CompletionMode::Grouped);
//! let json = serde_json::to_value(&transaction).unwrap();
//! assert_eq!(json["actions"][0]["type"], "block-dirty-bitmap-add");
//! assert_eq!(json["actions"][0]["data"]["name"], "bitmap0");
//! assert_eq!(json["properties"]["completion-mode"], "grouped");
//! ```

use super::commands::BlockdevBackup;
use super::open_enum::open_enum;
use super::{impl_command, Empty};
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `transaction`: runs [`actions`](Self::actions) atomically. If one
/// fails, none takes effect.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Transaction {
    /// The actions, in order.
    pub actions: Vec<TransactionAction>,
    /// Settings of the whole transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<TransactionProperties>,
}

impl Transaction {
    /// A transaction of `actions`.
    pub fn new(actions: impl IntoIterator<Item = TransactionAction>) -> Self {
        Transaction {
            actions: actions.into_iter().collect(),
            properties: None,
        }
    }

    /// Sets the completion mode of the jobs the actions start.
    pub fn completion_mode(mut self, mode: CompletionMode) -> Self {
        self.properties
            .get_or_insert_with(TransactionProperties::default)
            .completion_mode = Some(mode);
        self
    }
}

/// Settings of a [`Transaction`] (QAPI `TransactionProperties`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct TransactionProperties {
    /// How the jobs started by the actions complete. Default: individual.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_mode: Option<CompletionMode>,
}

open_enum! {
    /// How the jobs a transaction starts complete (QAPI
    /// `ActionCompletionMode`).
    pub enum CompletionMode {
        /// Each job completes or fails on its own.
        Individual = "individual",
        /// If one job fails, the others are cancelled; they complete
        /// together (not every action supports it).
        Grouped = "grouped",
    }
}

/// One action of a [`Transaction`]: its type and its data (go-qmp's
/// `TransactionAction{Type, Data}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransactionAction {
    /// The action's type, e.g. `"block-dirty-bitmap-add"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The action's data (an object).
    pub data: Value,
}

/// A dirty bitmap of a node (QAPI `BlockDirtyBitmap`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDirtyBitmap {
    /// The node (or device) that has the bitmap.
    pub node: String,
    /// The bitmap's name.
    pub name: String,
}

/// The data of `block-dirty-bitmap-add` (QAPI `BlockDirtyBitmapAdd`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDirtyBitmapAdd {
    /// The node (or device) to track.
    pub node: String,
    /// The new bitmap's name.
    pub name: String,
    /// Bytes per bit, a power of 2 (default: chosen from the image's
    /// cluster size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granularity: Option<u32>,
    /// Save the bitmap in the image when it is closed (qcow2). Default:
    /// false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent: Option<bool>,
    /// Create it disabled (not recording writes). Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

/// A bitmap given to `block-dirty-bitmap-merge`: by name on the target's
/// node, or on any node (QAPI `BlockDirtyBitmapOrStr`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BlockDirtyBitmapOrStr {
    /// A bitmap of the target's node, by name.
    Local(String),
    /// A bitmap of any node.
    External(BlockDirtyBitmap),
}

/// The data of `block-dirty-bitmap-merge` (QAPI `BlockDirtyBitmapMerge`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDirtyBitmapMerge {
    /// The node of the target bitmap.
    pub node: String,
    /// The target bitmap's name.
    pub target: String,
    /// The bitmaps merged into it.
    pub bitmaps: Vec<BlockDirtyBitmapOrStr>,
}

/// The data of `blockdev-snapshot` (QAPI `BlockdevSnapshot`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockdevSnapshot {
    /// The node that becomes the backing image.
    pub node: String,
    /// The new top node (already added, with no backing image).
    pub overlay: String,
}

/// The data of `blockdev-snapshot-internal-sync` (QAPI
/// `BlockdevSnapshotInternal`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockdevSnapshotInternal {
    /// The device or node name.
    pub device: String,
    /// The snapshot's name, new in the image.
    pub name: String,
}

impl TransactionAction {
    /// An action of type `kind` with `data`, for actions without a
    /// constructor. Fails only if `data` cannot be serialized.
    pub fn new<T: Serialize + ?Sized>(kind: &str, data: &T) -> Result<Self, serde_json::Error> {
        Ok(TransactionAction {
            kind: kind.into(),
            data: serde_json::to_value(data)?,
        })
    }

    /// For the types of this module, whose serialization cannot fail.
    fn of<T: Serialize>(kind: &str, data: &T) -> Self {
        let data = serde_json::to_value(data).unwrap_or_else(|_| Value::Object(Map::new()));
        TransactionAction {
            kind: kind.into(),
            data,
        }
    }

    /// `abort`: always fails, so the transaction does nothing (for tests).
    pub fn abort() -> Self {
        Self::of("abort", &Empty {})
    }

    /// `block-dirty-bitmap-add` of bitmap `name` on `node`, with default
    /// settings.
    pub fn block_dirty_bitmap_add(node: impl Into<String>, name: impl Into<String>) -> Self {
        Self::block_dirty_bitmap_add_with(BlockDirtyBitmapAdd {
            node: node.into(),
            name: name.into(),
            granularity: None,
            persistent: None,
            disabled: None,
        })
    }

    /// `block-dirty-bitmap-add` with every setting.
    pub fn block_dirty_bitmap_add_with(bitmap: BlockDirtyBitmapAdd) -> Self {
        Self::of("block-dirty-bitmap-add", &bitmap)
    }

    fn bitmap(kind: &str, node: String, name: String) -> Self {
        Self::of(kind, &BlockDirtyBitmap { node, name })
    }

    /// `block-dirty-bitmap-remove` of bitmap `name` on `node`.
    pub fn block_dirty_bitmap_remove(node: impl Into<String>, name: impl Into<String>) -> Self {
        Self::bitmap("block-dirty-bitmap-remove", node.into(), name.into())
    }

    /// `block-dirty-bitmap-clear` of bitmap `name` on `node`.
    pub fn block_dirty_bitmap_clear(node: impl Into<String>, name: impl Into<String>) -> Self {
        Self::bitmap("block-dirty-bitmap-clear", node.into(), name.into())
    }

    /// `block-dirty-bitmap-enable` of bitmap `name` on `node`.
    pub fn block_dirty_bitmap_enable(node: impl Into<String>, name: impl Into<String>) -> Self {
        Self::bitmap("block-dirty-bitmap-enable", node.into(), name.into())
    }

    /// `block-dirty-bitmap-disable` of bitmap `name` on `node`.
    pub fn block_dirty_bitmap_disable(node: impl Into<String>, name: impl Into<String>) -> Self {
        Self::bitmap("block-dirty-bitmap-disable", node.into(), name.into())
    }

    /// `block-dirty-bitmap-merge`.
    pub fn block_dirty_bitmap_merge(merge: BlockDirtyBitmapMerge) -> Self {
        Self::of("block-dirty-bitmap-merge", &merge)
    }

    /// `blockdev-backup`: starts a backup job.
    pub fn blockdev_backup(backup: BlockdevBackup) -> Self {
        Self::of("blockdev-backup", &backup)
    }

    /// `blockdev-snapshot`: puts `overlay` on top of `node`.
    pub fn blockdev_snapshot(node: impl Into<String>, overlay: impl Into<String>) -> Self {
        let snapshot = BlockdevSnapshot {
            node: node.into(),
            overlay: overlay.into(),
        };
        Self::of("blockdev-snapshot", &snapshot)
    }

    /// `blockdev-snapshot-internal-sync`: an internal snapshot `name` of
    /// `device`.
    pub fn blockdev_snapshot_internal_sync(
        device: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        let snapshot = BlockdevSnapshotInternal {
            device: device.into(),
            name: name.into(),
        };
        Self::of("blockdev-snapshot-internal-sync", &snapshot)
    }
}

impl_command! {
    Transaction => "transaction", Empty;
}
