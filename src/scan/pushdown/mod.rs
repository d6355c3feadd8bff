//! Filters on `_topic`, `_partition`, `_offset` and `_timestamp` turned into the set of
//! messages a scan has to read: pure functions, shared by every source.
//!
//! A filter is analysed into a [`Selection`]: a union of [`Region`]s, each a box of a topic
//! set and partition, offset and timestamp intervals. The analysis is a superset of the rows the filter accepts;
//! it is *exact* when the filter uses nothing but these columns (and, for `_timestamp`, when
//! timestamps grow with offsets). [`Selection::offset_ranges`] then turns a selection into the
//! offset ranges of one partition, given where that partition's scan would start and end
//! anyway and how timestamps map to offsets.

use std::collections::BTreeSet;

use datafusion::common::ScalarValue;
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};

use crate::source::OffsetRange;
use crate::table::MetadataColumn;

/// Regions beyond this count are not tracked; the filter is then left to DataFusion.
const MAX_REGIONS: usize = 256;

/// A half-open span `[lo, hi)` of values (partition ids, offsets or timestamps), the set
/// algebra of the analysis; `i64::MIN` / `i64::MAX` stand for unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    /// Inclusive lower bound (`i64::MIN`: none).
    pub lo: i64,
    /// Exclusive upper bound (`i64::MAX`: none).
    pub hi: i64,
}

impl Span {
    /// Every value.
    pub const ALL: Span = Span {
        lo: i64::MIN,
        hi: i64::MAX,
    };

    /// `[lo, hi)`.
    pub fn new(lo: i64, hi: i64) -> Self {
        Self { lo, hi }
    }

    /// True when no value lies inside.
    pub fn is_empty(&self) -> bool {
        self.lo >= self.hi
    }

    /// True when `v` lies inside.
    pub fn contains(&self, v: i64) -> bool {
        self.lo <= v && (v < self.hi || self.hi == i64::MAX)
    }

    /// The common part of two intervals.
    pub fn intersect(&self, other: &Span) -> Span {
        Span {
            lo: self.lo.max(other.lo),
            hi: self.hi.min(other.hi),
        }
    }

    /// True when the upper end is bounded.
    pub fn has_end(&self) -> bool {
        self.hi != i64::MAX
    }
}

/// One box of messages: topics × partitions × offsets × timestamps (milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// Topic names (`None`: every topic).
    pub topics: Option<BTreeSet<String>>,
    /// Partition ids.
    pub partitions: Span,
    /// Offsets.
    pub offsets: Span,
    /// Timestamps in milliseconds since the epoch.
    pub timestamps: Span,
}

impl Region {
    /// Every message.
    pub const ALL: Region = Region {
        topics: None,
        partitions: Span::ALL,
        offsets: Span::ALL,
        timestamps: Span::ALL,
    };

    fn intersect(&self, other: &Region) -> Region {
        let topics = match (&self.topics, &other.topics) {
            (None, t) | (t, None) => t.clone(),
            (Some(a), Some(b)) => Some(a.intersection(b).cloned().collect()),
        };
        Region {
            topics,
            partitions: self.partitions.intersect(&other.partitions),
            offsets: self.offsets.intersect(&other.offsets),
            timestamps: self.timestamps.intersect(&other.timestamps),
        }
    }

    fn is_empty(&self) -> bool {
        self.topics.as_ref().is_some_and(BTreeSet::is_empty)
            || self.partitions.is_empty()
            || self.offsets.is_empty()
            || self.timestamps.is_empty()
    }

    fn on(column: Column, interval: Span) -> Region {
        let mut r = Region::ALL;
        match column {
            Column::Partition => r.partitions = interval,
            Column::Offset => r.offsets = interval,
            Column::Timestamp => r.timestamps = interval,
        }
        r
    }

    fn topics(names: BTreeSet<String>) -> Region {
        Region {
            topics: Some(names),
            ..Region::ALL
        }
    }

    fn includes_topic(&self, topic: &str) -> bool {
        self.topics.as_ref().is_none_or(|t| t.contains(topic))
    }
}

/// A set of messages as a union of regions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    regions: Vec<Region>,
}

impl Selection {
    /// Every message.
    pub fn all() -> Self {
        Self {
            regions: vec![Region::ALL],
        }
    }

    /// No message.
    pub fn none() -> Self {
        Self { regions: vec![] }
    }

    /// The regions of the union.
    #[cfg(test)]
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// True when no message can match.
    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    /// True when the selection restricts nothing.
    pub fn is_all(&self) -> bool {
        self.regions.contains(&Region::ALL)
    }

    /// Messages in both selections.
    pub fn and(&self, other: &Selection) -> Selection {
        let mut regions = Vec::new();
        for a in &self.regions {
            for b in &other.regions {
                let r = a.intersect(b);
                if !r.is_empty() && !regions.contains(&r) {
                    regions.push(r);
                }
            }
        }
        Self { regions }.capped()
    }

    /// Messages in either selection.
    pub fn or(mut self, other: Selection) -> Selection {
        for r in other.regions {
            if !self.regions.contains(&r) {
                self.regions.push(r);
            }
        }
        self.capped()
    }

    fn capped(self) -> Selection {
        if self.regions.len() > MAX_REGIONS {
            Selection::all()
        } else {
            self
        }
    }

    /// True when the message lies in the selection (`timestamp = None`: no timestamp).
    #[cfg(test)]
    pub fn contains(&self, partition: i64, offset: i64, timestamp: Option<i64>) -> bool {
        self.regions.iter().any(|r| {
            r.partitions.contains(partition)
                && r.offsets.contains(offset)
                && match timestamp {
                    Some(ts) => r.timestamps.contains(ts),
                    None => r.timestamps == Span::ALL,
                }
        })
    }

    /// True when some region includes `partition` of `topic` (the partition's `_topic`).
    pub fn includes(&self, topic: &str, partition: i32) -> bool {
        self.regions
            .iter()
            .any(|r| r.includes_topic(topic) && r.partitions.contains(partition as i64))
    }

    /// True when some region includes a partition of `topic`.
    pub fn includes_topic(&self, topic: &str) -> bool {
        self.regions.iter().any(|r| r.includes_topic(topic))
    }

    /// Every finite timestamp bound that [`Self::offset_ranges`] will look up, given the
    /// allowed skew for upper bounds (`None`: upper bounds are not used).
    pub fn timestamp_lookups(&self, upper_skew_ms: Option<i64>) -> Vec<i64> {
        let mut out = Vec::new();
        for r in &self.regions {
            if r.timestamps.lo != i64::MIN {
                out.push(r.timestamps.lo);
            }
            if let (true, Some(skew)) = (r.timestamps.has_end(), upper_skew_ms) {
                out.push(r.timestamps.hi.saturating_add(skew));
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The sorted, disjoint offset ranges of `partition` of `topic` to read.
    ///
    /// `base` is what the scan reads without filters (`hi = i64::MAX`: follow the log), `high`
    /// the partition's high watermark: a finite end from a filter is cut there, so a filtered
    /// scan that ends reads what exists when the query starts. `offset_at(t)` is the first
    /// offset whose timestamp is at or after `t` (the high watermark if none; `None`: unknown, the bound is not used); upper timestamp
    /// bounds end the scan at `offset_at(bound + skew)` only when `upper_skew_ms` is given.
    pub fn offset_ranges(
        &self,
        topic: &str,
        partition: i32,
        base: Span,
        high: i64,
        upper_skew_ms: Option<i64>,
        offset_at: &dyn Fn(i64) -> Option<i64>,
    ) -> Vec<OffsetRange> {
        let mut parts: Vec<Span> = Vec::new();
        for r in self
            .regions
            .iter()
            .filter(|r| r.includes_topic(topic) && r.partitions.contains(partition as i64))
        {
            let mut iv = r.offsets;
            if iv.has_end() {
                iv.hi = iv.hi.min(high);
            }
            if r.timestamps.lo != i64::MIN
                && let Some(o) = offset_at(r.timestamps.lo)
            {
                iv.lo = iv.lo.max(o);
            }
            if let (true, Some(skew)) = (r.timestamps.has_end(), upper_skew_ms)
                && let Some(o) = offset_at(r.timestamps.hi.saturating_add(skew))
            {
                iv.hi = iv.hi.min(o);
            }
            let iv = iv.intersect(&base);
            if !iv.is_empty() {
                parts.push(iv);
            }
        }
        merge(parts)
            .into_iter()
            .map(|iv| OffsetRange {
                start: iv.lo,
                end: iv.has_end().then_some(iv.hi),
            })
            .collect()
    }
}

/// Sorts intervals and merges those that overlap or touch.
pub fn merge(mut parts: Vec<Span>) -> Vec<Span> {
    parts.sort_by_key(|i| i.lo);
    let mut out: Vec<Span> = Vec::with_capacity(parts.len());
    for iv in parts {
        match out.last_mut() {
            Some(last) if iv.lo <= last.hi => last.hi = last.hi.max(iv.hi),
            _ => out.push(iv),
        }
    }
    out
}

/// The result of analysing one filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    /// A superset of the messages the filter accepts.
    pub selection: Selection,
    /// True when the selection is exactly the filter (DataFusion need not re-check it).
    pub exact: bool,
}

impl Analysis {
    fn unknown() -> Self {
        Self {
            selection: Selection::all(),
            exact: false,
        }
    }
}

/// The columns the analysis understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Partition,
    Offset,
    Timestamp,
}

/// Analyses one filter. `timestamps_ordered` says whether timestamps never decrease with
/// offsets (log-append time), which makes `_timestamp` predicates exact.
pub fn analyze(expr: &Expr, timestamps_ordered: bool) -> Analysis {
    Analyzer { timestamps_ordered }.visit(expr, false)
}

/// Analyses several filters joined by AND.
pub fn analyze_all(filters: &[Expr], timestamps_ordered: bool) -> Selection {
    filters.iter().fold(Selection::all(), |acc, f| {
        acc.and(&analyze(f, timestamps_ordered).selection)
    })
}

struct Analyzer {
    timestamps_ordered: bool,
}

impl Analyzer {
    fn visit(&self, expr: &Expr, negated: bool) -> Analysis {
        match expr {
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: op @ (Operator::And | Operator::Or),
                right,
            }) => {
                let (l, r) = (self.visit(left, negated), self.visit(right, negated));
                let conjunction = (*op == Operator::And) != negated;
                let selection = if conjunction {
                    l.selection.and(&r.selection)
                } else {
                    l.selection.or(r.selection)
                };
                Analysis {
                    selection,
                    exact: l.exact && r.exact,
                }
            }
            Expr::Not(inner) => self.visit(inner, !negated),
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                if let Some(topic) = topic_equality(left, *op, right, negated) {
                    return topic;
                }
                match (
                    self.column(left),
                    literal(right),
                    self.column(right),
                    literal(left),
                ) {
                    (Some(c), Some(v), _, _) => self.compare(c, *op, v, negated),
                    (_, _, Some(c), Some(v)) => match flip(*op) {
                        Some(op) => self.compare(c, op, v, negated),
                        None => Analysis::unknown(),
                    },
                    _ => Analysis::unknown(),
                }
            }
            Expr::InList(InList {
                expr,
                list,
                negated: n,
            }) => {
                if is_topic(expr) {
                    return topic_list(list, *n != negated);
                }
                let Some(c) = self.column(expr) else {
                    return Analysis::unknown();
                };
                let mut points = Vec::with_capacity(list.len());
                for item in list {
                    match literal(item) {
                        Some(Lit::Value(w, a)) => points.extend(point(w, a)),
                        Some(Lit::Null) => return Analysis::unknown(),
                        None => return Analysis::unknown(),
                    }
                }
                let set = merge(points);
                let set = if *n != negated { complement(&set) } else { set };
                self.atom(c, set)
            }
            Expr::Between(Between {
                expr,
                negated: n,
                low,
                high,
            }) => {
                let (Some(c), Some(Lit::Value(lw, la)), Some(Lit::Value(hw, ha))) =
                    (self.column(expr), literal(low), literal(high))
                else {
                    return Analysis::unknown();
                };
                let lo = range_for(Operator::GtEq, lw, la);
                let hi = range_for(Operator::LtEq, hw, ha);
                let mut set: Vec<Span> = lo
                    .iter()
                    .flat_map(|a| hi.iter().map(move |b| a.intersect(b)))
                    .filter(|i| !i.is_empty())
                    .collect();
                set = merge(set);
                let set = if *n != negated { complement(&set) } else { set };
                self.atom(c, set)
            }
            Expr::IsNotNull(inner) | Expr::IsNull(inner) => {
                let is_null = matches!(expr, Expr::IsNull(_)) != negated;
                match self.column(inner) {
                    Some(Column::Partition | Column::Offset) => Analysis {
                        selection: if is_null {
                            Selection::none()
                        } else {
                            Selection::all()
                        },
                        exact: true,
                    },
                    _ => Analysis::unknown(),
                }
            }
            Expr::Literal(ScalarValue::Boolean(Some(b)), _) => Analysis {
                selection: if *b != negated {
                    Selection::all()
                } else {
                    Selection::none()
                },
                exact: true,
            },
            _ => Analysis::unknown(),
        }
    }

    fn compare(&self, column: Column, op: Operator, value: Lit, negated: bool) -> Analysis {
        let op = if negated {
            match negate(op) {
                Some(op) => op,
                None => return Analysis::unknown(),
            }
        } else {
            op
        };
        match value {
            // A comparison with NULL is never true, negated or not.
            Lit::Null => Analysis {
                selection: Selection::none(),
                exact: true,
            },
            Lit::Value(w, a) => self.atom(column, range_for(op, w, a)),
        }
    }

    fn atom(&self, column: Column, set: Vec<Span>) -> Analysis {
        let selection = set.into_iter().fold(Selection::none(), |acc, iv| {
            acc.or(Selection {
                regions: vec![Region::on(column, iv)],
            })
        });
        let exact = column != Column::Timestamp || self.timestamps_ordered;
        Analysis { selection, exact }
    }

    fn column(&self, expr: &Expr) -> Option<Column> {
        match expr {
            Expr::Column(c) if c.name == MetadataColumn::Partition.name() => {
                Some(Column::Partition)
            }
            Expr::Column(c) if c.name == MetadataColumn::Offset.name() => Some(Column::Offset),
            Expr::Column(c) if c.name == MetadataColumn::Timestamp.name() => {
                Some(Column::Timestamp)
            }
            // Widening integer casts keep comparisons exact.
            Expr::Cast(cast) if cast.field.data_type() == &arrow::datatypes::DataType::Int64 => {
                match self.column(&cast.expr) {
                    Some(c @ (Column::Partition | Column::Offset)) => Some(c),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

fn is_topic(expr: &Expr) -> bool {
    matches!(expr, Expr::Column(c) if c.name == MetadataColumn::Topic.name())
}

fn string_literal(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)),
            _,
        ) => Some(s),
        _ => None,
    }
}

/// `_topic = 'name'` (either way round): the topic set `{name}`, exact. Negated or other
/// comparisons on `_topic` are left to DataFusion (`None` when the expression is not about
/// `_topic` at all).
fn topic_equality(left: &Expr, op: Operator, right: &Expr, negated: bool) -> Option<Analysis> {
    let name = match (is_topic(left), is_topic(right)) {
        (true, _) => string_literal(right),
        (_, true) => string_literal(left),
        _ => return None,
    };
    Some(match (name, op, negated) {
        (Some(name), Operator::Eq, false) => Analysis {
            selection: Selection {
                regions: vec![Region::topics([name.to_string()].into())],
            },
            exact: true,
        },
        _ => Analysis::unknown(),
    })
}

/// `_topic IN ('a', 'b')`: the topic set, exact (`NOT IN` is left to DataFusion).
fn topic_list(list: &[Expr], negated: bool) -> Analysis {
    if negated {
        return Analysis::unknown();
    }
    let names: Option<BTreeSet<String>> = list
        .iter()
        .map(|e| string_literal(e).map(str::to_string))
        .collect();
    match names {
        Some(names) => Analysis {
            selection: Selection {
                regions: vec![Region::topics(names)],
            },
            exact: true,
        },
        None => Analysis::unknown(),
    }
}

/// A literal as an exact rational threshold: the column value `m` (integer, in the column's
/// unit) is compared as `m * scale` against `value`.
#[derive(Debug, Clone, Copy)]
enum Lit {
    Value(i128, i128),
    Null,
}

fn literal(expr: &Expr) -> Option<Lit> {
    let (v, scale): (Option<i128>, i128) = match expr {
        Expr::Literal(s, _) => match s {
            ScalarValue::Int8(v) => (v.map(i128::from), 1),
            ScalarValue::Int16(v) => (v.map(i128::from), 1),
            ScalarValue::Int32(v) => (v.map(i128::from), 1),
            ScalarValue::Int64(v) => (v.map(i128::from), 1),
            ScalarValue::UInt8(v) => (v.map(i128::from), 1),
            ScalarValue::UInt16(v) => (v.map(i128::from), 1),
            ScalarValue::UInt32(v) => (v.map(i128::from), 1),
            ScalarValue::UInt64(v) => (v.map(i128::from), 1),
            // Timestamps compare against the millisecond column: m * scale vs value.
            ScalarValue::TimestampSecond(v, _) => (v.map(|s| i128::from(s) * 1000), 1),
            ScalarValue::TimestampMillisecond(v, _) => (v.map(i128::from), 1),
            ScalarValue::TimestampMicrosecond(v, _) => (v.map(i128::from), 1000),
            ScalarValue::TimestampNanosecond(v, _) => (v.map(i128::from), 1_000_000),
            _ => return None,
        },
        _ => return None,
    };
    Some(match v {
        Some(v) => Lit::Value(v, scale),
        None => Lit::Null,
    })
}

/// The integers `m` with `m * scale <op> w`, as intervals.
fn range_for(op: Operator, w: i128, scale: i128) -> Vec<Span> {
    let floor = w.div_euclid(scale);
    let ceil = -(-w).div_euclid(scale);
    let clamp = |v: i128| v.clamp(i64::MIN as i128 + 1, i64::MAX as i128 - 1) as i64;
    let lo = |v: i128| Span::new(clamp(v), i64::MAX);
    let hi = |v: i128| Span::new(i64::MIN, clamp(v));
    match op {
        Operator::Eq => vec![Span::new(clamp(ceil), clamp(floor + 1))]
            .into_iter()
            .filter(|i| !i.is_empty())
            .collect(),
        Operator::NotEq => {
            let eq: Vec<Span> = range_for(Operator::Eq, w, scale);
            complement(&eq)
        }
        Operator::Lt => vec![hi(ceil)],
        Operator::LtEq => vec![hi(floor + 1)],
        Operator::Gt => vec![lo(floor + 1)],
        Operator::GtEq => vec![lo(ceil)],
        _ => vec![Span::ALL],
    }
}

fn point(w: i128, scale: i128) -> Vec<Span> {
    range_for(Operator::Eq, w, scale)
}

/// The complement of sorted, disjoint intervals.
fn complement(set: &[Span]) -> Vec<Span> {
    let mut out = Vec::new();
    let mut start = i64::MIN;
    for iv in set {
        if iv.lo > start {
            out.push(Span::new(start, iv.lo));
        }
        start = iv.hi;
    }
    if start != i64::MAX {
        out.push(Span::new(start, i64::MAX));
    }
    out
}

fn flip(op: Operator) -> Option<Operator> {
    Some(match op {
        Operator::Eq | Operator::NotEq => op,
        Operator::Lt => Operator::Gt,
        Operator::LtEq => Operator::GtEq,
        Operator::Gt => Operator::Lt,
        Operator::GtEq => Operator::LtEq,
        _ => return None,
    })
}

fn negate(op: Operator) -> Option<Operator> {
    Some(match op {
        Operator::Eq => Operator::NotEq,
        Operator::NotEq => Operator::Eq,
        Operator::Lt => Operator::GtEq,
        Operator::LtEq => Operator::Gt,
        Operator::Gt => Operator::LtEq,
        Operator::GtEq => Operator::Lt,
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
