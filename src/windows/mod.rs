//! Event-time windows among a GROUP BY's keys: tumbling `date_bin(<interval>, <event-time
//! column>[, <origin>])` and hopping `hop(<slide>, <size>, <event-time column>)`, recognised in
//! a physical plan so continuous and live queries can close windows when the watermark passes
//! their end.

mod expand;
mod hop;

pub use expand::HoppingWindows;

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::common::ScalarValue;
use datafusion::functions::datetime::date_bin::DateBinFunc;
use datafusion::physical_expr::expressions::{CastExpr, Column, Literal, TryCastExpr};
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};
use datafusion::physical_plan::aggregates::PhysicalGroupBy;

use crate::error::{Result, TopicsError};
use hop::HopWindowFunc;

/// The window functions a session needs: `hop` (the GROUP BY key users write) and
/// `hop_window` (what [`HoppingWindows`] rewrites it to).
pub fn functions() -> Vec<Arc<datafusion::logical_expr::ScalarUDF>> {
    vec![
        Arc::new(hop::HopFunc::udf()),
        Arc::new(HopWindowFunc::udf()),
    ]
}

/// A window start among the group keys: `date_bin(<size>, <event time>[, <origin>])` or
/// `hop_window(<slide>, <size>, <event time>, <k>)`; the window ends `size_ms` after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowColumn {
    /// Index of the window start among the group columns (and in the state's rows).
    pub index: usize,
    /// Window length in milliseconds.
    pub size_ms: i64,
}

/// The group key that is `date_bin(<interval>, <event-time column>[, <origin>])` or a hopping
/// window over an event-time column, if any.
pub(crate) fn find_window(
    group: &PhysicalGroupBy,
    event_time_columns: &BTreeSet<String>,
) -> Result<Option<WindowColumn>> {
    for (index, (expr, _)) in group.expr().iter().enumerate() {
        if let Some(call) = ScalarFunctionExpr::try_downcast_func::<HopWindowFunc>(expr.as_ref()) {
            let args = call.args();
            let over_event_time = args
                .get(2)
                .and_then(column_of)
                .is_some_and(|c| event_time_columns.contains(c.name()));
            if let (true, Some(size_ms)) = (over_event_time, window_size_ms(args.get(1))) {
                return Ok(Some(WindowColumn { index, size_ms }));
            }
            continue;
        }
        let Some(call) = ScalarFunctionExpr::try_downcast_func::<DateBinFunc>(expr.as_ref()) else {
            continue;
        };
        let args = call.args();
        let Some(column) = args.get(1).and_then(column_of) else {
            continue;
        };
        if !event_time_columns.contains(column.name()) {
            continue;
        }
        let size_ms = window_size_ms(args.first()).ok_or_else(|| {
            TopicsError::plan(format!(
                "the window date_bin(…, {}) needs a fixed interval (days, hours, minutes, \
                 seconds), not months or a computed one",
                column.name()
            ))
        })?;
        return Ok(Some(WindowColumn { index, size_ms }));
    }
    Ok(None)
}

/// The column an expression reads, through the casts type coercion adds.
fn column_of(expr: &Arc<dyn PhysicalExpr>) -> Option<&Column> {
    if let Some(column) = expr.downcast_ref::<Column>() {
        return Some(column);
    }
    if let Some(cast) = expr.downcast_ref::<CastExpr>() {
        return column_of(cast.expr());
    }
    if let Some(cast) = expr.downcast_ref::<TryCastExpr>() {
        return column_of(cast.expr());
    }
    None
}

/// The length of a `date_bin` stride literal, in milliseconds (none for months).
fn window_size_ms(stride: Option<&Arc<dyn PhysicalExpr>>) -> Option<i64> {
    let literal = stride?.downcast_ref::<Literal>()?;
    let ms = match literal.value() {
        ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => {
            i64::from(v.days) * 86_400_000 + v.nanoseconds / 1_000_000
        }
        ScalarValue::IntervalDayTime(Some(v)) => {
            i64::from(v.days) * 86_400_000 + i64::from(v.milliseconds)
        }
        _ => return None,
    };
    (ms > 0).then_some(ms)
}
