//! The analyzer rule that makes `GROUP BY hop(<slide>, <size>, <event time>)` mean what it
//! says: each row is copied once per window that may contain it (an unnest of `0..n`, Spark's
//! `Expand`), and the copies are grouped by `hop_window(…, k)`, the k-th window's start. The
//! aggregation above stays an ordinary one, so batch, live and continuous queries all run it,
//! and a window closes when the watermark passes its end like a `date_bin` window.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, ScalarValue, plan_err};
use datafusion::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{Aggregate, Expr, LogicalPlan, LogicalPlanBuilder, lit};
use datafusion::optimizer::AnalyzerRule;

use super::hop::{HOP, HopWindowFunc, interval_nanos};

/// Rewrites aggregations grouped by `hop(…)` (see the module docs); refuses `hop(…)` anywhere
/// else, where one value cannot stand for a row's several windows.
#[derive(Debug, Default)]
pub struct HoppingWindows;

impl AnalyzerRule for HoppingWindows {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let plan = plan
            .transform_up_with_subqueries(|node| match node {
                LogicalPlan::Aggregate(agg) => expand(agg),
                other => Ok(Transformed::no(other)),
            })?
            .data;
        refuse_stray_hops(&plan)?;
        Ok(plan)
    }

    fn name(&self) -> &str {
        "HoppingWindows"
    }
}

fn hop_call(expr: &Expr) -> Option<&ScalarFunction> {
    match expr {
        Expr::ScalarFunction(call) if call.func.name() == HOP => Some(call),
        _ => None,
    }
}

/// A name for the copy index that no input column has.
fn copy_column(agg: &Aggregate) -> String {
    let taken = |name: &str| agg.input.schema().fields().iter().any(|f| f.name() == name);
    let mut name = "__hop_k".to_string();
    while taken(&name) {
        name.push('_');
    }
    name
}

fn expand(agg: Aggregate) -> Result<Transformed<LogicalPlan>> {
    let hops: Vec<usize> = agg
        .group_expr
        .iter()
        .enumerate()
        .filter(|(_, e)| hop_call(e).is_some())
        .map(|(i, _)| i)
        .collect();
    let index = match hops.as_slice() {
        [] => return Ok(Transformed::no(LogicalPlan::Aggregate(agg))),
        [one] => *one,
        _ => return plan_err!("a GROUP BY can have one hop(…) window, not {}", hops.len()),
    };
    let call = hop_call(&agg.group_expr[index]).expect("found above");
    let [slide, size, time] = call.args.as_slice() else {
        return plan_err!("hop takes 3 arguments: hop(<slide>, <size>, <event time>)");
    };
    let constant = |expr: &Expr, what: &str| -> Result<i64> {
        match expr {
            Expr::Literal(value, _) => interval_nanos(value, what),
            other => plan_err!("hop's {what} must be a constant interval, got {other}"),
        }
    };
    let slide_ns = constant(slide, "slide")?;
    let size_ns = constant(size, "size")?;
    let copies = (size_ns + slide_ns - 1) / slide_ns;
    if copies > 1_000 {
        return plan_err!(
            "hop's size is {copies} slides long: each row would be copied into {copies} \
             windows; use a slide at least a thousandth of the size"
        );
    }
    let k = copy_column(&agg);
    let mut columns: Vec<Expr> = agg
        .input
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    let ks: Vec<ScalarValue> = (0..copies).map(|i| ScalarValue::Int64(Some(i))).collect();
    columns.push(
        lit(ScalarValue::List(ScalarValue::new_list_nullable(
            &ks,
            &arrow::datatypes::DataType::Int64,
        )))
        .alias(&k),
    );
    let window = Expr::ScalarFunction(ScalarFunction::new_udf(
        Arc::new(HopWindowFunc::udf()),
        vec![
            slide.clone(),
            size.clone(),
            time.clone(),
            Expr::Column(Column::from_name(&k)),
        ],
    ));
    let mut input = LogicalPlanBuilder::from(Arc::unwrap_or_clone(Arc::clone(&agg.input)))
        .project(columns)?
        .unnest_column(k.as_str())?;
    if size_ns % slide_ns != 0 {
        // The last copy of some rows falls outside every window.
        input = input.filter(window.clone().is_not_null())?;
    }
    let mut group_expr = agg.group_expr.clone();
    let name = group_expr[index].schema_name().to_string();
    group_expr[index] = window.alias(name);
    let rewritten = Aggregate::try_new(Arc::new(input.build()?), group_expr, agg.aggr_expr)?;
    Ok(Transformed::yes(LogicalPlan::Aggregate(rewritten)))
}

fn refuse_stray_hops(plan: &LogicalPlan) -> Result<()> {
    let mut stray = None;
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if hop_call(e).is_some() {
                    stray = Some(e.to_string());
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    match stray {
        Some(expr) => plan_err!(
            "{expr} puts a row in several windows, so it can only be a GROUP BY key of its own: \
             GROUP BY hop(<slide>, <size>, <event time>)[, keys], and select it by that \
             expression or its position"
        ),
        None => Ok(()),
    }
}
