//! Arrow helpers shared by the vector table, the ANN search and the embedding cache: the
//! `vector` column's shape and typed access to a record batch's columns. Nothing here knows
//! about chunks or queries.

use std::sync::Arc;

use lancedb::arrow::arrow_array::cast::AsArray;
use lancedb::arrow::arrow_array::types::Float32Type;
use lancedb::arrow::arrow_array::{
    Array, ArrayRef, ArrowPrimitiveType, FixedSizeListArray, PrimitiveArray, RecordBatch,
    StringArray,
};
use lancedb::arrow::arrow_schema::{DataType, Field};

use crate::error::{Error, Result};

/// The `vector` column's field.
pub(super) fn vector_field(dimension: usize) -> Field {
    Field::new(
        "vector",
        DataType::FixedSizeList(
            Arc::new(Field::new("item", DataType::Float32, true)),
            dimension as i32,
        ),
        false,
    )
}

/// A `vector` column from vectors of `dimension` floats.
pub(super) fn vector_array<'v>(
    vectors: impl Iterator<Item = &'v Vec<f32>>,
    dimension: usize,
) -> ArrayRef {
    Arc::new(
        FixedSizeListArray::from_iter_primitive::<Float32Type, _, _>(
            vectors.map(|v| Some(v.iter().copied().map(Some).collect::<Vec<_>>())),
            dimension as i32,
        ),
    )
}

/// The `vector` column of a batch, one vector per row.
pub(super) fn vectors_of(batch: &RecordBatch) -> Result<Vec<Vec<f32>>> {
    let list = batch
        .column_by_name("vector")
        .ok_or_else(|| Error::storage("the vector column is missing"))?
        .as_fixed_size_list();
    Ok((0..batch.num_rows())
        .map(|i| {
            list.value(i)
                .as_primitive::<Float32Type>()
                .values()
                .to_vec()
        })
        .collect())
}

/// The text column `name` of `batch`.
pub(super) fn string_column<'b>(batch: &'b RecordBatch, name: &str) -> Result<&'b StringArray> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| Error::storage(format!("the column {name} is missing or not text")))
}

/// The primitive column `name` of `batch` (`T` its Arrow type).
pub(super) fn primitive_column<'b, T: ArrowPrimitiveType>(
    batch: &'b RecordBatch,
    name: &str,
) -> Result<&'b PrimitiveArray<T>> {
    batch
        .column_by_name(name)
        .map(|c| c.as_primitive::<T>())
        .ok_or_else(|| Error::storage(format!("the column {name} is missing")))
}
