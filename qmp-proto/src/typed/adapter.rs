//! The typed methods of the adapters' `Qmp`, written once.
//!
//! Each method is a composition of the adapter's own raw methods
//! (`execute_as`, `execute_with_fds`, `find_events`, `wait_for_event`) with
//! the sans-IO values of [`typed`](super). Nothing in it depends on the
//! runtime, and nothing in it could live in this crate as a plain function,
//! since every method awaits an adapter call. Rather than write the same
//! glue in `qmp-tokio` and `qmp-smol`, both expand this macro (as the
//! integration tests compile one body for both runtimes with
//! `on_both_runtimes!`). It expands in the adapter crate, so its `qapi`
//! feature is the adapter's.

/// Expands to `impl $qmp { ... }` with the typed methods. The type must
/// have `execute_as`, `execute_with_fds`, `find_events`, `wait_for_event`
/// with the signatures of the adapters, and `schema_cache(&self) ->
/// &SchemaCache`. Internal to `qmp-tokio` and `qmp-smol`: not a stable
/// interface.
#[doc(hidden)]
#[macro_export]
macro_rules! __typed_adapter_methods {
    ($qmp:ident) => {
        /// Typed commands and events (see [`qmp_proto::typed`]).
        impl $qmp {
            /// Runs a typed command and decodes its result, e.g.
            /// `qmp.execute(&QueryStatus).await?.running`.
            ///
            /// Cancel safety: as [`execute_raw`](Self::execute_raw).
            pub async fn execute<C: $crate::typed::Command + ?Sized>(
                &self,
                command: &C,
            ) -> Result<C::Returns, $crate::Error> {
                self.execute_as(C::NAME, command).await
            }

            /// Runs a typed command that takes a file descriptor
            /// ([`Getfd`]($crate::typed::commands::Getfd),
            /// [`AddFd`]($crate::typed::commands::AddFd)) and passes `fd`
            /// with it. Only over a Unix socket.
            ///
            /// Cancel safety: as [`execute_with_fds`](Self::execute_with_fds).
            pub async fn execute_with_fd<C: $crate::typed::Command + ?Sized>(
                &self,
                command: &C,
                fd: ::std::os::fd::OwnedFd,
            ) -> Result<C::Returns, $crate::Error> {
                let raw = self.execute_with_fds(C::NAME, command, vec![fd]).await?;
                Ok(raw.decode()?)
            }

            /// Runs a human monitor (HMP) command line and returns its
            /// output (go-qmp's `RunHuman`).
            ///
            /// Cancel safety: as [`execute_raw`](Self::execute_raw).
            pub async fn human_monitor_command(
                &self,
                command_line: &str,
            ) -> Result<String, $crate::Error> {
                let command = $crate::typed::commands::HumanMonitorCommand::new(command_line);
                self.execute(&command).await
            }

            /// The connected QEMU's schema (`query-qmp-schema`), fetched on
            /// the first call and kept for the connection's life.
            ///
            /// Cancel safety: dropping the future only forgoes this fetch.
            pub async fn schema(
                &self,
            ) -> Result<::std::sync::Arc<$crate::typed::schema::Schema>, $crate::Error> {
                if let Some(schema) = self.schema_cache().get() {
                    return Ok(schema);
                }
                let entries = self
                    .execute(&$crate::typed::commands::QueryQmpSchema)
                    .await?;
                Ok(self.schema_cache().insert(entries))
            }

            /// Runs a transaction (go-qmp's `RunTransaction`) once the
            /// connected QEMU's schema says it accepts every action;
            /// otherwise nothing is sent and the error is
            /// [`Rejected`]($crate::Error::Rejected) with
            /// [`UnsupportedAction`]($crate::SendError::UnsupportedAction).
            ///
            /// Cancel safety: as [`execute_raw`](Self::execute_raw).
            pub async fn transaction(
                &self,
                transaction: &$crate::typed::transaction::Transaction,
            ) -> Result<$crate::typed::Empty, $crate::Error> {
                let schema = self.schema().await?;
                schema
                    .check_transaction(transaction)
                    .map_err($crate::Error::Rejected)?;
                self.execute(transaction).await
            }

            /// The kept events at or after `after` that `matcher` selects,
            /// decoded, oldest first, without waiting (go-qmp's
            /// `FindBlockJobCompletedEvent` is
            /// `find(cursor, &BlockJobCompleted::for_device(job))`).
            pub fn find<E: $crate::typed::Event + 'static>(
                &self,
                after: $crate::Cursor,
                matcher: &$crate::typed::EventMatcher<E>,
            ) -> Vec<$crate::typed::TypedEvent<E>> {
                matcher.decode_all(self.find_events(after, &matcher.filter()))
            }

            /// Waits up to `timeout` for the first event at or after
            /// `after` that `matcher` selects, and decodes it. The event
            /// may already have arrived: take the cursor before the
            /// command that causes it (go-qmp's `Wait...Event` helpers are
            /// `wait_for(cursor, &DeviceDeleted::matching_device(id), t)`
            /// and the like).
            ///
            /// Cancel safety: dropping the future drops the wait, nothing
            /// else.
            pub async fn wait_for<E: $crate::typed::Event + 'static>(
                &self,
                after: $crate::Cursor,
                matcher: &$crate::typed::EventMatcher<E>,
                timeout: ::std::time::Duration,
            ) -> Result<$crate::typed::TypedEvent<E>, $crate::Error> {
                let found = self
                    .wait_for_event(after, matcher.filter(), timeout)
                    .await?;
                Ok(matcher.decode(found)?)
            }

            /// Runs any command of the generated `qapi-qmp` crate (feature
            /// `qapi`), e.g. `qmp.execute_qapi(qapi_qmp::query_version {})`.
            ///
            /// Cancel safety: as [`execute_raw`](Self::execute_raw).
            #[cfg(feature = "qapi")]
            pub async fn execute_qapi<C: $crate::typed::qapi::qapi_spec::Command>(
                &self,
                command: C,
            ) -> Result<C::Ok, $crate::Error> {
                self.execute(&$crate::typed::qapi::Qapi(command)).await
            }
        }
    };
}
