//! `INSERT INTO <topic table> SELECT …` without a column list: the SELECT's columns are the
//! table's value columns (its metadata columns `_key`, `_partition`, … stay NULL, so the
//! writer chooses), as in Flink, where metadata columns are virtual for such inserts.
//! DataFusion itself would ask for every column; this completes the column list before the
//! statement is planned, or says which columns the table has and how to name them.

use std::sync::Arc;

use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement;
use datafusion::sql::sqlparser::ast::{
    self, Ident, ObjectName, ObjectNamePart, SetExpr, TableObject,
};

use super::TopicTable;
use crate::error::{Result, TopicsError};

/// `statement` with the value columns as its column list when it is an INSERT into a topic
/// table without one whose SELECT gives exactly the value columns. A SELECT giving every
/// column (values and metadata) is left as it is; any other count is an error that lists the
/// table's columns.
pub async fn complete_insert_columns(
    ctx: &SessionContext,
    statement: Statement,
) -> Result<Statement> {
    let Statement::Statement(boxed) = &statement else {
        return Ok(statement);
    };
    let ast::Statement::Insert(insert) = boxed.as_ref() else {
        return Ok(statement);
    };
    let (true, TableObject::TableName(name), Some(source)) =
        (insert.columns.is_empty(), &insert.table, &insert.source)
    else {
        return Ok(statement);
    };
    // VALUES lists keep DataFusion's own rule: they name every column positionally.
    if matches!(source.body.as_ref(), SetExpr::Values(_)) {
        return Ok(statement);
    }
    let Ok(provider) = ctx.table_provider(name.to_string()).await else {
        return Ok(statement);
    };
    let Some(table) = provider.downcast_ref::<TopicTable>() else {
        return Ok(statement);
    };
    let schema = Arc::clone(table.topic_schema().schema());
    let value_count = table.value_count();
    let query = Statement::Statement(Box::new(ast::Statement::Query(source.clone())));
    let selected = ctx
        .state()
        .statement_to_plan(query)
        .await?
        .schema()
        .fields()
        .len();
    if selected == schema.fields().len() {
        return Ok(statement);
    }
    let values: Vec<&str> = schema
        .fields()
        .iter()
        .take(value_count)
        .map(|f| f.name().as_str())
        .collect();
    if selected != value_count {
        let metadata: Vec<&str> = schema
            .fields()
            .iter()
            .skip(value_count)
            .map(|f| f.name().as_str())
            .collect();
        return Err(TopicsError::plan(format!(
            "INSERT INTO {name} without a column list writes the table's {} value column(s) \
             ({}), but the SELECT gives {selected}; name the columns it fills, for example \
             INSERT INTO {name} ({}, _key) SELECT …; the table's metadata columns are {}",
            values.len(),
            values.join(", "),
            values.join(", "),
            metadata.join(", ")
        )));
    }
    let mut insert = insert.clone();
    insert.columns = values
        .iter()
        .map(|v| ObjectName(vec![ObjectNamePart::Identifier(Ident::with_quote('"', *v))]))
        .collect();
    Ok(Statement::Statement(Box::new(ast::Statement::Insert(
        insert,
    ))))
}
