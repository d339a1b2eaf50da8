//! What a lightweight transaction answered.
//!
//! A conditional statement (`IF NOT EXISTS`, `IF column = ?`) answers one
//! row: `[applied]` first, and when it was not applied the columns of the
//! row that stood in the way (Cassandra and ScyllaDB differ in which and in
//! what order, so they are found by name). A server that answers without
//! `[applied]` did not honour the condition, and nothing that depends on
//! one (unique keys, positions, group versions) would hold: that is an
//! error, never a guess.

use scylla::{
    response::query_result::QueryResult,
    value::{CqlValue, Row},
};

use super::CqlError;

/// A conditional statement's answer.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Answer {
    /// Whether the condition held and the write was made.
    pub(super) applied: bool,
    /// The other columns answered, by name (those of the existing row when
    /// not applied).
    columns: Vec<(String, Option<CqlValue>)>,
}

impl Answer {
    /// Read `[applied]` and the columns of a conditional statement's result.
    pub(super) fn of(result: QueryResult) -> Result<Answer, CqlError> {
        let rows =
            result.into_rows_result().map_err(|_| CqlError::Unexpected("a conditional statement returned no rows"))?;
        let names: Vec<String> = rows.column_specs().iter().map(|c| c.name().to_owned()).collect();
        let first = rows.maybe_first_row::<Row>().ok().flatten();
        let Some(row) = first else {
            return Err(CqlError::Unexpected("a conditional statement answered without [applied]"));
        };
        Answer::from_columns(names.into_iter().zip(row.columns).collect())
    }

    fn from_columns(columns: Vec<(String, Option<CqlValue>)>) -> Result<Answer, CqlError> {
        let applied = columns.iter().find(|(name, _)| name == "[applied]").and_then(|(_, v)| match v {
            Some(CqlValue::Boolean(b)) => Some(*b),
            _ => None,
        });
        let applied = applied.ok_or(CqlError::Unexpected("a conditional statement answered without [applied]"))?;
        Ok(Answer { applied, columns })
    }

    fn value(&self, name: &str) -> Option<&CqlValue> {
        self.columns.iter().find(|(n, _)| n == name).and_then(|(_, v)| v.as_ref())
    }

    /// A `bigint` column of the answer, if present and set.
    pub(super) fn big(&self, name: &str) -> Option<i64> {
        match self.value(name)? {
            CqlValue::BigInt(v) => Some(*v),
            _ => None,
        }
    }

    /// A `blob` column of the answer, if present and set.
    pub(super) fn blob(&self, name: &str) -> Option<&[u8]> {
        match self.value(name)? {
            CqlValue::Blob(v) => Some(v),
            _ => None,
        }
    }

    /// An answer as a server would give it, for tests of what follows.
    #[cfg(test)]
    pub(super) fn test(applied: bool, columns: &[(&str, CqlValue)]) -> Answer {
        let mut all = vec![("[applied]".to_owned(), Some(CqlValue::Boolean(applied)))];
        all.extend(columns.iter().map(|(n, v)| ((*n).to_owned(), Some(v.clone()))));
        Answer { applied, columns: all }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applied_is_found_by_name_and_columns_by_name_and_type() {
        let a = Answer::from_columns(vec![
            ("head".into(), Some(CqlValue::BigInt(7))),
            ("[applied]".into(), Some(CqlValue::Boolean(false))),
            ("conversation".into(), Some(CqlValue::Blob(vec![1, 2]))),
            ("id".into(), None),
        ])
        .unwrap();
        assert!(!a.applied);
        assert_eq!(a.big("head"), Some(7));
        assert_eq!(a.blob("conversation"), Some(&[1u8, 2][..]));
        assert_eq!(a.big("id"), None, "unset");
        assert_eq!(a.big("conversation"), None, "another type");
        assert_eq!(a.big("missing"), None);
    }

    #[test]
    fn an_answer_without_applied_is_an_error() {
        let e = Answer::from_columns(vec![("head".into(), Some(CqlValue::BigInt(7)))]).unwrap_err();
        assert!(e.to_string().contains("[applied]"), "{e}");
        let e = Answer::from_columns(vec![("[applied]".into(), Some(CqlValue::Int(1)))]).unwrap_err();
        assert!(matches!(e, CqlError::Unexpected(_)));
    }
}
