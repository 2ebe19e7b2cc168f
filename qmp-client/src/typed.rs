//! Typed commands and events: everything of [`qmp_proto::typed`], and the
//! [`Qmp`] methods that take them: [`execute`](Qmp::execute),
//! [`human_monitor_command`](Qmp::human_monitor_command),
//! [`schema`](Qmp::schema), [`check_arguments`](Qmp::check_arguments),
//! [`transaction`](Qmp::transaction),
//! [`find`](Qmp::find), [`wait_for`](Qmp::wait_for) and, with the `qapi`
//! feature, `execute_qapi`. Each is a short composition of
//! [`Qmp::call`] and the event methods with the values of
//! `qmp_proto::typed`.

use crate::call::Call;
use crate::runtime::Runtime;
use crate::{Cursor, Error, Qmp, SendError};
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

pub use qmp_proto::typed::*;

/// Typed commands and events (see [`qmp_proto::typed`]).
impl<R: Runtime> Qmp<R> {
    /// A typed command, e.g. `qmp.execute(&QueryStatus).await?.running`:
    /// a [`Call`] like [`call`](Qmp::call)'s, whose result decodes into
    /// the command's return type. Set it up the same way (timeout, OOB,
    /// descriptors) before awaiting it.
    pub fn execute<'a, C>(&'a self, command: &'a C) -> Call<'a, R, C, C::Returns>
    where
        C: Command + Sync + ?Sized,
    {
        self.call(C::NAME, command)
            .with_decoder(|raw| raw.decode().map_err(Error::from))
    }

    /// Runs a human monitor (HMP) command line and returns its output
    /// (go-qmp's `RunHuman`).
    ///
    /// Cancel safety: as [`Call`].
    pub async fn human_monitor_command(&self, command_line: &str) -> Result<String, Error> {
        let command = commands::HumanMonitorCommand::new(command_line);
        self.execute(&command).await
    }

    /// The connected QEMU's schema (`query-qmp-schema`), fetched on the
    /// first call and kept for the connection's life. Concurrent first
    /// calls may both fetch it; the first result is kept.
    ///
    /// Cancel safety: dropping the future only forgoes this fetch.
    pub async fn schema(&self) -> Result<Arc<schema::Schema>, Error> {
        if let Some(schema) = self.schema_cache().get() {
            return Ok(schema.clone());
        }
        // Unchecked: checking it would need the schema it fetches.
        let fetch = self.execute(&commands::QueryQmpSchema);
        let entries = fetch.skip_argument_check().await?;
        let schema = Arc::new(schema::Schema::new(entries));
        Ok(self.schema_cache().get_or_init(|| schema).clone())
    }

    /// Checks `arguments` of command `name` against the connected QEMU's
    /// [`schema`](Qmp::schema), without sending anything: the warnings
    /// (deprecated or unstable commands, members, enum values) when QEMU
    /// would accept them, else [`Error::Rejected`] with
    /// [`SendError::InvalidArguments`](crate::SendError::InvalidArguments)
    /// listing every problem (see [`Call::check_arguments`], which runs
    /// this before sending, and [`check`](qmp_proto::typed::check) for
    /// what is checked). Other errors are those of fetching the schema, or
    /// of arguments that do not serialize to an object.
    ///
    /// ```no_run
    /// # async fn f(qmp: qmp_client::Qmp<impl qmp_client::Runtime>) -> Result<(), qmp_client::Error> {
    /// use serde_json::json;
    ///
    /// let warnings = qmp.check_arguments("block-commit", &json!({"device": "disk0", "top": "top.qcow2"})).await?;
    /// for warning in &warnings {
    ///     println!("{warning}"); // "arguments.top: deprecated"
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// Cancel safety: dropping the future only forgoes the schema fetch.
    pub async fn check_arguments<A: Serialize + ?Sized>(
        &self,
        name: &str,
        arguments: &A,
    ) -> Result<Vec<check::ArgumentProblem>, Error> {
        let arguments = serde_json::to_value(arguments).map_err(|e| {
            Error::Rejected(SendError::Serialize {
                detail: e.to_string(),
            })
        })?;
        if !matches!(arguments, Value::Null | Value::Object(_)) {
            return Err(Error::Rejected(SendError::ArgumentsNotObject));
        }
        let schema = self.schema().await?;
        schema
            .check_arguments(name, &arguments)
            .into_result()
            .map_err(|problems| Error::Rejected(SendError::InvalidArguments(problems)))
    }

    /// Runs a transaction (go-qmp's `RunTransaction`) once the connected
    /// QEMU's schema says it accepts every action; otherwise nothing is
    /// sent and the error is [`Rejected`](Error::Rejected) with
    /// [`UnsupportedAction`](crate::SendError::UnsupportedAction).
    ///
    /// Cancel safety: as [`Call`].
    pub async fn transaction(
        &self,
        transaction: &transaction::Transaction,
    ) -> Result<Empty, Error> {
        let schema = self.schema().await?;
        schema
            .check_transaction(transaction)
            .map_err(Error::Rejected)?;
        self.execute(transaction).await
    }

    /// The kept events at or after `after` that `matcher` selects, decoded,
    /// oldest first, without waiting (go-qmp's `FindBlockJobCompletedEvent`
    /// is `find(cursor, &BlockJobCompleted::for_device(job))`).
    pub fn find<E: Event + 'static>(
        &self,
        after: Cursor,
        matcher: &EventMatcher<E>,
    ) -> Vec<TypedEvent<E>> {
        matcher.decode_all(self.find_events(after, &matcher.filter()))
    }

    /// Waits up to `timeout` for the first event at or after `after` that
    /// `matcher` selects, and decodes it. The event may already have
    /// arrived: take the cursor before the command that causes it (go-qmp's
    /// `Wait...Event` helpers are `wait_for(cursor,
    /// &DeviceDeleted::matching_device(id), t)` and the like).
    ///
    /// Cancel safety: dropping the future drops the wait, nothing else.
    pub async fn wait_for<E: Event + 'static>(
        &self,
        after: Cursor,
        matcher: &EventMatcher<E>,
        timeout: Duration,
    ) -> Result<TypedEvent<E>, Error> {
        let found = self
            .wait_for_event(after, matcher.filter(), timeout)
            .await?;
        Ok(matcher.decode(found)?)
    }

    /// Runs any command of the generated `qapi-qmp` crate (feature `qapi`),
    /// e.g. `qmp.execute_qapi(qapi_qmp::query_version {})`.
    ///
    /// Cancel safety: as [`Call`].
    #[cfg(feature = "qapi")]
    pub async fn execute_qapi<C>(&self, command: C) -> Result<C::Ok, Error>
    where
        C: qapi::qapi_spec::Command + Sync,
        C::Ok: Send,
    {
        self.execute(&qapi::Qapi(command)).await
    }
}
