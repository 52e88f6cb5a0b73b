//! Every activity runs in a span naming what it works for: its `workflow_id`, the `order_id`
//! (or `parcel_id`) that workflow id stands for, the activity type and the attempt, so each
//! line an activity logs carries them. When the process traces, the span is a child of the
//! Temporal SDK's activity span, in the trace the workflow's header carries.

use procure_workflows::{order_workflow_id, parcel_workflow_id};
use std::sync::Arc;
use temporalio_sdk::{
    SimplePlugin,
    interceptors::{ActivityInboundInterceptor, ExecuteActivityInput, ExecuteActivityOutput, Next},
};
use tracing::Instrument as _;

/// The activity span's interceptor, as a worker plugin. A worker applies the plugins its
/// client carries (the SDK's OpenTelemetry plugin among them) before its own, so this
/// interceptor runs inside the SDK's activity span.
pub(crate) fn plugin() -> SimplePlugin {
    SimplePlugin::builder("procure-activity-spans")
        .activity_inbound_interceptors(vec![
            Arc::new(ActivitySpans) as Arc<dyn ActivityInboundInterceptor>
        ])
        .build()
}

struct ActivitySpans;

impl ActivityInboundInterceptor for ActivitySpans {
    fn execute_activity<'a>(
        &'a self,
        input: ExecuteActivityInput,
        next: Next<'a, ExecuteActivityInput, ExecuteActivityOutput<'a>>,
    ) -> ExecuteActivityOutput<'a> {
        let info = input.activity_info();
        let workflow_id = info.workflow_id.clone().unwrap_or_default();
        let activity = info.activity_type.clone();
        let attempt = info.attempt;
        Box::pin(async move {
            // Made when first polled: the SDK's activity span is the active context then.
            let span = activity_span(&workflow_id, &activity, attempt);
            next.run(input).instrument(span).await
        })
    }
}

/// What a workflow id stands for: (`"order_id"` or `"parcel_id"`, the id).
pub(crate) fn subject_of(workflow_id: &str) -> Option<(&'static str, &str)> {
    let order = order_workflow_id("");
    let parcel = parcel_workflow_id("");
    if let Some(id) = workflow_id.strip_prefix(order.as_str()) {
        Some(("order_id", id))
    } else {
        workflow_id
            .strip_prefix(parcel.as_str())
            .map(|id| ("parcel_id", id))
    }
}

fn activity_span(workflow_id: &str, activity: &str, attempt: u32) -> tracing::Span {
    let span = match subject_of(workflow_id) {
        Some(("order_id", id)) => tracing::info_span!(
            "activity",
            otel.name = tracing::field::Empty,
            activity,
            attempt,
            workflow_id,
            order_id = id
        ),
        Some((_, id)) => tracing::info_span!(
            "activity",
            otel.name = tracing::field::Empty,
            activity,
            attempt,
            workflow_id,
            parcel_id = id
        ),
        None => tracing::info_span!(
            "activity",
            otel.name = tracing::field::Empty,
            activity,
            attempt,
            workflow_id
        ),
    };
    // The exported span is named after the activity; log lines have it as `activity`.
    if procure_temporal::traces_with_opentelemetry() {
        span.record("otel.name", activity);
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workflow_id_names_its_order_or_parcel() {
        assert_eq!(
            subject_of(&order_workflow_id("ord_1")),
            Some(("order_id", "ord_1"))
        );
        assert_eq!(
            subject_of(&parcel_workflow_id("par_1")),
            Some(("parcel_id", "par_1"))
        );
        assert_eq!(subject_of("price-monitor-m1"), None);
    }
}
