//! Pushdown analysis: shapes, per-partition ranges, timestamps, and a property test against
//! evaluating the filter row by row.

use std::sync::Arc;

use arrow::array::{
    Array, BooleanArray, Int32Array, Int64Array, RecordBatch, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::common::DFSchema;
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{col, lit};
use datafusion::physical_expr::create_physical_expr;
use proptest::prelude::*;

use super::*;

impl Selection {
    /// [`Selection::offset_ranges`] as spans (`i64::MAX`: open), for compact assertions.
    fn offset_spans(
        &self,
        partition: i32,
        base: Span,
        high: i64,
        upper_skew_ms: Option<i64>,
        offset_at: &dyn Fn(i64) -> Option<i64>,
    ) -> Vec<Span> {
        self.offset_ranges("t", partition, base, high, upper_skew_ms, offset_at)
            .into_iter()
            .map(|r| Span::new(r.start, r.end_or_max()))
            .collect()
    }
}

fn ts(ms: i64) -> Expr {
    Expr::Literal(
        ScalarValue::TimestampMillisecond(Some(ms), Some("UTC".into())),
        None,
    )
}

fn offsets_of(e: Expr) -> Vec<Span> {
    let a = analyze(&e, false);
    assert!(a.exact, "{e} should be exact");
    a.selection
        .offset_spans(0, Span::new(0, i64::MAX), 1_000_000, None, &|_| None)
}

#[test]
fn shapes() {
    let o = || col("_offset");
    assert_eq!(
        offsets_of(o().gt_eq(lit(100i64))),
        vec![Span::new(100, i64::MAX)]
    );
    assert_eq!(offsets_of(o().lt(lit(50i64))), vec![Span::new(0, 50)]);
    assert_eq!(offsets_of(o().eq(lit(7i64))), vec![Span::new(7, 8)]);
    assert_eq!(offsets_of(lit(7i64).lt(o())), vec![Span::new(8, i64::MAX)]);
    assert_eq!(
        offsets_of(o().between(lit(3i64), lit(5i64))),
        vec![Span::new(3, 6)]
    );
    assert_eq!(
        offsets_of(o().in_list(vec![lit(9i64), lit(3i64), lit(4i64)], false)),
        vec![Span::new(3, 5), Span::new(9, 10)]
    );
    assert_eq!(
        offsets_of(o().not_eq(lit(5i64))),
        vec![Span::new(0, 5), Span::new(6, i64::MAX)]
    );
    assert_eq!(
        offsets_of(Expr::Not(Box::new(o().lt(lit(5i64))))),
        vec![Span::new(5, i64::MAX)]
    );
    assert_eq!(
        offsets_of(o().lt(lit(5i64)).or(o().gt(lit(10i64)))),
        vec![Span::new(0, 5), Span::new(11, i64::MAX)]
    );
    // A finite end is cut at the high watermark.
    let a = analyze(&o().lt(lit(5_000_000i64)), false);
    assert_eq!(
        a.selection
            .offset_spans(0, Span::new(0, i64::MAX), 1000, None, &|_| None),
        vec![Span::new(0, 1000)]
    );
    // Contradiction.
    assert!(
        analyze(&o().lt(lit(5i64)).and(o().gt(lit(10i64))), false)
            .selection
            .is_empty()
    );
    assert!(
        analyze(&col("_partition").is_null(), false)
            .selection
            .is_empty()
    );
}

#[test]
fn per_partition_ranges() {
    let e = col("_partition")
        .eq(lit(0i32))
        .and(col("_offset").gt_eq(lit(100i64)))
        .or(col("_partition")
            .eq(lit(1i32))
            .and(col("_offset").lt(lit(50i64))));
    let a = analyze(&e, false);
    assert!(a.exact);
    let base = Span::new(0, i64::MAX);
    assert_eq!(
        a.selection.offset_spans(0, base, 500, None, &|_| None),
        vec![Span::new(100, i64::MAX)]
    );
    assert_eq!(
        a.selection.offset_spans(1, base, 500, None, &|_| None),
        vec![Span::new(0, 50)]
    );
    assert!(
        a.selection
            .offset_spans(2, base, 500, None, &|_| None)
            .is_empty()
    );
    assert!(!a.selection.includes("t", 2));
}

#[test]
fn topics() {
    let topic = |name: &str| lit(name.to_string());
    // Equality and IN lists select topics exactly, alone or with partitions.
    let a = analyze(&col("_topic").eq(topic("a")), false);
    assert!(a.exact);
    assert!(a.selection.includes("a", 0) && !a.selection.includes("b", 0));
    let a = analyze(
        &col("_topic")
            .in_list(vec![topic("a"), topic("c")], false)
            .and(col("_partition").eq(lit(1))),
        false,
    );
    assert!(a.exact);
    assert!(a.selection.includes("c", 1) && !a.selection.includes("c", 0));
    assert!(!a.selection.includes_topic("b"));
    // (a, partition 0) or (b, partition 1): each topic keeps its own partitions.
    let a = analyze(
        &(col("_topic")
            .eq(topic("a"))
            .and(col("_partition").eq(lit(0))))
        .or(topic("b")
            .eq(col("_topic"))
            .and(col("_partition").eq(lit(1)))),
        false,
    );
    assert!(a.exact);
    assert!(a.selection.includes("a", 0) && a.selection.includes("b", 1));
    assert!(!a.selection.includes("a", 1) && !a.selection.includes("b", 0));
    // Contradictions select nothing without asking the brokers.
    let a = analyze(
        &col("_topic")
            .eq(topic("a"))
            .and(col("_topic").eq(topic("b"))),
        false,
    );
    assert!(a.selection.is_empty());
    // Negations and other comparisons are left to DataFusion.
    for e in [
        col("_topic").not_eq(topic("a")),
        col("_topic").in_list(vec![topic("a")], true),
        col("_topic").gt(topic("a")),
        col("_topic").eq(col("x")),
    ] {
        let a = analyze(&e, false);
        assert!(!a.exact && a.selection.is_all(), "{e}");
    }
}

#[test]
fn timestamps() {
    // Lower bound: a seek; exact only when timestamps follow offsets.
    let e = col("_timestamp").gt_eq(ts(5_000));
    assert!(!analyze(&e, false).exact);
    assert!(analyze(&e, true).exact);
    let offset_at = |t: i64| Some(t / 1000); // one message per second from offset 0
    let sel = analyze(&e, false).selection;
    assert_eq!(sel.timestamp_lookups(None), vec![5_000]);
    assert_eq!(
        sel.offset_spans(0, Span::new(0, i64::MAX), 100, None, &offset_at),
        vec![Span::new(5, i64::MAX)]
    );
    // Upper bound: used only with a skew (0 for log-append time).
    let sel = analyze(&col("_timestamp").lt(ts(9_000)), false).selection;
    assert_eq!(
        sel.offset_spans(0, Span::new(0, i64::MAX), 100, None, &offset_at),
        vec![Span::new(0, i64::MAX)]
    );
    assert_eq!(sel.timestamp_lookups(Some(2_000)), vec![11_000]);
    assert_eq!(
        sel.offset_spans(0, Span::new(0, i64::MAX), 100, Some(2_000), &offset_at),
        vec![Span::new(0, 11)]
    );
    // Nanosecond literals compare exactly against millisecond timestamps.
    let e = col("_timestamp").gt(Expr::Literal(
        ScalarValue::TimestampNanosecond(Some(5_000_000_001), None),
        None,
    ));
    assert_eq!(
        analyze(&e, true).selection.regions()[0].timestamps,
        Span::new(5_001, i64::MAX)
    );
}

#[test]
fn other_columns_are_inexact_supersets() {
    let e = col("_offset")
        .lt(lit(10i64))
        .and(col("amount").gt(lit(3i64)));
    let a = analyze(&e, false);
    assert!(!a.exact);
    assert_eq!(
        a.selection
            .offset_spans(0, Span::new(0, i64::MAX), 100, None, &|_| None),
        vec![Span::new(0, 10)]
    );
    // Under NOT an unknown atom must not narrow anything.
    let e = Expr::Not(Box::new(
        col("_offset")
            .lt(lit(10i64))
            .and(col("amount").gt(lit(3i64))),
    ));
    assert!(analyze(&e, false).selection.is_all());
}

// ---- property test: analysis against DataFusion's own evaluation of the predicate ----

const PARTITIONS: i32 = 4;
const OFFSETS: i64 = 40;

fn data() -> RecordBatch {
    let (mut p, mut o, mut t, mut x) = (vec![], vec![], vec![], vec![]);
    for part in 0..PARTITIONS {
        for off in 0..OFFSETS {
            p.push(part);
            o.push(off);
            t.push(1_000 + off * 10);
            x.push((off * 7 + part as i64) % 5);
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("_partition", DataType::Int32, false),
        Field::new("_offset", DataType::Int64, false),
        Field::new(
            "_timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
        Field::new("x", DataType::Int64, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int32Array::from(p)),
            Arc::new(Int64Array::from(o)),
            Arc::new(TimestampMillisecondArray::from(t).with_timezone("UTC")),
            Arc::new(Int64Array::from(x)),
        ],
    )
    .unwrap()
}

fn atom() -> impl Strategy<Value = Expr> {
    let op = prop_oneof![
        Just(Operator::Eq),
        Just(Operator::NotEq),
        Just(Operator::Lt),
        Just(Operator::LtEq),
        Just(Operator::Gt),
        Just(Operator::GtEq)
    ];
    prop_oneof![
        (op.clone(), -1i32..6).prop_map(|(op, v)| Expr::BinaryExpr(BinaryExpr::new(
            Box::new(col("_partition")),
            op,
            Box::new(lit(v))
        ))),
        (op.clone(), -2i64..45).prop_map(|(op, v)| Expr::BinaryExpr(BinaryExpr::new(
            Box::new(col("_offset")),
            op,
            Box::new(lit(v))
        ))),
        (op.clone(), -2i64..45).prop_map(|(op, v)| Expr::BinaryExpr(BinaryExpr::new(
            Box::new(lit(v)),
            op,
            Box::new(col("_offset"))
        ))),
        (op.clone(), 990i64..1_420).prop_map(|(op, v)| Expr::BinaryExpr(BinaryExpr::new(
            Box::new(col("_timestamp")),
            op,
            Box::new(ts(v))
        ))),
        (proptest::collection::vec(-1i64..42, 1..4), any::<bool>())
            .prop_map(|(vs, n)| col("_offset").in_list(vs.into_iter().map(lit).collect(), n)),
        (-1i32..5, 0i32..3, any::<bool>()).prop_map(|(a, w, n)| Expr::Between(Between::new(
            Box::new(col("_partition")),
            n,
            Box::new(lit(a)),
            Box::new(lit(a + w))
        ))),
        (-2i64..42, 0i64..20, any::<bool>()).prop_map(|(a, w, n)| Expr::Between(Between::new(
            Box::new(col("_offset")),
            n,
            Box::new(lit(a)),
            Box::new(lit(a + w))
        ))),
        (op, 0i64..5).prop_map(|(op, v)| Expr::BinaryExpr(BinaryExpr::new(
            Box::new(col("x")),
            op,
            Box::new(lit(v))
        ))),
    ]
}

fn predicate() -> impl Strategy<Value = Expr> {
    atom().prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| a.and(b)),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| a.or(b)),
            inner.prop_map(|a| Expr::Not(Box::new(a))),
        ]
    })
}

fn truth(expr: &Expr, batch: &RecordBatch) -> BooleanArray {
    let schema = DFSchema::try_from(batch.schema().as_ref().clone()).unwrap();
    let phys = create_physical_expr(
        expr,
        &schema,
        &ExecutionProps::new(),
        &PhysicalPlanningContext::default(),
    )
    .unwrap();
    let v = phys
        .evaluate(batch)
        .unwrap()
        .into_array(batch.num_rows())
        .unwrap();
    v.as_any().downcast_ref::<BooleanArray>().unwrap().clone()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn analysis_matches_brute_force(expr in predicate(), ordered in any::<bool>()) {
        let batch = data();
        let truth = truth(&expr, &batch);
        let analysis = analyze(&expr, ordered);
        let p = batch.column(0).as_any().downcast_ref::<Int32Array>().unwrap();
        let o = batch.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        let t = batch.column(2).as_any().downcast_ref::<TimestampMillisecondArray>().unwrap();
        let offset_at = |ts: i64| Some(((ts - 1_000 + 9).div_euclid(10)).clamp(0, OFFSETS));
        let skew = if ordered { Some(0) } else { None };
        for part in 0..PARTITIONS {
            let ranges = analysis.selection.offset_spans(part, Span::new(0, OFFSETS), OFFSETS, skew, &offset_at);
            for i in 0..batch.num_rows() {
                if p.value(i) != part { continue; }
                let accepted = truth.is_valid(i) && truth.value(i);
                let in_selection = analysis.selection.contains(part as i64, o.value(i), Some(t.value(i)));
                let in_ranges = ranges.iter().any(|r| r.contains(o.value(i)));
                // Always a superset; equal when exact.
                prop_assert!(!accepted || (in_selection && in_ranges), "{expr} lost row p={part} o={}", o.value(i));
                if analysis.exact {
                    prop_assert_eq!(accepted, in_selection, "{} at p={} o={}", expr, part, o.value(i));
                    prop_assert_eq!(accepted, in_ranges, "{} ranges {:?} at p={} o={}", expr, ranges, part, o.value(i));
                }
            }
        }
    }
}
