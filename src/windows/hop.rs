//! Hopping (sliding) windows as functions: `hop(<slide>, <size>, <event time>)`, the GROUP BY
//! key users write, and `hop_window(<slide>, <size>, <event time>, <k>)`, the k-th (from the
//! latest) of the windows containing a row, which [`HoppingWindows`](super::HoppingWindows)
//! groups by after giving each row one copy per window.
//!
//! Windows start at multiples of the slide since the Unix epoch (as `date_bin`'s bins do) and
//! are `size` long, so a row belongs to `ceil(size / slide)` windows, or one fewer when the
//! size is not a multiple of the slide.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Int64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, IntervalUnit, TimeUnit};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The name users call: `hop(<slide>, <size>, <event time>)`.
pub(crate) const HOP: &str = "hop";

/// `hop(<slide>, <size>, <event time>)`: the hopping window GROUP BY key. Planning replaces
/// it (see [`HoppingWindows`](super::HoppingWindows)); evaluated anywhere else it fails,
/// because one value cannot stand for the several windows a row belongs to.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct HopFunc {
    signature: Signature,
}

impl HopFunc {
    pub(crate) fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(Self {
            signature: Signature::user_defined(Volatility::Immutable),
        })
    }
}

/// `hop_window(<slide>, <size>, <event time>, <k>)`: the start of the k-th latest window of
/// length `size`, starting every `slide`, that contains the event time; NULL when there is no
/// such window (k ≥ the number of windows containing it).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct HopWindowFunc {
    signature: Signature,
}

impl HopWindowFunc {
    pub(crate) fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(Self {
            signature: Signature::user_defined(Volatility::Immutable),
        })
    }
}

/// Argument types for both functions: two intervals and a timestamp (then `k`).
fn coerce(name: &str, arg_types: &[DataType], with_k: bool) -> Result<Vec<DataType>> {
    let expected = if with_k { 4 } else { 3 };
    if arg_types.len() != expected {
        return plan_err!(
            "{name} takes {expected} arguments: {name}(<slide interval>, <size interval>, \
             <event-time column>{}), got {}",
            if with_k { ", <k>" } else { "" },
            arg_types.len()
        );
    }
    let interval = DataType::Interval(IntervalUnit::MonthDayNano);
    let time = match &arg_types[2] {
        DataType::Timestamp(unit, tz) => DataType::Timestamp(*unit, tz.clone()),
        DataType::Date32 | DataType::Date64 | DataType::Utf8 | DataType::LargeUtf8 => {
            DataType::Timestamp(TimeUnit::Nanosecond, None)
        }
        other => {
            return plan_err!(
                "{name}'s third argument is the event time, a TIMESTAMP column; got {other}"
            );
        }
    };
    let mut types = vec![interval.clone(), interval, time];
    if with_k {
        types.push(DataType::Int64);
    }
    Ok(types)
}

impl ScalarUDFImpl for HopFunc {
    fn name(&self) -> &str {
        HOP
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce(HOP, arg_types, false)
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[2].clone())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        exec_err!(
            "hop(<slide>, <size>, <event time>) puts a row in several windows, so it can only \
             be a GROUP BY key of its own (GROUP BY hop(INTERVAL '1 minute', INTERVAL '5 \
             minutes', _timestamp), …)"
        )
    }
}

impl ScalarUDFImpl for HopWindowFunc {
    fn name(&self) -> &str {
        "hop_window"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce("hop_window", arg_types, true)
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[2].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [slide, size, time, k] = args.args.as_slice() else {
            return exec_err!("hop_window takes 4 arguments, got {}", args.args.len());
        };
        let (ColumnarValue::Scalar(slide), ColumnarValue::Scalar(size)) = (slide, size) else {
            return exec_err!("hop_window's slide and size must be constant intervals");
        };
        let DataType::Timestamp(unit, _) = &time.data_type() else {
            return exec_err!("hop_window's event time is a {}", time.data_type());
        };
        let per_unit = nanos_per(unit);
        let slide = in_unit(interval_nanos(slide, "slide")?, per_unit, "slide", unit)?;
        let size = in_unit(interval_nanos(size, "size")?, per_unit, "size", unit)?;
        let rows = args.number_rows;
        let time: ArrayRef = time.to_array(rows)?;
        let times = cast(&time, &DataType::Int64)?;
        let times = times.as_primitive::<Int64Type>();
        let k: ArrayRef = k.to_array(rows)?;
        let ks = k.as_primitive::<Int64Type>();
        let starts: Int64Array = times
            .iter()
            .zip(ks.iter())
            .map(|(t, k)| window_start(t?, k?, slide, size))
            .collect();
        let starts: ArrayRef = Arc::new(starts);
        Ok(ColumnarValue::Array(cast(&starts, args.return_type())?))
    }
}

/// The start of the k-th latest window containing `t` (all in one unit), if there is one.
fn window_start(t: i64, k: i64, slide: i64, size: i64) -> Option<i64> {
    let start = t.div_euclid(slide).checked_sub(k)?.checked_mul(slide)?;
    (start.checked_add(size)? > t).then_some(start)
}

fn nanos_per(unit: &TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    }
}

/// A fixed interval's length in nanoseconds; months (of varying length) and non-positive
/// lengths are refused, naming `what` (slide or size).
pub(crate) fn interval_nanos(value: &ScalarValue, what: &str) -> Result<i64> {
    let nanos = match value {
        ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => {
            i64::from(v.days) * 86_400_000_000_000 + v.nanoseconds
        }
        ScalarValue::IntervalDayTime(Some(v)) => {
            (i64::from(v.days) * 86_400_000 + i64::from(v.milliseconds)) * 1_000_000
        }
        other => {
            return plan_err!(
                "hop's {what} must be a fixed interval (days, hours, minutes, seconds), not \
                 months or NULL; got {other}"
            );
        }
    };
    if nanos <= 0 {
        return plan_err!("hop's {what} must be longer than zero; got {value}");
    }
    Ok(nanos)
}

fn in_unit(nanos: i64, per_unit: i64, what: &str, unit: &TimeUnit) -> Result<i64> {
    if nanos % per_unit != 0 {
        return exec_err!("hop's {what} is not a whole number of the event time's unit ({unit:?})");
    }
    Ok(nanos / per_unit)
}

#[cfg(test)]
mod tests {
    use super::window_start;

    #[test]
    fn a_row_is_in_every_window_that_contains_it() {
        // Slide 10, size 30: t = 25 is in [20,50), [10,40), [0,30).
        let starts: Vec<Option<i64>> = (0..4).map(|k| window_start(25, k, 10, 30)).collect();
        assert_eq!(starts, vec![Some(20), Some(10), Some(0), None]);
        // Size not a multiple of the slide: slide 10, size 25, t = 27 is in [20,45), [10,35).
        let starts: Vec<Option<i64>> = (0..3).map(|k| window_start(27, k, 10, 25)).collect();
        assert_eq!(starts, vec![Some(20), Some(10), None]);
        // t = 33: [30,55), [20,45), and [10,35) as well.
        let starts: Vec<Option<i64>> = (0..3).map(|k| window_start(33, k, 10, 25)).collect();
        assert_eq!(starts, vec![Some(30), Some(20), Some(10)]);
        // Before the epoch.
        assert_eq!(window_start(-5, 0, 10, 30), Some(-10));
    }
}
