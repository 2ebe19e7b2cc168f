//! [`Subscription`]: a stream of events.

qmp_proto::__adapter_subscription!();
